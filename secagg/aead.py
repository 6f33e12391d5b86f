"""Authenticated encryption with associated data: AES-256-GCM.

``seal(key, plaintext, ad)`` returns ``nonce (12) || ciphertext || tag (16)``
with a fresh random nonce; ``open(key, sealed, ad)`` returns the plaintext or
raises :class:`IntegrityError`. Bind everything that gives a ciphertext its
meaning (round, sender, receiver, purpose) into ``ad``: a ciphertext moved to
another context then fails to open. Random 96-bit nonces are safe for up to
2^32 messages under one key; protocol keys here seal a handful.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ._util import check_bytes
from .errors import IntegrityError
from .profiling import CRYPTO, timed

__all__ = ["KEY_BYTES", "NONCE_BYTES", "OVERHEAD", "TAG_BYTES", "open", "seal"]

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
#: Bytes a sealed message adds to its plaintext.
OVERHEAD = NONCE_BYTES + TAG_BYTES


@timed(CRYPTO)
def seal(key: bytes, plaintext: bytes, associated_data: bytes = b"") -> bytes:
    """Encrypt and authenticate ``plaintext`` under a 32-byte ``key``."""
    key = check_bytes("key", key, KEY_BYTES)
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, check_bytes("plaintext", plaintext),
                                       check_bytes("associated_data", associated_data))


@timed(CRYPTO)
def open(key: bytes, sealed: bytes, associated_data: bytes = b"") -> bytes:
    """Decrypt ``sealed`` or raise :class:`IntegrityError` (bad tag, key, ad or length)."""
    key = check_bytes("key", key, KEY_BYTES)
    sealed = check_bytes("sealed", sealed)
    if len(sealed) < OVERHEAD:
        raise IntegrityError(f"sealed message of {len(sealed)} bytes is shorter than {OVERHEAD}")
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:],
                                   check_bytes("associated_data", associated_data))
    except InvalidTag:
        raise IntegrityError("AEAD tag check failed: wrong key, context or tampered data") from None
