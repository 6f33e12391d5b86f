"""A node's DP-SGD privacy ledger kept in Flower's ``context.state`` across rounds.

Each Flower message runs in a fresh ClientApp process, so a
:class:`dp.LocalDPTrainer` built for a round starts with an empty ledger
unless its spending is carried over. :func:`load_ledger` / :func:`save_ledger`
carry it in ``context.state`` (one ``ConfigRecord`` holding one bytes value)
through a versioned binary codec, never pickle:

``MAGIC (4 bytes "SDPL") || version (1 byte) || SHA-256 digest (32 bytes) || body``

where ``body`` is canonical JSON (sorted keys, no spaces, ASCII, no NaN) of
``{"binding": ..., "ledger": PrivacyLedger.to_dict()}`` and the digest is
SHA-256 over ``MAGIC || version || body``. The binding names the node (its
Flower node id and run id) and the accounting parameters (delta, budget,
accountant, unit, population, sampling rate, noise multiplier); a saved
ledger whose binding differs from the trainer's is refused, never replaced
by a fresh one. An unlimited budget is written as the string ``"inf"``.

Security assumption: the node is trusted with its own budget; the digest
detects corruption and a ledger written for another node or configuration,
not a node that edits its own state on purpose. A missing record means the
node never trained in this run: Flower keeps ``context.state`` per run and
per SuperNode, so a SuperNode restarted from scratch (or a new run) starts
a new ledger. The write is atomic with the reply: Flower saves
``context.state`` together with the ClientApp's reply, and no update leaves
the node without its charge being in that state.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from flwr.app import ConfigRecord, Context

from secagg.errors import IntegrityError, ParameterError

__all__ = ["LEDGER_KEY", "MAGIC", "VERSION", "decode_ledger", "encode_ledger", "ledger_binding",
           "load_ledger", "save_ledger"]

#: the ``context.state`` key of the node's ledger record
LEDGER_KEY = "secagg.dp-ledger"
MAGIC = b"SDPL"
VERSION = 1
_HEADER = len(MAGIC) + 1 + 32
#: largest encoded ledger accepted (bytes): about 10^4 entries
MAX_BYTES = 1 << 20


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def ledger_binding(*, node_id: int, run_id: int, sample_rate: float, noise_multiplier: float,
                   ledger: Any) -> dict[str, Any]:
    """What a saved ledger is bound to: the node, the run and the accounting parameters."""
    return {
        "node_id": int(node_id), "run_id": int(run_id),
        "sample_rate": float(sample_rate), "noise_multiplier": float(noise_multiplier),
        "delta": float(ledger.delta), "unit": str(ledger.unit),
        "accountant": str(ledger.accountant), "population": ledger.population,
        "epsilon_budget": "inf" if math.isinf(ledger.epsilon_budget)
        else float(ledger.epsilon_budget),
    }


def encode_ledger(ledger: Any, binding: Mapping[str, Any]) -> bytes:
    """``ledger`` (a :class:`dp.PrivacyLedger`) bound to ``binding``, as bytes."""
    data = ledger.to_dict()
    if math.isinf(data["epsilon_budget"]):
        data["epsilon_budget"] = "inf"
    body = _canonical({"binding": dict(binding), "ledger": data})
    head = MAGIC + bytes([VERSION])
    return head + hashlib.sha256(head + body).digest() + body


def decode_ledger(blob: bytes, binding: Mapping[str, Any]) -> Any:
    """The :class:`dp.PrivacyLedger` in ``blob``; refuses a wrong magic, version,
    digest or binding, non-canonical JSON and malformed ledger values.

    Raises:
        IntegrityError: the bytes are not an intact ledger of this binding.
        ParameterError: the ledger's values are out of range.
    """
    from dp.ledger import PrivacyLedger

    if not isinstance(blob, bytes | bytearray):
        raise IntegrityError(f"saved ledger is a {type(blob).__name__}, not bytes")
    blob = bytes(blob)
    if len(blob) > MAX_BYTES:
        raise IntegrityError(f"saved ledger is {len(blob)} bytes, over the limit {MAX_BYTES}")
    if len(blob) < _HEADER or blob[:4] != MAGIC:
        raise IntegrityError("saved ledger does not start with the ledger magic")
    if blob[4] != VERSION:
        raise IntegrityError(f"saved ledger version {blob[4]} is not {VERSION}")
    digest, body = blob[5:_HEADER], blob[_HEADER:]
    if hashlib.sha256(blob[:5] + body).digest() != digest:
        raise IntegrityError("saved ledger digest does not match its contents")
    try:
        obj = json.loads(body.decode("ascii"),
                         parse_constant=lambda c: _refuse_constant(c))
    except (UnicodeDecodeError, ValueError) as exc:
        raise IntegrityError(f"saved ledger body is not JSON: {exc}") from exc
    if not isinstance(obj, dict) or set(obj) != {"binding", "ledger"}:
        raise IntegrityError("saved ledger body is not {binding, ledger}")
    if _canonical(obj) != body:
        raise IntegrityError("saved ledger body is not in canonical form")
    if obj["binding"] != _canonical_roundtrip(binding):
        raise IntegrityError(f"saved ledger is bound to {obj['binding']}, not to "
                             f"{dict(binding)} (another node, run or configuration)")
    data = obj["ledger"]
    if not isinstance(data, dict):
        raise IntegrityError("saved ledger record is not an object")
    if data.get("epsilon_budget") == "inf":
        data["epsilon_budget"] = math.inf
    ledger = PrivacyLedger.from_dict(data)
    if ledger.to_dict() != data:
        raise ParameterError("saved ledger has fields or values the ledger does not keep")
    return ledger


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"constant {name} is not allowed")


def _canonical_roundtrip(binding: Mapping[str, Any]) -> Any:
    return json.loads(_canonical(dict(binding)))


def load_ledger(context: Context, binding: Mapping[str, Any]) -> Any | None:
    """The ledger saved in ``context.state`` for ``binding``, or ``None`` if none is saved."""
    rec = context.state.config_records.get(LEDGER_KEY)
    if rec is None:
        return None
    blob = rec.get("ledger")
    if not isinstance(blob, bytes):
        raise IntegrityError(f"context.state[{LEDGER_KEY!r}] holds no ledger bytes")
    return decode_ledger(blob, binding)


def save_ledger(context: Context, ledger: Any, binding: Mapping[str, Any]) -> None:
    """Write ``ledger`` into ``context.state`` (replacing the previous one)."""
    context.state[LEDGER_KEY] = ConfigRecord({"ledger": encode_ledger(ledger, binding)})
