"""The client of the pairwise-mask protocol, as a sans-I/O state machine.

``SecAggClient(config, client_id, signing_key=...)``: call :meth:`start` for
the advertise message, then pass every message from the server to
:meth:`handle`, which returns the messages to send back. The client owns no
socket, thread or clock.

Rules an honest client enforces (each violation raises a
:class:`~secagg.errors.SecAggError` subclass, sends nothing and leaves the
client exactly as it was):

* in malicious mode, the configuration the server supplies must meet the
  client's :class:`~.partition.SecurityTarget` (corrupt fraction, security
  bits): quorum, threshold, degree and a non-zero ring seed are checked when
  the client is built (:class:`ParameterError`, see :mod:`.partition`);
* messages must be for this client, this session and configuration (codec),
  and for the round the client is in; a second message for a finished round
  is refused; no list in a message may name one client twice;
* every set the server shows must keep at least ``t`` members of the
  client's closed neighbourhood (:class:`AbortError` otherwise);
* its own keys must be shown unchanged, and in malicious mode every
  neighbour's key advertisement must carry a valid signature from its
  registered identity key (:class:`IntegrityError`); a neighbour shown with a
  low-order key or a key another entry also shows is left out (the server
  should have refused it), not a reason to abort;
* share ciphertexts must open under the pairwise key with the round, sender
  and receiver as associated data (:class:`IntegrityError`), and carry the
  configured index and threshold;
* in malicious mode, the survivor set it signs must reach the quorum and
  must not let the server cut the SecAgg+ ring (:func:`.partition.check_survivors`),
  and the roster must list this client's keys of this run, so that its
  signature binds a fresh session (:mod:`.freshness`);
* an unmasking request may name only neighbours whose shares it holds, never
  the same neighbour as both survivor and dropout, never the client itself as
  a dropout; in malicious mode it must come with at least ``quorum`` valid
  signatures from distinct members of the survivor set, over exactly the set
  and session binding the client signed. The client answers one unmasking
  request, once.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from secagg import aead, kex, prg, shamir, wire
from secagg.errors import (
    AbortError,
    IntegrityError,
    LocalProtocolError,
    ParameterError,
)
from secagg.errors import RemoteProtocolError as ProtocolError  # a peer's bad message
from secagg.sign import SigningKey

from ..core import Envelope
from . import binding, freshness, keycheck, partition
from .config import SecAggConfig
from .messages import (
    SHARE_PLAINTEXT_BYTES,
    AdvertiseKeys,
    ConsistencyRequest,
    ConsistencySignature,
    KeyBroadcast,
    MaskedInput,
    Message,
    RevealedShare,
    SealedShare,
    ShareForward,
    ShareKeys,
    UnmaskRequest,
    UnmaskResponse,
)

__all__ = ["SecAggClient"]

_STATES = ("init", "advertised", "shared", "masked", "signed", "done")
_ROUND_OF_STATE: dict[str, str | None] = {
    "init": "advertise", "advertised": "share_keys", "shared": "masked_input",
    "signed": "unmask", "done": None,
}
_STATE_MAGIC = b"SACS"
#: v2 adds the security target, window bound, excluded neighbours and the
#: session binding; v1 states (without them) are refused.
_STATE_VERSION = 2


def _envelopes(msgs: list[Message]) -> list[Envelope]:
    return [Envelope(m.receiver, m) for m in msgs]


@dataclass(frozen=True)
class _Peer:
    c_public: kex.PublicKey
    s_public: kex.PublicKey
    channel_key: bytes  # AEAD key c_uv shared with this neighbour


class SecAggClient:
    """One client of a round.

    Args:
        config: the round's public parameters.
        client_id: this client's id (one of ``config.client_ids``).
        signing_key: this client's Ed25519 identity key; required in malicious
            mode and must match ``config.registry[client_id]``.
        input: the encoded input, a ``config.dtype`` vector of length
            ``config.dimension``; may instead be given later with
            :meth:`set_input`, before the masked-input round.
        target: malicious mode: the corrupt fraction and security bits this
            client requires of the configuration the server supplies
            (default :class:`~.partition.SecurityTarget`: 5%, 40 bits); a
            configuration that does not meet it is refused with
            :class:`ParameterError`.
    """

    def __init__(
        self,
        config: SecAggConfig,
        client_id: int,
        *,
        signing_key: SigningKey | None = None,
        input: npt.NDArray[np.unsignedinteger] | None = None,
        target: partition.SecurityTarget | None = None,
    ) -> None:
        if not isinstance(config, SecAggConfig):
            raise ParameterError("config must be a SecAggConfig")
        if client_id not in config.id_set:
            raise ParameterError(f"client {client_id} is not in this round's client_ids")
        if target is None:
            target = partition.SecurityTarget()
        elif not isinstance(target, partition.SecurityTarget):
            raise ParameterError(f"target must be a SecurityTarget, got {type(target).__name__}")
        #: What this client requires of a malicious-mode configuration.
        self.target = target
        # the most survivors a thin ring window may hold (partition.check_survivors)
        self._window_bound = 0
        if config.mode == "malicious":
            if not isinstance(signing_key, SigningKey):
                raise ParameterError("malicious mode needs the client's SigningKey")
            assert config.registry is not None
            if signing_key.verify_key() != config.registry[client_id]:
                raise ParameterError(f"signing key does not match registry entry {client_id}")
            self._window_bound = partition.check_config(config, target)
        self.config = config
        self.id = client_id
        self._signing_key = signing_key
        self._neighbourhood = config.neighbours[client_id] | {client_id}
        self._state = "init"
        self._input: npt.NDArray[np.unsignedinteger] | None = None
        if input is not None:
            self.set_input(input)
        self._c_key: kex.PrivateKey | None = None
        self._s_key: kex.PrivateKey | None = None
        self._peers: dict[int, _Peer] = {}
        self._excluded: frozenset[int] = frozenset()  # neighbours shown a bad key
        self._b_seed: bytes | None = None
        # shares held: owner -> (b-share, s-share); this client's own included
        self._held: dict[int, tuple[shamir.Share, shamir.Share]] = {}
        self._survivors: tuple[int, ...] | None = None
        self._session: bytes | None = None  # fresh binding of this run (malicious mode)

    # -- public ----------------------------------------------------------------
    @property
    def state(self) -> str:
        """``init``, ``advertised``, ``shared``, ``masked``, ``signed`` or ``done``."""
        return self._state

    def set_input(self, x: npt.NDArray[np.unsignedinteger]) -> None:
        """Set the encoded input vector (checked for dtype and length)."""
        cfg = self.config
        if not isinstance(x, np.ndarray) or x.dtype != cfg.dtype or x.shape != (cfg.dimension,):
            got = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
            raise ParameterError(
                f"input must be a {cfg.dtype} vector of length {cfg.dimension}, got {got}"
            )
        if self._state not in ("init", "advertised", "shared"):
            raise LocalProtocolError("the input can no longer change: it was already masked")
        self._input = np.array(x, dtype=cfg.dtype, copy=True)

    @property
    def address(self) -> int:
        """This client's id (its address for a transport)."""
        return self.id

    @property
    def round(self) -> str | None:
        """The round this client is in (the round of the next message it
        sends), or None once it answered the unmask request."""
        return _ROUND_OF_STATE[self._state] if self._state != "masked" else (
            "consistency" if self.config.mode == "malicious" else "unmask")

    def start(self) -> list[Envelope]:
        """Round "advertise": generate the two key pairs and announce them."""
        return _envelopes(self._start())

    def handle(self, msg: Message) -> list[Envelope]:
        """Process one message from the server; returns the replies (to the
        server). A refused message raises and leaves the client unchanged."""
        return _envelopes(self._handle(msg))

    def _start(self) -> list[Message]:
        if self._state != "init":
            raise LocalProtocolError(f"client {self.id} already started (state {self._state})")
        c_key, s_key = kex.PrivateKey.generate(), kex.PrivateKey.generate()
        c_pub, s_pub = c_key.public_key().to_bytes(), s_key.public_key().to_bytes()
        sig = b""
        if self._signing_key is not None and self.config.mode == "malicious":
            sig = self._signing_key.sign(
                binding.advertise_payload(self.config, self.id, c_pub, s_pub))
        self._c_key, self._s_key, self._state = c_key, s_key, "advertised"
        return [AdvertiseKeys(sender=self.id, c_public=c_pub, s_public=s_pub, signature=sig)]

    def _handle(self, msg: Message) -> list[Message]:
        if getattr(msg, "receiver", None) != self.id:
            raise ProtocolError(
                f"message for {getattr(msg, 'receiver', None)} delivered to client {self.id}")
        expected = {
            KeyBroadcast: "advertised",
            ShareForward: "shared",
            ConsistencyRequest: "masked",
            UnmaskRequest: "signed" if self.config.mode == "malicious" else "masked",
        }.get(type(msg))
        if expected is None:
            raise ProtocolError(f"a client does not accept {type(msg).__name__}")
        if self._state != expected:
            raise ProtocolError(
                f"{type(msg).__name__} (round {msg.ROUND}) is not accepted in state "
                f"{self._state!r} of client {self.id}"
                + ("" if _STATES.index(self._state) < _STATES.index(expected)
                   else ": that round is closed")
            )
        if isinstance(msg, KeyBroadcast):
            return self._on_keys(msg)
        if isinstance(msg, ShareForward):
            return self._on_forward(msg)
        if isinstance(msg, ConsistencyRequest):
            return self._on_consistency(msg)
        assert isinstance(msg, UnmaskRequest)
        return self._on_unmask(msg)

    # -- rounds ----------------------------------------------------------------
    @staticmethod
    def _distinct(ids: list[int], what: str) -> None:
        """Refuse a list naming one client twice (message objects bypass the
        codec's strictly-increasing check): every count is over distinct ids."""
        if len(set(ids)) != len(ids):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            raise ProtocolError(f"{what} names clients {twice} twice")

    def _check_size(self, count: int, what: str) -> None:
        t = self.config.threshold
        if count < t:
            raise AbortError(
                f"client {self.id}: only {count} of its neighbourhood {what}, threshold {t}")

    def _on_keys(self, msg: KeyBroadcast) -> list[Message]:
        cfg = self.config
        assert self._c_key is not None and self._s_key is not None
        ids = [e.client for e in msg.keys]
        self._distinct(ids, "key broadcast")
        outside = set(ids) - self._neighbourhood
        if outside:
            raise ProtocolError(f"key broadcast names non-neighbours {sorted(outside)}")
        mine = {e.client: e for e in msg.keys}.get(self.id)
        if (mine is None or mine.c_public != self._c_key.public_key().to_bytes()
                or mine.s_public != self._s_key.public_key().to_bytes()):
            raise ProtocolError(f"the server did not show client {self.id}'s own keys unchanged")
        if cfg.mode == "malicious":
            assert cfg.registry is not None
            for e in msg.keys:
                cfg.registry[e.client].verify(
                    e.signature, binding.advertise_payload(cfg, e.client, e.c_public, e.s_public))
        # a low-order key, or a key that another entry (or this client) also shows,
        # is one the server should have refused: leave that neighbour out
        uses: dict[bytes, int] = {}
        for e in msg.keys:
            for k in {e.c_public, e.s_public}:
                uses[k] = uses.get(k, 0) + 1
        excluded = frozenset(
            e.client for e in msg.keys if e.client != self.id and (
                e.c_public == e.s_public or uses[e.c_public] > 1 or uses[e.s_public] > 1
                or keycheck.is_low_order(e.c_public) or keycheck.is_low_order(e.s_public)))
        self._check_size(len(ids) - len(excluded), "advertised usable keys")
        peers: dict[int, _Peer] = {}
        for e in msg.keys:
            if e.client == self.id or e.client in excluded:
                continue
            c_pub = kex.PublicKey.from_bytes(e.c_public)
            s_pub = kex.PublicKey.from_bytes(e.s_public)
            key = kex.agree(self._c_key, c_pub,
                            binding.kex_info(cfg, binding.SHARE_ENCRYPTION, self.id, e.client))
            peers[e.client] = _Peer(c_pub, s_pub, key)
        b_seed = prg.fresh_seed()
        holders = cfg.holders(self.id)
        b_shares, s_shares = shamir.split_many(
            [b_seed, self._s_key.to_bytes()], len(holders), cfg.threshold)
        out: list[SealedShare] = []
        for v in sorted(peers):
            i = cfg.share_index(self.id, v) - 1
            pt = (struct.pack(">II", cfg.index_of(self.id), cfg.index_of(v))
                  + b_shares[i].to_bytes() + s_shares[i].to_bytes())
            out.append(SealedShare(v, aead.seal(peers[v].channel_key, pt,
                                                binding.share_ad(cfg, self.id, v))))
        own = cfg.share_index(self.id, self.id) - 1
        self._peers, self._b_seed, self._excluded = peers, b_seed, excluded
        self._held = {self.id: (b_shares[own], s_shares[own])}
        self._state = "shared"
        return [ShareKeys(sender=self.id, shares=tuple(out))]

    def _on_forward(self, msg: ShareForward) -> list[Message]:
        cfg = self.config
        if self._input is None:
            raise ParameterError(f"client {self.id} has no input: call set_input() first")
        self._distinct([s.peer for s in msg.shares], "share forward")
        senders = [s.peer for s in msg.shares if s.peer not in self._excluded]
        unknown = set(senders) - set(self._peers)
        if unknown:
            raise ProtocolError(f"shares forwarded from {sorted(unknown)}, whose keys this "
                                f"client never received")
        self._check_size(len(senders) + 1, "shared their keys")
        held: dict[int, tuple[shamir.Share, shamir.Share]] = {}
        for s in msg.shares:
            v = s.peer
            if v in self._excluded:
                continue
            pt = aead.open(self._peers[v].channel_key, s.ciphertext,
                           binding.share_ad(cfg, v, self.id))
            if len(pt) != SHARE_PLAINTEXT_BYTES:
                raise ProtocolError(f"share plaintext from {v} has {len(pt)} bytes")
            owner, holder = struct.unpack(">II", pt[:8])
            if (owner, holder) != (cfg.index_of(v), cfg.index_of(self.id)):
                raise IntegrityError(f"sealed share from {v} names indices {owner} -> {holder}")
            bs = shamir.Share.from_bytes(pt[8 : 8 + shamir.SHARE_BYTES])
            ss = shamir.Share.from_bytes(pt[8 + shamir.SHARE_BYTES :])
            idx = cfg.share_index(v, self.id)
            for sh in (bs, ss):
                if sh.index != idx or sh.threshold != cfg.threshold:
                    raise ProtocolError(f"share from {v} has index {sh.index}/threshold "
                                        f"{sh.threshold}, expected {idx}/{cfg.threshold}")
            held[v] = (bs, ss)
        # All checks passed: mask. y = x + PRG(b) + sum_{v>u} PRG(s_uv) - sum_{v<u} PRG(s_uv)
        assert self._b_seed is not None and self._s_key is not None
        y = self._input.copy()
        prg.expand_into(y, self._b_seed, binding.mask_label(cfg, "self"))
        pair_label = binding.mask_label(cfg, "pair")
        for v in senders:
            seed = kex.agree(self._s_key, self._peers[v].s_public,
                             binding.kex_info(cfg, binding.PAIRWISE_MASK, self.id, v))
            prg.expand_into(y, seed, pair_label, subtract=self.id > v)
        self._held.update(held)
        self._state = "masked"
        self._input = None
        return [MaskedInput(sender=self.id, vector=y)]

    def _on_consistency(self, msg: ConsistencyRequest) -> list[Message]:
        cfg = self.config
        if cfg.mode != "malicious" or self._signing_key is None:
            raise ProtocolError("no consistency round in the semi-honest mode")
        self._distinct(list(msg.survivors), "survivor set")
        self._distinct([c for c, _ in msg.roster], "roster")
        u3 = set(msg.survivors)
        if self.id not in u3:
            raise ProtocolError(f"survivor set omits client {self.id}, which sent its input")
        near = u3 & self._neighbourhood
        if not near <= set(self._held):
            raise ProtocolError(f"survivor set names neighbours {sorted(near - set(self._held))}"
                                f" that never shared keys with this client")
        self._check_size(len(near), "survived")
        assert cfg.quorum is not None
        if len(u3) < cfg.quorum:
            raise AbortError(f"survivor set of {len(u3)} is below the quorum {cfg.quorum}")
        partition.check_survivors(cfg, u3, self._window_bound)
        session = self._check_roster(msg)
        sig = self._signing_key.sign(binding.consistency_payload(cfg, msg.survivors,
                                                                 session=session))
        self._survivors, self._session = msg.survivors, session
        self._state = "signed"
        return [ConsistencySignature(sender=self.id, signature=sig)]

    def _check_roster(self, msg: ConsistencyRequest) -> bytes:
        """The fresh session binding of ``msg``'s roster, after checking that
        it lists this client's keys of this run, every survivor, and the keys
        this client was shown for its neighbours."""
        assert self._c_key is not None and self._s_key is not None
        roster = dict(msg.roster)
        strangers = set(roster) - self.config.id_set
        if strangers:
            raise ProtocolError(f"the roster names {sorted(strangers)}, not clients of this round")
        mine = freshness.roster_entry(self._c_key.public_key().to_bytes(),
                                      self._s_key.public_key().to_bytes())
        if roster.get(self.id) != mine:
            raise IntegrityError(f"the roster does not list client {self.id}'s keys of "
                                 f"this run: refused as a replay")
        missing = set(msg.survivors) - set(roster)
        if missing:
            raise ProtocolError(f"survivors {sorted(missing)} are not on the roster")
        for v, p in self._peers.items():
            if v in roster and roster[v] != freshness.roster_entry(p.c_public.to_bytes(),
                                                                   p.s_public.to_bytes()):
                raise IntegrityError(f"the roster shows other keys for neighbour {v}")
        return freshness.session_binding(self.config, msg.roster)

    def _on_unmask(self, msg: UnmaskRequest) -> list[Message]:
        cfg = self.config
        self._distinct(list(msg.survivors), "unmask request (survivors)")
        self._distinct(list(msg.dropped), "unmask request (dropped)")
        self._distinct([c for c, _ in msg.signatures], "unmask request (signatures)")
        surv, drop = set(msg.survivors), set(msg.dropped)
        outside = (surv | drop) - self._neighbourhood
        if outside:
            raise ProtocolError(f"unmask request names non-neighbours {sorted(outside)}")
        both = surv & drop
        if both:
            raise ProtocolError(
                f"unmask request asks for both shares of {sorted(both)}: refused")
        if self.id not in surv:
            raise ProtocolError(f"unmask request does not list client {self.id} as a survivor")
        unknown = (surv | drop) - set(self._held)
        if unknown:
            raise ProtocolError(f"no shares held for {sorted(unknown)}")
        if cfg.mode == "malicious":
            assert self._survivors is not None and cfg.quorum is not None
            assert self._session is not None
            u3 = set(self._survivors)
            if surv != u3 & self._neighbourhood or drop & u3:
                raise ProtocolError("unmask request contradicts the signed survivor set")
            signers = [c for c, _ in msg.signatures]
            if not set(signers) <= u3:
                raise IntegrityError("consistency signatures from clients outside the "
                                     "survivor set")
            if len(signers) < cfg.quorum:
                raise AbortError(f"{len(signers)} consistency signatures, quorum {cfg.quorum}")
            assert cfg.registry is not None
            payload = binding.consistency_payload(cfg, self._survivors, session=self._session)
            for c, sig in msg.signatures:
                cfg.registry[c].verify(sig, payload)  # IntegrityError: another set was shown
        self._check_size(len(surv), "survived")
        out = [RevealedShare(o, "b", self._held[o][0]) for o in sorted(surv)]
        out += [RevealedShare(o, "s", self._held[o][1]) for o in sorted(drop)]
        out.sort(key=lambda r: r.owner)
        self._state = "done"
        self._held, self._peers, self._b_seed = {}, {}, None
        self._c_key = self._s_key = None
        return [UnmaskResponse(sender=self.id, shares=tuple(out))]

    # -- saving and restoring (a transport may restart the client between messages) --
    def export_state(self) -> bytes:
        """Everything this client holds, as versioned strict binary (``SACS`` v2):
        round state, input, keys, peers, held shares, the signed survivor set
        and, for the malicious-mode checks, the :attr:`target`, the window
        bound, the excluded neighbours and the session binding it signed.

        Holds secrets (private keys, the self-mask seed, held shares, the
        input): seal it (for example with :mod:`secagg.aead`) before it leaves
        the device's memory, and wipe it after use. The Ed25519 identity key is
        not included; pass it again to :meth:`restore`. Bound to the
        configuration digest: :meth:`restore` under another config refuses it.
        """
        cfg = self.config
        w = wire.Writer(_STATE_MAGIC, _STATE_VERSION)
        w.raw(cfg.digest).u32(cfg.index_of(self.id)).u8(_STATES.index(self._state))
        if self._input is None:
            w.u8(0)
        else:
            w.u8(1).vector(self._input)
        w.f64(self.target.corrupt_fraction).f64(self.target.security_bits)
        w.u32(self._window_bound)
        for key in (self._c_key, self._s_key):
            w.blob(b"" if key is None else key.to_bytes())
        w.blob(self._b_seed or b"")
        w.u32(len(self._peers))
        for v in sorted(self._peers):
            p = self._peers[v]
            w.u32(cfg.index_of(v)).raw(p.c_public.to_bytes()).raw(p.s_public.to_bytes())
            w.raw(p.channel_key)
        w.u32(len(self._held))
        for o in sorted(self._held):
            b, sh = self._held[o]
            w.u32(cfg.index_of(o)).raw(b.to_bytes()).raw(sh.to_bytes())
        if self._survivors is None:
            w.u8(0)
        else:
            w.u8(1).u32(len(self._survivors))
            for u in self._survivors:
                w.u32(cfg.index_of(u))
        excluded = sorted(cfg.index_of(v) for v in self._excluded)
        w.u32(len(excluded))
        for ix in excluded:
            w.u32(ix)
        w.blob(self._session if self._session is not None else b"")
        return w.getvalue()

    @classmethod
    def restore(cls, config: SecAggConfig, data: bytes, *,
                signing_key: SigningKey | None = None) -> SecAggClient:
        """The client :meth:`export_state` saved, under ``config``.

        Raises :class:`ParameterError` if the state was saved under another
        configuration (digest) or its security target no longer accepts
        ``config`` (the checks of the constructor run again, and must give
        the window bound saved), and a :class:`ProtocolError` subclass for
        malformed bytes; nothing is pickled.
        """
        if not isinstance(config, SecAggConfig):
            raise ParameterError(f"expected a SecAggConfig, got {type(config).__name__}")
        r = wire.Reader(data, _STATE_MAGIC, (_STATE_VERSION,))
        if r.raw(32) != config.digest:
            raise ParameterError("the saved client state belongs to another configuration "
                                 "(digest mismatch): refusing to restore it")
        n = config.n

        def client_at(what: str) -> int:
            ix = r.u32()
            if not 1 <= ix <= n:
                raise ProtocolError(f"{what}: client index {ix} outside [1, {n}]")
            return config.client_ids[ix - 1]

        me = client_at("state owner")
        code = r.u8()
        if code >= len(_STATES):
            raise ProtocolError(f"unknown client state code {code}")
        has_input = r.u8()
        if has_input not in (0, 1):
            raise ProtocolError(f"bad input flag {has_input}")
        x = r.vector(config.dimension, config.dtype) if has_input else None
        target = partition.SecurityTarget(corrupt_fraction=r.f64(), security_bits=r.f64())
        window_bound = r.u32()
        client = cls(config, me, signing_key=signing_key, target=target)
        if window_bound != client._window_bound:
            raise ProtocolError(f"saved window bound {window_bound} differs from the "
                                f"{client._window_bound} its target gives this configuration")
        keys = []
        for _what in ("c_key", "s_key"):
            b = r.blob(max_len=kex.KEY_BYTES)
            keys.append(kex.PrivateKey.from_bytes(b) if b else None)
        b_seed = r.blob(max_len=prg.SEED_BYTES) or None
        if b_seed is not None and len(b_seed) != prg.SEED_BYTES:
            raise ProtocolError(f"self-mask seed of {len(b_seed)} bytes")
        count = r.u32()
        if count > n:
            raise ProtocolError(f"{count} peers for {n} clients")
        peers: dict[int, _Peer] = {}
        for _ in range(count):
            v = client_at("peer")
            c_pub = kex.PublicKey.from_bytes(r.raw(kex.KEY_BYTES))
            s_pub = kex.PublicKey.from_bytes(r.raw(kex.KEY_BYTES))
            peers[v] = _Peer(c_pub, s_pub, r.raw(aead.KEY_BYTES))
        count = r.u32()
        if count > n:
            raise ProtocolError(f"{count} held share pairs for {n} clients")
        held: dict[int, tuple[shamir.Share, shamir.Share]] = {}
        for _ in range(count):
            o = client_at("share owner")
            held[o] = (shamir.Share.from_bytes(r.raw(shamir.SHARE_BYTES)),
                       shamir.Share.from_bytes(r.raw(shamir.SHARE_BYTES)))
        survivors = None
        if r.u8():
            count = r.u32()
            if count > n:
                raise ProtocolError(f"{count} survivors for {n} clients")
            survivors = tuple(client_at("survivor") for _ in range(count))
        count = r.u32()
        if count > n:
            raise ProtocolError(f"{count} excluded neighbours for {n} clients")
        excluded = frozenset(client_at("excluded neighbour") for _ in range(count))
        if len(excluded) != count:
            raise ProtocolError("the excluded neighbours name one client twice")
        session = r.blob(max_len=freshness.SESSION_BYTES) or None
        if session is not None and len(session) != freshness.SESSION_BYTES:
            raise ProtocolError(f"session binding of {len(session)} bytes, expected "
                                f"{freshness.SESSION_BYTES}")
        r.done()
        client._state = _STATES[code]
        client._input = x
        client._c_key, client._s_key = keys
        client._b_seed, client._peers, client._held = b_seed, peers, held
        client._survivors, client._excluded, client._session = survivors, excluded, session
        return client
