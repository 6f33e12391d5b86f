"""Paillier obfuscators ``r^n mod n^2``: the cost of encryption.

Four ways to get them, all on gmpy2 integers:

* online: ``r^n mod n^2`` for a fresh uniform unit r (public key only);
* pool: the same values computed ahead of time (:class:`ObfuscatorPool`),
  each handed out exactly once;
* CRT: with the private key, ``a^p mod p^2`` and ``b^q mod q^2`` for uniform
  a, b joined by CRT -- the same distribution as ``r^n mod n^2`` at about a
  third of the cost;
* DJN short exponent (:class:`DJNTable`, opt-in): ``h_s^a mod n^2`` for a
  fixed ``h_s = (-y^2)^n`` and a short random a, through a fixed-base table.
  Its security rests on a non-standard assumption (see SECURITY.md).

All randomness comes from :mod:`secrets`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, NoReturn, TypeVar

import gmpy2

from ..errors import ParameterError
from ._keys import (
    Mpz,
    _PrivateContext,
    _PublicContext,
    check_private_key,
    check_public_key,
    fingerprint,
    random_unit,
)

__all__ = ["DJNTable", "ObfuscatorPool"]

#: Work is spread over processes only when every worker gets at least this
#: many ciphertexts; below it, process start-up costs more than it saves.
PARALLEL_MIN_PER_WORKER = 32

#: Shortest DJN exponent accepted: generic attacks on a short exponent cost
#: about 2^(bits/2) group operations, so 256 bits keeps 128-bit security.
_DJN_MIN_BITS = 256

T = TypeVar("T")


def check_workers(workers: int | None) -> int:
    """``workers`` as a process count (None means 1); refuse anything else."""
    if workers is None:
        return 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ParameterError(f"workers must be a positive int or None, got {workers!r}")
    return workers


def run_chunked(
    task: Callable[..., list[T]],
    fixed: tuple[Any, ...],
    items: Sequence[Any] | int,
    workers: int | None,
) -> list[T]:
    """Run ``task(*fixed, chunk)`` over ``items`` (a sequence, or a count to split)
    in ``workers`` processes when large enough, else in this process."""
    total = items if isinstance(items, int) else len(items)
    w = check_workers(workers)
    if w == 1 or total < w * PARALLEL_MIN_PER_WORKER:
        return task(*fixed, items)
    bounds = [total * i // w for i in range(w + 1)]
    chunks: list[Any] = [
        (bounds[i + 1] - bounds[i])
        if isinstance(items, int)
        else list(items[bounds[i] : bounds[i + 1]])
        for i in range(w)
    ]
    out: list[T] = []
    with ProcessPoolExecutor(max_workers=w) as ex:
        for part in ex.map(task, *zip(*[(*fixed, c) for c in chunks], strict=True)):
            out.extend(part)
    return out


# ----------------------------------------------------------------- online / CRT


def online_obfuscators(n: int, count: int) -> list[Mpz]:
    """``count`` values ``r^n mod n^2`` for fresh uniform units r."""
    nn = gmpy2.mpz(n)
    rs = [random_unit(nn) for _ in range(count)]
    return list(gmpy2.powmod_base_list(rs, nn, nn * nn)) if rs else []


def online_obfuscators_with_units(n: int, count: int) -> list[tuple[Mpz, Mpz]]:
    """``count`` pairs ``(r, r^n mod n^2)`` for fresh uniform units r.

    The r are secret (anyone holding one can strip its ciphertext's
    obfuscator): callers keep them in memory only as long as a proof of
    plaintext knowledge needs them.
    """
    nn = gmpy2.mpz(n)
    rs = [random_unit(nn) for _ in range(count)]
    obf = list(gmpy2.powmod_base_list(rs, nn, nn * nn)) if rs else []
    return list(zip(rs, obf, strict=True))


def crt_obfuscators_ctx(ctx: _PrivateContext, count: int) -> list[Mpz]:
    """``count`` uniform n-th residues mod n^2, computed mod p^2 and q^2."""
    if count == 0:
        return []
    p, q, p2, q2, t = ctx.p, ctx.q, ctx.p2, ctx.q2, ctx.p2_inv_q2
    pi, qi = int(p), int(q)
    ap = [gmpy2.mpz(secrets.randbelow(pi - 1) + 1) for _ in range(count)]
    aq = [gmpy2.mpz(secrets.randbelow(qi - 1) + 1) for _ in range(count)]
    xp = gmpy2.powmod_base_list(ap, p, p2)
    xq = gmpy2.powmod_base_list(aq, q, q2)
    return [a + p2 * ((b - a) * t % q2) for a, b in zip(xp, xq, strict=True)]


def crt_obfuscators(p: int, q: int, count: int) -> list[Mpz]:
    """Process-pool entry point of :func:`crt_obfuscators_ctx`."""
    return crt_obfuscators_ctx(_PrivateContext.from_factors(p, q), count)


# ------------------------------------------------------------------------- DJN


class DJNTable:
    """Fixed-base table for the Damgård–Jurik–Nielsen short-exponent variant.

    Obfuscators are ``h_s^a mod n^2`` with ``h_s = h^n``, ``h = -y^2 mod n``
    for a secret uniform unit y drawn here, and a fresh ``a`` of
    ``exponent_bits`` random bits per ciphertext (default ``ceil(bits(n)/2)``,
    as in DJN; at least 256). With a ``window``-bit fixed-base table each obfuscator costs
    ``ceil(exponent_bits / window)`` multiplications mod n^2 instead of a full
    exponentiation.

    NON-STANDARD ASSUMPTION: semantic security needs, besides DCR, that
    ``h_s^a`` for a short a is indistinguishable from a uniform n-th residue
    (see SECURITY.md). Use only where that assumption is acceptable. Memory:
    about ``exponent_bits / window * 2^window`` integers mod n^2 (16 MiB for
    2048-bit keys, 38 MiB for 3072 bits, at the default window of 8).
    """

    def __init__(
        self,
        public_key: Any,
        *,
        exponent_bits: int | None = None,
        window: int = 8,
        insecure_allow_small_key_for_tests: bool = False,
        _base: int | None = None,
    ) -> None:
        check_public_key(
            public_key, insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests
        )
        self._pub = _PublicContext.of(public_key)
        bits = self._pub.bits
        e = -(-bits // 2) if exponent_bits is None else exponent_bits
        if isinstance(e, bool) or not isinstance(e, int) or not _DJN_MIN_BITS <= e <= 2 * bits:
            raise ParameterError(
                f"exponent_bits={exponent_bits!r} is outside [{_DJN_MIN_BITS}, {2 * bits}]"
            )
        if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= 12:
            raise ParameterError(f"window={window!r} is outside [1, 12]")
        n, n2 = self._pub.n, self._pub.n2
        if _base is None:
            y = random_unit(n)
            h = (-(y * y)) % n
            hs = gmpy2.powmod(h, n, n2)
        else:
            hs = gmpy2.mpz(_base)
        self.exponent_bits = e
        self.window = window
        self._hs = hs
        rows = -(-e // window)
        size = 1 << window
        table: list[list[Mpz]] = []
        base = hs
        for _ in range(rows):
            row = [gmpy2.mpz(1), base]
            for _ in range(size - 2):
                row.append(row[-1] * base % n2)
            table.append(row)
            base = row[-1] * base % n2  # base^(2^window)
        self._table = table

    @property
    def key_fingerprint(self) -> bytes:
        return self._pub.fingerprint

    def obfuscators(self, count: int) -> list[Mpz]:
        """``count`` values ``h_s^a mod n^2``, each with a fresh random a."""
        n2, table, w, e = self._pub.n2, self._table, self.window, self.exponent_bits
        out: list[Mpz] = []
        if w == 8:
            nbytes = len(table)
            for _ in range(count):
                digits = secrets.randbits(e).to_bytes(nbytes, "little")
                acc = gmpy2.mpz(1)
                for row, d in zip(table, digits, strict=True):
                    if d:
                        acc = acc * row[d] % n2
                out.append(acc)
            return out
        mask = (1 << w) - 1
        for _ in range(count):
            a = secrets.randbits(e)
            acc = gmpy2.mpz(1)
            for row in table:
                d = a & mask
                if d:
                    acc = acc * row[d] % n2
                a >>= w
            out.append(acc)
        return out

    def _task_args(self) -> tuple[int, int, int, int]:
        return (int(self._pub.n), int(self._hs), self.exponent_bits, self.window)

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("DJNTable cannot be pickled or copied; build one per process")


def djn_obfuscators(n: int, hs: int, exponent_bits: int, window: int, count: int) -> list[Mpz]:
    """Process-pool entry point: rebuild the table for base ``hs`` and draw."""
    import phe

    table = DJNTable(
        phe.PaillierPublicKey(n),
        exponent_bits=exponent_bits,
        window=window,
        insecure_allow_small_key_for_tests=True,
        _base=hs,
    )
    return table.obfuscators(count)


# ------------------------------------------------------------------------ pool


class ObfuscatorPool:
    """Obfuscators computed ahead of time (the offline phase).

    :meth:`take` removes what it returns, so no element is ever handed out
    twice; the pool refuses to be pickled or copied for the same reason.
    Precompute with the private key (``private_key=``) in the cross-silo
    setting to use the CRT path.
    """

    def __init__(
        self, public_key: Any, *, insecure_allow_small_key_for_tests: bool = False
    ) -> None:
        check_public_key(
            public_key, insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests
        )
        self._pub = _PublicContext.of(public_key)
        self._items: list[Mpz] = []

    @classmethod
    def precompute(
        cls,
        public_key: Any,
        count: int,
        *,
        private_key: Any = None,
        workers: int | None = None,
        insecure_allow_small_key_for_tests: bool = False,
    ) -> ObfuscatorPool:
        """A pool of ``count`` fresh obfuscators for ``public_key``."""
        pool = cls(
            public_key, insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests
        )
        pool.refill(count, private_key=private_key, workers=workers)
        return pool

    @property
    def key_fingerprint(self) -> bytes:
        return self._pub.fingerprint

    def __len__(self) -> int:
        return len(self._items)

    def refill(self, count: int, *, private_key: Any = None, workers: int | None = None) -> None:
        """Add ``count`` fresh obfuscators (CRT path when ``private_key`` is given)."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ParameterError(f"count must be a non-negative int, got {count!r}")
        if private_key is not None:
            check_private_key(private_key, insecure_allow_small_key_for_tests=True)
            if fingerprint(private_key.public_key) != self._pub.fingerprint:
                raise ParameterError("private key does not belong to this pool's public key")
            new = run_chunked(
                crt_obfuscators, (int(private_key.p), int(private_key.q)), count, workers
            )
        else:
            new = run_chunked(online_obfuscators, (int(self._pub.n),), count, workers)
        self._items.extend(new)

    def take(self, count: int) -> list[Mpz]:
        """Remove and return ``count`` obfuscators; refuse (unchanged) if too few."""
        if count > len(self._items):
            raise ParameterError(
                f"obfuscator pool has {len(self._items)} left, {count} needed; "
                "refill it (elements are never reused)"
            )
        if count <= 0:
            return []
        out = self._items[-count:]
        del self._items[-count:]
        return out

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("ObfuscatorPool cannot be pickled or copied: that would reuse obfuscators")
