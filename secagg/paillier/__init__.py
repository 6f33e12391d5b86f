"""Packed (batched) Paillier encryption of vectors on ``phe`` keys.

Clients encrypt fixed-point vectors under an additively homomorphic Paillier
key; anyone holding only the public key can add ciphertext vectors; only the
private key holder decrypts, and only what it is given (in the protocols,
the sum). Packing follows BatchCrypt (Zhang et al., USENIX ATC 2020): many
fixed-point slots with headroom share one plaintext, with an offset encoding
that is exact for any mix of signs up to the layout's summand capacity.

Quick tour::

    from secagg import paillier

    pk, sk = paillier.generate_keypair(2048)          # phe keys; 2048 minimum
    layout = paillier.PackingLayout.create(pk, dimension=10_000, clip=1.0,
                                           value_bits=16, capacity=100)
    a = paillier.encrypt(pk, layout, x)               # online r^n
    b = paillier.encrypt(pk, layout, y, private_key=sk)   # CRT (key holder)
    total = paillier.aggregate([a, b])                # or a + b
    paillier.decrypt(sk, total)                       # float64, == x + y quantised
    data = total.to_bytes()                           # never pickle
    paillier.EncryptedVector.from_bytes(data, pk)     # validates everything

Threshold decryption (t of n decryptors, trusted dealer; no single party
can decrypt) is in :mod:`secagg.paillier.threshold`::

    pk, tkey, shares = paillier.threshold.deal(2048, parties=5, threshold=3)
    parts = [paillier.threshold.partial_decrypt(s, total) for s in shares[:3]]
    paillier.threshold.combine(tkey, total, parts)   # == paillier.decrypt(sk, total)

Security notes (key sizes, the DJN assumption, what the aggregator can do)
are in SECURITY.md.
"""

from __future__ import annotations

from . import threshold
from ._keys import (
    DEFAULT_KEY_BITS,
    MAX_KEY_BITS,
    MIN_KEY_BITS,
    SUPPORTED_KEY_BITS,
    PaillierPrivateKey,
    PaillierPublicKey,
    check_private_key,
    check_public_key,
    fingerprint,
    generate_keypair,
    private_key_from_bytes,
    private_key_to_bytes,
    public_key_from_bytes,
    public_key_to_bytes,
)
from ._obfuscators import DJNTable, ObfuscatorPool
from ._packing import ClipPolicy, PackingLayout
from ._vector import (
    EncryptedVector,
    EncryptionMode,
    aggregate,
    decrypt,
    decrypt_integers,
    encrypt,
    raw_decrypt,
    raw_encrypt,
)

__all__ = [
    "DEFAULT_KEY_BITS",
    "MAX_KEY_BITS",
    "MIN_KEY_BITS",
    "SUPPORTED_KEY_BITS",
    "ClipPolicy",
    "DJNTable",
    "EncryptedVector",
    "EncryptionMode",
    "ObfuscatorPool",
    "PackingLayout",
    "PaillierPrivateKey",
    "PaillierPublicKey",
    "aggregate",
    "check_private_key",
    "check_public_key",
    "decrypt",
    "decrypt_integers",
    "encrypt",
    "fingerprint",
    "generate_keypair",
    "private_key_from_bytes",
    "private_key_to_bytes",
    "public_key_from_bytes",
    "public_key_to_bytes",
    "raw_decrypt",
    "raw_encrypt",
    "threshold",
]
