"""The server of the pairwise-mask protocol, as a sans-I/O state machine.

``SecAggServer(config)`` collects one round at a time. :meth:`handle` takes a
client message and returns the messages to send (the next round's, once every
client still in the protocol has answered); :meth:`close_round` ends the
current round with whoever answered (the transport calls it when its time is
up, since dropouts mean the server cannot wait for everyone). Late messages
for a closed round, duplicates and messages from clients that already dropped
are refused with :class:`ProtocolError`.

An advertisement with a low-order X25519 key, or a key another client
already advertised, is refused (:class:`ProtocolError`): that client is
dropped at the advertise round, so one client cannot make every honest
neighbour refuse the key broadcast.

Sets, as in Bonawitz et al.: U1 advertised keys, U2 sent shares, U3 sent a
masked input (the clients whose inputs are summed), U4 signed U3 (malicious
mode; U3 otherwise), U5 answered the unmasking request. After each round the
server aborts (:class:`AbortError`, no output) unless every live client keeps
at least ``t`` live members in its closed neighbourhood and, in malicious mode,
at least ``quorum`` clients signed. The output is the modular sum of the
inputs of U3 and the set U3 itself.

Unmasking cost: one Lagrange reconstruction per needed secret (coefficients
shared by every secret with the same holder index set), one PRG expansion per
survivor's self mask, and one per pair (dropped client, surviving neighbour);
nothing else is regenerated. The secrets are independent: the server splits
them into work items of bytes (:mod:`.unmask`) and runs them through the
mapper it was given (:meth:`SecAggServer.use_mapper`; by default in this
process, one after the other), adding each item's correction to the running
sum. Any mapper gives the same bits, and a failing item (a lying client's
share) leaves the sum untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from secagg import kex, shamir
from secagg.errors import AbortError, LocalProtocolError
from secagg.errors import RemoteProtocolError as ProtocolError  # a peer's bad message

from ..core import CoordinatorResult, Envelope
from ..parallel import SEQUENTIAL, Mapper
from . import binding, freshness, keycheck, unmask
from .config import SecAggConfig
from .messages import (
    SEALED_SHARE_BYTES,
    AdvertiseKeys,
    ConsistencyRequest,
    ConsistencySignature,
    KeyBroadcast,
    KeyEntry,
    MaskedInput,
    Message,
    SealedShare,
    ShareForward,
    ShareKeys,
    UnmaskRequest,
    UnmaskResponse,
)

__all__ = ["SecAggServer", "ServerResult"]

_INPUT_OF = {
    "advertise": AdvertiseKeys,
    "share_keys": ShareKeys,
    "masked_input": MaskedInput,
    "consistency": ConsistencySignature,
    "unmask": UnmaskResponse,
}


#: What an accepted masked input is replaced by once added to the running sum.
_SUMMED: npt.NDArray[np.unsignedinteger] = np.zeros(0, dtype=np.uint64)
_SUMMED.flags.writeable = False


@dataclass(frozen=True, eq=False)
class ServerResult(CoordinatorResult):
    """What the server learns: the sum of U3's inputs mod 2^bits, and U3."""

    dropped: frozenset[int] = frozenset()


