"""Public parameters of one secure-aggregation round, and how they are chosen.

A :class:`SecAggConfig` is what every party agrees on before the round: the
client ids, the vector dimension and modulus, the neighbour graph (degree and
public seed), the Shamir threshold, the security mode, a session id and, in
the malicious-server mode, the registry of Ed25519 identity keys. Its
:attr:`~SecAggConfig.digest` (SHA-256 of a canonical encoding) is bound into
every message, every AEAD associated data and every key-derivation context, so
nothing from another session or another configuration is ever accepted.

Choosing the degree ``k`` and threshold ``t``
---------------------------------------------
Shares of a client's secrets go to its *closed* neighbourhood (its ``k``
neighbours and itself; all ``n`` clients for the complete graph) and any
``t`` of them reconstruct. :func:`derive_parameters` picks, for ``n`` clients,
a tolerated dropout fraction ``delta`` and a tolerated corrupt fraction
``gamma`` (clients that collude with the server), the smallest even ``k`` for
which some ``t`` meets all three conditions below. These are the conditions of
Bell, Bonawitz, Gascon, Lepoint and Raykova, "Secure Single-Server Aggregation
with (Poly)Logarithmic Overhead" (CCS 2020, ePrint 2020/704), Section 3, for a
random Harary graph ``H(n, k)`` (a uniformly random ring, each client joined
to the ``k/2`` nearest on each side), computed with exact hypergeometric tails
(:mod:`.tails`) and a union bound over the ``n`` clients (or ring windows),
not with Hoeffding's bound. With at most ``C = floor(gamma n)`` corrupt and
``D = floor(delta n)`` dropped clients, and ``Hyp(N, K, m)`` the number of
marked items among ``m`` drawn without replacement from ``N`` of which ``K``
are marked (a client's ``k`` neighbours are a uniform ``k``-subset of the
other ``n - 1`` clients, since the ring is a uniform permutation):

1. no honest client has ``t`` corrupt neighbours, so the adversary alone never
   holds ``t`` shares of its secrets: ``n P[Hyp(n-1, C, k) >= t]``;
2. the honest survivors stay connected once the corrupt and dropped clients
   are removed. ``H(n, k)`` minus a set ``S`` is connected unless ``S`` holds
   ``k/2`` consecutive ring positions (two consecutive remaining clients are
   then fewer than ``k/2`` positions apart, hence neighbours), and a given
   window of ``k/2`` positions lies inside ``S`` with probability
   ``P[Hyp(n, C + D, k/2) = k/2]``; over the ``n`` windows:
   ``n P[Hyp(n, C + D, k/2) = k/2]``, which is at most Bell et al.'s
   ``n (gamma + delta)^(k/2)``;
3. every client keeps ``t`` surviving neighbours, so the server can always
   reconstruct: ``n P[Hyp(n-1, D, k) >= k - t + 1]``.

Security asks (1) + (2) <= ``2^-security_bits`` (default 40) and correctness
asks (3) <= ``2^-correctness_bits`` (default 20); every probability is summed
from the exact mass function in double precision, so the targets are met as
stated, not bounded from above by a looser expression. The threshold is the
middle of the feasible range. With the defaults this gives ``k = 36, t = 19``
at ``n = 1,000``, ``k = 42`` at 10,000 and ``k = 46`` at 100,000 (Hoeffding's
bound asked for 78, 84 and 90). Below ``MIN_RING_CLIENTS = 100`` clients,
and whenever no ``k < n-1`` qualifies, the complete graph is used with ``t``
a majority ``floor(n/2) + 1`` clamped into ``[C + 1, n - D]`` (Bonawitz et
al., Section 4): there ``C`` and ``D`` are a handful of clients (``D = 0``
below 10), a ring sized for exactly them breaks at the first dropout beyond
the declared count, while the majority threshold of the complete graph
tolerates ``n - t``, and the complete graph's quadratic cost is small.

The defaults are ``delta = 0.1``, ``gamma = 0.05``, 40 and 20 bits.
Callers may override ``degree`` and ``threshold``; :func:`guarantees` reports
the bits that a given ``(n, k, t)`` achieves under the bounds above.

Malicious-server mode adds a *consistency quorum*: an honest client reveals
shares only after seeing valid signatures from at least
``q = floor((n + c)/2) + 1`` clients on the very survivor set it signed. Two
quorums of that size share an honest client, who signs only once, so all
honest clients agree on the survivor set and never reveal both kinds of share
of one client (this replaces Bonawitz et al.'s ``t > 2n/3`` rule, which ties
the same guarantee to the threshold).

In malicious mode the server also decides who "dropped", so condition 2's
assumption of random dropouts does not hold. Security there does not rest on
it: each client checks the configuration with exact hypergeometric tails and
refuses to sign a survivor set that could cut the ring
(:mod:`protocols.secagg.partition`); the derivation above only has to make
an honest run pass those checks, which its connectivity term (with the
dropout fraction) already ensures with room to spare.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from itertools import pairwise
from types import MappingProxyType
from typing import Literal

import numpy as np

from secagg import shamir, wire
from secagg.errors import ParameterError
from secagg.sign import VerifyKey

from .graph import complete_neighbourhoods, harary_neighbourhoods
from .tails import hypergeometric_tails, malicious_bounds

__all__ = [
    "MODES",
    "ROUNDS",
    "Mode",
    "SecAggConfig",
    "consistency_quorum",
    "derive_malicious_parameters",
    "derive_parameters",
    "guarantees",
    "rounds_for",
]

Mode = Literal["semi-honest", "malicious"]
MODES: tuple[Mode, ...] = ("semi-honest", "malicious")

#: Round names, in protocol order ("consistency" runs only in malicious mode);
#: the one source every part of the protocol reads (see :attr:`SecAggConfig.rounds`).
ROUNDS = ("advertise", "share_keys", "masked_input", "consistency", "unmask")

#: Largest client id: any u64 (the wire carries each client's index 1..n
#: in the sorted id list instead, and the digest binds that map).
MAX_CLIENT_ID = 2**64 - 1
_MAX_DIMENSION = wire.MAX_FIELD // 8
_CONFIG_MAGIC = b"SACF"
_CONFIG_VERSION = 2


def rounds_for(mode: Mode) -> tuple[str, ...]:
    """The rounds a ``mode`` runs, in order: :data:`ROUNDS`, without
    ``"consistency"`` in the semi-honest mode."""
    if mode not in MODES:
        raise ParameterError(f"mode must be one of {MODES}, got {mode!r}")
    return tuple(r for r in ROUNDS if r != "consistency" or mode == "malicious")


def _check_fraction(name: str, v: float) -> float:
    v = float(v)
    if not 0.0 <= v < 1.0:
        raise ParameterError(f"{name} must be in [0, 1), got {v}")
    return v


def _bits(p: float) -> float:
    """-log2(p), with p <= 0 meaning an infinitely strong bound."""
    return math.inf if p <= 0 else -math.log2(p)


#: Below this many clients the semi-honest derivation keeps the complete graph.
MIN_RING_CLIENTS = 100


def _semi_honest_probabilities(n: int, k: int, t: int, corrupt: int,
                                dropped: int) -> tuple[float, float]:
    """``(p_security, p_correctness)``: conditions (1) + (2) and (3) of the
    module docstring for ``H(n, k)`` and threshold ``t``."""
    h = k // 2
    p1 = n * hypergeometric_tails(n - 1, corrupt, k)[min(max(t, 0), k + 1)]
    p2 = n * hypergeometric_tails(n, min(corrupt + dropped, n), h)[h]
    p3 = n * hypergeometric_tails(n - 1, dropped, k)[min(max(k + 1 - t, 0), k + 1)]
    return p1 + p2, p3


def guarantees(
    n: int, degree: int | None, threshold: int, *, dropout_fraction: float,
    corrupt_fraction: float,
) -> tuple[float, float]:
    """Bits of ``(security, correctness)`` that ``(n, degree, threshold)`` achieves.

    For a Harary graph these are the exact-tail union bounds of the module
    docstring (with ``C = floor(gamma n)`` corrupt and ``D = floor(delta n)``
    dropped clients); for the complete graph (``degree`` None or ``>= n-1``)
    they are exact: ``inf`` when ``C < t <= n - D``, else 0.
    """
    delta = _check_fraction("dropout_fraction", dropout_fraction)
    gamma = _check_fraction("corrupt_fraction", corrupt_fraction)
    c, m = math.floor(gamma * n), math.floor(delta * n)
    if degree is None or degree >= n - 1:
        return (math.inf if threshold > c else 0.0, math.inf if threshold <= n - m else 0.0)
    sec, cor = _semi_honest_probabilities(n, degree, threshold, c, m)
    return max(0.0, _bits(sec)), max(0.0, _bits(cor))


def _best_threshold(
    n: int, k: int, delta: float, gamma: float, sigma: float, eta: float, *, feasible: bool
) -> int | None:
    """The threshold for degree ``k``: the middle of the t in [2, k] that meet
    both targets; without ``feasible`` (a caller's degree), when none does, the
    t with the largest ``min(security - sigma, correctness - eta)``. None when
    ``feasible`` and no t qualifies."""
    ok: list[int] = []
    best: tuple[float, int] | None = None
    for t in range(2, k + 1):
        s, c = guarantees(n, k, t, dropout_fraction=delta, corrupt_fraction=gamma)
        if s >= sigma and c >= eta:
            ok.append(t)
        slack = min(s - sigma, c - eta)
        if best is None or slack > best[0]:
            best = (slack, t)
    if ok:
        return ok[len(ok) // 2]
    return None if feasible or best is None else best[1]


def _complete_threshold(n: int, delta: float, gamma: float) -> int:
    c, m = math.floor(gamma * n), math.floor(delta * n)
    lo, hi = max(2, c + 1), n - m
    if lo > hi:
        raise ParameterError(
            f"no threshold fits {n} clients with {c} corrupt and {m} dropouts tolerated "
            f"(need c + 1 = {lo} <= n - m = {hi}); lower the fractions"
        )
    return min(max(n // 2 + 1, lo), hi)


def derive_parameters(
    n: int,
    *,
    dropout_fraction: float = 0.1,
    corrupt_fraction: float = 0.05,
    security_bits: float = 40.0,
    correctness_bits: float = 20.0,
    degree: int | None = None,
) -> tuple[int | None, int]:
    """``(degree, threshold)`` for ``n`` clients; ``degree`` None is the complete graph.

    See the module docstring for the formula and its source. With ``degree``
    given, only the threshold is derived (balancing the two bounds even when
    they cannot reach their targets).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ParameterError(f"need at least 2 clients, got {n}")
    delta = _check_fraction("dropout_fraction", dropout_fraction)
    gamma = _check_fraction("corrupt_fraction", corrupt_fraction)
    if degree is not None:
        if degree >= n - 1:
            return None, _complete_threshold(n, delta, gamma)
        if degree % 2 or degree < 2:
            raise ParameterError(f"degree must be even and >= 2, got {degree}")
        t = _best_threshold(n, degree, delta, gamma, security_bits, correctness_bits,
                            feasible=False)
        assert t is not None
        return degree, t
    if n < MIN_RING_CLIENTS:
        return None, _complete_threshold(n, delta, gamma)
    for k in range(2, n - 1, 2):
        c, m = math.floor(gamma * n), math.floor(delta * n)
        if n * hypergeometric_tails(n, min(c + m, n), k // 2)[k // 2] > 2.0**-security_bits:
            continue  # the connectivity term alone already fails
        t = _best_threshold(n, k, delta, gamma, security_bits, correctness_bits,
                            feasible=True)
        if t is not None:
            return k, t
    return None, _complete_threshold(n, delta, gamma)


def _malicious_threshold(n: int, k: int, corrupt: int, dropped: int, sigma: float,
                         eta: float) -> int | None:
    """The middle of the thresholds t in [2, k + 1] that meet both targets on
    a ring of degree ``k`` in malicious mode, or None.

    Security (no dropout assumption): :func:`.tails.malicious_bounds` at
    ``2^-sigma``, which fixes the window bound B. Liveness with ``dropped``
    random dropouts, ``<= 2^-eta``: ``n P[Hyp(n-1, D, k) >= k + 1 - t]`` (some
    client keeps fewer than t holders among its k neighbours, which a dropped
    client's mask key needs) plus ``n P[Hyp(n, D, k/2) >= k/2 - B]``
    (some window keeps at most B survivors, which the clients' partition check
    could refuse).
    """
    h = k // 2
    drop_k = hypergeometric_tails(n - 1, dropped, k)
    drop_h = hypergeometric_tails(n, dropped, h)
    ok = []
    for t in range(2, k + 1):
        bits, b = malicious_bounds(n, k, t, corrupt, sigma)
        if bits < sigma:
            continue
        live = n * drop_k[k + 1 - t] + n * drop_h[h - b]
        if live <= 2.0**-eta:
            ok.append(t)
    return ok[len(ok) // 2] if ok else None


def derive_malicious_parameters(
    n: int,
    *,
    dropout_fraction: float = 0.1,
    corrupt_fraction: float = 0.05,
    security_bits: float = 40.0,
    correctness_bits: float = 20.0,
    degree: int | None = None,
) -> tuple[int | None, int]:
    """``(degree, threshold)`` for ``n`` clients in malicious mode.

    The server chooses who "drops", so security must not rest on random
    dropouts: the smallest even ``k`` (or the given ``degree``) for which some
    ``t`` meets, with exact hypergeometric tails and ``C = floor(gamma n)``
    corrupt clients, the security bound of :func:`.tails.malicious_bounds`
    (what every client checks, :mod:`.partition`) and, with ``D = floor(delta
    n)`` random dropouts, the liveness bound of the clients' checks; ``t`` is
    the middle of the feasible range. Falls back to the complete graph with
    the majority threshold when no ``k < n - 1`` qualifies; a given ``degree``
    that no threshold makes secure is refused.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ParameterError(f"need at least 2 clients, got {n}")
    delta = _check_fraction("dropout_fraction", dropout_fraction)
    gamma = _check_fraction("corrupt_fraction", corrupt_fraction)
    c, m = math.floor(gamma * n), math.floor(delta * n)
    if degree is not None:
        if degree >= n - 1:
            return None, _complete_threshold(n, delta, gamma)
        if degree % 2 or degree < 2:
            raise ParameterError(f"degree must be even and >= 2, got {degree}")
        t = _malicious_threshold(n, degree, c, m, security_bits, correctness_bits)
        if t is None:
            raise ParameterError(
                f"no threshold gives degree {degree} {security_bits} bits of security and "
                f"{correctness_bits} of liveness against {c} corrupt and {m} dropped of "
                f"{n} clients in malicious mode; raise the degree")
        return degree, t
    for k in range(2, n - 1, 2):
        t = _malicious_threshold(n, k, c, m, security_bits, correctness_bits)
        if t is not None:
            return k, t
    return None, _complete_threshold(n, delta, gamma)


def consistency_quorum(n: int, corrupt_fraction: float) -> int:
    """Signatures an honest client needs in malicious mode: ``floor((n + c)/2) + 1``."""
    c = math.floor(_check_fraction("corrupt_fraction", corrupt_fraction) * n)
    return (n + c) // 2 + 1


@dataclass(frozen=True, eq=False)
class SecAggConfig:
    """Public parameters of one round; build it with :meth:`create`.

    Attributes:
        client_ids: the sampled clients, strictly increasing, each an int in
            ``[0, 2^64)``; 2 to 65535 of them. Internally (on the wire, in
            every binding) a client is its index ``1..n`` in this tuple
            (:meth:`index_of`); the digest binds the whole tuple.
        dimension: length of every input vector (>= 1).
        threshold: Shamir threshold t, in ``[2, size of a closed neighbourhood]``.
        degree: neighbours per client (even, ``2 <= k < n - 1``) for SecAgg+,
            or None for the complete graph.
        mode: ``"semi-honest"`` (honest-but-curious server) or ``"malicious"``.
        modulus_bits: 32 or 64; inputs and masks are ``uint32``/``uint64`` mod 2^bits.
        session_id: u64 naming this round; bound into everything.
        graph_seed: 32 public random bytes fixing the Harary ring.
        quorum: malicious mode: signatures required in the consistency round.
        registry: malicious mode: every client's Ed25519 identity key.
    """

    client_ids: tuple[int, ...]
    dimension: int
    threshold: int
    degree: int | None = None
    mode: Mode = "semi-honest"
    modulus_bits: int = 32
    session_id: int = 0
    graph_seed: bytes = bytes(32)
    quorum: int | None = None
    registry: Mapping[int, VerifyKey] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        ids = self.client_ids
        if not isinstance(ids, tuple) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in ids
        ):
            raise ParameterError("client_ids must be a tuple of ints")
        n = len(ids)
        if not 2 <= n <= shamir.MAX_SHARES:
            raise ParameterError(f"need 2..{shamir.MAX_SHARES} clients, got {n}")
        if any(b <= a for a, b in pairwise(ids)) or ids[0] < 0 or ids[-1] > MAX_CLIENT_ID:
            raise ParameterError(
                f"client_ids must be strictly increasing and in [0, {MAX_CLIENT_ID}]"
            )
        if isinstance(self.dimension, bool) or not isinstance(self.dimension, int) or not (
            1 <= self.dimension <= _MAX_DIMENSION
        ):
            raise ParameterError(f"dimension must be in [1, {_MAX_DIMENSION}], got "
                                 f"{self.dimension}")
        if self.modulus_bits not in (32, 64):
            raise ParameterError(f"modulus_bits must be 32 or 64, got {self.modulus_bits}")
        if self.mode not in MODES:
            raise ParameterError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.degree is not None and (
            isinstance(self.degree, bool) or not isinstance(self.degree, int)
            or self.degree % 2 or not 2 <= self.degree <= n - 2
        ):
            raise ParameterError(
                f"degree must be None (complete graph) or even in [2, n-2={n - 2}], "
                f"got {self.degree}"
            )
        holders = n if self.degree is None else self.degree + 1
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, int) or not (
            2 <= self.threshold <= holders
        ):
            raise ParameterError(
                f"threshold must be in [2, {holders}] (the size of a closed "
                f"neighbourhood), got {self.threshold}"
            )
        if not isinstance(self.session_id, int) or not 0 <= self.session_id < 2**64:
            raise ParameterError(f"session_id must be a u64, got {self.session_id}")
        if not isinstance(self.graph_seed, bytes) or len(self.graph_seed) != 32:
            raise ParameterError("graph_seed must be 32 bytes")
        if self.mode == "malicious":
            if self.quorum is None or not n // 2 + 1 <= self.quorum <= n:
                raise ParameterError(
                    f"malicious mode needs a quorum in [{n // 2 + 1}, {n}], got {self.quorum}"
                )
            reg = self.registry
            if reg is None or set(reg) != set(ids) or not all(
                isinstance(k, VerifyKey) for k in reg.values()
            ):
                raise ParameterError(
                    "malicious mode needs a registry with one VerifyKey per client id"
                )
            if len({k.to_bytes() for k in reg.values()}) != n:
                raise ParameterError("registry holds the same identity key twice")
        elif self.quorum is not None or self.registry is not None:
            raise ParameterError("quorum and registry belong to the malicious mode only")

    # -- construction ---------------------------------------------------------
    @classmethod
    def create(
        cls,
        client_ids: Iterable[int],
        dimension: int,
        *,
        threshold: int | None = None,
        degree: int | Literal["complete"] | None = None,
        mode: Mode = "semi-honest",
        dropout_fraction: float = 0.1,
        corrupt_fraction: float = 0.05,
        security_bits: float = 40.0,
        correctness_bits: float = 20.0,
        modulus_bits: int = 32,
        session_id: int | None = None,
        graph_seed: bytes | None = None,
        registry: Mapping[int, VerifyKey] | None = None,
    ) -> SecAggConfig:
        """Derive the degree, threshold and quorum (see the module docstring).

        ``degree``: None derives it, ``"complete"`` forces the complete graph,
        an even int fixes it (``>= n - 1`` means complete). ``threshold``
        overrides the derived one. ``session_id`` and ``graph_seed`` default to
        fresh OS randomness; pass them to reproduce a round.
        """
        ids = tuple(sorted(client_ids))
        n = len(ids)
        if degree == "complete":
            deg: int | None = n - 1
        elif degree is None or isinstance(degree, int):
            deg = degree
        else:
            raise ParameterError(f"degree must be None, 'complete' or an int, got {degree!r}")
        k, t = derive_parameters(
            n, dropout_fraction=dropout_fraction, corrupt_fraction=corrupt_fraction,
            security_bits=security_bits, correctness_bits=correctness_bits, degree=deg,
        )
        if mode == "malicious" and threshold is None:
            k, t = derive_malicious_parameters(
                n, dropout_fraction=dropout_fraction, corrupt_fraction=corrupt_fraction,
                security_bits=security_bits, correctness_bits=correctness_bits, degree=deg)
        if threshold is not None:
            t = threshold
        quorum = consistency_quorum(n, corrupt_fraction) if mode == "malicious" else None
        if session_id is None:
            session_id = int.from_bytes(os.urandom(8), "big")
        return cls(
            client_ids=ids, dimension=dimension, threshold=t, degree=k, mode=mode,
            modulus_bits=modulus_bits, session_id=session_id,
            graph_seed=os.urandom(32) if graph_seed is None else graph_seed,
            quorum=quorum,
            registry=MappingProxyType(dict(registry)) if registry is not None else None,
        )

    # -- derived, public facts --------------------------------------------------
    @property
    def n(self) -> int:
        return len(self.client_ids)

    @property
    def is_complete(self) -> bool:
        return self.degree is None

    @property
    def dtype(self) -> np.dtype[np.unsignedinteger]:
        return np.dtype(np.uint32 if self.modulus_bits == 32 else np.uint64)

    @cached_property
    def id_set(self) -> frozenset[int]:
        return frozenset(self.client_ids)

    @property
    def rounds(self) -> tuple[str, ...]:
        """The rounds of this configuration, in order (:func:`rounds_for` its mode)."""
        return rounds_for(self.mode)

    @cached_property
    def _index_of(self) -> dict[int, int]:
        return {u: i + 1 for i, u in enumerate(self.client_ids)}

    def index_of(self, client: int) -> int:
        """Internal index of ``client``: 1 + its rank in :attr:`client_ids`
        (0 is the server on the wire). Raises ParameterError for a stranger."""
        try:
            return self._index_of[client]
        except (KeyError, TypeError):
            raise ParameterError(f"{client!r} is not a client of this round") from None

    def id_at(self, index: int) -> int:
        """The client id at internal index ``index`` (1..n)."""
        if not 1 <= index <= self.n:
            raise ParameterError(f"client index {index} is outside [1, {self.n}]")
        return self.client_ids[index - 1]

    @cached_property
    def neighbours(self) -> Mapping[int, frozenset[int]]:
        """Open neighbourhood of each client (without the client itself)."""
        if self.degree is None:
            return complete_neighbourhoods(self.client_ids)
        return harary_neighbourhoods(self.client_ids, self.degree, self.graph_seed)

    @cached_property
    def _holders(self) -> dict[int, tuple[int, ...]]:
        if self.degree is None:
            return dict.fromkeys(self.client_ids, self.client_ids)
        return {u: tuple(sorted(nb | {u})) for u, nb in self.neighbours.items()}

    @cached_property
    def _index(self) -> dict[int, dict[int, int]]:
        if self.degree is None:
            shared = {h: i + 1 for i, h in enumerate(self.client_ids)}
            return dict.fromkeys(self.client_ids, shared)
        return {u: {h: i + 1 for i, h in enumerate(hs)} for u, hs in self._holders.items()}

    def holders(self, owner: int) -> tuple[int, ...]:
        """Holders of ``owner``'s shares: its closed neighbourhood, increasing."""
        return self._holders[owner]

    def share_index(self, owner: int, holder: int) -> int:
        """The Shamir x-coordinate of ``holder``'s share of ``owner``'s secrets
        (1 + the holder's rank in ``holders(owner)``); public and deterministic."""
        return self._index[owner][holder]

    @cached_property
    def digest(self) -> bytes:
        """SHA-256 of the canonical encoding of every field."""
        return hashlib.sha256(self.to_bytes()).digest()

    def to_bytes(self) -> bytes:
        """Canonical, versioned encoding of every field (``SACF`` v2).

        The client ids travel as u64 in order, so the id -> index map is part
        of the bytes and of :attr:`digest`.
        """
        w = wire.Writer(_CONFIG_MAGIC, _CONFIG_VERSION)
        w.u64(self.session_id).u8(MODES.index(self.mode)).u8(self.modulus_bits)
        w.u64(self.dimension).u32(self.threshold).u32(self.degree or 0)
        w.u32(self.quorum or 0).raw(self.graph_seed).u32(self.n)
        for i in self.client_ids:
            w.u64(i)
        if self.registry is not None:
            for i in self.client_ids:
                w.raw(self.registry[i].to_bytes())
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> SecAggConfig:
        """Parse :meth:`to_bytes`; every field is re-checked as in the constructor
        (a malformed or unsafe configuration raises a SecAggError subclass)."""
        r = wire.Reader(data, _CONFIG_MAGIC, (_CONFIG_VERSION,))
        session_id, mode_code, modulus_bits = r.u64(), r.u8(), r.u8()
        dimension, threshold, degree, quorum = r.u64(), r.u32(), r.u32(), r.u32()
        graph_seed, n = r.raw(32), r.u32()
        if mode_code >= len(MODES):
            raise ParameterError(f"unknown mode code {mode_code}")
        if not 2 <= n <= shamir.MAX_SHARES:
            raise ParameterError(f"need 2..{shamir.MAX_SHARES} clients, got {n}")
        if n * 8 > r.remaining():
            raise ParameterError(f"{n} client ids do not fit the {r.remaining()} bytes left")
        ids = tuple(r.u64() for _ in range(n))
        mode = MODES[mode_code]
        registry = None
        if mode == "malicious":
            registry = MappingProxyType(
                {u: VerifyKey.from_bytes(r.raw(32)) for u in ids})
        r.done()
        return cls(client_ids=ids, dimension=dimension, threshold=threshold,
                   degree=degree or None, mode=mode, modulus_bits=modulus_bits,
                   session_id=session_id, graph_seed=graph_seed,
                   quorum=quorum or None, registry=registry)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecAggConfig) and self.digest == other.digest

    def __hash__(self) -> int:
        return hash(self.digest)
