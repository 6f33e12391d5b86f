"""Wirings of the library's own protocols onto :class:`~protocols.testing.network.Network`.

:class:`SecAggWiring` runs :class:`~protocols.secagg.SecAggClient` and
:class:`~protocols.secagg.SecAggServer` (or subclasses, or adversarial
wrappers) through :func:`protocols.secagg.encode` / :func:`~protocols.secagg.decode`;
:class:`PaillierWiring` runs the parties of :mod:`protocols.paillier_sum`
through their byte codecs. Both build the parties from a
:class:`~protocols.testing.spec.Scenario` with the same options the
simulators take, so a scenario means the same round under either driver.

``unprotected`` names, per message type, the fields a network attacker can
change without the protocol noticing, by design: the pairwise-mask protocol
assumes authenticated channels between each client and the server (sender
ids, masked vectors and revealed shares are not signed), and in its
semi-honest mode it trusts the server to relay keys and requests faithfully;
Paillier summation assumes the transport authenticates senders and its
ciphertexts are malleable. A bit flip confined to such fields is out of
scope for the tampering property and is not applied.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from protocols import paillier_sum as ps
from protocols.core import Envelope
from protocols.results import AggregationResult
from protocols.secagg import (
    SERVER,
    Message,
    SecAggClient,
    SecAggConfig,
    SecAggServer,
    UnmaskResponse,
    consistency_quorum,
    decode,
    default_encoder,
    encode,
)
from secagg import paillier
from secagg.encoding import FixedPointEncoder
from secagg.errors import AbortError, ParameterError, SecAggError
from secagg.sign import SigningKey

from .network import Address, Adversary, Packet
from .spec import Scenario

__all__ = ["PackedQuantizer", "PaillierWiring", "SecAggWiring", "secagg_config"]

_SERVER = "server"

_SECAGG_TRANSPORT = {
    "AdvertiseKeys": frozenset({"sender"}),
    "ShareKeys": frozenset({"sender", "shares"}),
    "MaskedInput": frozenset({"sender", "vector"}),
    "UnmaskResponse": frozenset({"sender", "shares"}),
    "ConsistencySignature": frozenset(),
}
_SECAGG_SEMI_HONEST = {
    **_SECAGG_TRANSPORT,
    "AdvertiseKeys": frozenset({"sender", "c_public", "s_public"}),
    "KeyBroadcast": frozenset({"keys"}),
    "UnmaskRequest": frozenset({"survivors", "dropped"}),
}


def _seeds(seed: int) -> tuple[int, bytes]:
    base = b"protocols.testing/secagg/v1" + int(seed).to_bytes(8, "big")
    session = int.from_bytes(hashlib.sha256(base + b"/session").digest()[:8], "big")
    return session, hashlib.sha256(base + b"/graph").digest()


def secagg_config(scenario: Scenario) -> tuple[SecAggConfig, dict[int, SigningKey],
                                               FixedPointEncoder]:
    """The configuration, identity keys and encoder the scenario's options name
    (``threshold``, ``neighbors``, ``mode``, ``encoder``, ``corrupt_fraction``,
    ``dropout_fraction``, as :func:`protocols.secagg.simulate` takes them)."""
    opts = dict(scenario.params.options)
    ids = scenario.clients
    enc = opts.get("encoder") or default_encoder(len(ids))
    mode = opts.get("mode", "semi-honest")
    signing = {u: SigningKey.generate() for u in ids} if mode == "malicious" else {}
    session, graph_seed = _seeds(scenario.seed)
    config = SecAggConfig.create(
        ids, scenario.dimension, threshold=opts.get("threshold"),
        degree=opts.get("neighbors"), mode=mode,
        dropout_fraction=opts.get("dropout_fraction", 0.1),
        corrupt_fraction=opts.get("corrupt_fraction", 0.05),
        modulus_bits=enc.modulus_bits, session_id=session, graph_seed=graph_seed,
        registry={u: k.verify_key() for u, k in signing.items()} or None,
    )
    return config, signing, enc


class SecAggWiring:
    """The pairwise-mask protocol's parties on the test network.

    Addresses: client ids, and ``"server"``. ``client_class`` and
    ``server_class`` let a test run subclasses (for example with a planted
    bug); ``adversary`` wraps some parties.
    """

    coordinator: Address = _SERVER

    def __init__(self, scenario: Scenario, adversary: Adversary | None = None, *,
                 client_class: type[SecAggClient] = SecAggClient,
                 server_class: type[SecAggServer] = SecAggServer) -> None:
        config, signing, enc = secagg_config(scenario)
        self.config, self.encoder, self.scenario = config, enc, scenario
        self.rounds = tuple(r for r in ("advertise", "share_keys", "masked_input",
                                        "consistency", "unmask")
                            if r != "consistency" or config.mode == "malicious")
        self.unprotected: Mapping[str, frozenset[str]] = (
            _SECAGG_SEMI_HONEST if config.mode == "semi-honest" else _SECAGG_TRANSPORT)
        parties: dict[Address, Any] = {_SERVER: server_class(config)}
        for u in config.client_ids:
            parties[u] = client_class(config, u, signing_key=signing.get(u),
                                      input=enc.encode(np.asarray(scenario.inputs[u])))
        if adversary is not None:
            parties = {a: adversary.wrap(a, p, self) for a, p in parties.items()}
        self.parties: Mapping[Address, Any] = parties
        self.quorum = (consistency_quorum(config.n, dict(scenario.params.options).get(
            "corrupt_fraction", 0.05)) if config.mode == "malicious" else None)

    @property
    def server(self) -> Any:
        return self.parties[_SERVER]

    @property
    def round(self) -> str:
        r: str = self.server.state
        return r

    def packet(self, msg: Message | Packet | Envelope) -> Packet:
        """Encode one message object (a :class:`Packet` passes unchanged)."""
        if isinstance(msg, Packet):
            return msg
        m: Message = msg.message if isinstance(msg, Envelope) else msg
        receiver: Address = _SERVER if m.receiver == SERVER else m.receiver
        reveals: tuple[tuple[int, str], ...] = ()
        if isinstance(m, UnmaskResponse):
            reveals = tuple((r.owner, r.kind) for r in m.shares)
        return Packet(receiver, m.ROUND, encode(m, self.config), reveals)

    def start(self) -> list[tuple[Address, Packet]]:
        out: list[tuple[Address, Packet]] = []
        for u in self.config.client_ids:
            out += [(u, self.packet(m)) for m in self.parties[u].start()]
        return out

    def deliver(self, receiver: Address, data: bytes) -> list[Packet]:
        msg = decode(data, self.config)
        return [self.packet(m) for m in self.parties[receiver].handle(msg)]

    def close_round(self) -> list[Packet]:
        return [self.packet(m) for m in self.server.close_round()]

    def result(self) -> AggregationResult | None:
        res = self.server.result
        if res is None:
            return None
        total = self.encoder.decode(res.raw_sum, len(res.included))
        return AggregationResult(sum=total, included=res.included,
                                 dropped=self.config.id_set - res.included, raw_sum=res.raw_sum)

    def inspect(self, data: bytes) -> tuple[str, Mapping[str, Any]] | None:
        try:
            msg = decode(data, self.config)
        except SecAggError:
            return None
        return type(msg).__name__, {f.name: getattr(msg, f.name)
                                    for f in dataclasses.fields(msg)}


# -- Paillier summation ----------------------------------------------------------------
class PackedQuantizer:
    """The integer encoding of Paillier summation: ``round(x * scale)``,
    clipped to ``±M``, through the library's own :class:`~secagg.paillier.PackingLayout`."""

    def __init__(self, public_key: Any, *, clip: float, value_bits: int, capacity: int,
                 insecure_allow_small_key_for_tests: bool = False) -> None:
        self.public_key, self.clip, self.value_bits = public_key, clip, value_bits
        self.capacity, self._insecure = capacity, insecure_allow_small_key_for_tests

    def _layout(self, dimension: int) -> paillier.PackingLayout:
        return paillier.PackingLayout.create(
            self.public_key, dimension, clip=self.clip, value_bits=self.value_bits,
            capacity=self.capacity, insecure_allow_small_key_for_tests=self._insecure)

    def encode(self, x: npt.NDArray[np.floating]) -> npt.NDArray[np.int64]:
        layout = self._layout(int(np.asarray(x).shape[0]))
        out: npt.NDArray[np.int64] = (layout.encode(x).astype(np.int64)
                                      - np.int64(layout.max_int))
        return out

    def error_bound(self, n_summands: int = 1) -> float:
        scale = ((1 << (self.value_bits - 1)) - 1) / self.clip
        return n_summands * 0.5 / scale


