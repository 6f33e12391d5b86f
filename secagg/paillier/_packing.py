"""Packing layout: fixed-point slots with headroom, BatchCrypt style.

A float x with ``|x| <= clip`` becomes the integer ``v = round(x * scale)``
with ``|v| <= M = 2^(b-1) - 1`` (b = ``value_bits``), stored as the offset
value ``u = v + M`` in ``[0, 2M]``. Slots are ``w = b + ceil(log2 N)`` bits
wide (N = ``capacity``), so a sum of ``k <= N`` offset values stays in
``[0, k * 2M]`` and below ``2^w``: no slot ever carries into or borrows from
its neighbour, whatever the signs. Decoding subtracts ``k * M``, exactly.

``slots = floor((bits(n) - 1) / w)`` slots share one plaintext, slot ``j``
at bit offset ``j * w``, so a packed plaintext is below ``2^(bits(n)-1) <= n``.
The last ciphertext's unused slots hold zeros.

Layout wire format, magic ``SGPL`` version 1: ``fingerprint (32 bytes) |
u16 key bits | u64 dimension | u8 value bits | u64 capacity | f64 scale |
u8 slot bits | u16 slots``; the last two are redundant and checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from .._util import check_int
from ..errors import EncodingError, IntegrityError, ParameterError, ProtocolError
from ..profiling import HOT_PATH, timed
from ..wire import Reader, Writer
from ._keys import check_public_key, fingerprint

__all__ = ["ClipPolicy", "PackingLayout"]

ClipPolicy = Literal["clip", "raise"]

_MAGIC = b"SGPL"
#: Slot sums live in uint64 and decoded sums in int64.
_MAX_SLOT_BITS = 62
_MAX_VALUE_BITS = 48
#: Dimension limit (2^32 values); far above any model update.
_MAX_DIMENSION = 1 << 32
#: Ciphertexts per vector (the wire format counts them in a u32).
_MAX_CIPHERTEXTS = (1 << 32) - 1
#: Ciphertexts packed or unpacked per numpy batch (bounds temporary memory).
_BATCH_CIPHERTEXTS = 2048


@dataclass(frozen=True)
class PackingLayout:
    """How a float vector is packed into Paillier plaintexts under one key.

    Attributes:
        key_fingerprint: :func:`fingerprint` of the public key (32 bytes).
        key_bits: bit length of n.
        dimension: number of values in the vector.
        value_bits: b, bits of one fixed-point value including its sign.
        capacity: N, the largest number of encryptions that may be summed.
        scale: integers per unit: ``v = round(x * scale)``.

    Derived: ``max_int`` M, ``clip`` (= M / scale), ``slot_bits``, ``slots``
    (per ciphertext) and ``ciphertexts`` (per vector).
    """

    key_fingerprint: bytes
    key_bits: int
    dimension: int
    value_bits: int
    capacity: int
    scale: float
    slot_bits: int = field(init=False)
    slots: int = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.key_fingerprint, bytes) or len(self.key_fingerprint) != 32:
            raise ParameterError("key_fingerprint must be 32 bytes")
        check_int("key_bits", self.key_bits, 64, 1 << 15)
        check_int("dimension", self.dimension, 1, _MAX_DIMENSION)
        check_int("value_bits", self.value_bits, 2, _MAX_VALUE_BITS)
        check_int("capacity", self.capacity, 1, 1 << 62)
        if not isinstance(self.scale, float) or not math.isfinite(self.scale) or self.scale <= 0:
            raise ParameterError(f"scale must be a finite positive float, got {self.scale!r}")
        slot_bits = self.value_bits + (self.capacity - 1).bit_length()
        if slot_bits > _MAX_SLOT_BITS:
            raise ParameterError(
                f"value_bits={self.value_bits} with capacity={self.capacity} needs "
                f"{slot_bits}-bit slots; the limit is {_MAX_SLOT_BITS}"
            )
        slots = (self.key_bits - 1) // slot_bits
        if slots < 1:
            raise ParameterError(f"a {slot_bits}-bit slot does not fit a {self.key_bits}-bit key")
        object.__setattr__(self, "slot_bits", slot_bits)
        object.__setattr__(self, "slots", slots)
        if self.ciphertexts > _MAX_CIPHERTEXTS:
            raise ParameterError(
                f"dimension={self.dimension} needs {self.ciphertexts} ciphertexts of "
                f"{slots} slots; a vector holds at most {_MAX_CIPHERTEXTS}"
            )

    @classmethod
    def create(
        cls,
        public_key: Any,
        dimension: int,
        *,
        clip: float = 1.0,
        value_bits: int = 16,
        capacity: int = 1024,
        scale: float | None = None,
        insecure_allow_small_key_for_tests: bool = False,
    ) -> PackingLayout:
        """A layout for ``public_key``.

        Args:
            dimension: values per vector (>= 1).
            clip: largest |x| encoded (> 0); sets ``scale = M / clip``.
            value_bits: b in [2, 48]; the resolution is ``clip / (2^(b-1) - 1)``.
            capacity: N >= 1 summands; costs ``ceil(log2 N)`` bits per slot.
            scale: overrides ``clip`` (``clip`` becomes ``M / scale``).
        """
        bits = check_public_key(
            public_key, insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests
        )
        check_int("value_bits", value_bits, 2, _MAX_VALUE_BITS)
        if scale is None:
            clip = float(clip)
            if not math.isfinite(clip) or clip <= 0:
                raise ParameterError(f"clip must be a finite positive float, got {clip}")
            scale = ((1 << (value_bits - 1)) - 1) / clip
        return cls(
            key_fingerprint=fingerprint(public_key),
            key_bits=bits,
            dimension=dimension,
            value_bits=value_bits,
            capacity=capacity,
            scale=float(scale),
        )

    # ------------------------------------------------------------------ derived

    @property
    def max_int(self) -> int:
        """M: the largest |v| of one encoded value."""
        return (1 << (self.value_bits - 1)) - 1

    @property
    def clip(self) -> float:
        """The largest |x| that encodes without clipping."""
        return self.max_int / self.scale

    @property
    def ciphertexts(self) -> int:
        """Ciphertexts per vector: ``ceil(dimension / slots)``."""
        return -(-self.dimension // self.slots)

    @property
    def ciphertext_bytes(self) -> int:
        """Bytes of one ciphertext on the wire (fixed width, below n^2)."""
        return (2 * self.key_bits + 7) // 8

    @property
    def plaintext_bytes(self) -> int:
        return (self.slots * self.slot_bits + 7) // 8

    # -------------------------------------------------------------- wire codec

    def to_bytes(self) -> bytes:
        """Serialise (magic ``SGPL``, version 1)."""
        return (
            Writer(_MAGIC)
            .raw(self.key_fingerprint)
            .u16(self.key_bits)
            .u64(self.dimension)
            .u8(self.value_bits)
            .u64(self.capacity)
            .f64(self.scale)
            .u8(self.slot_bits)
            .u16(self.slots)
            .getvalue()
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> PackingLayout:
        """Parse a layout; any malformed or inconsistent field is a ProtocolError."""
        r = Reader(data, _MAGIC)
        fp = r.raw(32)
        key_bits = r.u16()
        dimension = r.u64()
        value_bits = r.u8()
        capacity = r.u64()
        scale = r.f64()
        slot_bits = r.u8()
        slots = r.u16()
        r.done()
        try:
            layout = cls(fp, key_bits, dimension, value_bits, capacity, scale)
        except ParameterError as exc:
            raise ProtocolError(f"invalid packing layout: {exc}") from exc
        if (layout.slot_bits, layout.slots) != (slot_bits, slots):
            raise ProtocolError(
                f"layout declares {slots} slots of {slot_bits} bits; the parameters "
                f"give {layout.slots} of {layout.slot_bits}"
            )
        return layout

    # ---------------------------------------------------------------- encoding

    @timed(HOT_PATH)
    def encode(
        self, values: npt.ArrayLike, *, on_clip: ClipPolicy = "clip"
    ) -> npt.NDArray[np.uint64]:
        """Floats -> offset slot values ``u = round(x * scale) + M`` (uint64).

        NaN and Inf are refused; values past ``clip`` are clipped, or refused
        with ``on_clip="raise"``. Errors name the index, the value and the limit.
        """
        x = np.asarray(values)
        if x.ndim != 1 or x.shape[0] != self.dimension:
            raise EncodingError(
                f"expected a 1-D vector of {self.dimension} values, got shape {x.shape}"
            )
        if x.dtype.kind not in "fiu":
            raise EncodingError(f"expected a real numeric vector, got dtype {x.dtype}")
        x = x.astype(np.float64, copy=False)
        finite = np.isfinite(x)
        if not finite.all():
            i = int(np.argmin(finite))
            raise EncodingError(f"value {x[i]} at index {i} is not finite")
        clip = self.clip
        over = np.abs(x) > clip
        if over.any():
            if on_clip == "raise":
                i = int(np.argmax(over))
                raise EncodingError(f"value {x[i]} at index {i} exceeds the clip bound {clip}")
            if on_clip != "clip":
                raise ParameterError(f"on_clip must be 'clip' or 'raise', got {on_clip!r}")
            x = np.clip(x, -clip, clip)
        m = self.max_int
        v = np.rint(x * self.scale)
        np.clip(v, -m, m, out=v)
        return (v.astype(np.int64) + m).astype(np.uint64)

    @timed(HOT_PATH)
    def decode(self, slot_sums: npt.NDArray[np.uint64], summands: int) -> npt.NDArray[np.int64]:
        """Slot sums of ``summands`` encryptions -> exact signed integer sums.

        Raises :class:`IntegrityError` if a slot is past ``summands * 2M``,
        which no honest sum can reach.
        """
        top = summands * 2 * self.max_int
        if slot_sums.size and int(slot_sums.max()) > top:
            i = int(np.argmax(slot_sums > top))
            raise IntegrityError(
                f"slot {i} holds {int(slot_sums[i])}, past the largest sum of "
                f"{summands} summands ({top}): the ciphertext was tampered with"
            )
        return slot_sums.astype(np.int64) - np.int64(summands * self.max_int)

    # ----------------------------------------------------------------- packing

    @timed(HOT_PATH)
    def pack(self, u: npt.NDArray[np.uint64]) -> list[int]:
        """Offset slot values -> one plaintext integer per ciphertext.

        Pure numpy bit shuffling; the only Python objects are the plaintexts.
        """
        w, s = self.slot_bits, self.slots
        count = self.ciphertexts
        padded = np.zeros(count * s, dtype="<u8")
        padded[: u.shape[0]] = u
        width = self.plaintext_bytes
        out: list[int] = []
        for start in range(0, count, _BATCH_CIPHERTEXTS):
            stop = min(count, start + _BATCH_CIPHERTEXTS)
            chunk = padded[start * s : stop * s].view(np.uint8).reshape(-1, 8)
            bits = np.unpackbits(chunk, axis=1, bitorder="little")[:, :w]
            bits = bits.reshape(stop - start, s * w)
            if width * 8 != s * w:
                bits = np.pad(bits, ((0, 0), (0, width * 8 - s * w)))
            rows = np.packbits(bits, axis=1, bitorder="little")
            blob = rows.tobytes()
            out.extend(
                int.from_bytes(blob[i * width : (i + 1) * width], "little")
                for i in range(stop - start)
            )
        return out

    @timed(HOT_PATH)
    def unpack(self, plaintexts: list[int]) -> npt.NDArray[np.uint64]:
        """Plaintext integers -> slot sums (uint64), length ``dimension``.

        Raises :class:`IntegrityError` if a plaintext has bits above the slot
        area or a padding slot is non-zero.
        """
        w, s = self.slot_bits, self.slots
        width = self.plaintext_bytes
        limit = 1 << (s * w)
        if len(plaintexts) != self.ciphertexts:
            raise ParameterError(f"expected {self.ciphertexts} plaintexts, got {len(plaintexts)}")
        parts: list[npt.NDArray[np.uint64]] = []
        for start in range(0, len(plaintexts), _BATCH_CIPHERTEXTS):
            chunk = plaintexts[start : start + _BATCH_CIPHERTEXTS]
            for m in chunk:
                if not 0 <= m < limit:
                    raise IntegrityError(
                        "a decrypted plaintext overflows the slot area: the ciphertext "
                        "was tampered with or exceeded its summand capacity"
                    )
            blob = b"".join(int(m).to_bytes(width, "little") for m in chunk)
            rows = np.frombuffer(blob, dtype=np.uint8).reshape(len(chunk), width)
            bits = np.unpackbits(rows, axis=1, bitorder="little")[:, : s * w]
            bits = bits.reshape(len(chunk) * s, w)
            bits = np.pad(bits, ((0, 0), (0, 64 - w)))
            vals = np.packbits(bits, axis=1, bitorder="little").view("<u8").reshape(-1)
            parts.append(vals.astype(np.uint64))
        flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)
        if flat[self.dimension :].any():
            raise IntegrityError("a padding slot is non-zero: the ciphertext was tampered with")
        return flat[: self.dimension].copy()
