"""Packed ciphertext vectors: encryption, homomorphic addition, decryption.

Wire format of an :class:`EncryptedVector`, magic ``SGPV`` version 1::

    blob   layout (PackingLayout, magic SGPL)
    u64    summands       1 <= summands <= layout.capacity
    u32    ciphertexts    == layout.ciphertexts
    u16    width          == ceil(2 * key_bits / 8)
    bytes  ciphertexts * width, each big-endian, fixed width

Decoding needs the public key; it checks the layout's key fingerprint and
every ciphertext (``0 < c < n^2``, ``gcd(c, n) = 1``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import gmpy2
import numpy as np
import numpy.typing as npt

from ..errors import ParameterError, ProtocolError
from ..profiling import CRYPTO, timed
from ..wire import Reader, Writer
from ._keys import (
    Mpz,
    _PrivateContext,
    _PublicContext,
    check_private_key,
    check_public_key,
    fingerprint,
    validate_ciphertext,
)
from ._obfuscators import (
    DJNTable,
    ObfuscatorPool,
    check_workers,
    crt_obfuscators,
    djn_obfuscators,
    online_obfuscators,
    online_obfuscators_with_units,
    run_chunked,
)
from ._packing import ClipPolicy, PackingLayout

__all__ = [
    "EncryptedVector",
    "EncryptionMode",
    "aggregate",
    "decrypt",
    "decrypt_integers",
    "encrypt",
    "raw_decrypt",
    "raw_encrypt",
]

_MAGIC = b"SGPV"
_MPZ = type(gmpy2.mpz(0))

#: Names of the encryption paths, as benchmarks and protocols spell them.
EncryptionMode = Literal["online", "pool", "crt", "djn"]


class EncryptedVector:
    """A packed Paillier ciphertext vector that carries its layout.

    Attributes:
        public_key: the ``phe`` public key it is encrypted under.
        layout: the :class:`PackingLayout` (dimension, slots, scale, capacity,
            key fingerprint).
        ciphertexts: one integer mod n^2 per ``layout.slots`` values.
        summands: how many encryptions were added into it (1 when fresh).

    Add vectors with ``+`` or :func:`aggregate`; the sum refuses another key,
    another layout, or more summands than the layout's capacity.
    """

    __slots__ = ("_ciphertexts", "_ctx", "_small_key_ok", "layout", "public_key", "summands")

    def __init__(
        self,
        public_key: Any,
        layout: PackingLayout,
        ciphertexts: Sequence[int],
        summands: int = 1,
        *,
        insecure_allow_small_key_for_tests: bool = False,
    ) -> None:
        check_public_key(
            public_key, insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests
        )
        ctx = _PublicContext.of(public_key)
        _check_layout_for(ctx, layout, "the layout")
        if isinstance(summands, bool) or not isinstance(summands, int):
            raise ParameterError(f"summands must be an int, got {type(summands).__name__}")
        if not 1 <= summands <= layout.capacity:
            raise ParameterError(f"summands={summands} is outside [1, capacity={layout.capacity}]")
        if len(ciphertexts) != layout.ciphertexts:
            raise ParameterError(
                f"expected {layout.ciphertexts} ciphertexts for the layout, got {len(ciphertexts)}"
            )
        for c in ciphertexts:
            if isinstance(c, bool) or not isinstance(c, (int, _MPZ)):
                raise ParameterError(f"ciphertexts must be ints, got {type(c).__name__}")
        cts = tuple(gmpy2.mpz(c) for c in ciphertexts)
        for c in cts:
            validate_ciphertext(ctx, c)
        self._init(public_key, ctx, layout, cts, summands, insecure_allow_small_key_for_tests)

    def _init(
        self,
        public_key: Any,
        ctx: _PublicContext,
        layout: PackingLayout,
        cts: tuple[Mpz, ...],
        summands: int,
        small_key_ok: bool,
    ) -> None:
        self.public_key = public_key
        self._ctx = ctx
        self.layout = layout
        self._ciphertexts = cts
        self.summands = summands
        # True only when the caller admitted this key with the test-only flag.
        self._small_key_ok = bool(small_key_ok)

    @classmethod
    def _trusted(
        cls,
        public_key: Any,
        ctx: _PublicContext,
        layout: PackingLayout,
        cts: tuple[Mpz, ...],
        summands: int,
        small_key_ok: bool = False,
    ) -> EncryptedVector:
        """Internal constructor for values this module computed itself."""
        self = cls.__new__(cls)
        self._init(public_key, ctx, layout, cts, summands, small_key_ok)
        return self

    # ----------------------------------------------------------------- views

    @property
    def ciphertexts(self) -> tuple[int, ...]:
        """The ciphertexts as Python ints."""
        return tuple(int(c) for c in self._ciphertexts)

    @property
    def key_fingerprint(self) -> bytes:
        return self._ctx.fingerprint

    @property
    def dimension(self) -> int:
        return self.layout.dimension

    def __repr__(self) -> str:
        lay = self.layout
        return (
            f"EncryptedVector(dimension={lay.dimension}, ciphertexts={lay.ciphertexts}, "
            f"slots={lay.slots}x{lay.slot_bits}b, summands={self.summands}/{lay.capacity}, "
            f"key={self._ctx.fingerprint[:6].hex()})"
        )

    # ------------------------------------------------------------- algebra

    def _check_compatible(self, other: object) -> EncryptedVector:
        if not isinstance(other, EncryptedVector):
            raise ParameterError(f"cannot add EncryptedVector and {type(other).__name__}")
        if other._ctx.fingerprint != self._ctx.fingerprint:
            raise ParameterError(
                "cannot add vectors encrypted under different keys "
                f"({self._ctx.fingerprint[:6].hex()} vs {other._ctx.fingerprint[:6].hex()})"
            )
        if other.layout != self.layout:
            raise ParameterError(
                f"cannot add vectors of different layouts: {self.layout} vs {other.layout}"
            )
        return other

    def __add__(self, other: EncryptedVector) -> EncryptedVector:
        """Homomorphic sum (ciphertexts multiplied mod n^2)."""
        return aggregate([self, other])

    # --------------------------------------------------------------- codec

    def to_bytes(self) -> bytes:
        """Serialise (magic ``SGPV``, version 1); see the module docstring."""
        width = self.layout.ciphertext_bytes
        body = b"".join(int(c).to_bytes(width, "big") for c in self._ciphertexts)
        return (
            Writer(_MAGIC)
            .blob(self.layout.to_bytes())
            .u64(self.summands)
            .u32(len(self._ciphertexts))
            .u16(width)
            .raw(body)
            .getvalue()
        )

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        public_key: Any,
        *,
        insecure_allow_small_key_for_tests: bool = False,
    ) -> EncryptedVector:
        """Parse and validate a vector encrypted under ``public_key``.

        Raises :class:`ProtocolError` on malformed bytes, :class:`ParameterError`
        if it was encrypted under another key, and :class:`IntegrityError` on a
        ciphertext outside the group.
        """
        check_public_key(
            public_key, insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests
        )
        r = Reader(data, _MAGIC)
        layout = PackingLayout.from_bytes(r.blob(max_len=1024))
        summands = r.u64()
        count = r.u32()
        width = r.u16()
        if count != layout.ciphertexts:
            raise ProtocolError(
                f"vector has {count} ciphertexts; its layout needs {layout.ciphertexts}"
            )
        if width != layout.ciphertext_bytes:
            raise ProtocolError(
                f"ciphertext width {width} does not match {layout.ciphertext_bytes} for the key"
            )
        if not 1 <= summands <= layout.capacity:
            raise ProtocolError(f"summands={summands} is outside [1, {layout.capacity}]")
        body = r.raw(count * width)
        r.done()
        ctx = _PublicContext.of(public_key)
        if layout.key_fingerprint != ctx.fingerprint:
            raise ParameterError(
                "the vector was encrypted under another public key "
                f"({layout.key_fingerprint[:6].hex()}, expected {ctx.fingerprint[:6].hex()})"
            )
        if layout.key_bits != ctx.bits:
            raise ProtocolError(
                f"the vector's layout was made for a {layout.key_bits}-bit key; "
                f"this key has {ctx.bits} bits"
            )
        cts = tuple(
            gmpy2.mpz(int.from_bytes(body[i * width : (i + 1) * width], "big"))
            for i in range(count)
        )
        for c in cts:
            validate_ciphertext(ctx, c)
        return cls._trusted(
            public_key, ctx, layout, cts, summands, insecure_allow_small_key_for_tests
        )


def _check_layout_for(ctx: _PublicContext, layout: PackingLayout, what: str) -> None:
    """The layout must name this key by fingerprint *and* by size: a layout with
    the right fingerprint but another ``key_bits`` packs slots past n."""
    if not isinstance(layout, PackingLayout):
        raise ParameterError(f"expected a PackingLayout, got {type(layout).__name__}")
    if layout.key_fingerprint != ctx.fingerprint:
        raise ParameterError(
            f"{what} was made for another public key "
            f"({layout.key_fingerprint[:6].hex()}, expected {ctx.fingerprint[:6].hex()})"
        )
    if layout.key_bits != ctx.bits:
        raise ParameterError(
            f"{what} was made for a {layout.key_bits}-bit key; this key has {ctx.bits} bits"
        )


# --------------------------------------------------------------------- public API


@timed(CRYPTO)
def encrypt(
    public_key: Any,
    layout: PackingLayout,
    values: npt.ArrayLike,
    *,
    private_key: Any = None,
    pool: ObfuscatorPool | None = None,
    djn: DJNTable | None = None,
    workers: int | None = None,
    on_clip: ClipPolicy = "clip",
    insecure_allow_small_key_for_tests: bool = False,
) -> EncryptedVector:
    """Encrypt a float vector into a packed :class:`EncryptedVector`.

    The obfuscators come from one of (at most one option given):

    * nothing: online ``r^n mod n^2``, public key only;
    * ``pool``: precomputed obfuscators, each used once (cheap online phase);
    * ``private_key``: CRT-accelerated, for a party that holds the key;
    * ``djn``: the short-exponent variant (non-standard assumption).

    ``workers`` > 1 spreads the exponentiations over processes when the
    vector is large. Values past the layout's clip bound are clipped (or
    refused with ``on_clip="raise"``); NaN and Inf are refused.
    """
    check_public_key(
        public_key, insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests
    )
    ctx = _PublicContext.of(public_key)
    _check_layout_for(ctx, layout, "the layout")
    given = [
        name
        for name, v in (("private_key", private_key), ("pool", pool), ("djn", djn))
        if v is not None
    ]
    if len(given) > 1:
        raise ParameterError(f"give at most one of private_key, pool, djn; got {given}")
    if private_key is not None:
        check_private_key(private_key, insecure_allow_small_key_for_tests=True)
        if fingerprint(private_key.public_key) != ctx.fingerprint:
            raise ParameterError("the private key does not belong to the public key")
    if pool is not None and pool.key_fingerprint != ctx.fingerprint:
        raise ParameterError("the obfuscator pool belongs to another public key")
    if djn is not None and djn.key_fingerprint != ctx.fingerprint:
        raise ParameterError("the DJN table belongs to another public key")

    check_workers(workers)
    plaintexts = layout.pack(layout.encode(values, on_clip=on_clip))
    count = len(plaintexts)
    if pool is not None:
        obf = pool.take(count)
    elif private_key is not None:
        obf = run_chunked(crt_obfuscators, (int(private_key.p), int(private_key.q)), count, workers)
    elif djn is not None:
        if check_workers(workers) > 1:
            obf = run_chunked(djn_obfuscators, djn._task_args(), count, workers)
        else:
            obf = djn.obfuscators(count)
    else:
        obf = run_chunked(online_obfuscators, (int(ctx.n),), count, workers)
    n, n2 = ctx.n, ctx.n2
    cts = tuple((m * n + 1) * r % n2 for m, r in zip(plaintexts, obf, strict=True))
    return EncryptedVector._trusted(
        public_key, ctx, layout, cts, 1, insecure_allow_small_key_for_tests
    )


def _encrypt_online_keeping_units(
    public_key: Any,
    layout: PackingLayout,
    values: npt.ArrayLike,
    *,
    workers: int | None,
    on_clip: ClipPolicy,
    insecure_allow_small_key_for_tests: bool,
) -> tuple[EncryptedVector, list[Mpz], list[Mpz]]:
    """The online path of :func:`encrypt` (fresh r, obfuscator ``r^n``), also
    returning each ciphertext's packed plaintext m and unit r, so that
    ``c = (1 + n)^m r^n mod n^2``. Both are secret: for a proof of plaintext
    knowledge only, dropped by the caller right after proving."""
    check_public_key(
        public_key, insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests
    )
    ctx = _PublicContext.of(public_key)
    _check_layout_for(ctx, layout, "the layout")
    check_workers(workers)
    plaintexts = layout.pack(layout.encode(values, on_clip=on_clip))
    pairs = run_chunked(online_obfuscators_with_units, (int(ctx.n),), len(plaintexts), workers)
    n, n2 = ctx.n, ctx.n2
    cts = tuple((m * n + 1) * ro % n2 for m, (_, ro) in zip(plaintexts, pairs, strict=True))
    vec = EncryptedVector._trusted(
        public_key, ctx, layout, cts, 1, insecure_allow_small_key_for_tests
    )
    return vec, [gmpy2.mpz(m) for m in plaintexts], [r for r, _ in pairs]


@timed(CRYPTO)
def aggregate(vectors: Iterable[EncryptedVector]) -> EncryptedVector:
    """Homomorphic sum of one or more vectors under the same key and layout.

    Refuses (raising :class:`ParameterError`, nothing computed) different
    keys or layouts, and a total summand count past the layout's capacity:
    past it slots would silently overflow into each other.
    """
    vs = list(vectors)
    if not vs:
        raise ParameterError("aggregate needs at least one vector")
    first = vs[0]
    if not isinstance(first, EncryptedVector):
        raise ParameterError(f"expected EncryptedVector, got {type(first).__name__}")
    for v in vs[1:]:
        first._check_compatible(v)
    total = sum(v.summands for v in vs)
    if total > first.layout.capacity:
        raise ParameterError(
            f"the sum would hold {total} summands, past the layout's capacity of "
            f"{first.layout.capacity}; slots would overflow into each other"
        )
    n2 = first._ctx.n2
    acc = list(first._ciphertexts)
    for v in vs[1:]:
        acc = [a * b % n2 for a, b in zip(acc, v._ciphertexts, strict=True)]
    return EncryptedVector._trusted(
        first.public_key,
        first._ctx,
        first.layout,
        tuple(acc),
        total,
        all(v._small_key_ok for v in vs),
    )


def _decrypt_ctx(ctx: _PrivateContext, cts: Sequence[Mpz]) -> list[int]:
    if not cts:
        return []
    p, q, p2, q2 = ctx.p, ctx.q, ctx.p2, ctx.q2
    xp = gmpy2.powmod_base_list([c % p2 for c in cts], p - 1, p2)
    xq = gmpy2.powmod_base_list([c % q2 for c in cts], q - 1, q2)
    hp, hq, pinv = ctx.hp, ctx.hq, ctx.p_inv_q
    out: list[int] = []
    for a, b in zip(xp, xq, strict=True):
        mp = (a - 1) // p * hp % p
        mq = (b - 1) // q * hq % q
        out.append(int(mp + ((mq - mp) * pinv % q) * p))
    return out


def _decrypt_task(p: int, q: int, cts: Sequence[int]) -> list[int]:
    """Process-pool entry point: CRT decryption of a chunk."""
    return _decrypt_ctx(_PrivateContext.from_factors(p, q), [gmpy2.mpz(c) for c in cts])


def _check_sk_for(private_key: Any, vector: EncryptedVector, insecure: bool) -> None:
    """The private key must pass the size policy: small keys only with the
    test-only flag, given here or when the vector's key was admitted."""
    if not isinstance(vector, EncryptedVector):
        raise ParameterError(f"expected an EncryptedVector, got {type(vector).__name__}")
    check_private_key(
        private_key, insecure_allow_small_key_for_tests=insecure or vector._small_key_ok
    )
    if fingerprint(private_key.public_key) != vector.key_fingerprint:
        raise ParameterError("the vector was encrypted under another key")


