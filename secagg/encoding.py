"""Fixed-point encoding of float vectors into integers modulo 2^k or m.

A value x is clipped to [-clip, clip], scaled by ``scale`` (2^frac_bits),
rounded to an integer q with |q| <= Q = round(clip * scale), and stored as
q mod m in an unsigned numpy vector. Sums of encodings are taken mod m
(numpy wrap-around for m = 2^32 or 2^64). Decoding maps a residue r to the
signed integer in (-m/2, m/2] and divides by the scale.

Headroom: the constructor refuses any setting where ``max_summands * Q``
could reach m/2, so a sum of up to ``max_summands`` encodings never wraps
and always decodes to the true signed sum.

Error bound: with deterministic rounding each summand is off by at most
``0.5 / scale``; with stochastic rounding (unbiased) by less than
``1 / scale``. A decoded sum of N encodings is within ``N * that`` of the
sum of the clipped inputs (:meth:`FixedPointEncoder.error_bound`).

Precision for a given headroom: :func:`frac_bits_for` is the one formula for
the largest ``frac_bits`` the constructor accepts, and
:meth:`FixedPointEncoder.for_summands` builds the encoder with it.

Encoders are immutable: :meth:`FixedPointEncoder.encode_counted` returns the
number of clipped coordinates with the vector instead of keeping counters,
so one encoder can be shared by every client and thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np
import numpy.typing as npt

from . import prg
from ._util import check_int
from .errors import EncodingError, ParameterError
from .profiling import HOT_PATH, timed

__all__ = ["FixedPointEncoder", "frac_bits_for"]

ClipPolicy = Literal["clip", "raise"]
_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
_NOTHING = object()
#: Largest accepted ``frac_bits`` (the scale must fit a signed 64-bit integer).
MAX_FRAC_BITS = 62


def _max_int(clip: float, scale: float, stochastic_rounding: bool) -> int:
    """Largest |integer| one encoding of ``|x| <= clip`` can take at ``scale``:
    ``rint(clip * scale)`` (``ceil`` with stochastic rounding)."""
    v = clip * scale
    if not np.isfinite(v):
        raise ParameterError(
            f"clip * scale = {clip} * {scale} is not finite; lower clip or frac_bits/scale"
        )
    return int(np.ceil(v) if stochastic_rounding else np.rint(v))


def _half_modulus(modulus_bits: int, modulus: int | None) -> int:
    if modulus is not None:
        check_int("modulus", modulus, 3, 2**63)
        return modulus // 2
    if modulus_bits not in (32, 64):
        raise ParameterError(f"modulus_bits must be 32 or 64, got {modulus_bits}")
    return 1 << (modulus_bits - 1)


def _check_clip(clip: float) -> float:
    try:
        c = float(clip)
    except (TypeError, ValueError):
        raise ParameterError(f"clip must be a finite positive float, got {clip!r}") from None
    if not np.isfinite(c) or c <= 0:
        raise ParameterError(f"clip must be a finite positive float, got {c}")
    return c


def frac_bits_for(
    clip: float,
    max_summands: int,
    modulus_bits: int = 32,
    *,
    modulus: int | None = None,
    stochastic_rounding: bool = False,
) -> int:
    """The largest ``frac_bits`` (0..62) at which ``max_summands`` encodings of
    ``|x| <= clip`` cannot wrap: ``max_summands * max_int < m/2``, exactly the
    check of :class:`FixedPointEncoder`, whose constructor accepts the result
    and refuses one more bit.

    Raises :class:`ParameterError` when even ``frac_bits = 0`` overflows, or
    when the largest fitting precision still rounds ``clip`` to 0 (the
    encoder would turn every input into 0).
    """
    clip = _check_clip(clip)
    check_int("max_summands", max_summands, 1)
    half = _half_modulus(modulus_bits, modulus)
    best = -1
    for f in range(MAX_FRAC_BITS + 1):  # max_int grows with f: stop at the first misfit
        if not np.isfinite(clip * 2.0**f) or max_summands * _max_int(
            clip, 2.0**f, stochastic_rounding
        ) >= half:
            break
        best = f
    if best < 0:
        raise ParameterError(
            f"{max_summands} summands of |x| <= {clip} overflow half the modulus ({half}) "
            f"even at frac_bits=0; lower clip or max_summands, or use a larger modulus"
        )
    if _max_int(clip, 2.0**best, stochastic_rounding) == 0:
        raise ParameterError(
            f"clip={clip} rounds to 0 at every precision that leaves headroom for "
            f"{max_summands} summands (frac_bits <= {best}); raise clip, lower "
            f"max_summands or use a larger modulus"
        )
    return best


class FixedPointEncoder:
    """Encode float vectors to unsigned integers mod 2^k (or mod m) and back.

    Args:
        clip: bound on each element's absolute value (> 0, finite).
        frac_bits: fractional bits, 0..62; ``scale = 2**frac_bits``. Give
            either this or ``scale``.
        scale: the fixed-point scale (> 0); overrides ``frac_bits``.
        max_summands: largest number N of encodings that will be summed.
        modulus_bits: 32 or 64 (dtype ``uint32`` / ``uint64``); ignored when
            ``modulus`` is given.
        modulus: an arbitrary modulus 2 < m <= 2^63, stored as ``uint64``;
            sums must then go through :meth:`add` (which reduces mod m).
        on_clip: ``"clip"`` clips out-of-range values (counted by
            :meth:`encode_counted`); ``"raise"`` refuses them.
        stochastic_rounding: unbiased randomized rounding, with randomness
            from the library's AES-CTR PRG under a fresh OS seed per call.

    Raises :class:`ParameterError`, naming the parameter to change, when N
    summands could reach half the modulus (``N * max_int >= m/2``) or when
    ``clip`` rounds to 0 at this scale (every input would encode to 0).

    Instances are immutable (setting an attribute raises
    :class:`ParameterError`), so one encoder can be shared freely.
    """

    clip: float
    scale: float
    max_summands: int
    modulus: int
    dtype: np.dtype[np.unsignedinteger]
    power_of_two: bool
    on_clip: ClipPolicy
    stochastic_rounding: bool
    #: Largest |integer| one encoding can take.
    max_int: int

    def __init__(
        self,
        clip: float,
        frac_bits: int | None = 16,
        max_summands: int = 1000,
        *,
        scale: float | None = None,
        modulus_bits: int = 32,
        modulus: int | None = None,
        on_clip: ClipPolicy = "clip",
        stochastic_rounding: bool = False,
    ) -> None:
        clip = _check_clip(clip)
        if scale is None:
            if frac_bits is None:
                raise ParameterError("give frac_bits or scale")
            check_int("frac_bits", frac_bits, 0, MAX_FRAC_BITS)
            scale = float(2**frac_bits)
        try:
            scale = float(scale)
        except (TypeError, ValueError):
            raise ParameterError(f"scale must be a finite positive float, got {scale!r}") from None
        if not np.isfinite(scale) or scale <= 0:
            raise ParameterError(f"scale must be a finite positive float, got {scale}")
        check_int("max_summands", max_summands, 1)
        if on_clip not in ("clip", "raise"):
            raise ParameterError(f"on_clip must be 'clip' or 'raise', got {on_clip!r}")
        half = _half_modulus(modulus_bits, modulus)
        if modulus is not None:
            m = int(modulus)
            dtype: np.dtype[np.unsignedinteger] = np.dtype(np.uint64)
            power_of_two = False
        else:
            m = 1 << modulus_bits
            dtype = np.dtype(np.uint32 if modulus_bits == 32 else np.uint64)
            power_of_two = True
        max_int = _max_int(clip, scale, bool(stochastic_rounding))
        if max_int == 0:
            # rint(clip * scale) >= 1 needs clip * scale > 1/2
            need = int(np.floor(np.log2(0.5 / clip))) + 1
            while clip * 2.0**need <= 0.5:
                need += 1
            raise ParameterError(
                f"clip={clip} at scale {scale} rounds to 0: every input would encode to 0; "
                f"raise frac_bits to at least {max(need, 0)} (or scale above {0.5 / clip}), "
                f"or raise clip"
            )
        if max_summands * max_int >= half:
            need = (max_summands * max_int).bit_length() + 1
            raise ParameterError(
                f"{max_summands} summands of |x| <= {clip} at scale {scale} reach "
                f"{max_summands * max_int}, not below half the modulus ({half}); "
                f"lower frac_bits/scale, clip or max_summands, or use a modulus of at "
                f"least {need} bits"
            )
        init = object.__setattr__
        init(self, "clip", clip)
        init(self, "scale", scale)
        init(self, "max_summands", int(max_summands))
        init(self, "modulus", m)
        init(self, "dtype", dtype)
        init(self, "power_of_two", power_of_two)
        init(self, "on_clip", on_clip)
        init(self, "stochastic_rounding", bool(stochastic_rounding))
        init(self, "max_int", max_int)

    @classmethod
    def for_summands(
        cls,
        clip: float,
        max_summands: int,
        *,
        modulus_bits: int = 32,
        modulus: int | None = None,
        on_clip: ClipPolicy = "clip",
        stochastic_rounding: bool = False,
    ) -> FixedPointEncoder:
        """The finest encoder with headroom for ``max_summands`` summands:
        ``frac_bits = frac_bits_for(clip, max_summands, ...)``."""
        bits = frac_bits_for(clip, max_summands, modulus_bits, modulus=modulus,
                             stochastic_rounding=stochastic_rounding)
        return cls(clip, bits, max_summands, modulus_bits=modulus_bits, modulus=modulus,
                   on_clip=on_clip, stochastic_rounding=stochastic_rounding)

    def __setattr__(self, name: str, value: object) -> None:
        raise ParameterError(
            f"FixedPointEncoder is immutable: cannot set {name!r}; build a new encoder"
        )

    def __delattr__(self, name: str) -> None:
        raise ParameterError(
            f"FixedPointEncoder is immutable: cannot delete {name!r}; build a new encoder"
        )

    # -- properties -------------------------------------------------------
    @property
    def modulus_bits(self) -> int:
        return self.modulus.bit_length() - 1 if self.power_of_two else self.modulus.bit_length()

    def error_bound(self, n_summands: int = 1) -> float:
        """Largest absolute error of a decoded sum of ``n_summands`` encodings,
        against the sum of the clipped float inputs (per element)."""
        per = (1.0 if self.stochastic_rounding else 0.5) / self.scale
        return n_summands * per

    def __repr__(self) -> str:
        return (
            f"FixedPointEncoder(clip={self.clip}, scale={self.scale}, "
            f"max_summands={self.max_summands}, modulus=2^{self.modulus_bits}"
            f"{'' if self.power_of_two else ' (m=' + str(self.modulus) + ')'})"
        )

    # -- encode -----------------------------------------------------------
    def _check_input(self, x: object) -> tuple[npt.NDArray[np.floating], float, float]:
        """Validate ``x``; return it with its min and max (NaN/Inf refused)."""
        if not isinstance(x, np.ndarray):
            raise EncodingError(f"expected a numpy float array, got {type(x).__name__}")
        if x.dtype not in _FLOATS:
            raise EncodingError(f"expected a float16/32/64 array, got dtype {x.dtype}")
        if x.ndim != 1:
            raise EncodingError(f"expected a 1-D vector, got shape {x.shape}")
        if x.size == 0:
            return x, 0.0, 0.0
        lo, hi = float(x.min()), float(x.max())  # NaN propagates, Inf shows at an end
        if not (np.isfinite(lo) and np.isfinite(hi)):
            finite = np.isfinite(x)
            i = int(np.argmin(finite))
            raise EncodingError(f"element {i} is {x[i]}: NaN and Inf cannot be encoded")
        return x, lo, hi

    @timed(HOT_PATH)
    def encode_counted(
        self, x: npt.NDArray[np.floating]
    ) -> tuple[npt.NDArray[np.unsignedinteger], int]:
        """Encode a 1-D float vector; return a new vector of ``self.dtype`` and
        the number of coordinates clipped (``|x_i| > clip``, compared exactly in
        float64 whatever the input's float width).

        With ``on_clip="raise"`` an out-of-range value is refused with
        :class:`EncodingError` instead. NaN and Inf are always refused.
        """
        x, lo, hi = self._check_input(x)
        xs = np.multiply(x, self.scale, dtype=np.float64)  # one pass, new buffer
        n_over = 0
        if lo < -self.clip or hi > self.clip:
            over = np.abs(x, dtype=np.float64) > self.clip  # exact for float16/32 too
            n_over = int(np.count_nonzero(over))
            if self.on_clip == "raise":
                i = int(np.argmax(over))
                raise EncodingError(
                    f"element {i} is {x[i]}, past the clipping bound {self.clip} "
                    f"({n_over} elements out of range)"
                )
            np.clip(xs, -self.clip * self.scale, self.clip * self.scale, out=xs)
        if self.stochastic_rounding:
            fl = np.floor(xs)
            xs -= fl  # fractional part in [0, 1)
            u = prg.expand(prg.fresh_seed(), xs.shape[0], np.uint64, b"stochastic-rounding")
            uf = (u >> np.uint64(11)).astype(np.float64)
            uf *= 1.0 / (1 << 53)  # uniform on [0, 1) with 53-bit resolution
            fl += uf < xs
            xs = fl
        else:
            np.rint(xs, out=xs)
        # |xs| <= max_int < m/2 now, so it fits the signed type of the modulus width.
        out: npt.NDArray[np.unsignedinteger]
        if self.dtype == np.uint32 and self.power_of_two:
            out = xs.astype(np.int32).view(np.uint32)  # two's complement = mod 2^32
            return out, n_over
        q: npt.NDArray[np.int64] = xs.astype(np.int64)
        if not self.power_of_two:
            q[q < 0] += self.modulus
        out = q.view(np.uint64)  # two's complement = mod 2^64 when power of two
        return out, n_over

    def encode(self, x: npt.NDArray[np.floating]) -> npt.NDArray[np.unsignedinteger]:
        """Encode a 1-D float vector; returns a new vector of ``self.dtype``.

        Out-of-range values are clipped (use :meth:`encode_counted` to learn
        how many), or refused with :class:`EncodingError` when
        ``on_clip="raise"``.
        """
        return self.encode_counted(x)[0]

    # -- arithmetic ---------------------------------------------------------
    @timed(HOT_PATH)
    def add(
        self, a: npt.NDArray[np.unsignedinteger], b: npt.NDArray[np.unsignedinteger]
    ) -> npt.NDArray[np.unsignedinteger]:
        """``(a + b) mod m`` as a new vector (numpy wrap-around for 2^k)."""
        self._check_encoded(a)
        self._check_encoded(b)
        if a.shape != b.shape:
            raise EncodingError(f"shapes differ: {a.shape} and {b.shape}")
        if self.power_of_two:
            return a + b
        s = a + b  # both < m <= 2^63, so no uint64 overflow
        s[s >= self.modulus] -= np.uint64(self.modulus)
        return s

    def sum(
        self, vectors: Iterable[npt.NDArray[np.unsignedinteger]]
    ) -> npt.NDArray[np.unsignedinteger]:
        """Modular sum of encoded vectors (any iterable, at least one vector)."""
        try:
            it = iter(vectors)
        except TypeError:
            raise EncodingError(
                f"sum() takes an iterable of encoded vectors, got {type(vectors).__name__}"
            ) from None
        first = next(it, _NOTHING)
        if first is _NOTHING:
            raise EncodingError("nothing to sum")
        self._check_encoded(first)
        assert isinstance(first, np.ndarray)
        acc: npt.NDArray[np.unsignedinteger] = first.copy()
        for v in it:
            acc = self.add(acc, v)
        return acc

    def _check_encoded(self, v: object) -> None:
        if not isinstance(v, np.ndarray) or v.dtype != self.dtype or v.ndim != 1:
            got = (
                f"dtype {v.dtype}, shape {v.shape}"
                if isinstance(v, np.ndarray)
                else type(v).__name__
            )
            raise EncodingError(f"expected a 1-D {self.dtype} vector, got {got}")
        if not self.power_of_two and v.size and int(v.max()) >= self.modulus:
            raise EncodingError(f"residue {int(v.max())} is not below the modulus {self.modulus}")

    # -- decode -------------------------------------------------------------
    def _signed(self, v: npt.NDArray[np.unsignedinteger]) -> npt.NDArray[np.signedinteger]:
        if self.power_of_two:
            return v.view(np.int32 if self.dtype == np.uint32 else np.int64)
        signed = v.astype(np.int64)
        signed[v > np.uint64(self.modulus // 2)] -= self.modulus
        return signed

    def _check_limit(self, signed: npt.NDArray[np.signedinteger], n: int) -> None:
        limit = n * self.max_int
        if signed.size:
            lo, hi = int(signed.min()), int(signed.max())
            if lo < -limit or hi > limit:
                i = int(np.argmin(signed) if -lo > hi else np.argmax(signed))
                raise EncodingError(
                    f"element {i} decodes to {signed[i]}, past the limit ±{limit} of "
                    f"{n} summands: the sum overflowed or is corrupt"
                )

    @timed(HOT_PATH)
    def decode_int(
        self, v: npt.NDArray[np.unsignedinteger], n_summands: int | None = None
    ) -> npt.NDArray[np.int64]:
        """Signed integer values of a sum of ``n_summands`` encodings.

        Raises :class:`EncodingError` if any element lies outside
        ``±n_summands * max_int``: the sum overflowed or is not a sum of that
        many encodings.
        """
        self._check_encoded(v)
        n = self.max_summands if n_summands is None else n_summands
        check_int("n_summands", n, 0, self.max_summands)
        signed = self._signed(v)
        self._check_limit(signed, n)
        return signed.astype(np.int64)

    @timed(HOT_PATH)
    def decode(
        self, v: npt.NDArray[np.unsignedinteger], n_summands: int | None = None
    ) -> npt.NDArray[np.float64]:
        """Float64 sum of ``n_summands`` encodings (default ``max_summands``),
        with the same overflow check as :meth:`decode_int`."""
        self._check_encoded(v)
        n = self.max_summands if n_summands is None else n_summands
        check_int("n_summands", n, 0, self.max_summands)
        signed = self._signed(v)
        self._check_limit(signed, n)
        out = signed.astype(np.float64)
        out *= 1.0 / self.scale
        return out
