"""A strict, versioned binary codec shared by every serialised object.

Fixed-width big-endian integers and length-prefixed byte strings; numpy
vectors travel as raw little-endian bytes behind a dtype code and a length.
Nothing is ever pickled. A :class:`Reader` raises
:class:`~secagg.errors.RemoteProtocolError` (a :class:`ProtocolError`) on any
short, long or out-of-range input, so a decoder built from it never returns a
half-parsed object; a :class:`Writer` raises :class:`EncodingError` for a
value its field cannot hold (a negative or too large integer, an oversized
blob), never a bare ``struct.error``.

Layout of a framed object: ``magic (4 bytes) | version (u8) | body``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from .errors import EncodingError, RemoteProtocolError

__all__ = ["DTYPE_CODES", "MAX_FIELD", "Reader", "Writer", "read_ids", "write_ids"]

ProtocolError = RemoteProtocolError  # what every Reader failure raises

#: dtype code carried on the wire for integer vectors (little-endian).
DTYPE_CODES: dict[int, np.dtype[np.unsignedinteger]] = {
    1: np.dtype("<u4"),
    2: np.dtype("<u8"),
}
_CODE_OF = {v: k for k, v in DTYPE_CODES.items()}

#: Refuse absurd lengths before allocating anything (1 GiB).
MAX_FIELD = 1 << 30


class Writer:
    """Accumulates a message; ``getvalue()`` returns the bytes."""

    def __init__(self, magic: bytes | None = None, version: int = 1) -> None:
        self._parts: list[bytes] = []
        if magic is not None:
            if len(magic) != 4:
                raise EncodingError(f"magic must be 4 bytes, got {len(magic)}")
            self._parts.append(magic)
            self.u8(version)

    def u8(self, v: int) -> Writer:
        self._parts.append(struct.pack(">B", _uint(v, 8)))
        return self

    def u16(self, v: int) -> Writer:
        self._parts.append(struct.pack(">H", _uint(v, 16)))
        return self

    def u32(self, v: int) -> Writer:
        self._parts.append(struct.pack(">I", _uint(v, 32)))
        return self

    def u64(self, v: int) -> Writer:
        self._parts.append(struct.pack(">Q", _uint(v, 64)))
        return self

    def f64(self, v: float) -> Writer:
        try:
            self._parts.append(struct.pack(">d", v))
        except (struct.error, TypeError):
            raise EncodingError(f"f64 field cannot hold {v!r}") from None
        return self

    def raw(self, b: bytes) -> Writer:
        """Fixed-length bytes; the reader must know the length."""
        self._parts.append(bytes(b))
        return self

    def blob(self, b: bytes) -> Writer:
        """Length-prefixed (u32) bytes, at most :data:`MAX_FIELD` of them."""
        if len(b) > MAX_FIELD:
            raise EncodingError(f"blob of {len(b)} bytes exceeds the limit {MAX_FIELD}")
        self.u32(len(b))
        self._parts.append(bytes(b))
        return self

    def bigint(self, v: int) -> Writer:
        """A non-negative integer as a length-prefixed big-endian blob."""
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise EncodingError(f"bigint must be a non-negative int, got {v!r}")
        return self.blob(int(v).to_bytes((int(v).bit_length() + 7) // 8 or 1, "big"))

    def vector(self, v: npt.NDArray[np.unsignedinteger]) -> Writer:
        """A 1-D unsigned vector: dtype code (u8), length (u64), raw bytes."""
        dt = v.dtype.newbyteorder("<")
        code = _CODE_OF.get(dt)
        if code is None or v.ndim != 1:
            raise EncodingError(f"cannot encode vector of dtype {v.dtype} and ndim {v.ndim}")
        self.u8(code).u64(v.shape[0])
        self._parts.append(np.ascontiguousarray(v, dtype=dt).tobytes())
        return self

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


def _uint(v: int, bits: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < (1 << bits):
        raise EncodingError(f"u{bits} field cannot hold {v!r} (range [0, 2^{bits}))")
    return int(v)


def write_ids(w: Writer, ids: Iterable[int], *, width: int = 32) -> Writer:
    """A strictly increasing id list: count (u32), then each id (u32 or u64)."""
    out = sorted(ids)
    if any(b == a for a, b in pairwise(out)):
        raise EncodingError("an id list holds the same id twice")
    w.u32(len(out))
    put = w.u32 if width == 32 else w.u64
    for i in out:
        put(i)
    return w


def read_ids(r: Reader, *, width: int = 32, max_count: int | None = None) -> tuple[int, ...]:
    """Parse what :func:`write_ids` wrote; the count is checked against
    ``max_count`` and the bytes left before anything is read."""
    count = r.u32()
    if max_count is not None and count > max_count:
        raise RemoteProtocolError(f"id list of {count} entries, at most {max_count} allowed")
    if count * (width // 8) > r.remaining():
        raise RemoteProtocolError(f"id list of {count} entries is longer than the message")
    get = r.u32 if width == 32 else r.u64
    ids = [get() for _ in range(count)]
    for a, b in pairwise(ids):
        if b <= a:
            raise RemoteProtocolError(
                f"id list is not strictly increasing (duplicate or unsorted id {b})")
    return tuple(ids)


class Reader:
    """Parses what a :class:`Writer` wrote; every short read is an error."""

    def __init__(
        self, data: bytes, magic: bytes | None = None, versions: tuple[int, ...] = (1,)
    ) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ProtocolError(f"expected bytes, got {type(data).__name__}")
        self._b = memoryview(bytes(data))
        self._i = 0
        self.version = 0
        if magic is not None:
            got = self.raw(4)
            if got != magic:
                raise ProtocolError(f"bad magic {got!r}, expected {magic!r}")
            self.version = self.u8()
            if self.version not in versions:
                raise ProtocolError(
                    f"unsupported version {self.version}, supported {versions}"
                )

    def _take(self, n: int) -> memoryview:
        if n < 0 or self._i + n > len(self._b):
            raise ProtocolError(
                f"truncated input: need {n} bytes at offset {self._i}, "
                f"have {len(self._b) - self._i}"
            )
        out = self._b[self._i : self._i + n]
        self._i += n
        return out

    def u8(self) -> int:
        return int(self._take(1)[0])

    def u16(self) -> int:
        return int(struct.unpack(">H", self._take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack(">I", self._take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack(">Q", self._take(8))[0])

    def f64(self) -> float:
        return float(struct.unpack(">d", self._take(8))[0])

    def raw(self, n: int) -> bytes:
        return bytes(self._take(n))

    def blob(self, max_len: int = MAX_FIELD) -> bytes:
        n = self.u32()
        if n > max_len:
            raise ProtocolError(f"field length {n} exceeds limit {max_len}")
        if n > self.remaining():
            raise ProtocolError(f"field of {n} bytes, only {self.remaining()} left")
        return bytes(self._take(n))

    def bigint(self, max_bytes: int = 1 << 16) -> int:
        b = self.blob(max_len=max_bytes)
        if not b:
            raise ProtocolError("empty integer field")
        return int.from_bytes(b, "big")

    def vector(
        self,
        expected_len: int | None = None,
        expected_dtype: np.dtype[np.unsignedinteger] | None = None,
    ) -> npt.NDArray[np.unsignedinteger]:
        code = self.u8()
        dt = DTYPE_CODES.get(code)
        if dt is None:
            raise ProtocolError(f"unknown vector dtype code {code}")
        n = self.u64()
        if expected_len is not None and n != expected_len:
            raise ProtocolError(f"vector length {n} does not match expected {expected_len}")
        if expected_dtype is not None and dt != np.dtype(expected_dtype).newbyteorder("<"):
            raise ProtocolError(f"vector dtype {dt} does not match expected {expected_dtype}")
        if n * dt.itemsize > MAX_FIELD:
            raise ProtocolError(f"vector of {n} elements exceeds size limit {MAX_FIELD} bytes")
        buf = self._take(n * dt.itemsize)
        return np.frombuffer(buf, dtype=dt).astype(dt.newbyteorder("="), copy=True)

    def remaining(self) -> int:
        return len(self._b) - self._i

    def done(self) -> None:
        """Raise unless every byte was consumed."""
        if self._i != len(self._b):
            raise ProtocolError(f"{len(self._b) - self._i} trailing bytes")
