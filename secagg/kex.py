"""X25519 key agreement and HKDF-SHA256 into 32-byte seeds bound to a context.

Two parties each hold a :class:`PrivateKey`; ``agree(mine, theirs, info)``
gives both the same 32-byte seed, ``HKDF-SHA256(X25519(mine, theirs),
salt=None, info="secagg/kex/v1" || info)``. Bind the seed to its use with
:func:`context`, which orders the two party ids so both ends derive the same
bytes. Security assumption: the gap Diffie-Hellman problem is hard on
Curve25519 (about 128-bit security) and HMAC-SHA256 is a PRF.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ._util import check_bytes, check_int
from .errors import IntegrityError, ParameterError
from .profiling import CRYPTO, timed

__all__ = ["KEY_BYTES", "PrivateKey", "PublicKey", "agree", "context", "hkdf"]

KEY_BYTES = 32
_DOMAIN = b"secagg/kex/v1"
_RAW = serialization.Encoding.Raw


@dataclass(frozen=True, eq=False, repr=False)
class PublicKey:
    """An X25519 public key (immutable), compared and hashed by its 32 bytes.

    Any 32 bytes decode (RFC 7748 masks the top bit); low-order points are
    refused later, by :func:`agree`.
    """

    _key: x25519.X25519PublicKey

    @classmethod
    def from_bytes(cls, data: bytes) -> PublicKey:
        """The key whose raw RFC 7748 encoding is ``data`` (exactly 32 bytes;
        :class:`ParameterError` otherwise)."""
        data = check_bytes("X25519 public key", data, KEY_BYTES)
        return cls(x25519.X25519PublicKey.from_public_bytes(data))

    def to_bytes(self) -> bytes:
        """The raw 32-byte RFC 7748 encoding (u-coordinate, little-endian)."""
        return self._key.public_bytes(_RAW, serialization.PublicFormat.Raw)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    def __repr__(self) -> str:  # public: the whole key, enough to rebuild it
        return f"PublicKey.from_bytes(bytes.fromhex('{self.to_bytes().hex()}'))"


@dataclass(frozen=True, eq=False, repr=False)
class PrivateKey:
    """An X25519 private key (immutable). Its ``repr`` never shows the secret."""

    _key: x25519.X25519PrivateKey

    @classmethod
    @timed(CRYPTO)
    def generate(cls) -> PrivateKey:
        """A fresh key from the operating system's CSPRNG."""
        return cls(x25519.X25519PrivateKey.generate())

    @classmethod
    def from_bytes(cls, data: bytes) -> PrivateKey:
        """The key whose raw 32-byte scalar is ``data`` (clamped as RFC 7748
        says); :class:`ParameterError` for any other length. ``data`` must be
        secret and uniformly random."""
        data = check_bytes("X25519 private key", data, KEY_BYTES)
        return cls(x25519.X25519PrivateKey.from_private_bytes(data))

    def to_bytes(self) -> bytes:
        """The raw 32-byte secret scalar: handle it as the secret it is (it is
        what protocols secret-share)."""
        return self._key.private_bytes(
            _RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )

    def public_key(self) -> PublicKey:
        """The matching public key."""
        return PublicKey(self._key.public_key())

    def __repr__(self) -> str:
        return f"PrivateKey(public={self.public_key().to_bytes().hex()[:16]}...)"


def hkdf(ikm: bytes, *, salt: bytes | None, info: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 (RFC 5869) of ``ikm`` into ``length`` bytes (1..8160)."""
    length = check_int("length", length, 1, 255 * 32)
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def context(purpose: str, round_id: int, a: int, b: int) -> bytes:
    """Canonical info bytes binding a seed to ``purpose``, a round and two party ids.

    ``purpose`` is a non-empty str of at most 65535 UTF-8 bytes, ``round_id``
    in [0, 2^64), ``a`` and ``b`` two *different* party ids in [0, 2^32): a
    party never agrees a pairwise seed with itself. The ids are sorted, so
    ``context(p, r, a, b) == context(p, r, b, a)``. Encoding:
    ``len(purpose) (u16) || purpose || round_id (u64) || min (u32) || max (u32)``,
    big-endian, so distinct arguments give distinct bytes.
    """
    if not isinstance(purpose, str):
        raise ParameterError(f"purpose must be a str, got {type(purpose).__name__}")
    try:
        p = purpose.encode()
    except UnicodeEncodeError as exc:
        raise ParameterError(f"purpose is not encodable as UTF-8: {exc}") from None
    if not 1 <= len(p) <= 0xFFFF:
        raise ParameterError(f"purpose must be 1..65535 UTF-8 bytes, got {len(p)}")
    check_int("round_id", round_id, 0, 2**64 - 1)
    check_int("party id a", a, 0, 2**32 - 1)
    check_int("party id b", b, 0, 2**32 - 1)
    if a == b:
        raise ParameterError(f"party id {a} is paired with itself: a pairwise context "
                             f"needs two different parties")
    lo, hi = sorted((a, b))
    return struct.pack(">H", len(p)) + p + struct.pack(">QII", round_id, lo, hi)


@timed(CRYPTO)
def agree(private: PrivateKey, peer: PublicKey, info: bytes) -> bytes:
    """The 32-byte seed shared by ``private``'s owner and ``peer``'s owner.

    Raises :class:`IntegrityError` for a low-order peer key (all-zero secret).
    """
    if not isinstance(private, PrivateKey) or not isinstance(peer, PublicKey):
        raise ParameterError("agree() takes a PrivateKey and a PublicKey")
    try:
        shared = private._key.exchange(peer._key)
    except ValueError as exc:
        raise IntegrityError(f"X25519 agreement failed (low-order public key): {exc}") from exc
    return hkdf(shared, salt=None, info=_DOMAIN + check_bytes("info", info), length=32)
