"""Identity for the malicious-server mode of SecAgg / SecAgg+ over Flower.

In malicious mode every client signs its keys with an Ed25519 identity key,
and every client must know every other client's public identity key from a
source the server does not control. Here that source is a **registry file**
that reaches each node out of band (copied by its operator, never sent by
the server) and is named in the node's config:

* ``secagg-registry``: path of the registry, JSON
  ``{"version": 1, "entries": {"<flower node id>": "<ed25519 public key, hex>"}}``;
  each entry ties a Flower node id (the client id on this transport) to a key;
* ``secagg-signing-key``: path of this node's own Ed25519 private key (hex,
  file mode 0600);
* ``secagg-require-malicious``: ``1`` to refuse any session that is not in
  malicious mode.

:func:`node_identity` gives the client mod a ``policy`` that refuses a
configuration whose registry differs from the node's file for any client id
in it (so a server cannot slip in keys of its own, i.e. Sybil clients) and a
``local_secrets`` that loads the node's signing key. The server builds a
malicious-mode session from the same registry with :func:`malicious_session`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from flwr.app import Context

from secagg.encoding import FixedPointEncoder
from secagg.errors import IntegrityError, ParameterError, ProtocolError
from secagg.sign import SigningKey, VerifyKey

from ..core import ProtocolDescriptor, Session, check_client_ids

__all__ = [
    "malicious_session",
    "node_identity",
    "read_registry",
    "read_signing_key",
    "write_registry",
    "write_signing_key",
]

REGISTRY_VERSION = 1
#: largest registry file read (bytes): 100,000 entries of about 100 bytes
MAX_REGISTRY_BYTES = 10_000_000


def write_registry(path: Path, entries: Mapping[int, VerifyKey]) -> None:
    """Write ``{node id: public key}`` as a registry file."""
    ids = check_client_ids(entries)
    data = {"version": REGISTRY_VERSION,
            "entries": {str(i): entries[i].to_bytes().hex() for i in ids}}
    Path(path).write_text(json.dumps(data, indent=1))


def read_registry(path: Path | str) -> dict[int, VerifyKey]:
    """Parse a registry file strictly (see the module docstring)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ParameterError(f"cannot read the registry {p}: {exc}") from exc
    if len(raw) > MAX_REGISTRY_BYTES:
        raise ParameterError(f"registry {p} has {len(raw)} bytes, limit {MAX_REGISTRY_BYTES}")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ParameterError(f"registry {p} is not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("version") != REGISTRY_VERSION or not isinstance(
            data.get("entries"), dict):
        raise ParameterError(f"registry {p} is not a version-{REGISTRY_VERSION} registry")
    out: dict[int, VerifyKey] = {}
    for k, v in data["entries"].items():
        if not (isinstance(k, str) and k.isdigit() and isinstance(v, str)):
            raise ParameterError(f"registry entry {k!r}: {v!r} is not '<node id>': '<hex key>'")
        try:
            out[int(k)] = VerifyKey.from_bytes(bytes.fromhex(v))
        except ValueError as exc:
            raise ParameterError(f"registry entry {k}: bad key: {exc}") from exc
    check_client_ids(out)
    if len(set(out.values())) != len(out):
        raise ParameterError(f"registry {p} holds the same key for two node ids")
    return out


def write_signing_key(path: Path, key: SigningKey) -> None:
    """Write a node's Ed25519 private key (hex) with mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.to_bytes().hex())


def read_signing_key(path: Path | str) -> SigningKey:
    """Read a key written by :func:`write_signing_key`."""
    try:
        text = Path(path).read_text().strip()
        return SigningKey.from_bytes(bytes.fromhex(text))
    except (OSError, ValueError) as exc:
        raise ParameterError(f"cannot read the signing key {path}: {exc}") from exc


def malicious_session(
    descriptor: ProtocolDescriptor,
    registry: Mapping[int, VerifyKey],
    node_ids: Iterable[int],
    dimension: int,
    *,
    encoder: FixedPointEncoder | None = None,
    threshold: int | None = None,
    dropout_fraction: float = 0.1,
    corrupt_fraction: float = 0.05,
) -> Session:
    """A malicious-mode SecAgg / SecAgg+ session for ``node_ids`` with their registry
    keys (the server holds no private key). Pass it to ``run_session(session=...)``."""
    from ..secagg import SECAGG, SECAGG_PLUS, SecAggConfig, SecAggServer
    from ..secagg.protocol import default_encoder

    if descriptor not in (SECAGG, SECAGG_PLUS):
        raise ParameterError(f"malicious mode here is for secagg / secagg+, not {descriptor.name}")
    ids = check_client_ids(node_ids)
    missing = [i for i in ids if i not in registry]
    if missing:
        raise ParameterError(f"node ids {missing[:5]} have no registry entry")
    enc = default_encoder(len(ids)) if encoder is None else encoder
    config = SecAggConfig.create(
        ids, dimension, threshold=threshold,
        degree="complete" if descriptor is SECAGG else None, mode="malicious",
        dropout_fraction=dropout_fraction, corrupt_fraction=corrupt_fraction,
        modulus_bits=enc.modulus_bits, registry={i: registry[i] for i in ids})
    return Session(config=config, coordinator=SecAggServer(config), clients={}, encoder=enc,
                   rounds=config.rounds)


def _flag(v: Any) -> bool:
    return str(v).strip().lower() in ("1", "true", "yes")


def node_identity() -> tuple[Callable[[ProtocolDescriptor, Any, Context], None],
                             Callable[[ProtocolDescriptor, Any, Context], Mapping[str, Any]]]:
    """``(policy, local_secrets)`` for :func:`~protocols.flower.client.secure_aggregation_mod`,
    reading the node config keys of the module docstring."""

    def policy(descriptor: ProtocolDescriptor, config: Any, context: Context) -> None:
        mode = getattr(config, "mode", None)
        if mode != "malicious":
            if _flag(context.node_config.get("secagg-require-malicious", "0")):
                raise ProtocolError(f"this node takes part in malicious-mode sessions only, "
                                    f"not {mode!r}")
            return
        path = context.node_config.get("secagg-registry")
        if not path:
            raise ProtocolError("a malicious-mode session, but no secagg-registry in the node "
                                "config")
        mine = read_registry(str(path))
        theirs = config.registry or {}
        for cid in config.client_ids:
            if cid not in mine:
                raise IntegrityError(f"client id {cid} of the session is not in this node's "
                                     "registry")
            if theirs.get(cid) != mine[cid]:
                raise IntegrityError(f"the session's key for client id {cid} differs from this "
                                     "node's registry")

    def local_secrets(descriptor: ProtocolDescriptor, config: Any,
                      context: Context) -> Mapping[str, Any]:
        if getattr(config, "mode", None) != "malicious":
            return {}
        path = context.node_config.get("secagg-signing-key")
        if not path:
            raise ProtocolError("a malicious-mode session, but no secagg-signing-key in the "
                                "node config")
        return {"signing_key": read_signing_key(str(path))}

    return policy, local_secrets
