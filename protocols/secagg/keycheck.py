"""Checks on advertised X25519 public keys that need no secret.

A client that advertises a low-order public key (every agreement with it
gives the all-zero secret, which X25519 implementations refuse) or a copy of
another client's key would make every honest neighbour refuse the key
broadcast. The server refuses such an advertisement (the client is dropped
at the advertise round) and a client that is shown one anyway excludes that
neighbour instead of aborting.
"""

from __future__ import annotations

__all__ = ["is_low_order"]

_P = 2**255 - 19
#: u-coordinates (mod p) of the points of order 1, 2, 4 and 8 on Curve25519
#: (Bernstein's list, as in libsodium's blocklist).
_SMALL_ORDER_U = frozenset({
    0, 1, _P - 1,
    325606250916557431795983626356110631294008115727848805560023387167927233504,
    39382357235489614581723060781553021112529911719440698176882885853963445705823,
})


def is_low_order(public: bytes) -> bool:
    """Whether a 32-byte X25519 public key (RFC 7748 encoding: little-endian
    u-coordinate, top bit ignored, reduced mod p) is a point of small order."""
    u = int.from_bytes(public, "little") & ((1 << 255) - 1)
    return u % _P in _SMALL_ORDER_U
