"""Wirings of protocols onto :class:`~protocols.testing.network.Network`.

:class:`DescriptorWiring` runs any protocol built on the party contract
(:mod:`protocols.core`) from its descriptor alone: it builds the session,
gives every client its encoded input, and carries every message through the
descriptor's codec. What the kit needs beyond the contract is a
:class:`WiringProfile`: which message fields a network attacker may change
without the protocol noticing, by design (``unprotected``), which secret
shares a message discloses (``reveals``, for the no-double-reveal property)
and how to show a message's fields (``fields``). :class:`SecAggWiring` and
:class:`PaillierWiring` are the descriptor wiring of the library's own
protocols with their profiles, and optional party classes (for planted bugs).

``unprotected`` fields: the pairwise-mask protocol assumes authenticated
channels between each client and the server (sender ids, masked vectors and
revealed shares are not signed), and in its semi-honest mode it trusts the
server to relay keys and requests faithfully; Paillier summation assumes the
transport authenticates senders and its ciphertexts are malleable. A bit flip
confined to such fields is out of scope for the tampering property and is
not applied.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from protocols import paillier_sum as ps
from protocols.core import SERVER, Envelope, ProtocolDescriptor, Session
from protocols.results import AggregationResult
from protocols.secagg import (
    SECAGG,
    SECAGG_PLUS,
    SecAggClient,
    SecAggConfig,
    SecAggServer,
    SecurityTarget,
    UnmaskResponse,
    consistency_quorum,
    default_encoder,
)
from protocols.secagg.protocol import session_seeds
from secagg import paillier
from secagg.encoding import FixedPointEncoder
from secagg.errors import AbortError, ParameterError, SecAggError
from secagg.sign import SigningKey

from .network import Address, Adversary, Packet
from .spec import Scenario

__all__ = [
    "DescriptorWiring",
    "PackedQuantizer",
    "PaillierWiring",
    "SecAggWiring",
    "WiringProfile",
    "secagg_config",
]

_SERVER = SERVER


def _fields(msg: Any, wiring: DescriptorWiring) -> dict[str, Any]:
    return {f.name: getattr(msg, f.name) for f in dataclasses.fields(msg)}


@dataclass(frozen=True)
class WiringProfile:
    """What the kit knows about a protocol beyond the contract (all optional).

    Attributes:
        unprotected: message type name -> fields an attacker may change
            unnoticed, by design (bit flips confined to them are skipped).
        reveals: ``message -> ((owner, kind), ...)``: the secret shares it
            discloses (``kind`` is protocol-defined), for no-double-reveal.
        fields: ``(message, wiring) -> {name: value}`` shown to the tampering
            check (default: the dataclass fields).
    """

    unprotected: Mapping[str, frozenset[str]] = field(default_factory=dict)
    reveals: Callable[[Any], tuple[tuple[int, str], ...]] = lambda m: ()
    fields: Callable[[Any, DescriptorWiring], dict[str, Any]] = _fields


class DescriptorWiring:
    """Any contract protocol on the test network (see the module docstring).

    Addresses: client ids, :data:`~protocols.core.SERVER` and the session's
    auxiliary roles. ``session`` replaces the one the descriptor would build
    from the scenario (to run other party classes); ``options`` are added to
    the scenario's for :meth:`~protocols.core.ProtocolDescriptor.make_session`.
    """

    coordinator: Address = SERVER

    def __init__(self, descriptor: ProtocolDescriptor, scenario: Scenario,
                 adversary: Adversary | None = None, *, profile: WiringProfile | None = None,
                 session: Session | None = None, options: Mapping[str, Any] | None = None
                 ) -> None:
        self.descriptor, self.scenario = descriptor, scenario
        self.profile = profile or WiringProfile()
        if session is None:
            opts = {**dict(scenario.params.options), **dict(options or {})}
            session = descriptor.make_session(scenario.clients, scenario.dimension,
                                              seed=scenario.seed, **opts)
        self.session = session
        self.config = session.config
        self.encoder = session.encoder
        self.codec = descriptor.codec(session.config, **session.codec_options)
        self.rounds: tuple[str, ...] = tuple(session.rounds)
        self.unprotected: Mapping[str, frozenset[str]] = self.profile.unprotected
        for u in scenario.clients:
            session.clients[u].set_input(session.encoder.encode(np.asarray(scenario.inputs[u])))
        parties: dict[Address, Any] = {SERVER: session.coordinator}
        parties.update(session.others)
        for u, c in session.clients.items():
            parties[u] = c
        if adversary is not None:
            parties = {a: adversary.wrap(a, p, self) for a, p in parties.items()}
        self.parties: Mapping[Address, Any] = parties
        self.clients: Sequence[int] = scenario.clients
        self._aborted = False

    @property
    def round(self) -> str:
        """The coordinator's round, or ``"done"`` / ``"aborted"``."""
        r = self.session.coordinator.round
        if r is not None:
            return r
        return "aborted" if self._aborted else "done"

    def packets(self, outs: Sequence[Any]) -> list[Packet]:
        """Encode what a party sends: envelopes, bare messages that name their
        ``receiver``, or packets an adversary forged (passed unchanged)."""
        res: list[Packet] = []
        for o in outs:
            if isinstance(o, Packet):
                res.append(o)
                continue
            receiver, msg = (o.receiver, o.message) if isinstance(o, Envelope) else (
                o.receiver, o)
            res.append(Packet(receiver, self.descriptor.round_of(msg), self.codec.encode(msg),
                              self.profile.reveals(msg)))
        return res

    def packet(self, msg: Any) -> Packet:
        """One message (or envelope, or packet) as a packet."""
        (p,) = self.packets([msg])
        return p

    def _coordinator_step(self, step: Callable[[], list[Any]]) -> list[Any]:
        try:
            return step()
        except AbortError:
            if self.session.coordinator.round is None:
                self._aborted = True
            raise

    def start(self) -> list[tuple[Address, Packet]]:
        out: list[tuple[Address, Packet]] = []
        starters = [SERVER, *sorted(self.session.others), *self.scenario.clients]
        for a in starters:
            out += [(a, p) for p in self.packets(self.parties[a].start())]
        return out

    def deliver(self, receiver: Address, data: bytes) -> list[Packet]:
        msg = self.codec.decode(data)
        party = self.parties[receiver]
        if receiver == SERVER:
            return self.packets(self._coordinator_step(lambda: party.handle(msg)))
        return self.packets(party.handle(msg))

    def close_round(self) -> list[Packet]:
        return self.packets(self._coordinator_step(self.parties[SERVER].close_round))

    def result(self) -> AggregationResult | None:
        res = self.session.outcome()
        if res is None:
            return None
        total = self.encoder.decode(res.raw_sum, len(res.included))
        return AggregationResult(sum=total, included=res.included,
                                 dropped=frozenset(self.scenario.clients) - res.included,
                                 raw_sum=res.raw_sum)

    def inspect(self, data: bytes) -> tuple[str, Mapping[str, Any]] | None:
        try:
            msg = self.codec.decode(data)
            return type(msg).__name__, self.profile.fields(msg, self)
        except SecAggError:
            return None

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


