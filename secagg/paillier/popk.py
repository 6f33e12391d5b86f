"""Non-interactive proofs of plaintext knowledge for Paillier ciphertexts.

A proof shows that its prover knows ``(m, r)`` with
``c = (1 + n)^m r^n mod n^2`` -- that ``c`` is a fresh encryption the prover
made, not a product of other parties' ciphertexts (Paillier ciphertexts are
malleable: anyone can multiply, invert or re-randomise them without knowing
what they hold). It is the standard Sigma protocol for n-th residuosity
with a plaintext, made non-interactive by Fiat-Shamir over SHA-256:

* commit: ``a = (1 + n)^x s^n mod n^2`` for uniform ``x`` in Z_n and a
  uniform unit ``s`` mod n;
* challenge: ``e = H(domain, context, n, vector digest, index, c, a)``, the
  first 128 bits (below both primes' sizes, so two answers to the same
  ``a`` reveal ``m`` and ``r``: special soundness);
* response: ``z = x + e m mod n`` and ``w = s r^e mod n``.

The verifier checks the ranges (``0 <= z < n``, ``0 < w < n``,
``gcd(w, n) = 1``, ``c`` a unit mod n^2), recomputes
``a = (1 + n)^z w^n c^(-e) mod n^2`` and accepts only if the challenge of
that ``a`` is ``e``. Only the compact form ``(e, z, w)`` travels.

Security: soundness error 2^-128 per ciphertext in the random-oracle
model; honest-verifier zero knowledge (``x`` and ``s`` are uniform and used
once), so a proof reveals nothing about ``m`` or ``r``. A proof is bound to
its ``context`` (a protocol puts its configuration digest and the prover's
id there), to the whole vector (its digest) and to its ciphertext's index:
copying a proof to another vector, ciphertext, context or prover fails, and
so does proving a re-randomised copy of someone else's ciphertext, whose r
the copier does not know.

Wire format of a :class:`ProofVector`, magic ``SGPR`` version 1::

    bytes32  key fingerprint
    u32      count            number of proofs (one per ciphertext)
    u16      width            == ceil(bits(n) / 8)
    count *  (16-byte e | width-byte z | width-byte w), big-endian

Batched verification (:func:`verify_batch`) needs the commitment ``a``
itself, so it takes the committed form ``(a, z, w)`` of the same proofs
(:class:`BatchableProofVector`, magic ``SGPB`` version 1: as above with a
``2 * width``-byte ``a`` in place of ``e``; about twice the bytes). It checks
all proofs of many vectors with one equation raised to fresh random odd
128-bit exponents (127 random bits), squared on both sides so that elements
of order 2 (which Z*_{n^2} has; every other prime factor of its order
exceeds 2^128 for keys that are products of safe primes) cannot cancel: for
such keys a batch with any proof whose equation fails (beyond a factor of
order 2, which leaves the plaintext known) passes with probability at most
2^-127. For other keys (e.g. ``phe``'s) elements of small odd order exist
and the batch bound does not hold; verify those one by one. The protocol
itself verifies one by one.

Randomness comes from :mod:`secrets` only.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gmpy2
import numpy.typing as npt

from ..errors import IntegrityError, ParameterError, ProtocolError
from ..profiling import CRYPTO, timed
from ..wire import Reader, Writer
from ._keys import Mpz, _PublicContext, check_public_key
from ._obfuscators import check_workers, run_chunked
from ._packing import ClipPolicy, PackingLayout
from ._vector import EncryptedVector, _encrypt_online_keeping_units

__all__ = [
    "CHALLENGE_BITS",
    "BatchableProofVector",
    "CommittedProof",
    "PlaintextProof",
    "ProofVector",
    "encrypt_with_batchable_proofs",
    "encrypt_with_proofs",
    "prove_vector",
    "verify_batch",
    "verify_vector",
]

#: Bits of a Fiat-Shamir challenge: the soundness error per proof is 2^-128.
CHALLENGE_BITS = 128
_E_BYTES = CHALLENGE_BITS // 8
_MAGIC = b"SGPR"
_BATCH_MAGIC = b"SGPB"
_RHO_BITS = 128
_DOMAIN = b"secagg.paillier.popk.v1\x00"
_MAX_CONTEXT = 1 << 16

#: Where the prover draws ``x`` and ``s``: ``secrets.randbelow``. Replaced
#: only by known-answer tests, in-process.
_randbelow: Callable[[int], int] = secrets.randbelow



def _read_header(data: bytes, magic: bytes, public_key: Any, count: int | None,
                 size_of: Callable[[int], int],
                 insecure: bool) -> tuple[_PublicContext, Reader, int]:
    """Check a proof vector's header (type, magic and version, key
    fingerprint, count, field width) and that exactly ``count * size_of(n)``
    bytes follow; return the key's context, the reader at the first proof and
    the count. :class:`ProtocolError` otherwise."""
    check_public_key(public_key, insecure_allow_small_key_for_tests=insecure)
    if type(data) is not bytes:
        raise ProtocolError(f"proofs must be bytes, got {type(data).__name__}")
    ctx = _PublicContext.of(public_key)
    n = int(ctx.n)
    width = _width(n)
    r = Reader(data, magic)
    if r.raw(32) != ctx.fingerprint:
        raise ProtocolError("the proofs were made under another public key")
    got = r.u32()
    if count is not None and got != count:
        raise ProtocolError(f"{got} proofs for {count} ciphertexts")
    if r.u16() != width:
        raise ProtocolError(f"proof field width differs from {width} bytes for this key")
    size = size_of(n)
    if got * size != r.remaining():
        raise ProtocolError(f"{got} proofs need {got * size} bytes, {r.remaining()} follow")
    return ctx, r, got

@dataclass(frozen=True)
class PlaintextProof:
    """One proof in compact form: challenge ``e`` (< 2^128) and responses
    ``z`` (in [0, n)) and ``w`` (a unit in (0, n))."""

    e: int
    z: int
    w: int


def _width(n: int) -> int:
    return (n.bit_length() + 7) // 8


def _check_context(context: bytes) -> bytes:
    if type(context) is not bytes:
        raise ParameterError(f"context must be bytes, got {type(context).__name__}")
    if len(context) > _MAX_CONTEXT:
        raise ParameterError(f"context is {len(context)} bytes, past the limit {_MAX_CONTEXT}")
    return context


def _head(n: int, cts: Sequence[Mpz], context: bytes) -> bytes:
    """Digest of everything every challenge of one vector is bound to: the
    context, the modulus and every ciphertext (the whole vector)."""
    w2 = _width(n * n)
    h = hashlib.sha256(_DOMAIN + b"head\x00")
    h.update(len(context).to_bytes(4, "big") + context)
    h.update(n.to_bytes(_width(n), "big"))
    h.update(len(cts).to_bytes(4, "big"))
    for c in cts:
        h.update(int(c).to_bytes(w2, "big"))
    return h.digest()


def _challenge(head: bytes, index: int, c: Mpz, a: Mpz, w2: int) -> int:
    h = hashlib.sha256(_DOMAIN + b"challenge\x00" + head + index.to_bytes(4, "big"))
    h.update(int(c).to_bytes(w2, "big"))
    h.update(int(a).to_bytes(w2, "big"))
    return int.from_bytes(h.digest()[:_E_BYTES], "big")


def _random_unit(n: int) -> Mpz:
    while True:
        s = gmpy2.mpz(_randbelow(n - 1) + 1)
        if gmpy2.gcd(s, n) == 1:
            return s


def _prove_task(
    n: int, head: bytes, items: Sequence[tuple[int, int, int, int]]
) -> list[tuple[int, int, int, int]]:
    """Proofs ``(e, a, z, w)`` for ``(index, c, m, r)`` items; process-pool
    entry point."""
    nn = gmpy2.mpz(n)
    n2 = nn * nn
    w2 = _width(n * n)
    xs = [gmpy2.mpz(_randbelow(n)) for _ in items]
    ss = [_random_unit(n) for _ in items]
    sn = gmpy2.powmod_base_list(ss, nn, n2) if ss else []
    out: list[tuple[int, int, int, int]] = []
    for (index, c, m, r), x, s, t in zip(items, xs, ss, sn, strict=True):
        a = (x * nn + 1) * t % n2  # (1 + n)^x = 1 + x n mod n^2
        e = _challenge(head, index, gmpy2.mpz(c), a, w2)
        z = (x + e * gmpy2.mpz(m)) % nn
        w = s * gmpy2.powmod(gmpy2.mpz(r), e, nn) % nn
        out.append((e, int(a), int(z), int(w)))
    return out


def _verify_task(
    n: int, head: bytes, items: Sequence[tuple[int, int, int, int, int]]
) -> list[int]:
    """Indices whose ``(index, c, e, z, w)`` does not verify (ranges checked
    by the caller); process-pool entry point."""
    nn = gmpy2.mpz(n)
    n2 = nn * nn
    w2 = _width(n * n)
    wn = gmpy2.powmod_base_list([gmpy2.mpz(it[4]) for it in items], nn, n2) if items else []
    bad: list[int] = []
    for (index, c, e, z, _), t in zip(items, wn, strict=True):
        cc = gmpy2.mpz(c)
        a = (gmpy2.mpz(z) * nn + 1) * t % n2 * gmpy2.invert(gmpy2.powmod(cc, e, n2), n2) % n2
        if _challenge(head, index, cc, a, w2) != e:
            bad.append(index)
    return bad


class ProofVector:
    """One :class:`PlaintextProof` per ciphertext of an
    :class:`~secagg.paillier.EncryptedVector`, under one public key.

    Build with :func:`prove_vector` or :func:`encrypt_with_proofs`; check
    with :func:`verify_vector`; serialise with :meth:`to_bytes` (never
    pickle). The constructor checks only shapes and ranges; whether the
    proofs hold is :func:`verify_vector`'s job.
    """

    __slots__ = ("_n", "key_fingerprint", "proofs")

    def __init__(self, public_key: Any, proofs: Sequence[PlaintextProof], *,
                 insecure_allow_small_key_for_tests: bool = False) -> None:
        check_public_key(
            public_key, insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests
        )
        ctx = _PublicContext.of(public_key)
        n = int(ctx.n)
        items = tuple(proofs)
        for j, p in enumerate(items):
            if type(p) is not PlaintextProof:
                raise ParameterError(f"proof {j} is a {type(p).__name__}, not a PlaintextProof")
            for name, v, hi in (("e", p.e, 1 << CHALLENGE_BITS), ("z", p.z, n), ("w", p.w, n)):
                if type(v) is not int or not 0 <= v < hi:
                    raise ParameterError(f"proof {j}: {name} must be an int in [0, {hi}), "
                                         f"got {v!r}")
        self._n = n
        self.key_fingerprint = ctx.fingerprint
        self.proofs = items

    @classmethod
    def _of(cls, n: int, fp: bytes,
            quads: Sequence[tuple[int, int, int, int]]) -> ProofVector:
        """Internal constructor for proofs this module computed itself."""
        out = cls.__new__(cls)
        out._n, out.key_fingerprint = n, fp
        out.proofs = tuple(PlaintextProof(int(e), int(z), int(w)) for e, _, z, w in quads)
        return out

    def __len__(self) -> int:
        return len(self.proofs)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ProofVector) and other.key_fingerprint == self.key_fingerprint
                and other.proofs == self.proofs)

    def __hash__(self) -> int:
        return hash((self.key_fingerprint, self.proofs))

    def __repr__(self) -> str:
        return f"ProofVector({len(self.proofs)} proofs, key={self.key_fingerprint[:6].hex()})"

    def to_bytes(self) -> bytes:
        """Serialise (magic ``SGPR``, version 1); see the module docstring."""
        width = _width(self._n)
        body = b"".join(
            p.e.to_bytes(_E_BYTES, "big") + p.z.to_bytes(width, "big")
            + p.w.to_bytes(width, "big")
            for p in self.proofs
        )
        return (Writer(_MAGIC).raw(self.key_fingerprint).u32(len(self.proofs)).u16(width)
                .raw(body).getvalue())

    @classmethod
    def from_bytes(cls, data: bytes, public_key: Any, *, count: int | None = None,
                   insecure_allow_small_key_for_tests: bool = False) -> ProofVector:
        """Parse proofs under ``public_key``; ``count`` (if given) is the number
        of ciphertexts they must cover.

        Raises :class:`ProtocolError` on malformed bytes (bad magic or version,
        another key, another count or width, a field out of range, bytes left
        over); nothing is verified here."""
        ctx, r, got = _read_header(data, _MAGIC, public_key, count,
                                   lambda n: _E_BYTES + 2 * _width(n),
                                   insecure_allow_small_key_for_tests)
        n = int(ctx.n)
        width = _width(n)
        proofs = []
        for j in range(got):
            e = int.from_bytes(r.raw(_E_BYTES), "big")
            z = int.from_bytes(r.raw(width), "big")
            w = int.from_bytes(r.raw(width), "big")
            if not (z < n and 0 < w < n):
                raise ProtocolError(f"proof {j}: a response is outside [0, n)")
            proofs.append(PlaintextProof(e, z, w))
        r.done()
        out = cls.__new__(cls)
        out._n, out.key_fingerprint, out.proofs = n, ctx.fingerprint, tuple(proofs)
        return out


def _check_vector(vector: EncryptedVector) -> _PublicContext:
    if not isinstance(vector, EncryptedVector):
        raise ParameterError(f"expected an EncryptedVector, got {type(vector).__name__}")
    return vector._ctx


@timed(CRYPTO)
def prove_vector(
    vector: EncryptedVector,
    plaintexts: Sequence[int],
    units: Sequence[int],
    *,
    context: bytes,
    workers: int | None = None,
) -> ProofVector:
    """Proofs that the prover knows, for each ciphertext ``c_j`` of
    ``vector``, ``plaintexts[j]`` (in [0, n)) and ``units[j]`` (a unit mod n)
    with ``c_j = (1 + n)^m_j r_j^n mod n^2``, bound to ``context`` (at most
    64 KiB).

    Refuses (:class:`ParameterError`) openings that do not match the
    ciphertexts: a proof is never made for what the prover cannot open.
    Cost per ciphertext: about one encryption (an n-bit exponent mod n^2).
    ``workers`` > 1 spreads large vectors over processes."""
    ctx = _check_vector(vector)
    context = _check_context(context)
    check_workers(workers)
    cts = vector._ciphertexts
    if len(plaintexts) != len(cts) or len(units) != len(cts):
        raise ParameterError(f"{len(plaintexts)} plaintexts and {len(units)} units for "
                             f"{len(cts)} ciphertexts")
    n, n2 = ctx.n, ctx.n2
    for j, (c, m, r) in enumerate(zip(cts, plaintexts, units, strict=True)):
        if not (0 <= m < n and 0 < r < n and gmpy2.gcd(r, n) == 1):
            raise ParameterError(f"opening {j} is out of range (m in [0, n), r a unit mod n)")
        if (gmpy2.mpz(m) * n + 1) * gmpy2.powmod(gmpy2.mpz(r), n, n2) % n2 != c:
            raise ParameterError(f"opening {j} does not match ciphertext {j}")
    head = _head(int(n), cts, context)
    items = [(j, int(c), int(m), int(r)) for j, (c, m, r)
             in enumerate(zip(cts, plaintexts, units, strict=True))]
    quads = run_chunked(_prove_task, (int(n), head), items, workers)
    return ProofVector._of(int(n), ctx.fingerprint, quads)


@timed(CRYPTO)
def encrypt_with_proofs(
    public_key: Any,
    layout: PackingLayout,
    values: npt.ArrayLike,
    *,
    context: bytes,
    workers: int | None = None,
    on_clip: ClipPolicy = "clip",
    insecure_allow_small_key_for_tests: bool = False,
) -> tuple[EncryptedVector, ProofVector]:
    """Encrypt like :func:`secagg.paillier.encrypt` on its online path (fresh
    r, obfuscator ``r^n``) and prove knowledge of every ciphertext's
    plaintext, bound to ``context``. The r values live only inside this
    call. Cost: about twice an online encryption."""
    vec, quads = _encrypt_and_prove(public_key, layout, values, context, workers, on_clip,
                                    insecure_allow_small_key_for_tests)
    return vec, ProofVector._of(int(vec._ctx.n), vec._ctx.fingerprint, quads)


def _encrypt_and_prove(
    public_key: Any, layout: PackingLayout, values: npt.ArrayLike, context: bytes,
    workers: int | None, on_clip: ClipPolicy, insecure: bool,
) -> tuple[EncryptedVector, list[tuple[int, int, int, int]]]:
    context = _check_context(context)
    vec, plaintexts, units = _encrypt_online_keeping_units(
        public_key, layout, values, workers=workers, on_clip=on_clip,
        insecure_allow_small_key_for_tests=insecure)
    try:
        ctx = vec._ctx
        head = _head(int(ctx.n), vec._ciphertexts, context)
        items = [(j, int(c), int(m), int(r)) for j, (c, m, r)
                 in enumerate(zip(vec._ciphertexts, plaintexts, units, strict=True))]
        quads = run_chunked(_prove_task, (int(ctx.n), head), items, workers)
    finally:
        del plaintexts[:], units[:]
    return vec, quads


@timed(CRYPTO)
def verify_vector(
    vector: EncryptedVector,
    proofs: ProofVector,
    *,
    context: bytes,
    workers: int | None = None,
) -> None:
    """Raise :class:`IntegrityError` naming the first failing ciphertext
    index unless ``proofs`` prove knowledge of every plaintext of ``vector``
    under ``context``. Cost per ciphertext: one n-bit exponentiation mod n^2
    and a 128-bit one; ``workers`` > 1 spreads large vectors over
    processes."""
    ctx = _check_vector(vector)
    context = _check_context(context)
    check_workers(workers)
    if not isinstance(proofs, ProofVector):
        raise ParameterError(f"expected a ProofVector, got {type(proofs).__name__}")
    if proofs.key_fingerprint != ctx.fingerprint:
        raise IntegrityError("the proofs were made under another public key")
    cts = vector._ciphertexts
    if len(proofs.proofs) != len(cts):
        raise IntegrityError(f"{len(proofs.proofs)} proofs for {len(cts)} ciphertexts")
    n, n2 = ctx.n, ctx.n2
    items = []
    for j, (c, p) in enumerate(zip(cts, proofs.proofs, strict=True)):
        if not 0 < c < n2 or gmpy2.gcd(c, n) != 1:
            raise IntegrityError(f"ciphertext {j} is not a unit modulo n^2")
        if not (0 <= p.e < 1 << CHALLENGE_BITS and 0 <= p.z < n and 0 < p.w < n):
            raise IntegrityError(f"proof {j} has a field out of range")
        if gmpy2.gcd(p.w, n) != 1:
            raise IntegrityError(f"proof {j}: w is not a unit modulo n")
        items.append((j, int(c), p.e, p.z, p.w))
    head = _head(int(n), cts, context)
    bad = run_chunked(_verify_task, (int(n), head), items, workers)
    if bad:
        raise IntegrityError(f"the proof of plaintext knowledge of ciphertext {min(bad)} "
                             f"(of {len(cts)}) does not verify")


# ------------------------------------------------------------- batched verification


@dataclass(frozen=True)
class CommittedProof:
    """One proof in committed form: commitment ``a`` (a unit mod n^2) and
    responses ``z`` (in [0, n)) and ``w`` (a unit in (0, n)); the challenge is
    recomputed from ``a``."""

    a: int
    z: int
    w: int


class BatchableProofVector:
    """The committed form of a :class:`ProofVector` (one
    :class:`CommittedProof` per ciphertext), for :func:`verify_batch`.

    Build with :func:`encrypt_with_batchable_proofs`; serialise with
    :meth:`to_bytes` (magic ``SGPB``; never pickle)."""

    __slots__ = ("_n", "key_fingerprint", "proofs")
    _n: int
    key_fingerprint: bytes
    proofs: tuple[CommittedProof, ...]

    def __init__(self) -> None:
        raise TypeError("use encrypt_with_batchable_proofs or BatchableProofVector.from_bytes")

    @classmethod
    def _of(cls, n: int, fp: bytes,
            quads: Sequence[tuple[int, int, int, int]]) -> BatchableProofVector:
        out = cls.__new__(cls)
        out._n, out.key_fingerprint = n, fp
        out.proofs = tuple(CommittedProof(int(a), int(z), int(w)) for _, a, z, w in quads)
        return out

    def __len__(self) -> int:
        return len(self.proofs)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, BatchableProofVector)
                and other.key_fingerprint == self.key_fingerprint and other.proofs == self.proofs)

    def __hash__(self) -> int:
        return hash((self.key_fingerprint, self.proofs))

    def to_bytes(self) -> bytes:
        """Serialise (magic ``SGPB``, version 1); see the module docstring."""
        width = _width(self._n)
        w2 = _width(self._n * self._n)
        body = b"".join(p.a.to_bytes(w2, "big") + p.z.to_bytes(width, "big")
                        + p.w.to_bytes(width, "big") for p in self.proofs)
        return (Writer(_BATCH_MAGIC).raw(self.key_fingerprint).u32(len(self.proofs))
                .u16(width).raw(body).getvalue())

    @classmethod
    def from_bytes(cls, data: bytes, public_key: Any, *, count: int | None = None,
                   insecure_allow_small_key_for_tests: bool = False) -> BatchableProofVector:
        """Parse committed proofs under ``public_key`` (``count`` of them if
        given); :class:`ProtocolError` on malformed bytes or a field out of
        range (``0 < a < n^2``, ``0 <= z < n``, ``0 < w < n``)."""
        ctx, r, got = _read_header(data, _BATCH_MAGIC, public_key, count,
                                   lambda n: _width(n * n) + 2 * _width(n),
                                   insecure_allow_small_key_for_tests)
        n = int(ctx.n)
        width, w2 = _width(n), _width(n * n)
        quads = []
        for j in range(got):
            a = int.from_bytes(r.raw(w2), "big")
            z = int.from_bytes(r.raw(width), "big")
            w = int.from_bytes(r.raw(width), "big")
            if not (0 < a < n * n and z < n and 0 < w < n):
                raise ProtocolError(f"proof {j}: a field is out of range")
            quads.append((0, a, z, w))
        r.done()
        return cls._of(n, ctx.fingerprint, quads)


@timed(CRYPTO)
def encrypt_with_batchable_proofs(
    public_key: Any,
    layout: PackingLayout,
    values: npt.ArrayLike,
    *,
    context: bytes,
    workers: int | None = None,
    on_clip: ClipPolicy = "clip",
    insecure_allow_small_key_for_tests: bool = False,
) -> tuple[EncryptedVector, BatchableProofVector]:
    """:func:`encrypt_with_proofs`, returning the committed form of the same
    proofs (for :func:`verify_batch`)."""
    vec, quads = _encrypt_and_prove(public_key, layout, values, context, workers, on_clip,
                                    insecure_allow_small_key_for_tests)
    return vec, BatchableProofVector._of(int(vec._ctx.n), vec._ctx.fingerprint, quads)


def _multiexp(bases: Sequence[Mpz], exps: Sequence[int], mod: Mpz) -> Mpz:
    """``prod bases[j]^exps[j] mod mod`` for non-negative exponents; bucket
    method with 4-bit windows (about ``bits / 4 * (len + 34)`` products)."""
    bits = max((e.bit_length() for e in exps), default=0)
    acc = gmpy2.mpz(1)
    for window in range((bits + 3) // 4 - 1, -1, -1):
        for _ in range(4):
            acc = acc * acc % mod
        buckets: list[Mpz | None] = [None] * 16
        shift = 4 * window
        for b, e in zip(bases, exps, strict=True):
            d = (e >> shift) & 15
            if d:
                cur = buckets[d]
                buckets[d] = b if cur is None else cur * b % mod
        running = gmpy2.mpz(1)
        total = gmpy2.mpz(1)
        for d in range(15, 0, -1):
            bucket = buckets[d]
            if bucket is not None:
                running = running * bucket % mod
            total = total * running % mod
        acc = acc * total % mod
    return acc


@timed(CRYPTO)
def verify_batch(
    items: Sequence[tuple[EncryptedVector, BatchableProofVector, bytes]],
) -> None:
    """Check every proof of every ``(vector, proofs, context)`` in one batched
    equation; raise :class:`IntegrityError` naming the first failing item and
    ciphertext otherwise (found by checking them one by one after the batch
    fails). All vectors must be under one key.

    With ``K`` ciphertexts in all, the cost is one n-bit exponentiation mod
    n^2 plus multi-exponentiations with 128-bit and 256-bit exponents (about
    ``96 * (K + 34)`` products mod n^2), against ``K`` n-bit exponentiations
    for :func:`verify_vector`. The random exponents come from
    :mod:`secrets`, drawn after the proofs are fixed. The 2^-127 bound holds
    for keys that are products of safe primes (threshold keys); for other
    keys use :func:`verify_vector`."""
    if not items:
        return
    fp: bytes | None = None
    flat: list[tuple[int, int, Mpz, int, CommittedProof]] = []  # item, j, c, e, proof
    n = n2 = gmpy2.mpz(0)
    for k, item in enumerate(items):
        if not (isinstance(item, tuple) and len(item) == 3):
            raise ParameterError(f"item {k} is not a (vector, proofs, context) tuple")
        vector, proofs, context = item
        ctx = _check_vector(vector)
        context = _check_context(context)
        if not isinstance(proofs, BatchableProofVector):
            raise ParameterError(f"item {k}: expected a BatchableProofVector, got "
                                 f"{type(proofs).__name__}")
        if fp is None:
            fp, n, n2 = ctx.fingerprint, ctx.n, ctx.n2
        elif ctx.fingerprint != fp:
            raise ParameterError(f"item {k} is under another public key than item 0")
        if proofs.key_fingerprint != fp:
            raise IntegrityError(f"item {k}: the proofs were made under another public key")
        cts = vector._ciphertexts
        if len(proofs.proofs) != len(cts):
            raise IntegrityError(f"item {k}: {len(proofs.proofs)} proofs for {len(cts)} "
                                 "ciphertexts")
        head = _head(int(n), cts, context)
        w2 = _width(int(n2))
        for j, (c, p) in enumerate(zip(cts, proofs.proofs, strict=True)):
            if not 0 < c < n2 or gmpy2.gcd(c, n) != 1:
                raise IntegrityError(f"item {k}: ciphertext {j} is not a unit modulo n^2")
            if not (0 < p.a < n2 and 0 <= p.z < n and 0 < p.w < n):
                raise IntegrityError(f"item {k}: proof {j} has a field out of range")
            if gmpy2.gcd(p.a, n) != 1 or gmpy2.gcd(p.w, n) != 1:
                raise IntegrityError(f"item {k}: proof {j} holds a non-unit")
            flat.append((k, j, c, _challenge(head, j, c, gmpy2.mpz(p.a), w2), p))
    rho = [secrets.randbits(_RHO_BITS) | 1 for _ in flat]
    zsum = sum(r * p.z for r, (_, _, _, _, p) in zip(rho, flat, strict=True))
    wb = _multiexp([gmpy2.mpz(p.w) for *_, p in flat], rho, n2)
    left = (gmpy2.mpz(zsum) % n * n + 1) * gmpy2.powmod(wb, n, n2) % n2
    ab = _multiexp([gmpy2.mpz(p.a) for *_, p in flat], rho, n2)
    cb = _multiexp([c for _, _, c, _, _ in flat], [r * e for r, (_, _, _, e, _)
                                                   in zip(rho, flat, strict=True)], n2)
    right = ab * cb % n2
    if left * left % n2 == right * right % n2:
        return
    for k, j, c, e, p in flat:  # name the first culprit
        lhs = (gmpy2.mpz(p.z) * n + 1) * gmpy2.powmod(gmpy2.mpz(p.w), n, n2) % n2
        if lhs != gmpy2.mpz(p.a) * gmpy2.powmod(c, e, n2) % n2:
            raise IntegrityError(f"item {k}: the proof of plaintext knowledge of ciphertext "
                                 f"{j} does not verify")
    raise IntegrityError("the batch of proofs of plaintext knowledge does not verify")
