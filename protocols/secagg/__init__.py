"""Pairwise-mask secure aggregation: Bonawitz et al. (CCS 2017) and SecAgg+
(Bell et al., CCS 2020), as sans-I/O state machines.

The server learns the modular sum of the inputs of the clients whose masked
inputs it accepted, and that set, and nothing else, even when clients drop
out mid-round (as long as ``t`` members of every neighbourhood remain).

::

    from protocols.secagg import simulate
    result = simulate({1: x1, 2: x2, 3: x3}, dropouts={"masked_input": [3]})
    result.sum, result.included          # x1 + x2, {1, 2}

For a real transport, build a :class:`SecAggConfig`, one :class:`SecAggClient`
per client and a :class:`SecAggServer`, and carry the bytes of
:func:`encode` / :func:`decode` between them.
"""

from __future__ import annotations

from .client import SecAggClient
from .config import (
    MODES,
    ROUNDS,
    Mode,
    SecAggConfig,
    consistency_quorum,
    derive_parameters,
    guarantees,
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
    ShareForward,
    ShareKeys,
    UnmaskRequest,
    UnmaskResponse,
    decode,
    encode,
)
from .server import SecAggServer, ServerResult
from .simulate import default_encoder, simulate

__all__ = [
    "MODES",
    "ROUNDS",
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
    "SecAggConfig",
    "SecAggServer",
    "ServerResult",
    "ShareForward",
    "ShareKeys",
    "UnmaskRequest",
    "UnmaskResponse",
    "consistency_quorum",
    "decode",
    "default_encoder",
    "derive_parameters",
    "encode",
    "guarantees",
    "simulate",
]
