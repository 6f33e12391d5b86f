"""Ed25519 signatures (RFC 8032) as immutable key objects.

``SigningKey.sign(msg)`` returns 64 bytes; ``VerifyKey.verify(sig, msg)``
returns ``None`` or raises :class:`IntegrityError`. Security assumption:
Ed25519 is existentially unforgeable (about 128-bit security).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from ._util import check_bytes
from .errors import IntegrityError
from .profiling import CRYPTO, timed

__all__ = ["KEY_BYTES", "SIGNATURE_BYTES", "SigningKey", "VerifyKey"]

KEY_BYTES = 32
SIGNATURE_BYTES = 64
_RAW = serialization.Encoding.Raw


@dataclass(frozen=True, eq=False, repr=False)
class VerifyKey:
    """An Ed25519 public key (immutable), compared and hashed by its 32 bytes."""

    _key: ed25519.Ed25519PublicKey

    @classmethod
    def from_bytes(cls, data: bytes) -> VerifyKey:
        """The key whose raw RFC 8032 encoding is ``data`` (exactly 32 bytes;
        :class:`ParameterError` otherwise)."""
        data = check_bytes("Ed25519 public key", data, KEY_BYTES)
        try:
            return cls(ed25519.Ed25519PublicKey.from_public_bytes(data))
        except ValueError as exc:  # pragma: no cover - cryptography accepts any 32 bytes
            raise IntegrityError(f"invalid Ed25519 public key: {exc}") from exc

    def to_bytes(self) -> bytes:
        """The raw 32-byte RFC 8032 encoding."""
        return self._key.public_bytes(_RAW, serialization.PublicFormat.Raw)

    @timed(CRYPTO)
    def verify(self, signature: bytes, message: bytes) -> None:
        """Raise :class:`IntegrityError` unless ``signature`` is valid for ``message``."""
        signature = check_bytes("signature", signature)
        if len(signature) != SIGNATURE_BYTES:
            raise IntegrityError(
                f"signature is {len(signature)} bytes, expected {SIGNATURE_BYTES}"
            )
        try:
            self._key.verify(signature, check_bytes("message", message))
        except InvalidSignature:
            raise IntegrityError("Ed25519 signature check failed") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyKey) and self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    def __repr__(self) -> str:  # public: the whole key, enough to rebuild it
        return f"VerifyKey.from_bytes(bytes.fromhex('{self.to_bytes().hex()}'))"


@dataclass(frozen=True, eq=False, repr=False)
class SigningKey:
    """An Ed25519 private key; ``repr`` never shows the secret."""

    _key: ed25519.Ed25519PrivateKey

    @classmethod
    @timed(CRYPTO)
    def generate(cls) -> SigningKey:
        """A fresh key from the operating system's CSPRNG."""
        return cls(ed25519.Ed25519PrivateKey.generate())

    @classmethod
    def from_bytes(cls, data: bytes) -> SigningKey:
        """The key whose 32-byte RFC 8032 seed is ``data`` (secret, uniform);
        :class:`ParameterError` for any other length."""
        data = check_bytes("Ed25519 private key", data, KEY_BYTES)
        return cls(ed25519.Ed25519PrivateKey.from_private_bytes(data))

    def to_bytes(self) -> bytes:
        """The raw 32-byte secret seed."""
        return self._key.private_bytes(
            _RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )

    def verify_key(self) -> VerifyKey:
        """The matching public key."""
        return VerifyKey(self._key.public_key())

    @timed(CRYPTO)
    def sign(self, message: bytes) -> bytes:
        """The 64-byte deterministic Ed25519 signature of ``message``."""
        return self._key.sign(check_bytes("message", message))

    def __repr__(self) -> str:
        return f"SigningKey(public={self.verify_key().to_bytes().hex()[:16]}...)"
