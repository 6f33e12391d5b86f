"""Pairwise-mask secure aggregation: Bonawitz et al. (CCS 2017) and SecAgg+
(Bell et al., CCS 2020), as sans-I/O state machines.

The server learns the modular sum of the inputs of the clients whose masked
inputs it accepted, and that set, and nothing else, even when clients drop
out mid-round (as long as ``t`` members of every neighbourhood remain).

::

    from protocols.secagg import simulate
    result = simulate({1: x1, 2: x2, 3: x3}, dropouts={"masked_input": [3]})
    result.sum, result.included          # x1 + x2, {1, 2}

Client ids are any ints in ``[0, 2^64)`` (0 and 64-bit node ids included);
the configuration maps them to internal indices 1..n and binds the map into
its digest.

:data:`SECAGG` (complete graph) and :data:`SECAGG_PLUS` are
:class:`~protocols.core.ProtocolDescriptor` s: a transport builds a
:class:`~protocols.core.Session` with ``make_session``, carries the bytes of
``codec(config)`` between the parties, ships the configuration with
``config_to_bytes`` and restores a saved client with ``restore_client``.
"""

from __future__ import annotations

from .client import SecAggClient
from .config import (
    MODES,
    ROUNDS,
    Mode,
    SecAggConfig,
    consistency_quorum,
    derive_malicious_parameters,
    derive_parameters,
    guarantees,
    rounds_for,
)
from .messages import (
    SERVER,
    AdvertiseKeys,
    ConsistencyRequest,
    ConsistencySignature,
    KeyBroadcast,
    KeyEntry,
    MaskedInput,
    Message,
    RevealedShare,
    SealedShare,
    SecAggCodec,
    ShareForward,
    ShareKeys,
    UnmaskRequest,
    UnmaskResponse,
    decode,
    encode,
)
from .partition import SecurityTarget
from .protocol import SECAGG, SECAGG_PLUS
from .server import SecAggServer, ServerResult
from .simulate import default_encoder, simulate

__all__ = [
    "MODES",
    "ROUNDS",
    "SECAGG",
    "SECAGG_PLUS",
    "SERVER",
    "AdvertiseKeys",
    "ConsistencyRequest",
    "ConsistencySignature",
    "KeyBroadcast",
    "KeyEntry",
    "MaskedInput",
    "Message",
    "Mode",
    "RevealedShare",
    "SealedShare",
    "SecAggClient",
    "SecAggCodec",
    "SecAggConfig",
    "SecAggServer",
    "SecurityTarget",
    "ServerResult",
    "ShareForward",
    "ShareKeys",
    "UnmaskRequest",
    "UnmaskResponse",
    "consistency_quorum",
    "decode",
    "default_encoder",
    "derive_malicious_parameters",
    "derive_parameters",
    "encode",
    "guarantees",
    "rounds_for",
    "simulate",
]