def _secagg_reveals(msg: Any) -> tuple[tuple[int, str], ...]:
    if isinstance(msg, UnmaskResponse):
        return tuple((r.owner, r.kind) for r in msg.shares)
    return ()


def secagg_config(scenario: Scenario) -> tuple[SecAggConfig, dict[int, SigningKey],
                                               FixedPointEncoder]:
    """The configuration, identity keys and encoder the scenario's options name
    (``threshold``, ``neighbors``, ``mode``, ``encoder``, ``corrupt_fraction``,
    ``dropout_fraction``, as :func:`protocols.secagg.simulate` takes them),
    with the session id and graph seed the simulator derives from the seed."""
    opts = dict(scenario.params.options)
    ids = scenario.clients
    enc = opts.get("encoder") or default_encoder(len(ids))
    mode = opts.get("mode", "semi-honest")
    signing = {u: SigningKey.generate() for u in ids} if mode == "malicious" else {}
    session, graph_seed = session_seeds(scenario.seed)
    config = SecAggConfig.create(
        ids, scenario.dimension, threshold=opts.get("threshold"),
        degree=opts.get("neighbors"), mode=mode,
        dropout_fraction=opts.get("dropout_fraction", 0.1),
        corrupt_fraction=opts.get("corrupt_fraction", 0.05),
        modulus_bits=enc.modulus_bits, session_id=session, graph_seed=graph_seed,
        registry={u: k.verify_key() for u, k in signing.items()} or None,
    )
    return config, signing, enc


