"""Cryptographic pseudorandom generator: 32-byte seed -> integer mask vector.

The stream is AES-256 in counter mode from ``cryptography`` (AES-NI where the
CPU has it), viewed as little-endian unsigned integers with
``np.frombuffer``: no per-element Python work and no copy beyond the
keystream itself.

Domain separation: the seed is the AES-256 key and the label picks the
initial counter block, ``SHA-256("secagg/prg/v1" || label)[:8] || 0^64``.
Streams of different labels under one seed therefore run over disjoint
ranges of AES inputs (each label owns 2^64 blocks) unless two labels'
64-bit prefixes collide, which for any given pair has probability 2^-64.
Uniformity: each output integer is a whole number of keystream bytes, so it
is uniform on ``[0, 2^bits)`` when AES is a PRP; at most 2^32 blocks per
call keeps the PRP/PRF switching advantage below 2^-64.

Security assumption: AES-256 is a pseudorandom permutation. Seeds must be
secret, uniform and used only as PRG seeds (for example from
:func:`fresh_seed`, or an X25519 + HKDF agreement with its own context).
"""

from __future__ import annotations

import hashlib
import os
import threading
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ._util import check_bytes, check_int
from .errors import ParameterError
from .profiling import CRYPTO, HOT_PATH, timed

__all__ = [
    "SEED_BYTES",
    "WordStream",
    "counter_block",
    "expand",
    "expand_into",
    "fresh_seed",
    "keystream",
]

SEED_BYTES = 32
_DOMAIN = b"secagg/prg/v1"
_ZERO_BLOCK = bytes(16)
#: Largest number of bytes drawn from one key (2^32 AES blocks = 64 GiB).
MAX_BYTES = 16 << 32
#: Keystream is produced in chunks of this many bytes from a shared zero buffer
#: (allocating fresh zero pages per call costs several times the AES itself).
_CHUNK = 1 << 22
_ZEROS = memoryview(bytes(_CHUNK))
_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.uint32), np.dtype(np.uint64))


def fresh_seed() -> bytes:
    """A new uniformly random 32-byte seed from the operating system."""
    return os.urandom(SEED_BYTES)


@lru_cache(maxsize=4096)
def _counter_block(label: bytes) -> bytes:
    return hashlib.sha256(_DOMAIN + label).digest()[:8] + bytes(8)


def counter_block(label: bytes = b"") -> bytes:
    """The initial AES-CTR counter block of ``label``'s stream (labels are public)."""
    return _counter_block(check_bytes("label", label))


def keystream(key: bytes, nbytes: int, counter_block: bytes = _ZERO_BLOCK) -> bytes:
    """Raw AES-256-CTR keystream: ``nbytes`` bytes from ``counter_block``.

    This is the cipher itself (checked against NIST SP 800-38A F.5.5);
    ``expand(seed, n, uint8, label) == keystream(seed, n, counter_block(label))``.
    """
    key = check_bytes("key", key, 32)
    counter_block = check_bytes("counter_block", counter_block, 16)
    nbytes = check_int("nbytes", nbytes, 0, MAX_BYTES)
    enc = Cipher(algorithms.AES(key), modes.CTR(counter_block)).encryptor()
    return enc.update(bytes(nbytes)) + enc.finalize()


#: Accepted dtypes (as types and as dtype objects) -> little-endian dtype.
_LE: dict[object, np.dtype[np.unsignedinteger]] = {}
for _dt in _DTYPES:
    _LE[_dt] = _LE[_dt.type] = _dt.newbyteorder("<")


def _check_dtype(dtype: npt.DTypeLike) -> np.dtype[np.unsignedinteger]:
    """The little-endian form of an accepted unsigned dtype."""
    try:
        return _LE[dtype]
    except (KeyError, TypeError):
        pass
    dt = np.dtype(dtype)
    if dt not in _LE:
        raise ParameterError(f"dtype must be one of uint8/16/32/64, got {dt}")
    return _LE[dt]


