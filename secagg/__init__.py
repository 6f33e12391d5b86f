"""Cryptographic and numeric primitives for secure aggregation.

``from secagg import FixedPointEncoder, shamir, prg, paillier``
"""

from __future__ import annotations

from . import aead, errors, kex, prg, shamir, sign, wire
from .encoding import FixedPointEncoder
from .errors import (
    AbortError,
    EncodingError,
    IntegrityError,
    ParameterError,
    PrivacyBudgetExceeded,
    ProtocolError,
    SecAggError,
)

__version__ = "0.1.0"

__all__ = [
    "AbortError",
    "EncodingError",
    "FixedPointEncoder",
    "IntegrityError",
    "ParameterError",
    "PrivacyBudgetExceeded",
    "ProtocolError",
    "SecAggError",
    "aead",
    "errors",
    "kex",
    "paillier",
    "prg",
    "shamir",
    "sign",
    "wire",
]


def __getattr__(name: str) -> object:
    # paillier pulls in phe and gmpy2; import it on first use.
    if name == "paillier":
        import importlib

        return importlib.import_module(".paillier", __name__)
    raise AttributeError(f"module 'secagg' has no attribute {name!r}")
