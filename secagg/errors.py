"""The library's single exception tree.

Every failure a caller can meet is a subclass of :class:`SecAggError`, so
``except SecAggError`` catches all of them and nothing else. Messages name
the offending value and the limit it broke.
"""

from __future__ import annotations

__all__ = [
    "AbortError",
    "EncodingError",
    "IntegrityError",
    "LocalProtocolError",
    "ParameterError",
    "PrivacyBudgetExceeded",
    "ProtocolError",
    "RemoteProtocolError",
    "SecAggError",
    "UnclippedGradientError",
]


class SecAggError(Exception):
    """Root of every error raised by ``secagg``, ``dp`` and ``protocols``."""


class ParameterError(SecAggError, ValueError):
    """Unsafe or inconsistent parameters (key too small, threshold > n, ...)."""


class EncodingError(SecAggError, ValueError):
    """A value cannot be encoded or decoded: NaN, Inf, wrong dtype or shape,
    past the clipping range, or a sum that overflowed the encoder's headroom."""


class IntegrityError(SecAggError):
    """Authentication failed: a bad AEAD tag, a bad signature, a ciphertext
    outside its group, or data that was tampered with."""


class ProtocolError(SecAggError):
    """A message is malformed, out of order, from the wrong round, sender or
    receiver, has the wrong shape, or asks for something a party must refuse."""


class LocalProtocolError(ProtocolError):
    """The caller misused a party: a verb out of order (``start`` twice, an
    input after it was masked), a message object of the wrong protocol handed
    in, an unknown round name. Fix the calling code; no peer is at fault."""


class RemoteProtocolError(ProtocolError):
    """A peer's message is malformed, out of order, from the wrong round,
    sender or receiver, or asks for something an honest party must refuse.
    The receiving party refused it and is unchanged."""


class AbortError(SecAggError):
    """Too few parties remain to finish the protocol; nothing is output."""


class PrivacyBudgetExceeded(SecAggError):
    """A party refuses to spend more privacy budget than it was given."""


class UnclippedGradientError(SecAggError, RuntimeError):
    """A DP-SGD optimizer step was attempted on gradients that were not
    clipped per sample (with ghost clipping: ``backward`` was called on a
    loss other than the one the trainer computes). The step is refused."""
