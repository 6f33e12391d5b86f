"""Paillier summation as a :class:`~protocols.core.ProtocolDescriptor`.

Session parameters (as :func:`protocols.paillier_sum.simulate` takes them):
``keypair`` (a ``phe`` key pair; generated with ``key_bits`` otherwise),
``trust`` (``"key-holder"`` or ``"cross-silo"``), ``encryption``
(``"online"``, ``"pool"``, ``"crt"``, ``"djn"``), ``clip``, ``value_bits``,
``max_summands``, ``min_clients``, ``round``, ``workers``, ``on_clip`` and
``insecure_allow_small_key_for_tests``. In the key-holder layout the key
holder is ``session.others["key_holder"]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from secagg import paillier
from secagg.errors import AbortError, ParameterError
from secagg.paillier import ClipPolicy, DJNTable, EncryptionMode, ObfuscatorPool

from ..core import CoordinatorResult, ProtocolDescriptor, Session
from .config import ROUNDS, PaillierSumConfig, TrustLayout
from .messages import KEY_HOLDER, PaillierSumCodec
from .parties import PaillierSumAggregator, PaillierSumClient, PaillierSumKeyHolder

__all__ = ["PAILLIER_SUM"]


def _build(
    client_ids: tuple[int, ...], dimension: int, *, seed: int | None = None,
    keypair: tuple[Any, Any] | None = None,
    key_bits: int = paillier.DEFAULT_KEY_BITS,
    trust: TrustLayout = "key-holder",
    encryption: EncryptionMode = "online",
    clip: float = 1.0,
    value_bits: int = 16,
    max_summands: int | None = None,
    min_clients: int = 1,
    round: int = 0,
    workers: int | None = None,
    on_clip: ClipPolicy = "clip",
    insecure_allow_small_key_for_tests: bool = False,
) -> Session:
    del seed  # nothing public to derive: keys and obfuscators come from the OS
    insecure = insecure_allow_small_key_for_tests
    config = PaillierSumConfig(round=round, clients=frozenset(client_ids), dimension=dimension,
                               trust_layout=trust, clip=clip, value_bits=value_bits,
                               max_summands=max_summands, min_clients=min_clients)
    cross = trust == "cross-silo"
    if encryption == "crt" and not cross:
        raise ParameterError("encryption 'crt' needs the private key: use trust='cross-silo'")
    if keypair is None:
        keypair = paillier.generate_keypair(key_bits, insecure_allow_small_key_for_tests=insecure)
    pk, sk = keypair
    packing = config.packing(pk, insecure_allow_small_key_for_tests=insecure)
    clients: dict[int, Any] = {}
    for cid in config.client_ids:
        extra: dict[str, Any] = {}
        if encryption == "pool":
            extra["pool"] = ObfuscatorPool.precompute(
                pk, packing.ciphertexts, private_key=sk if cross else None, workers=workers,
                insecure_allow_small_key_for_tests=insecure)
        elif encryption == "djn":
            extra["djn"] = DJNTable(pk, insecure_allow_small_key_for_tests=insecure)
        clients[cid] = PaillierSumClient(
            cid, config, keypair=keypair if cross else None,
            expected_public_key=None if cross else pk, encryption=encryption,
            workers=workers, on_clip=on_clip, insecure_allow_small_key_for_tests=insecure,
            **extra)
    aggregator = PaillierSumAggregator(config, expected_public_key=pk,
                                       insecure_allow_small_key_for_tests=insecure)
    others: dict[str, Any] = {}
    if not cross:
        others[KEY_HOLDER] = PaillierSumKeyHolder(
            config, pk, sk, workers=workers, insecure_allow_small_key_for_tests=insecure)

    def collect() -> CoordinatorResult | None:
        """Cross-silo: every client that decrypted must hold the same sum.
        (Reads the session's parties, so a transport may swap them.)"""
        agg: Any = session.coordinator
        if not cross:
            result: CoordinatorResult | None = agg.result
            return result
        if agg.state != "done":
            return None
        now: dict[int, Any] = session.clients
        raws = [(c, now[c].raw_result) for c in config.client_ids
                if now[c].raw_result is not None]
        if not raws:
            raise AbortError("no party was left to decrypt the sum")
        first = raws[0][1]
        for c, other in raws[1:]:
            if not np.array_equal(first, other):
                raise AbortError(f"client {c} decrypted a different sum")
        return CoordinatorResult(raw_sum=first, included=agg.included)

    session = Session(config=config, coordinator=aggregator, clients=clients,
                      encoder=config.quantizer, others=others, rounds=ROUNDS, collect=collect,
                      codec_options={"insecure_allow_small_key_for_tests": True} if insecure
                      else {})
    return session


def _codec(config: PaillierSumConfig, *,
           insecure_allow_small_key_for_tests: bool = False) -> PaillierSumCodec:
    return PaillierSumCodec(
        config, insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests)


def _restore(config: PaillierSumConfig, data: bytes, **local: Any) -> PaillierSumClient:
    return PaillierSumClient.restore(config, data, **local)


#: Paillier summation in either trust layout (``trust=`` session parameter).
PAILLIER_SUM = ProtocolDescriptor(
    name="paillier", rounds=ROUNDS, input_round="encrypt", build=_build, make_codec=_codec,
    dump_config=PaillierSumConfig.to_bytes, load_config=PaillierSumConfig.from_bytes,
    restore=_restore)
