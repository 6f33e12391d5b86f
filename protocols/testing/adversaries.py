"""Adversaries a test plugs in between the parties, as sans-I/O wrappers.

Each adversary is a small frozen dataclass (readable in a counterexample)
with ``corrupt`` (the parties it controls) and ``wrap(address, party,
wiring)``, which returns a :class:`~protocols.testing.network.PartyWrapper`
around the party it attacks and every other party unchanged. Pass it to
:func:`protocols.testing.checks.run_scenario` or to a property.

Malicious servers (pairwise-mask protocol, :class:`~protocols.testing.wirings.SecAggWiring`):

* :class:`BothSharesServer` asks honest clients for both shares of one
  client, in one request or in a second one;
* :class:`SplitViewServer` shows a group of clients a survivor set without
  ``victim`` and the others the true one, to collect ``victim``'s self-mask
  shares from some and its mask-key shares from others.

Misbehaving clients (both of the library's wirings):

* :class:`WrongLengthClient` sends its input vector with the wrong length;
* :class:`WrongRoundClient` sends a message for another round;
* :class:`OutOfRangeClient` masks an input past the clipping range (the
  pairwise-mask protocol has no range proofs: the server cannot refuse it;
  tests use it to pin down what the output then is).

Forged bytes are marked (``Packet.forged``), so the tampering property holds
honest receivers to refusing them.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from protocols import paillier_sum as ps
from protocols.core import Envelope
from protocols.secagg import (
    SECAGG,
    SECAGG_PLUS,
    ConsistencyRequest,
    ConsistencySignature,
    ShareForward,
    UnmaskRequest,
    UnmaskResponse,
)
from secagg import paillier
from secagg.errors import AbortError, SecAggError

from .network import Address, Packet, PartyWrapper

__all__ = [
    "BothSharesServer",
    "OutOfRangeClient",
    "SplitViewServer",
    "WrongLengthClient",
    "WrongRoundClient",
]

_SERVER = "server"


def _unwrap(out: list[Any]) -> list[Any]:
    """The message objects of a party's outgoing envelopes (Paillier's old
    ``Outgoing`` and packets pass unchanged)."""
    return [o.message if isinstance(o, Envelope) else o for o in out]


def _is_secagg(wiring: Any) -> bool:
    """Does ``wiring`` run the pairwise-mask protocol (by its descriptor)?"""
    return getattr(wiring, "descriptor", None) in (SECAGG, SECAGG_PLUS)


def _is_paillier(wiring: Any) -> bool:
    return getattr(wiring, "descriptor", None) is ps.PAILLIER_SUM


def _secagg_wiring(wiring: Any) -> Any:
    if not _is_secagg(wiring):
        name = getattr(getattr(wiring, "descriptor", None), "name", type(wiring).__name__)
        raise TypeError(f"this adversary attacks the pairwise-mask protocol, not {name}")
    return wiring


def _other_protocol(wiring: Any) -> TypeError:
    name = getattr(getattr(wiring, "descriptor", None), "name", type(wiring).__name__)
    return TypeError(f"this adversary knows the pairwise-mask protocol and Paillier "
                     f"summation, not {name}")


# -- a server that asks for both shares ----------------------------------------------------
@dataclass(frozen=True)
class BothSharesServer:
    """A server that asks honest clients for both shares of one client.

    ``how="same_request"``: the unmasking request to each target names
    ``victim`` both as a survivor (send its self-mask share) and as dropped
    (send its mask-key share). ``"second_request"``: the genuine request
    first, then, once answered, a second request for ``victim``'s other
    share. ``victim`` None picks, per target, the lowest other client its
    request names; ``targets`` None attacks every client.
    """

    victim: int | None = None
    targets: frozenset[int] | None = None
    how: Literal["same_request", "second_request"] = "same_request"

    @property
    def corrupt(self) -> frozenset[Address]:
        return frozenset({_SERVER})

    def wrap(self, address: Address, party: Any, wiring: Any) -> Any:
        if address != _SERVER:
            return party
        return _BothSharesParty(party, self, _secagg_wiring(wiring))


class _BothSharesParty(PartyWrapper):
    def __init__(self, inner: Any, plan: BothSharesServer, wiring: Any) -> None:
        super().__init__(inner)
        self.plan = plan
        self.asked: dict[int, UnmaskRequest] = {}

    def _victim(self, req: UnmaskRequest) -> int:
        if self.plan.victim is not None:
            return self.plan.victim
        named = sorted(set(req.survivors) | set(req.dropped))
        others = [v for v in named if v != req.receiver]
        return others[0] if others else req.receiver

    def _targets(self, u: int) -> bool:
        return self.plan.targets is None or u in self.plan.targets

    def _rewrite(self, out: list[Any]) -> list[Any]:
        res = []
        for m in out:
            if isinstance(m, UnmaskRequest) and self._targets(m.receiver):
                self.asked[m.receiver] = m
                if self.plan.how == "same_request":
                    v = self._victim(m)
                    m = dataclasses.replace(m, survivors=tuple(sorted({*m.survivors, v})),
                                            dropped=tuple(sorted({*m.dropped, v})))
            res.append(m)
        return res

    def handle(self, msg: Any) -> list[Any]:
        extra: list[Any] = []
        if (self.plan.how == "second_request" and isinstance(msg, UnmaskResponse)
                and msg.sender in self.asked):
            req = self.asked.pop(msg.sender)
            v = self._victim(req)
            if v in req.survivors:  # it sent v's self-mask share: now ask for the mask key
                extra.append(dataclasses.replace(req, survivors=(req.receiver,), dropped=(v,)))
            else:  # it sent v's mask-key share: now ask for the self-mask share
                extra.append(dataclasses.replace(
                    req, survivors=tuple(sorted({req.receiver, v})), dropped=()))
        try:
            out = self._rewrite(_unwrap(self.inner.handle(msg)))
        except AbortError:
            raise
        except SecAggError:
            out = []
        return out + extra

    def close_round(self) -> list[Any]:
        return self._rewrite(_unwrap(self.inner.close_round()))


# -- a server that shows different survivor sets ------------------------------------------------
@dataclass(frozen=True)
class SplitViewServer:
    """A server that tells the clients in ``group`` that ``victim`` dropped
    after it sent its masked input, and tells the others the truth.

    In the semi-honest mode the group's unmasking requests name ``victim`` as
    dropped (asking for its mask-key shares) while the others name it a
    survivor (asking for its self-mask shares): with both, the server could
    unmask ``victim``'s input. In the malicious mode the group is shown the
    smaller set in the consistency round; the server collects the signatures
    and sends the group unmasking requests with ``signatures="all"`` of them
    or only those over the group's ``"view"``.
    """

    victim: int
    group: frozenset[int]
    signatures: Literal["all", "view"] = "all"

    @property
    def corrupt(self) -> frozenset[Address]:
        return frozenset({_SERVER})

    def wrap(self, address: Address, party: Any, wiring: Any) -> Any:
        if address != _SERVER:
            return party
        return _SplitViewParty(party, self, _secagg_wiring(wiring))


class _SplitViewParty(PartyWrapper):
    def __init__(self, inner: Any, plan: SplitViewServer, wiring: Any) -> None:
        super().__init__(inner)
        self.plan, self.config = plan, wiring.config
        self.sigs: dict[int, bytes] = {}
        self.view_sigs: set[int] = set()
        self.crafted = False

    def _in_group(self, u: int) -> bool:
        return u in self.plan.group and u != self.plan.victim

    def _rewrite(self, out: list[Any]) -> list[Any]:
        v = self.plan.victim
        res = []
        for m in out:
            if self._in_group(m.receiver):
                if isinstance(m, ConsistencyRequest):
                    m = dataclasses.replace(m, survivors=tuple(x for x in m.survivors if x != v))
                elif isinstance(m, UnmaskRequest) and v in m.survivors:
                    if self.config.mode == "malicious":
                        continue  # replaced by the crafted request below
                    m = dataclasses.replace(
                        m, survivors=tuple(x for x in m.survivors if x != v),
                        dropped=tuple(sorted({*m.dropped, v})))
            res.append(m)
        return res + self._craft()

    def _craft(self) -> list[Any]:
        """Malicious mode: unmasking requests for the group, over its view."""
        cfg, inner = self.config, self.inner
        if (cfg.mode != "malicious" or self.crafted
                or inner.round not in ("unmask", None)
                or "masked_input" not in inner.live):
            return []
        self.crafted = True
        u2, u3 = inner.live["share_keys"], inner.live["masked_input"]
        view = u3 - {self.plan.victim}
        sigs = tuple(sorted((u, s) for u, s in self.sigs.items()
                            if self.plan.signatures == "all" or u in self.view_sigs))
        out = []
        for g in sorted(self.plan.group & view):
            near = cfg.neighbours[g] | {g}
            out.append(UnmaskRequest(receiver=g, survivors=tuple(sorted(near & view)),
                                     dropped=tuple(sorted(near & (u2 - view))),
                                     signatures=sigs))
        return out

    def handle(self, msg: Any) -> list[Any]:
        if isinstance(msg, ConsistencySignature):
            self.sigs[msg.sender] = msg.signature
            if self._in_group(msg.sender):
                self.view_sigs.add(msg.sender)
        try:
            out = _unwrap(self.inner.handle(msg))
        except AbortError:
            return self._craft()
        except SecAggError:
            out = []
        return self._rewrite(out)

    def close_round(self) -> list[Any]:
        try:
            out = _unwrap(self.inner.close_round())
        except AbortError:
            crafted = self._craft()
            if crafted:
                return crafted
            raise
        return self._rewrite(out)


# -- misbehaving clients ---------------------------------------------------------------------
@dataclass(frozen=True)
class WrongLengthClient:
    """Client ``client`` sends its input vector ``delta`` values too long (or
    short). Pairwise masks: the masked vector's length field and data are
    forged. Paillier: it encrypts a vector of the other length."""

    client: int
    delta: int = -1

    @property
    def corrupt(self) -> frozenset[Address]:
        return frozenset({self.client})

    def wrap(self, address: Address, party: Any, wiring: Any) -> Any:
        if address != self.client:
            return party
        return _ForgingParty(party, wiring, self._forge)

    def _forge(self, p: Packet, wiring: Any, previous: list[Packet]) -> list[Packet]:
        if _is_secagg(wiring):
            if p.round != "masked_input" or p.receiver != _SERVER:
                return [p]
            cfg = wiring.config
            width = cfg.dtype.itemsize
            head = len(p.data) - 9 - cfg.dimension * width
            length = max(0, cfg.dimension + self.delta)
            body = (p.data[head + 9:] + bytes(width * max(0, self.delta)))[: length * width]
            data = p.data[: head + 1] + struct.pack(">Q", length) + body
            return [dataclasses.replace(p, data=data, forged=True)]
        if not _is_paillier(wiring):
            raise _other_protocol(wiring)
        if p.round != "encrypt":
            return [p]
        msg = wiring.codec.decode(p.data)
        assert isinstance(msg, ps.EncryptedInput)
        cfg = wiring.config
        d = cfg.dimension + self.delta
        d = d if d >= 1 and d != cfg.dimension else cfg.dimension + 1
        layout = paillier.PackingLayout.create(
            wiring.public_key, d, clip=cfg.clip, value_bits=cfg.value_bits,
            capacity=cfg.max_summands or len(cfg.clients),
            insecure_allow_small_key_for_tests=True)
        vec = paillier.encrypt(wiring.public_key, layout, np.zeros(d),
                               insecure_allow_small_key_for_tests=True)
        data = wiring.codec.encode(ps.EncryptedInput(msg.sender, vec.to_bytes()))
        return [dataclasses.replace(p, data=data, forged=True)]


@dataclass(frozen=True)
class WrongRoundClient:
    """Client ``client`` also sends a message for the wrong round.

    Pairwise masks: ``"stale"`` re-sends its previous round's message along
    with each reply; ``"early"`` sends an (empty) unmasking response along
    with its first message. Paillier: its input is bound to the configuration
    of the round number before (``"stale"``) or after (``"early"``) the
    current one.
    """

    client: int
    when: Literal["stale", "early"] = "stale"

    @property
    def corrupt(self) -> frozenset[Address]:
        return frozenset({self.client})

    def wrap(self, address: Address, party: Any, wiring: Any) -> Any:
        if address != self.client:
            return party
        return _ForgingParty(party, wiring, self._forge)

    def _forge(self, p: Packet, wiring: Any, previous: list[Packet]) -> list[Packet]:
        if _is_secagg(wiring):
            if self.when == "stale":
                return [p] + [dataclasses.replace(q, forged=True) for q in previous[-1:]]
            if previous:
                return [p]
            early = UnmaskResponse(sender=self.client, shares=())
            return [p, Packet(_SERVER, "unmask", wiring.codec.encode(early), forged=True)]
        if not _is_paillier(wiring):
            raise _other_protocol(wiring)
        if p.round != "encrypt":
            return [p]
        msg = wiring.codec.decode(p.data)
        assert isinstance(msg, ps.EncryptedInput)
        cfg = wiring.config
        other = cfg.round - 1 if self.when == "stale" and cfg.round > 0 else cfg.round + 1
        codec = ps.PaillierSumCodec(dataclasses.replace(cfg, round=other),
                                    insecure_allow_small_key_for_tests=True)
        return [dataclasses.replace(p, data=codec.encode(msg), forged=True), p]


@dataclass(frozen=True)
class OutOfRangeClient:
    """Client ``client`` (pairwise masks) masks ``factor`` times the largest
    encodable value (``max_int``, modulo 2^bits) in every element instead of
    its clipped input. Its message is well formed; nothing but range proofs
    could refuse it."""

    client: int
    factor: float = 2.0

    @property
    def corrupt(self) -> frozenset[Address]:
        return frozenset({self.client})

    def bad_input(self, wiring: Any) -> np.ndarray[Any, Any]:
        """The encoded vector this client masks."""
        cfg, enc = _secagg_wiring(wiring).config, wiring.encoder
        value = round(enc.max_int * self.factor) % (1 << cfg.modulus_bits)
        return np.full(cfg.dimension, value, dtype=cfg.dtype)

    def wrap(self, address: Address, party: Any, wiring: Any) -> Any:
        if address != self.client:
            return party
        return _OutOfRangeParty(party, self.bad_input(wiring))


class _OutOfRangeParty(PartyWrapper):
    def __init__(self, inner: Any, bad: np.ndarray[Any, Any]) -> None:
        super().__init__(inner)
        self.bad = bad

    def handle(self, msg: Any) -> list[Any]:
        if isinstance(msg, ShareForward):
            self.inner.set_input(self.bad)
        out: list[Any] = _unwrap(self.inner.handle(msg))
        return out


class _ForgingParty(PartyWrapper):
    """Passes every packet the inner party sends through ``forge``."""

    def __init__(self, inner: Any, wiring: Any,
                 forge: Callable[[Packet, Any, list[Packet]], list[Packet]]) -> None:
        super().__init__(inner)
        self.wiring, self.forge = wiring, forge
        self.previous: list[Packet] = []

    def _out(self, msgs: list[Any]) -> list[Any]:
        w = self.wiring
        packets = w.packets(msgs)
        res: list[Any] = []
        for p in packets:
            res += self.forge(p, w, self.previous)
            self.previous.append(p)
        return res

    def start(self) -> list[Any]:
        return self._out(self.inner.start())

    def handle(self, msg: Any) -> list[Any]:
        return self._out(self.inner.handle(msg))