_PAILLIER_TRANSPORT = {
    "EncryptedInput": frozenset({"sender", "payload.ciphertexts"}),
    "EncryptedSum": frozenset({"payload.ciphertexts"}),
    "DecryptedSum": frozenset({"raw_sum"}),
}
_PAILLIER_ROUND = {"PublicSetup": "setup", "EncryptedInput": "encrypt",
                   "EncryptedSum": "decrypt", "DecryptedSum": "result"}


class PaillierWiring:
    """The Paillier summation parties on the test network.

    Addresses: client ids, ``"aggregator"`` and, in the key-holder layout,
    ``"key_holder"``. Options (as :func:`protocols.paillier_sum.simulate`
    takes them): ``keypair`` (required), ``layout``, ``clip``, ``value_bits``,
    ``max_summands``, ``min_clients``, ``round``, ``mode``,
    ``insecure_allow_small_key_for_tests``.
    """

    rounds: tuple[str, ...] = ps.ROUNDS
    coordinator: Address = ps.AGGREGATOR

    def __init__(self, scenario: Scenario, adversary: Adversary | None = None, *,
                 aggregator_class: type[ps.PaillierSumAggregator] = ps.PaillierSumAggregator,
                 client_class: type[ps.PaillierSumClient] = ps.PaillierSumClient,
                 key_holder_class: type[ps.PaillierSumKeyHolder] = ps.PaillierSumKeyHolder,
                 ) -> None:
        opts = dict(scenario.params.options)
        if "keypair" not in opts:
            raise ParameterError("the Paillier wiring needs a 'keypair' option")
        pk, sk = opts["keypair"]
        self._insecure = bool(opts.get("insecure_allow_small_key_for_tests", False))
        cross = opts.get("layout", "key-holder") == "cross-silo"
        self.config = ps.PaillierSumConfig(
            round=opts.get("round", 0), clients=frozenset(scenario.clients),
            dimension=scenario.dimension, trust_layout="cross-silo" if cross else "key-holder",
            clip=opts.get("clip", 1.0), value_bits=opts.get("value_bits", 16),
            max_summands=opts.get("max_summands"), min_clients=opts.get("min_clients", 1))
        self.public_key, self.cross = pk, cross
        self.unprotected: Mapping[str, frozenset[str]] = _PAILLIER_TRANSPORT
        parties: dict[Address, Any] = {ps.AGGREGATOR: aggregator_class(
            self.config, expected_public_key=pk, insecure_allow_small_key_for_tests=self._insecure)}
        if not cross:
            parties[ps.KEY_HOLDER] = key_holder_class(
                self.config, pk, sk, insecure_allow_small_key_for_tests=self._insecure)
        for u in scenario.clients:
            parties[u] = client_class(
                u, self.config, scenario.inputs[u], keypair=(pk, sk) if cross else None,
                expected_public_key=None if cross else pk, mode=opts.get("mode", "online"),
                insecure_allow_small_key_for_tests=self._insecure)
        if adversary is not None:
            parties = {a: adversary.wrap(a, p, self) for a, p in parties.items()}
        self.parties: Mapping[Address, Any] = parties
        self.clients: Sequence[int] = scenario.clients
        self._aborted = False

    @property
    def aggregator(self) -> Any:
        return self.parties[ps.AGGREGATOR]

    @property
    def round(self) -> str:
        if self._aborted:
            return "aborted"
        state = self.aggregator.state
        return {"setup": "setup", "collecting": "encrypt", "summed": "decrypt"}.get(state, "done")

    def packets(self, outs: Sequence[ps.Outgoing | Packet]) -> list[Packet]:
        """Encode the parties' outgoing messages (one packet per recipient)."""
        res: list[Packet] = []
        for o in outs:
            if isinstance(o, Packet):
                res.append(o)
                continue
            rnd = _PAILLIER_ROUND[type(o.message).__name__]
            data = o.message.to_bytes()
            to: list[Address] = list(self.clients) if o.to == ps.CLIENTS else [o.to]
            res += [Packet(t, rnd, data) for t in to]
        return res

    def start(self) -> list[tuple[Address, Packet]]:
        out: list[tuple[Address, Packet]] = []
        starters = list(self.clients) if self.cross else [ps.KEY_HOLDER]
        for a in starters:
            out += [(a, p) for p in self.packets(self.parties[a].start())]
        return out

    def deliver(self, receiver: Address, data: bytes) -> list[Packet]:
        return self.packets(self.parties[receiver].receive(data))

    def close_round(self) -> list[Packet]:
        """The aggregator's timeout: sum what arrived; abort (as the simulator
        does) when there is nothing it can do (no setup arrived, or the key
        holder never answered)."""
        state = self.aggregator.state
        try:
            if state == "collecting":
                return self.packets(self.aggregator.finish())
            if state == "setup":
                raise AbortError("no public setup reached the aggregator")
            if state == "summed":
                raise AbortError("the key holder never returned the decrypted sum")
        except AbortError:
            self._aborted = True
            raise
        return []

    def result(self) -> AggregationResult | None:
        if self.cross:
            raws = [(u, self.parties[u].raw_result) for u in self.clients
                    if self.parties[u].raw_result is not None]
            if not raws:
                raise AbortError("no party was left to decrypt the sum")
            raw = raws[0][1]
            for u, other in raws[1:]:
                if not np.array_equal(raw, other):
                    raise AbortError(f"client {u} decrypted a different sum")
        else:
            raw = self.aggregator.raw_result
            if raw is None:
                return None
        included = frozenset(self.aggregator.included)
        scale = self.config.packing(self.public_key,
                                    insecure_allow_small_key_for_tests=self._insecure).scale
        return AggregationResult(sum=raw.astype(np.float64) / scale, included=included,
                                 dropped=frozenset(self.clients) - included, raw_sum=raw)

    def inspect(self, data: bytes) -> tuple[str, Mapping[str, Any]] | None:
        try:
            msg = ps.decode_message(data, insecure_allow_small_key_for_tests=self._insecure)
            fields = {f.name: getattr(msg, f.name) for f in dataclasses.fields(msg)}
            payload = fields.pop("payload", None)
            if payload is not None:
                vec = paillier.EncryptedVector.from_bytes(
                    payload, self.public_key,
                    insecure_allow_small_key_for_tests=self._insecure)
                fields["payload.layout"] = vec.layout
                fields["payload.summands"] = vec.summands
                fields["payload.ciphertexts"] = vec.ciphertexts
        except SecAggError:
            return None
        return type(msg).__name__, fields