@timed(CRYPTO)
def decrypt_integers(
    private_key: Any,
    vector: EncryptedVector,
    *,
    workers: int | None = None,
    insecure_allow_small_key_for_tests: bool = False,
) -> npt.NDArray[np.int64]:
    """Exact integer sums ``sum_i round(x_i * scale)`` per element (int64).

    CRT decryption; ``workers`` > 1 spreads large vectors over processes.
    Raises :class:`IntegrityError` if a slot holds a value no honest sum of
    ``vector.summands`` encryptions can produce. A key below 2048 bits is
    refused unless the test-only flag is passed here or was passed when the
    vector was built or decoded.
    """
    _check_sk_for(private_key, vector, insecure_allow_small_key_for_tests)
    cts = vector._ciphertexts
    if check_workers(workers) > 1:
        pts = run_chunked(
            _decrypt_task, (int(private_key.p), int(private_key.q)), [int(c) for c in cts], workers
        )
    else:
        pts = _decrypt_ctx(_PrivateContext.of(private_key), cts)
    layout = vector.layout
    return layout.decode(layout.unpack(pts), vector.summands)


def decrypt(
    private_key: Any,
    vector: EncryptedVector,
    *,
    dtype: type[np.floating[Any]] | np.dtype[Any] = np.float64,
    workers: int | None = None,
    insecure_allow_small_key_for_tests: bool = False,
) -> npt.NDArray[np.floating[Any]]:
    """Decrypt and decode to floats: ``decrypt_integers(...) / scale``.

    ``dtype`` is ``float64`` (default) or ``float32``.
    """
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ParameterError(f"dtype must be float32 or float64, got {dt}")
    ints = decrypt_integers(
        private_key,
        vector,
        workers=workers,
        insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests,
    )
    return (ints.astype(np.float64) / vector.layout.scale).astype(dt)


