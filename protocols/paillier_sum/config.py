"""What every party of one Paillier summation agrees on, and its integer domain.

:class:`PaillierSumConfig` names the round number, the clients (any ints in
``[0, 2^64)``, mapped to internal indices 1..n in sorted order), the vector
dimension, the trust layout and the fixed-point encoding. Its :attr:`digest`
(SHA-256 of :meth:`~PaillierSumConfig.to_bytes`) is bound into every
message, so a message of another round, client set or encoding is refused
by the codec before a message object exists.

``mode`` names whom the ``"threshold"`` layout holds against, in the
vocabulary of :mod:`protocols.secagg`: ``"semi-honest"`` (an
honest-but-curious aggregator) or ``"malicious"`` (an aggregator that may
deviate): then every client signs its encrypted input under its Ed25519
identity key in ``registry`` and every decryptor checks each input of the
sum and recomputes the product itself (see :mod:`.parties`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from secagg import wire
from secagg.errors import EncodingError, ParameterError
from secagg.paillier import PackingLayout
from secagg.sign import KEY_BYTES, VerifyKey

__all__ = ["MODES", "ROUNDS", "Mode", "PaillierQuantizer", "PaillierSumConfig", "TrustLayout"]

#: Whom the round holds against (the names :mod:`protocols.secagg` uses).
Mode = Literal["semi-honest", "malicious"]
MODES: tuple[Mode, ...] = ("semi-honest", "malicious")

TrustLayout = Literal["key-holder", "cross-silo", "threshold"]
TRUST_LAYOUTS: tuple[TrustLayout, ...] = ("key-holder", "cross-silo", "threshold")

#: Round names, as ``dropouts`` and the cost figures use them: the public
#: setup, the encrypted inputs, and the decryption of the sum.
ROUNDS = ("setup", "encrypt", "decrypt")

_MAX_ROUND = (1 << 64) - 1
_MAX_CLIENTS = 1 << 20
_CONFIG_MAGIC = b"PSCF"
_CONFIG_VERSION = 1  # key-holder and cross-silo (unchanged bytes, unchanged digests)
_CONFIG_VERSION_THRESHOLD = 2  # adds the decryption committee and its threshold
_CONFIG_VERSION_MALICIOUS = 3  # threshold, malicious mode: adds the identity registry
#: Most decryptors of one committee (the threshold key's ``MAX_PARTIES``).
MAX_DECRYPTORS = 128


def _check_int(name: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not (
        lo <= value <= hi
    ):
        raise ParameterError(f"{name} must be an int in [{lo}, {hi}], got {value!r}")
    return int(value)


@dataclass(frozen=True)
class PaillierSumConfig:
    """What every party of one round agrees on in advance.

    Attributes:
        round: round number (u64), bound into every message through the digest.
        clients: ids of the clients expected to contribute (ints in [0, 2^64)).
        dimension: length of every input vector.
        trust_layout: ``"key-holder"``, ``"cross-silo"`` or ``"threshold"``.
        clip: largest |x| per element (larger values are clipped).
        value_bits: fixed-point bits per value (resolution ``clip / (2^(b-1)-1)``).
        max_summands: summand capacity of the packing (default: number of
            clients; must be at least that). Costs ``ceil(log2)`` bits per slot.
        min_clients: the sum is decrypted only if at least this many inputs
            are in it; fewer aborts the round.
        committee: ``"threshold"`` layout only: the clients that hold key
            shares (decryptor ``i`` is the ``i``-th smallest id, i = 1..len);
            empty in the other layouts.
        decrypt_threshold: ``"threshold"`` layout only: how many decryptors
            must answer (t of ``len(committee)``); 0 in the other layouts.
        threshold_key_digest: ``"threshold"`` layout only: the 32-byte
            :attr:`~secagg.paillier.threshold.ThresholdKey.digest` of the dealt
            key (n, t and every verification key), so every party refuses any
            other key; empty in the other layouts.
        mode: ``"semi-honest"`` (default: the aggregator is honest-but-curious)
            or ``"malicious"`` (``"threshold"`` layout only: clients sign their
            inputs and decryptors recompute the sum; needs ``min_clients >= 2``
            and ``2 * decrypt_threshold > len(committee)``).
        registry: malicious mode only: every client's Ed25519 identity key
            (client id -> :class:`~secagg.sign.VerifyKey`, one per client,
            pairwise distinct). It must reach every party authentically, out of
            band, never through the aggregator.
    """

    round: int
    clients: frozenset[int]
    dimension: int
    trust_layout: TrustLayout = "key-holder"
    clip: float = 1.0
    value_bits: int = 16
    max_summands: int | None = None
    min_clients: int = 1
    committee: frozenset[int] = frozenset()
    decrypt_threshold: int = 0
    threshold_key_digest: bytes = b""
    mode: Mode = "semi-honest"
    registry: Mapping[int, VerifyKey] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _check_int("round", self.round, 0, _MAX_ROUND)
        ids = frozenset(self.clients)
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not (
                0 <= i < 2**64
            ):
                raise ParameterError(f"clients holds {i!r}; client ids are ints in [0, 2^64)")
        object.__setattr__(self, "clients", frozenset(int(i) for i in ids))
        if not self.clients:
            raise ParameterError("clients must not be empty")
        if len(self.clients) > _MAX_CLIENTS:
            raise ParameterError(f"{len(self.clients)} clients; at most {_MAX_CLIENTS}")
        _check_int("dimension", self.dimension, 1, wire.MAX_FIELD // 8)
        if self.trust_layout not in TRUST_LAYOUTS:
            raise ParameterError(
                "trust_layout must be 'key-holder', 'cross-silo' or 'threshold', "
                f"got {self.trust_layout!r}"
            )
        clip = self.clip
        if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not (
            math.isfinite(clip) and clip > 0
        ):
            raise ParameterError(f"clip must be a finite positive float, got {clip!r}")
        object.__setattr__(self, "clip", float(clip))
        _check_int("value_bits", self.value_bits, 2, 48)
        if self.max_summands is not None:
            _check_int("max_summands", self.max_summands, 1, 1 << 62)
            if self.max_summands < len(self.clients):
                raise ParameterError(
                    f"max_summands={self.max_summands} is below the {len(self.clients)} "
                    "clients; a full sum would overflow its slots"
                )
        m = self.min_clients
        if isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= len(self.clients):
            raise ParameterError(f"min_clients={m!r} is outside [1, {len(self.clients)}]")
        self._check_committee()
        self._check_mode()

    def _check_mode(self) -> None:
        if self.mode not in MODES:
            raise ParameterError(f"mode must be one of {MODES}, got {self.mode!r}")
        reg = self.registry
        if self.mode == "semi-honest":
            if reg is not None:
                raise ParameterError("registry belongs to mode='malicious' only")
            return
        if self.trust_layout != "threshold":
            raise ParameterError(
                f"mode='malicious' needs trust_layout='threshold', not "
                f"{self.trust_layout!r}: its decryptors check every input and recompute the "
                "sum (a key holder decrypts what it is sent; cross-silo clients all hold "
                "the private key)")
        k, t = len(self.committee), self.decrypt_threshold
        if 2 * t <= k:
            raise ParameterError(
                f"mode='malicious' needs 2 * decrypt_threshold > committee size, got t={t} "
                f"of {k}: two disjoint groups of t decryptors could decrypt two different "
                f"subsets whose difference is one input; use decrypt_threshold >= {k // 2 + 1}")
        if self.min_clients < 2:
            raise ParameterError(
                f"mode='malicious' needs min_clients >= 2, got {self.min_clients}: a "
                "decrypted 'sum' of one input is that input")
        if not isinstance(reg, Mapping):
            raise ParameterError("mode='malicious' needs a registry: client id -> VerifyKey "
                                 f"for every client, got {type(reg).__name__}")
        if set(reg) != set(self.clients):
            missing = sorted(self.clients - set(reg))[:5]
            extra = sorted(set(reg) - self.clients, key=repr)[:5]
            raise ParameterError(f"the registry must hold one VerifyKey per client id; "
                                 f"missing {missing}, extra {extra}")
        if not all(isinstance(v, VerifyKey) for v in reg.values()):
            raise ParameterError("every registry entry must be a secagg.sign.VerifyKey")
        if len({v.to_bytes() for v in reg.values()}) != len(reg):
            raise ParameterError("the registry holds the same identity key for two clients")
        object.__setattr__(self, "registry", MappingProxyType({int(i): reg[i] for i in reg}))

    def _check_committee(self) -> None:
        try:
            committee = frozenset(int(i) for i in self.committee)
        except (TypeError, ValueError):
            raise ParameterError(f"committee must be a set of client ids, got "
                                 f"{self.committee!r}") from None
        object.__setattr__(self, "committee", committee)
        t = self.decrypt_threshold
        kd = self.threshold_key_digest
        if not isinstance(kd, bytes):
            raise ParameterError(f"threshold_key_digest must be bytes, got {type(kd).__name__}")
        if self.trust_layout != "threshold":
            if kd:
                raise ParameterError("threshold_key_digest belongs to the 'threshold' layout")
            if committee or t != 0:
                raise ParameterError(
                    f"committee and decrypt_threshold belong to the 'threshold' layout; "
                    f"got {len(committee)} decryptors and decrypt_threshold={t!r} under "
                    f"{self.trust_layout!r}")
            return
        outside = committee - self.clients
        if outside:
            raise ParameterError(f"committee names ids that are not clients: {sorted(outside)}")
        if not 1 <= len(committee) <= MAX_DECRYPTORS:
            raise ParameterError(
                f"the committee has {len(committee)} decryptors; it needs 1 to "
                f"{MAX_DECRYPTORS}")
        if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= len(committee):
            raise ParameterError(
                f"decrypt_threshold={t!r} is outside [1, {len(committee)} decryptors]")
        if len(kd) != 32:
            raise ParameterError(
                f"threshold_key_digest must be the 32-byte digest of the dealt key, got "
                f"{len(kd)} bytes")

    # -- ids ---------------------------------------------------------------------
    @cached_property
    def client_ids(self) -> tuple[int, ...]:
        """The clients, sorted: client ``client_ids[i - 1]`` has internal index ``i``."""
        return tuple(sorted(self.clients))

    @cached_property
    def _index(self) -> dict[int, int]:
        return {u: i + 1 for i, u in enumerate(self.client_ids)}

    @cached_property
    def decryptor_ids(self) -> tuple[int, ...]:
        """The committee, sorted: ``decryptor_ids[i - 1]`` holds key share ``i``."""
        return tuple(sorted(self.committee))

    def decryptor_index(self, client: int) -> int:
        """Key-share index (1..len(committee)) of ``client``; ParameterError otherwise."""
        try:
            return self.decryptor_ids.index(client) + 1
        except ValueError:
            raise ParameterError(f"{client!r} is not a decryptor of this round") from None

    def index_of(self, client: int) -> int:
        """Internal index (1..n) of ``client``; ParameterError for a stranger."""
        try:
            return self._index[client]
        except (KeyError, TypeError):
            raise ParameterError(f"{client!r} is not a client of this round") from None

    # -- encoding ------------------------------------------------------------------
    @property
    def quantizer(self) -> PaillierQuantizer:
        """The integer domain of this round's inputs."""
        return PaillierQuantizer(self.clip, self.value_bits)

    def packing(
        self, public_key: Any, *, insecure_allow_small_key_for_tests: bool = False
    ) -> PackingLayout:
        """The packing layout this config implies under ``public_key``."""
        return PackingLayout.create(
            public_key,
            self.dimension,
            clip=self.clip,
            value_bits=self.value_bits,
            capacity=self.max_summands or len(self.clients),
            insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests,
        )

    # -- bytes -----------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """Canonical versioned encoding: ``PSCF`` v1 (key-holder, cross-silo)
        or v2 (threshold: v1's fields, then ``u16 decrypt_threshold``, the
        committee as internal client indices and the 32-byte threshold key
        digest) or v3 (threshold, malicious mode: v2's fields, then each
        client's 32-byte Ed25519 key in id order); the ids travel sorted as
        u64. Semi-honest configurations keep their v1 / v2 bytes and digests."""
        threshold = self.trust_layout == "threshold"
        malicious = self.mode == "malicious"
        w = wire.Writer(_CONFIG_MAGIC,
                        _CONFIG_VERSION_MALICIOUS if malicious
                        else _CONFIG_VERSION_THRESHOLD if threshold else _CONFIG_VERSION)
        w.u64(self.round).u8(TRUST_LAYOUTS.index(self.trust_layout)).u64(self.dimension)
        w.f64(self.clip).u8(self.value_bits).u64(self.max_summands or 0)
        w.u32(self.min_clients)
        wire.write_ids(w, self.client_ids, width=64)
        if threshold:
            w.u16(self.decrypt_threshold)
            wire.write_ids(w, (self.index_of(i) for i in self.committee))
            w.raw(self.threshold_key_digest)
        if malicious:
            assert self.registry is not None
            for i in self.client_ids:
                w.raw(self.registry[i].to_bytes())
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> PaillierSumConfig:
        """Parse :meth:`to_bytes`, re-checking every field."""
        r = wire.Reader(data, _CONFIG_MAGIC, (_CONFIG_VERSION, _CONFIG_VERSION_THRESHOLD,
                                              _CONFIG_VERSION_MALICIOUS))
        version = r.version
        threshold = version in (_CONFIG_VERSION_THRESHOLD, _CONFIG_VERSION_MALICIOUS)
        rnd, layout, dimension = r.u64(), r.u8(), r.u64()
        clip, value_bits, max_summands, min_clients = r.f64(), r.u8(), r.u64(), r.u32()
        ids = wire.read_ids(r, width=64, max_count=_MAX_CLIENTS)
        committee: frozenset[int] = frozenset()
        decrypt_threshold = 0
        key_digest = b""
        registry: dict[int, VerifyKey] | None = None
        if threshold:
            decrypt_threshold = r.u16()
            ixs = wire.read_ids(r, max_count=min(len(ids), MAX_DECRYPTORS))
            if ixs and not (ixs[0] >= 1 and ixs[-1] <= len(ids)):
                raise ParameterError(f"committee index outside [1, {len(ids)}]")
            committee = frozenset(ids[i - 1] for i in ixs)
            key_digest = r.raw(32)
        if version == _CONFIG_VERSION_MALICIOUS:
            if len(ids) * KEY_BYTES > r.remaining():
                raise ParameterError(f"{len(ids)} registry keys do not fit the "
                                     f"{r.remaining()} bytes left")
            registry = {u: VerifyKey.from_bytes(r.raw(KEY_BYTES)) for u in ids}
        r.done()
        if layout >= len(TRUST_LAYOUTS):
            raise ParameterError(f"unknown trust layout code {layout}")
        if (TRUST_LAYOUTS[layout] == "threshold") != threshold:
            raise ParameterError(
                f"config version {version} cannot carry trust layout {TRUST_LAYOUTS[layout]!r}")
        return cls(round=rnd, clients=frozenset(ids), dimension=dimension,
                   trust_layout=TRUST_LAYOUTS[layout], clip=clip, value_bits=value_bits,
                   max_summands=max_summands or None, min_clients=min_clients,
                   committee=committee, decrypt_threshold=decrypt_threshold,
                   threshold_key_digest=key_digest,
                   mode="malicious" if registry is not None else "semi-honest",
                   registry=registry)

    @cached_property
    def digest(self) -> bytes:
        """SHA-256 of :meth:`to_bytes`: bound into every message of the round."""
        return hashlib.sha256(self.to_bytes()).digest()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PaillierSumConfig) and self.digest == other.digest

    def __hash__(self) -> int:
        return hash(self.digest)


class PaillierQuantizer:
    """Floats <-> the signed integers Paillier summation adds: ``v = round(x * scale)``
    with ``scale = M / clip`` and ``M = 2^(value_bits-1) - 1``, clipped to ``[-M, M]``
    (the packing layout's own encoding, without the key)."""

    def __init__(self, clip: float, value_bits: int) -> None:
        self.clip = float(clip)
        self.value_bits = int(value_bits)
        self.max_int = (1 << (self.value_bits - 1)) - 1
        self.scale = self.max_int / self.clip

    def __repr__(self) -> str:
        return f"PaillierQuantizer(clip={self.clip}, value_bits={self.value_bits})"

    def encode(self, x: npt.NDArray[Any], *, on_clip: str = "clip") -> npt.NDArray[np.int64]:
        """A float vector as int64 values in ``[-M, M]``; NaN/Inf refused, values
        past ``clip`` clipped (or refused with ``on_clip="raise"``)."""
        v = np.asarray(x)
        if v.ndim != 1:
            raise EncodingError(f"expected a 1-D vector, got shape {v.shape}")
        if v.dtype.kind not in "fiu":
            raise EncodingError(f"expected real numbers, got dtype {v.dtype}")
        f = v.astype(np.float64)
        bad = ~np.isfinite(f)
        if bad.any():
            i = int(np.argmax(bad))
            raise EncodingError(f"value {f[i]} at index {i} is not finite")
        over = np.abs(f) > self.clip
        if over.any() and on_clip == "raise":
            i = int(np.argmax(over))
            raise EncodingError(f"value {f[i]} at index {i} exceeds the clip bound {self.clip}")
        if on_clip not in ("clip", "raise"):
            raise ParameterError(f"on_clip must be 'clip' or 'raise', got {on_clip!r}")
        out = np.rint(np.clip(f, -self.clip, self.clip) * self.scale)
        np.clip(out, -self.max_int, self.max_int, out=out)
        return out.astype(np.int64)

    def decode(self, raw: npt.NDArray[Any], n_summands: int = 1) -> npt.NDArray[np.float64]:
        """An exact integer sum of ``n_summands`` inputs back to floats."""
        out: npt.NDArray[np.float64] = np.asarray(raw).astype(np.float64) / self.scale
        return out

    def error_bound(self, n_summands: int = 1) -> float:
        """Per-coordinate rounding error of a sum of ``n_summands`` inputs."""
        return n_summands * 0.5 / self.scale
