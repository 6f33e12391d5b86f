"""Small internal helpers shared by the primitives."""

from __future__ import annotations

from .errors import ParameterError


def check_bytes(name: str, value: object, length: int | None = None) -> bytes:
    """Return ``value`` as bytes or raise ``ParameterError`` naming it."""
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise ParameterError(f"{name} must be bytes, got {type(value).__name__}")
    b = bytes(value)
    if length is not None and len(b) != length:
        raise ParameterError(f"{name} must be {length} bytes, got {len(b)}")
    return b


def check_int(name: str, value: object, lo: int, hi: int | None = None) -> int:
    """Return ``value`` as an int in [lo, hi] or raise ``ParameterError``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParameterError(f"{name} must be an int, got {type(value).__name__}")
    if value < lo or (hi is not None and value > hi):
        rng = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ParameterError(f"{name}={value} is outside {rng}")
    return value
