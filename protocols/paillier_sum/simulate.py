"""One in-process round of Paillier summation: a thin call of
:func:`protocols.simulator.run` with :data:`PAILLIER_SUM`."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from secagg import paillier
from secagg.errors import EncodingError, ParameterError
from secagg.paillier import ClipPolicy, EncryptionMode
from secagg.paillier.threshold import KeyShare
from secagg.sign import SigningKey, VerifyKey

from ..results import AggregationResult
from ..simulator import run
from .config import Mode, TrustLayout
from .dealing import ThresholdPublic
from .protocol import PAILLIER_SUM

__all__ = ["simulate"]


def _renamed(old: str, new: str, old_value: Any, new_value: Any, default: Any) -> Any:
    if old_value is None:
        return default if new_value is None else new_value
    warnings.warn(f"simulate({old}=...) is deprecated; use {new}=", DeprecationWarning,
                  stacklevel=3)
    if new_value is not None and new_value != old_value:
        raise ParameterError(f"{new}={new_value!r} and {old}={old_value!r} disagree")
    return old_value


def simulate(
    inputs: Mapping[int, npt.ArrayLike],
    *,
    key_bits: int = paillier.DEFAULT_KEY_BITS,
    trust: TrustLayout | None = None,
    dropouts: Mapping[str, Iterable[int]] | None = None,
    seed: int | None = None,
    clip: float = 1.0,
    value_bits: int = 16,
    max_summands: int | None = None,
    min_clients: int | None = None,
    encryption: EncryptionMode | None = None,
    keypair: tuple[Any, Any] | None = None,
    workers: int | None = None,
    round: int | None = None,
    on_clip: ClipPolicy = "clip",
    insecure_allow_small_key_for_tests: bool = False,
    layout: TrustLayout | None = None,
    mode: EncryptionMode | None = None,
    decryptors: int | None = None,
    decrypt_threshold: int | None = None,
    committee: Iterable[int] | None = None,
    public: ThresholdPublic | None = None,
    key_shares: Mapping[int, KeyShare] | None = None,
    security: Mode = "semi-honest",
    registry: Mapping[int, VerifyKey] | None = None,
    signing_keys: Mapping[int, SigningKey] | None = None,
) -> AggregationResult:
    """Run one round in process, every message through its byte codec.

    Mirrors :func:`protocols.secagg.simulate`: ``inputs`` maps client id (any
    int in ``[0, 2^64)``) to a float vector; ``dropouts`` maps a round name
    (``"setup"``, ``"encrypt"``, ``"decrypt"``) to clients that vanish from
    that round on. Returns an :class:`AggregationResult` with the float64
    ``sum`` of the included clients' clipped, quantised inputs, ``raw_sum``
    (exact int64), who is ``included`` / ``dropped``, and per-party figures
    (keys: client ids, ``"server"`` (the aggregator), and ``"key_holder"``
    in the key-holder layout or ``"dealer"`` in the threshold layout).

    ``trust`` is the trust layout (``"key-holder"``, default,
    ``"cross-silo"`` or ``"threshold"``); ``encryption`` the encryption path (``"online"``,
    default, ``"pool"``, ``"crt"`` cross-silo only, ``"djn"``). ``layout=``
    and ``mode=`` are their deprecated old names. ``keypair`` reuses a
    ``phe`` key pair (generating one takes a while); otherwise one of
    ``key_bits`` bits is generated. ``seed`` is accepted for symmetry with
    SecAgg (deliveries are in a fixed order); keys and encryption always use
    the OS generator. ``"pool"`` and ``"djn"`` precompute per client while
    the session is built.

    ``trust="threshold"``: a committee of ``decryptors`` clients (default:
    all; drawn from ``seed``, or given as ``committee``) holds
    ``decrypt_threshold``-of-``decryptors`` key shares (default t: a
    majority) from a trusted dealer; ``keypair`` must be a safe-prime pair
    (:func:`secagg.paillier.threshold.generate_keypair`). Decryptors that
    vanish (``dropouts={"decrypt": [...]}``) are tolerated while t answer;
    fewer raise :class:`~secagg.errors.AbortError`. With a key dealt out of
    band (:func:`~protocols.paillier_sum.deal_committee`): ``public`` (the
    committee and t come from it) and every member's ``key_shares``; no
    dealer party runs.

    ``workers`` are the processes the Paillier arithmetic may use (the pool
    precomputation and the decryption; None: the library's default). The
    clients themselves run in this process: their key material has no state
    codec to cross into a worker, unlike SecAgg's clients.

    ``security="malicious"`` (threshold only) runs the malicious-aggregator
    mode (``mode="malicious"`` of the configuration; ``mode=`` here is the
    deprecated name of ``encryption=``): clients sign their inputs with
    ``signing_keys`` (fresh ones if neither they nor ``registry`` are given)
    and every decryptor checks them and recomputes the sum. ``min_clients``
    defaults to 1, and to 2 in that mode; ``round`` to 0, and in that mode to
    a fresh random round number.
    """
    trust = _renamed("layout", "trust", layout, trust, "key-holder")
    encryption = _renamed("mode", "encryption", mode, encryption, "online")
    if not inputs:
        raise ParameterError("inputs must hold at least one client")
    shapes = {np.shape(v) for v in inputs.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise EncodingError(f"inputs must be 1-D vectors of one length, got shapes "
                            f"{sorted(shapes)}")
    return run(PAILLIER_SUM, inputs, dropouts=dropouts, seed=seed, keypair=keypair,
               key_bits=key_bits, trust=trust, encryption=encryption, clip=clip,
               value_bits=value_bits, max_summands=max_summands, min_clients=min_clients,
               round=round, workers=workers, client_pool=False, on_clip=on_clip,
               insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests,
               decryptors=decryptors, decrypt_threshold=decrypt_threshold, committee=committee,
               public=public, key_shares=key_shares, mode=security, registry=registry,
               signing_keys=signing_keys)
