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
from .errors import IntegrityError, ParameterError
from .profiling import CRYPTO, timed

__all__ = ["KEY_BYTES", "MAX_AD_BYTES", "MAX_PLAINTEXT_BYTES", "NONCE_BYTES", "OVERHEAD",
           "TAG_BYTES", "open", "seal"]

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
#: Bytes a sealed message adds to its plaintext.
OVERHEAD = NONCE_BYTES + TAG_BYTES
#: Largest plaintext and associated data (``cryptography`` takes at most 2^31 - 1
#: bytes per input, and the tag travels with the ciphertext).
MAX_PLAINTEXT_BYTES = 2**31 - 1 - TAG_BYTES
MAX_AD_BYTES = 2**31 - 1


@timed(CRYPTO)
def seal(key: bytes, plaintext: bytes, associated_data: bytes = b"") -> bytes:
    """Encrypt and authenticate ``plaintext`` under a 32-byte ``key``."""
    key = check_bytes("key", key, KEY_BYTES)
    plaintext = check_bytes("plaintext", plaintext)
    associated_data = check_bytes("associated_data", associated_data)
    if len(plaintext) > MAX_PLAINTEXT_BYTES:
        raise ParameterError(f"plaintext of {len(plaintext)} bytes is longer than "
                             f"{MAX_PLAINTEXT_BYTES}")
    if len(associated_data) > MAX_AD_BYTES:
        raise ParameterError(f"associated data of {len(associated_data)} bytes is longer "
                             f"than {MAX_AD_BYTES}")
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)


@timed(CRYPTO)
def open(key: bytes, sealed: bytes, associated_data: bytes = b"") -> bytes:
    """Decrypt ``sealed`` or raise :class:`IntegrityError` (bad tag, key, ad or length)."""
    key = check_bytes("key", key, KEY_BYTES)
    sealed = check_bytes("sealed", sealed)
    associated_data = check_bytes("associated_data", associated_data)
    if len(sealed) < OVERHEAD:
        raise IntegrityError(f"sealed message of {len(sealed)} bytes is shorter than {OVERHEAD}")
    if len(sealed) > OVERHEAD + MAX_PLAINTEXT_BYTES:
        raise IntegrityError(f"sealed message of {len(sealed)} bytes is longer than "
                             f"{OVERHEAD + MAX_PLAINTEXT_BYTES}: seal() never makes one")
    if len(associated_data) > MAX_AD_BYTES:
        raise IntegrityError(f"associated data of {len(associated_data)} bytes is longer "
                             f"than {MAX_AD_BYTES}: seal() never accepts it")
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated_data)
    except InvalidTag:
        raise IntegrityError("AEAD tag check failed: wrong key, context or tampered data") from None