@timed(CRYPTO)
def raw_encrypt(
    public_key: Any,
    plaintext: int,
    *,
    private_key: Any = None,
    insecure_allow_small_key_for_tests: bool = False,
) -> int:
    """Encrypt one integer ``0 <= plaintext < n`` (``phe``-compatible ciphertext).

    Uses fresh randomness: online ``r^n``, or CRT when ``private_key`` is given.
    Keys below 2048 bits need the test-only flag, as everywhere else.
    """
    check_public_key(
        public_key, insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests
    )
    ctx = _PublicContext.of(public_key)
    if isinstance(plaintext, bool) or not isinstance(plaintext, int) or not 0 <= plaintext < ctx.n:
        raise ParameterError("plaintext must be an int in [0, n)")
    if private_key is not None:
        check_private_key(private_key, insecure_allow_small_key_for_tests=True)
        if fingerprint(private_key.public_key) != ctx.fingerprint:
            raise ParameterError("the private key does not belong to the public key")
        r = crt_obfuscators(int(private_key.p), int(private_key.q), 1)[0]
    else:
        r = online_obfuscators(int(ctx.n), 1)[0]
    return int((gmpy2.mpz(plaintext) * ctx.n + 1) * r % ctx.n2)


@timed(CRYPTO)
def raw_decrypt(
    private_key: Any, ciphertext: int, *, insecure_allow_small_key_for_tests: bool = False
) -> int:
    """Decrypt one ciphertext to its integer plaintext in ``[0, n)``.

    Raises :class:`IntegrityError` unless ``0 < c < n^2`` and ``gcd(c, n) = 1``;
    keys below 2048 bits need the test-only flag.
    """
    check_private_key(
        private_key, insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests
    )
    if isinstance(ciphertext, bool) or not isinstance(ciphertext, int):
        raise ParameterError(f"ciphertext must be an int, got {type(ciphertext).__name__}")
    c = gmpy2.mpz(ciphertext)
    validate_ciphertext(_PublicContext.of(private_key.public_key), c)
    return _decrypt_ctx(_PrivateContext.of(private_key), [c])[0]
