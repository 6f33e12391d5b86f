"""A strict, versioned binary codec shared by every serialised object.

Fixed-width big-endian integers and length-prefixed byte strings; numpy
vectors travel as raw little-endian bytes behind a dtype code and a length.
Nothing is ever pickled. A :class:`Reader` raises :class:`ProtocolError`
on any short, long or out-of-range input, so a decoder built from it never
returns a half-parsed object.

Layout of a framed object: ``magic (4 bytes) | version (u8) | body``.
"""

from __future__ import annotations

import struct

import numpy as np
import numpy.typing as npt

from .errors import ProtocolError

__all__ = ["DTYPE_CODES", "Reader", "Writer"]

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
                raise ValueError("magic must be 4 bytes")
            self._parts.append(magic)
            self.u8(version)

    def u8(self, v: int) -> Writer:
        self._parts.append(struct.pack(">B", v))
        return self

    def u16(self, v: int) -> Writer:
        self._parts.append(struct.pack(">H", v))
        return self

    def u32(self, v: int) -> Writer:
        self._parts.append(struct.pack(">I", v))
        return self

    def u64(self, v: int) -> Writer:
        self._parts.append(struct.pack(">Q", v))
        return self

    def f64(self, v: float) -> Writer:
        self._parts.append(struct.pack(">d", v))
        return self

    def raw(self, b: bytes) -> Writer:
        """Fixed-length bytes; the reader must know the length."""
        self._parts.append(bytes(b))
        return self

    def blob(self, b: bytes) -> Writer:
        """Length-prefixed (u32) bytes."""
        self.u32(len(b))
        self._parts.append(bytes(b))
        return self

    def bigint(self, v: int) -> Writer:
        """A non-negative integer as a length-prefixed big-endian blob."""
        if v < 0:
            raise ValueError("bigint must be non-negative")
        return self.blob(int(v).to_bytes((int(v).bit_length() + 7) // 8 or 1, "big"))

    def vector(self, v: npt.NDArray[np.unsignedinteger]) -> Writer:
        """A 1-D unsigned vector: dtype code (u8), length (u64), raw bytes."""
        dt = v.dtype.newbyteorder("<")
        code = _CODE_OF.get(dt)
        if code is None or v.ndim != 1:
            raise ValueError(f"cannot encode vector of dtype {v.dtype} and ndim {v.ndim}")
        self.u8(code).u64(v.shape[0])
        self._parts.append(np.ascontiguousarray(v, dtype=dt).tobytes())
        return self

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


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
        return bytes(self._take(n))

    def bigint(self, max_bytes: int = 1 << 16) -> int:
        b = self.blob(max_bytes)
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
            raise ProtocolError(f"vector of {n} elements exceeds size limit")
        buf = self._take(n * dt.itemsize)
        return np.frombuffer(buf, dtype=dt).astype(dt.newbyteorder("="), copy=True)

    def remaining(self) -> int:
        return len(self._b) - self._i

    def done(self) -> None:
        """Raise unless every byte was consumed."""
        if self._i != len(self._b):
            raise ProtocolError(f"{len(self._b) - self._i} trailing bytes")