class SecAggServer:
    """The aggregating server of one round (see the module docstring)."""

    def __init__(self, config: SecAggConfig, *, mapper: Mapper | None = None) -> None:
        if not isinstance(config, SecAggConfig):
            raise LocalProtocolError("config must be a SecAggConfig")
        self.config = config
        self._mapper: Mapper = SEQUENTIAL
        if mapper is not None:
            self.use_mapper(mapper)
        self._rounds = config.rounds
        self._round = self._rounds[0]
        self._expected: frozenset[int] = config.id_set
        self._got: dict[int, Message] = {}
        self._keys: dict[int, AdvertiseKeys] = {}
        self._u2: frozenset[int] = frozenset()
        self._u3: frozenset[int] = frozenset()
        self._sealed: dict[int, dict[int, bytes]] = {}  # receiver -> sender -> ciphertext
        self._acc: npt.NDArray[np.unsignedinteger] | None = None
        self._requests: dict[int, UnmaskRequest] = {}
        self._key_owner: dict[bytes, int] = {}  # advertised key -> client (advertise round)
        self._session = b""  # fresh binding of this run's roster (malicious mode)
        self._result: ServerResult | None = None
        #: Clients that answered each closed round (U1, U2, ...), by round name.
        self.live: dict[str, frozenset[int]] = {}

    # -- public ------------------------------------------------------------------
    def use_mapper(self, mapper: Mapper) -> None:
        """Run the unmasking's work items (:mod:`.unmask`) through ``mapper``
        (default :data:`protocols.parallel.SEQUENTIAL`, this process). The
        result does not depend on the mapper; a transport with worker
        processes passes its own, the server never starts a process. The
        items hold shares of clients' secrets and the results sums of masks:
        a mapper must run them where the server itself runs (its own
        processes), never on another party's machine."""
        if not isinstance(mapper, Mapper):
            raise LocalProtocolError(f"mapper must have width and map(), got "
                                     f"{type(mapper).__name__}")
        self._mapper = mapper

    @property
    def round(self) -> str | None:
        """The round being collected, or None once finished (done or aborted)."""
        return None if self._round in ("done", "aborted") else self._round

    @property
    def state(self) -> str:
        """The round being collected, or ``"done"`` / ``"aborted"``."""
        return self._round

    def start(self) -> list[Envelope]:
        """Nothing to send first: the clients open the advertise round."""
        return []

    def handle(self, msg: Message) -> list[Envelope]:
        """Accept one client message (``msg.sender`` names it); returns the
        next round's messages when this one completes the round, else ``[]``.

        Raises :class:`ProtocolError` or :class:`IntegrityError` (and records
        nothing) for a message it refuses, and :class:`AbortError` when the
        message completes a round that leaves too few clients.
        """
        return [Envelope(m.receiver, m) for m in self._handle(msg)]

    def close_round(self) -> list[Envelope]:
        """End the current round with the clients that answered; returns the
        next round's messages (``[]`` after the last round, when :attr:`result`
        is set). Raises :class:`AbortError` (and stays aborted, with no output)
        when too few clients remain; :class:`IntegrityError` when the revealed
        shares are inconsistent (a lying client), leaving the round open."""
        return [Envelope(m.receiver, m) for m in self._close_round()]

    @property
    def result(self) -> ServerResult | None:
        """The output once the unmask round closed successfully, else None."""
        return self._result

    @property
    def waiting_for(self) -> frozenset[int]:
        """Clients whose message for the current round has not arrived."""
        return self._expected - set(self._got)

    def _handle(self, msg: Message) -> list[Message]:
        if self._round in ("done", "aborted"):
            raise ProtocolError(f"the protocol is {self._round}; {type(msg).__name__} refused")
        want = _INPUT_OF[self._round]
        if not isinstance(msg, want):
            rnd = getattr(msg, "ROUND", None)
            if rnd in self._rounds and self._rounds.index(rnd) < self._rounds.index(self._round):
                raise ProtocolError(f"late {type(msg).__name__}: round {rnd!r} is closed")
            raise ProtocolError(f"server is in round {self._round!r}, expected "
                                f"{want.__name__}, got {type(msg).__name__}")
        u = msg.sender
        if u not in self._expected:
            raise ProtocolError(f"client {u} is not part of round {self._round!r} "
                                f"(dropped earlier or unknown)")
        if u in self._got:
            raise ProtocolError(f"duplicate {type(msg).__name__} from client {u}")
        getattr(self, f"_check_{self._round}")(msg)
        if isinstance(msg, MaskedInput):  # sum as they arrive; the vector was checked
            if self._acc is None:
                self._acc = np.zeros(self.config.dimension, dtype=self.config.dtype)
            np.add(self._acc, msg.vector, out=self._acc)
            # keep who sent, not the vector: the server never holds every client's vector
            msg = MaskedInput(sender=u, vector=_SUMMED, receiver=msg.receiver)
        self._got[u] = msg
        if not self.waiting_for:
            return self._close_round()
        return []

    def _close_round(self) -> list[Message]:
        if self._round in ("done", "aborted"):
            raise LocalProtocolError(f"the protocol is {self._round}: no round to close")
        live = frozenset(self._got)
        try:
            out = getattr(self, f"_close_{self._round}")(live)
        except AbortError:
            self._round = "aborted"
            self._acc = None
            raise
        self.live[self._round] = live
        nxt = self._rounds.index(self._round) + 1
        self._round = self._rounds[nxt] if nxt < len(self._rounds) else "done"
        self._expected = frozenset(m.receiver for m in out)
        self._got = {}
        return out

    # -- helpers -------------------------------------------------------------------
    def _require_neighbourhoods(self, live: frozenset[int], what: str) -> None:
        cfg = self.config
        t = cfg.threshold
        if len(live) < t:
            raise AbortError(f"{len(live)} clients {what}, threshold {t}")
        for u in sorted(live):
            k = len((cfg.neighbours[u] | {u}) & live)
            if k < t:
                raise AbortError(f"client {u} has {k} members of its neighbourhood that "
                                 f"{what}, threshold {t}")

    def _needed_dropped(self, survivors: frozenset[int]) -> list[int]:
        """Dropped U2 clients whose masks some survivor applied."""
        nb = self.config.neighbours
        return [v for v in sorted(self._u2 - survivors) if nb[v] & survivors]

    def _require_holders(self, holders: frozenset[int], survivors: frozenset[int]) -> None:
        cfg = self.config
        t = cfg.threshold
        for u in sorted(survivors):
            k = len((cfg.neighbours[u] | {u}) & holders)
            if k < t:
                raise AbortError(f"only {k} holders of survivor {u}'s shares remain, "
                                 f"threshold {t}")
        for v in self._needed_dropped(survivors):
            k = len(cfg.neighbours[v] & holders)
            if k < t:
                raise AbortError(f"only {k} holders of dropped client {v}'s shares remain, "
                                 f"threshold {t}")

    # -- advertise -----------------------------------------------------------------
    def _check_advertise(self, msg: AdvertiseKeys) -> None:
        cfg = self.config
        for key in (msg.c_public, msg.s_public):  # objects bypass the codec's length checks
            if not isinstance(key, bytes) or len(key) != kex.KEY_BYTES:
                raise ProtocolError(f"client {msg.sender} advertised a key that is not "
                                    f"{kex.KEY_BYTES} bytes")
        if msg.c_public == msg.s_public:
            raise ProtocolError(f"client {msg.sender} advertised the same key twice")
        for key in (msg.c_public, msg.s_public):
            if keycheck.is_low_order(key):
                raise ProtocolError(f"client {msg.sender} advertised a low-order X25519 key: "
                                    f"dropped")
            owner = self._key_owner.get(key)
            if owner is not None:
                raise ProtocolError(f"client {msg.sender} advertised a key client {owner} "
                                    f"already advertised: dropped")
        if cfg.mode == "malicious":
            assert cfg.registry is not None
            cfg.registry[msg.sender].verify(
                msg.signature,
                binding.advertise_payload(cfg, msg.sender, msg.c_public, msg.s_public))
        # accepted (handle() records it next): index its keys for the copy check
        self._key_owner[msg.c_public] = self._key_owner[msg.s_public] = msg.sender

    def _close_advertise(self, live: frozenset[int]) -> list[Message]:
        self._require_neighbourhoods(live, "advertised keys")
        keys = {u: m for u, m in self._got.items() if isinstance(m, AdvertiseKeys)}
        out: list[Message] = []
        for u in sorted(live):
            entries = tuple(
                KeyEntry(v, keys[v].c_public, keys[v].s_public, keys[v].signature)
                for v in sorted((self.config.neighbours[u] | {u}) & live)
            )
            out.append(KeyBroadcast(receiver=u, keys=entries))
        self._keys = keys
        return out

    # -- share_keys ------------------------------------------------------------------
    def _check_share_keys(self, msg: ShareKeys) -> None:
        u = msg.sender
        want = self.config.neighbours[u] & self.live["advertise"]
        if any(not isinstance(s.ciphertext, bytes) or len(s.ciphertext) != SEALED_SHARE_BYTES
               for s in msg.shares):
            raise ProtocolError(f"client {u} sent a sealed share that is not "
                                f"{SEALED_SHARE_BYTES} bytes")
        got = {s.peer for s in msg.shares}
        if got != want or len(msg.shares) != len(want):
            raise ProtocolError(
                f"client {u} sent shares for {sorted(got)}, expected its live neighbours "
                f"{sorted(want)}")

    def _close_share_keys(self, live: frozenset[int]) -> list[Message]:
        self._require_neighbourhoods(live, "shared keys")
        sealed: dict[int, dict[int, bytes]] = {v: {} for v in live}
        for u in sorted(live):
            msg = self._got[u]
            assert isinstance(msg, ShareKeys)
            for s in msg.shares:
                if s.peer in sealed:
                    sealed[s.peer][u] = s.ciphertext
        self._u2 = live
        return [
            ShareForward(receiver=v, shares=tuple(
                SealedShare(u, ct) for u, ct in sorted(sealed[v].items())))
            for v in sorted(live)
        ]

    # -- masked_input ------------------------------------------------------------------
    def _check_masked_input(self, msg: MaskedInput) -> None:
        cfg = self.config
        v = msg.vector
        if not isinstance(v, np.ndarray) or v.dtype != cfg.dtype or v.shape != (cfg.dimension,):
            raise ProtocolError(f"masked input of client {msg.sender} is not a {cfg.dtype} "
                                f"vector of length {cfg.dimension}")

    def _close_masked_input(self, live: frozenset[int]) -> list[Message]:
        self._require_neighbourhoods(live, "sent masked inputs")
        self._u3 = live
        self._require_holders(live, live)
        if self.config.mode == "malicious":
            assert self.config.quorum is not None
            if len(live) < self.config.quorum:
                raise AbortError(f"{len(live)} masked inputs, below the consistency quorum "
                                 f"{self.config.quorum}")
            surv = tuple(sorted(live))
            roster = tuple((u, freshness.roster_entry(k.c_public, k.s_public))
                           for u, k in sorted(self._keys.items()))
            self._session = freshness.session_binding(self.config, roster)
            return [ConsistencyRequest(receiver=u, survivors=surv, roster=roster) for u in surv]
        return self._unmask_requests(live, ())

    # -- consistency (malicious mode) ------------------------------------------------------
    def _check_consistency(self, msg: ConsistencySignature) -> None:
        cfg = self.config
        assert cfg.registry is not None
        cfg.registry[msg.sender].verify(
            msg.signature, binding.consistency_payload(cfg, self._u3, session=self._session))

    def _close_consistency(self, live: frozenset[int]) -> list[Message]:
        assert self.config.quorum is not None
        if len(live) < self.config.quorum:
            raise AbortError(f"{len(live)} consistency signatures, quorum {self.config.quorum}")
        self._require_holders(live, self._u3)
        sigs = []
        for u in sorted(live):
            m = self._got[u]
            assert isinstance(m, ConsistencySignature)
            sigs.append((u, m.signature))
        return self._unmask_requests(live, tuple(sigs))

    def _unmask_requests(self, recipients: frozenset[int],
                         sigs: tuple[tuple[int, bytes], ...]) -> list[Message]:
        nb = self.config.neighbours
        dropped = set(self._needed_dropped(self._u3))
        reqs = {}
        for u in sorted(recipients):
            near = nb[u] | {u}
            reqs[u] = UnmaskRequest(receiver=u, survivors=tuple(sorted(near & self._u3)),
                                    dropped=tuple(sorted(near & dropped)), signatures=sigs)
        self._requests = reqs
        return list(reqs.values())

    # -- unmask ------------------------------------------------------------------------
    def _check_unmask(self, msg: UnmaskResponse) -> None:
        cfg = self.config
        u = msg.sender
        req = self._requests[u]
        want = [(o, "b") for o in req.survivors] + [(o, "s") for o in req.dropped]
        got = [(r.owner, r.kind) for r in msg.shares]
        if sorted(got) != sorted(want):
            raise ProtocolError(f"client {u} answered with shares {sorted(got)}, the request "
                                f"asked for {sorted(want)}")
        for r in msg.shares:
            idx = cfg.share_index(r.owner, u)
            if r.share.index != idx or r.share.threshold != cfg.threshold:
                raise ProtocolError(f"client {u}'s share of {r.owner} has index "
                                    f"{r.share.index}/threshold {r.share.threshold}, expected "
                                    f"{idx}/{cfg.threshold}")

    def _close_unmask(self, live: frozenset[int]) -> list[Message]:
        self._require_holders(live, self._u3)
        b_sets: dict[int, list[shamir.Share]] = {u: [] for u in self._u3}
        s_sets: dict[int, list[shamir.Share]] = {v: [] for v in self._needed_dropped(self._u3)}
        for u in sorted(live):
            m = self._got[u]
            assert isinstance(m, UnmaskResponse)
            for r in m.shares:
                target = b_sets if r.kind == "b" else s_sets
                if r.owner in target:
                    target[r.owner].append(r.share)
        self._result = self._unmask(b_sets, s_sets)
        self._acc = None
        return []

    def _unmask(self, b_sets: dict[int, list[shamir.Share]],
                s_sets: dict[int, list[shamir.Share]]) -> ServerResult:
        cfg = self.config
        t = cfg.threshold
        # the t lowest indices of each set: equal index sets share Lagrange coefficients
        def lowest(shares: list[shamir.Share]) -> tuple[shamir.Share, ...]:
            return tuple(sorted(shares, key=lambda s: s.index)[:t])

        selves = [unmask.SelfSecret(u, lowest(b_sets[u])) for u in sorted(b_sets)]
        dropped = []
        for v in sorted(s_sets):
            # survivor u added +PRG(s_uv) if u < v and -PRG(s_uv) otherwise: undo it
            peers = tuple(
                (self._keys[u].s_public, binding.kex_info(cfg, binding.PAIRWISE_MASK, v, u),
                 u < v)
                for u in sorted(cfg.neighbours[v] & self._u3))
            dropped.append(unmask.DroppedSecret(v, lowest(s_sets[v]), self._keys[v].s_public,
                                                peers))
        items = unmask.plan(cfg.dimension, cfg.dtype, binding.mask_label(cfg, "self"),
                            binding.mask_label(cfg, "pair"), selves, dropped,
                            self._mapper.width)
        # the chunks' corrections go into one vector first, so a failure in any
        # chunk leaves the running sum untouched
        assert self._acc is not None
        total = np.zeros_like(self._acc)
        for data in self._mapper.map(unmask.run_chunk, items):
            np.add(total, unmask.decode_correction(data, cfg.dimension, cfg.dtype), out=total)
        np.add(self._acc, total, out=self._acc)
        return ServerResult(raw_sum=self._acc, included=self._u3,
                            dropped=cfg.id_set - self._u3)
