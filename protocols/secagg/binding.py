"""Context strings that bind keys, ciphertexts and signatures to one round.

Everything a party derives, seals or signs carries the session id, the
configuration digest, the protocol round and the parties involved, so a
value lifted from another session, configuration, round or pair of parties
fails to verify (AEAD tag, signature) or yields unrelated keys (HKDF).
Parties are named by their internal index (:meth:`SecAggConfig.index_of`,
1..n); the digest binds the id -> index map.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from secagg import kex

from .config import ROUNDS, SecAggConfig

_ix = SecAggConfig.index_of

__all__ = [
    "PAIRWISE_MASK",
    "SHARE_ENCRYPTION",
    "advertise_payload",
    "consistency_payload",
    "kex_info",
    "mask_label",
    "share_ad",
]

#: Purposes of the two X25519 key pairs (Bonawitz et al.: c for channels, s for masks).
SHARE_ENCRYPTION = "share-encryption"
PAIRWISE_MASK = "pairwise-mask"


def _head(config: SecAggConfig, what: bytes) -> bytes:
    return b"secagg/" + what + b"/v1" + config.digest + struct.pack(">Q", config.session_id)


def kex_info(config: SecAggConfig, purpose: str, a: int, b: int) -> bytes:
    """HKDF info for the seed shared by clients ``a`` and ``b`` (order-free)."""
    return kex.context(f"secagg/{purpose}/{config.digest.hex()}", config.session_id,
                       _ix(config, a), _ix(config, b))


def share_ad(config: SecAggConfig, sender: int, receiver: int) -> bytes:
    """AEAD associated data of a share ciphertext from ``sender`` to ``receiver``."""
    return _head(config, b"share-ad") + struct.pack(
        ">BII", ROUNDS.index("share_keys"), _ix(config, sender), _ix(config, receiver)
    )


def mask_label(config: SecAggConfig, kind: str) -> bytes:
    """PRG label of the self mask (``"self"``) or a pairwise mask (``"pair"``)."""
    return _head(config, b"mask/" + kind.encode())


def advertise_payload(config: SecAggConfig, client: int, c_public: bytes,
                      s_public: bytes) -> bytes:
    """What a client signs in the advertise round (malicious mode)."""
    return (_head(config, b"advertise") + struct.pack(">BI", ROUNDS.index("advertise"),
                                                            _ix(config, client))
            + c_public + s_public)


def consistency_payload(config: SecAggConfig, survivors: Iterable[int], *,
                        session: bytes) -> bytes:
    """What a client signs in the consistency round: the survivor set U3 and
    the fresh session binding of this run (:mod:`.freshness`)."""
    ids = sorted(_ix(config, u) for u in survivors)
    return (_head(config, b"consistency") + session
            + struct.pack(f">BI{len(ids)}I", ROUNDS.index("consistency"), len(ids), *ids))