class SecAggWiring(DescriptorWiring):
    """The pairwise-mask protocol (:data:`~protocols.secagg.SECAGG` or
    :data:`~protocols.secagg.SECAGG_PLUS`, as ``neighbors`` says) on the test
    network. ``client_class`` and ``server_class`` let a test run subclasses
    (for example with a planted bug); ``adversary`` wraps some parties."""

    def __init__(self, scenario: Scenario, adversary: Adversary | None = None, *,
                 client_class: type[SecAggClient] = SecAggClient,
                 server_class: type[SecAggServer] = SecAggServer) -> None:
        config, signing, enc = secagg_config(scenario)
        # each client requires the corrupt fraction the scenario declares
        target = SecurityTarget(corrupt_fraction=dict(scenario.params.options).get(
            "corrupt_fraction", 0.05))
        clients: dict[int, Any] = {
            u: client_class(config, u, signing_key=signing.get(u), target=target)
            for u in config.client_ids}
        session = Session(config=config, coordinator=server_class(config), clients=clients,
                          encoder=enc, rounds=config.rounds)
        descriptor = SECAGG if config.is_complete else SECAGG_PLUS
        profile = WiringProfile(
            unprotected=(_SECAGG_SEMI_HONEST if config.mode == "semi-honest"
                         else _SECAGG_TRANSPORT),
            reveals=_secagg_reveals)
        super().__init__(descriptor, scenario, adversary, profile=profile, session=session)
        self.quorum = (consistency_quorum(config.n, dict(scenario.params.options).get(
            "corrupt_fraction", 0.05)) if config.mode == "malicious" else None)

    @property
    def server(self) -> Any:
        return self.parties[_SERVER]


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
def _paillier_fields(msg: Any, wiring: DescriptorWiring) -> dict[str, Any]:
    fields = _fields(msg, wiring)
    payload = fields.pop("payload", None)
    if payload is not None:
        vec = paillier.EncryptedVector.from_bytes(
            payload, wiring.public_key,  # type: ignore[attr-defined]
            insecure_allow_small_key_for_tests=True)
        fields["payload.layout"] = vec.layout
        fields["payload.summands"] = vec.summands
        fields["payload.ciphertexts"] = vec.ciphertexts
    return fields


class PaillierWiring(DescriptorWiring):
    """Paillier summation (:data:`~protocols.paillier_sum.PAILLIER_SUM`) on the
    test network. Addresses: client ids, ``"server"`` (the aggregator) and, in
    the key-holder layout, ``"key_holder"``. Options (as
    :func:`protocols.paillier_sum.simulate` takes them): ``keypair``
    (required), ``trust``, ``clip``, ``value_bits``, ``max_summands``,
    ``min_clients``, ``round``, ``encryption``,
    ``insecure_allow_small_key_for_tests``. The party classes may be replaced
    (planted bugs)."""

    def __init__(self, scenario: Scenario, adversary: Adversary | None = None, *,
                 aggregator_class: type[ps.PaillierSumAggregator] = ps.PaillierSumAggregator,
                 client_class: type[ps.PaillierSumClient] = ps.PaillierSumClient,
                 key_holder_class: type[ps.PaillierSumKeyHolder] = ps.PaillierSumKeyHolder,
                 ) -> None:
        opts = dict(scenario.params.options)
        if "keypair" not in opts:
            raise ParameterError("the Paillier wiring needs a 'keypair' option")
        session = ps.PAILLIER_SUM.make_session(scenario.clients, scenario.dimension,
                                               seed=scenario.seed, **opts)
        pk, sk = opts["keypair"]
        insecure = bool(opts.get("insecure_allow_small_key_for_tests", False))
        cfg = session.config
        cross = cfg.trust_layout == "cross-silo"
        if aggregator_class is not ps.PaillierSumAggregator:
            session.coordinator = aggregator_class(
                cfg, expected_public_key=pk, insecure_allow_small_key_for_tests=insecure)
        if client_class is not ps.PaillierSumClient:
            session.clients = {u: client_class(
                u, cfg, keypair=(pk, sk) if cross else None,
                expected_public_key=None if cross else pk,
                encryption=opts.get("encryption", "online"),
                insecure_allow_small_key_for_tests=insecure) for u in scenario.clients}
        if key_holder_class is not ps.PaillierSumKeyHolder and not cross:
            session.others[ps.KEY_HOLDER] = key_holder_class(
                cfg, pk, sk, insecure_allow_small_key_for_tests=insecure)
        self.public_key, self.cross = pk, cross
        super().__init__(ps.PAILLIER_SUM, scenario, adversary, session=session,
                         profile=WiringProfile(unprotected=_PAILLIER_TRANSPORT,
                                               fields=_paillier_fields))

    @property
    def aggregator(self) -> Any:
        return self.parties[_SERVER]