@timed(CRYPTO)
def expand(
    seed: bytes, length: int, dtype: npt.DTypeLike = np.uint32, label: bytes = b""
) -> npt.NDArray[np.unsignedinteger]:
    """A vector of ``length`` uniform integers of ``dtype`` from ``(seed, label)``.

    Args:
        seed: 32 secret, uniformly random bytes.
        length: number of elements, ``0 <= length``; at most 64 GiB of stream.
        dtype: ``uint8``, ``uint16``, ``uint32`` or ``uint64``.
        label: domain-separation label; different labels give independent streams.

    Returns a writable, native-endian array over a fresh buffer.
    """
    dt = _check_dtype(dtype)
    if type(length) is not int or not 0 <= length <= MAX_BYTES // dt.itemsize:
        length = check_int("length", length, 0, MAX_BYTES // dt.itemsize)
    if type(seed) is not bytes or len(seed) != SEED_BYTES:
        seed = check_bytes("seed", seed, SEED_BYTES)
    block = _counter_block(label) if type(label) is bytes else counter_block(label)
    nbytes = length * dt.itemsize
    # update_into needs block_size - 1 spare bytes past each chunk's output.
    buf = np.empty(nbytes + 15, dtype=np.uint8)
    enc = Cipher(algorithms.AES(seed), modes.CTR(block)).encryptor()
    if nbytes <= _CHUNK:  # one call, straight into the array's buffer
        enc.update_into(_ZEROS[:nbytes], buf)  # type: ignore[arg-type]  # ndarray is a buffer
    else:
        view = memoryview(buf)  # type: ignore[arg-type]
        for off in range(0, nbytes, _CHUNK):  # a loop over MiB chunks, not elements
            m = min(_CHUNK, nbytes - off)
            enc.update_into(_ZEROS[:m], view[off : off + m + 15])
    out = buf[:nbytes].view(dt)
    if not dt.isnative:  # pragma: no cover - big-endian host: make native (copy)
        return out.astype(dt.newbyteorder("="))
    return out


@timed(HOT_PATH)
def expand_into(
    out: npt.NDArray[np.unsignedinteger],
    seed: bytes,
    label: bytes = b"",
    *,
    subtract: bool = False,
) -> None:
    """Add (or subtract) the mask ``expand(seed, len(out), out.dtype, label)``
    to ``out`` in place, modulo 2^bits of its dtype (numpy wrap-around).

    ``out`` must be a writable 1-D array of uint8/16/32/64; anything else is
    refused with :class:`ParameterError` before ``out`` is touched.
    """
    if not isinstance(out, np.ndarray) or out.ndim != 1:
        got = f"shape {out.shape}" if isinstance(out, np.ndarray) else type(out).__name__
        raise ParameterError(f"out must be a 1-D numpy array, got {got}")
    if not out.flags.writeable:
        raise ParameterError("out is read-only: expand_into masks in place; pass a copy")
    mask = expand(seed, out.shape[0], out.dtype, label)
    if subtract:
        np.subtract(out, mask, out=out)
    else:
        np.add(out, mask, out=out)


class WordStream:
    """Uniform 64-bit words from AES-256-CTR under one secret seed: draw number
    ``i`` is the keystream of label ``prefix || i`` (8-byte big-endian), so
    every draw is a fresh, independent stream. Thread-safe.

    Args:
        seed: 32 secret bytes; ``None`` draws them from ``os.urandom``. Whoever
            knows the seed can reproduce every word (pass one only in tests).
        prefix: domain-separation label of this stream's user.
    """

    def __init__(self, seed: bytes | None, prefix: bytes) -> None:
        if seed is None:
            seed = os.urandom(SEED_BYTES)
        if not isinstance(seed, (bytes, bytearray)) or len(seed) != SEED_BYTES:
            raise ParameterError(f"seed must be {SEED_BYTES} bytes")
        self._seed = bytes(seed)
        self._prefix = check_bytes("prefix", prefix)
        self._counter = 0
        self._lock = threading.Lock()
        #: 64-bit words drawn so far
        self.words_drawn = 0

    def __repr__(self) -> str:  # never show the seed
        return f"WordStream(words_drawn={self.words_drawn})"

    def words(self, n: int) -> npt.NDArray[np.uint64]:
        """``n >= 0`` uniform 64-bit words from the next label."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise ParameterError(f"n must be an int, got {type(n).__name__}")
        n = int(n)
        if n < 0:
            raise ParameterError(f"n={n} must be >= 0")
        with self._lock:
            label = self._prefix + self._counter.to_bytes(8, "big")
            self._counter += 1
            self.words_drawn += n
        if n == 0:
            return np.zeros(0, dtype=np.uint64)
        return np.asarray(expand(self._seed, n, dtype=np.uint64, label=label), dtype=np.uint64)
