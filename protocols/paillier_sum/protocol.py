"""Paillier summation as a :class:`~protocols.core.ProtocolDescriptor`.

Session parameters (as :func:`protocols.paillier_sum.simulate` takes them):
``keypair`` (a ``phe`` key pair; generated with ``key_bits`` otherwise),
``trust`` (``"key-holder"``, ``"cross-silo"`` or ``"threshold"``), ``encryption``
(``"online"``, ``"pool"``, ``"crt"``, ``"djn"``), ``clip``, ``value_bits``,
``max_summands``, ``min_clients``, ``round``, ``workers``, ``on_clip`` and
``insecure_allow_small_key_for_tests``. In the key-holder layout the key
holder is ``session.others["key_holder"]``.

``trust="threshold"`` also takes ``decryptors`` (committee size, default
every client), ``decrypt_threshold`` (t, default a majority of the
committee) and ``committee`` (explicit client ids; otherwise drawn from the
clients with the public ``seed``, or with fresh OS randomness when no seed
is given). ``keypair`` must then be a safe-prime pair from
:func:`secagg.paillier.threshold.generate_keypair` (generated with
``key_bits`` otherwise: slow at 2048 bits); the dealer is
``session.others["dealer"]``. Each decryptor gets a fresh X25519 key whose
public half the dealer knows (registration is outside the protocol).

A key dealt out of band (:func:`~protocols.paillier_sum.dealing.deal_committee`,
for transports whose server must never meet a dealer): ``public=`` the
:class:`~protocols.paillier_sum.dealing.ThresholdPublic` material (the
committee and t come from it) and, for in-process clients, ``key_shares=``
(each member's share by client id; without it the session holds the
coordinator only). There is no dealer party: the aggregator starts in the
``"encrypt"`` round and relays the public setup, and each client checks it
against its own copy (``PaillierSumClient(threshold_key=, key_share=)``).

``mode="malicious"`` (threshold only; against an aggregator that may
deviate): ``signing_keys`` (each in-process client's Ed25519
:class:`~secagg.sign.SigningKey` by client id; fresh ones are generated when
neither it nor ``registry`` is given) and ``registry`` (client id ->
:class:`~secagg.sign.VerifyKey`; derived from ``signing_keys`` if omitted;
alone it builds a coordinator-only session on a key dealt out of band).
``min_clients`` defaults to 1, and to 2 in malicious mode; ``round``
defaults to 0, and in malicious mode to a fresh 63-bit number from
:mod:`secrets` (signatures bind the configuration digest: a configuration
run twice would accept the first run's signed inputs).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from secagg import kex, paillier
from secagg.errors import AbortError, ParameterError
from secagg.paillier import ClipPolicy, DJNTable, EncryptionMode, ObfuscatorPool
from secagg.paillier import threshold as tp
from secagg.sign import SigningKey, VerifyKey

from ..core import CoordinatorResult, ProtocolDescriptor, Session, derive_seed
from .config import MAX_DECRYPTORS, MODES, ROUNDS, Mode, PaillierSumConfig, TrustLayout
from .dealing import ThresholdPublic, shares_for
from .messages import DEALER, KEY_HOLDER, PaillierSumCodec
from .parties import (
    PaillierSumAggregator,
    PaillierSumClient,
    PaillierSumDealer,
    PaillierSumKeyHolder,
)

__all__ = ["PAILLIER_SUM", "choose_committee"]


def choose_committee(client_ids: Iterable[int], size: int, seed: bytes) -> frozenset[int]:
    """``size`` clients drawn from a public 32-byte ``seed``: the ids with the
    smallest ``SHA-256(seed | id)``. Anyone holding the seed recomputes it;
    it is public, so it hides nothing about who decrypts."""
    ids = sorted(set(client_ids))
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= min(
            len(ids), MAX_DECRYPTORS):
        raise ParameterError(f"decryptors={size!r} is outside [1, "
                             f"{min(len(ids), MAX_DECRYPTORS)}] for {len(ids)} clients")
    if not isinstance(seed, bytes) or len(seed) != 32:
        raise ParameterError("the committee seed must be 32 bytes")
    rank = sorted(ids, key=lambda u: hashlib.sha256(
        b"secagg/paillier_sum/committee/v1" + seed + u.to_bytes(8, "big")).digest())
    return frozenset(rank[:size])


def _identities(
    client_ids: tuple[int, ...], mode: Mode, registry: Mapping[int, VerifyKey] | None,
    signing_keys: Mapping[int, SigningKey] | None, *, in_process: bool,
) -> tuple[Mapping[int, VerifyKey] | None, Mapping[int, SigningKey]]:
    """The configuration's registry and the in-process clients' signing keys."""
    if mode not in MODES:
        raise ParameterError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "semi-honest":
        if registry is not None or signing_keys is not None:
            raise ParameterError("registry and signing_keys belong to mode='malicious'")
        return None, {}
    if signing_keys is None and registry is None:
        signing_keys = {c: SigningKey.generate() for c in client_ids}
    if signing_keys is None:
        if in_process:
            raise ParameterError("mode='malicious' with in-process clients needs their "
                                 "signing_keys (or neither registry nor signing_keys, to draw "
                                 "fresh ones)")
        return registry, {}
    keys = dict(signing_keys)
    if set(keys) != set(client_ids) or not all(isinstance(k, SigningKey)
                                               for k in keys.values()):
        raise ParameterError("signing_keys must hold one secagg.sign.SigningKey per client id")
    derived = {c: k.verify_key() for c, k in keys.items()}
    if registry is not None and dict(registry) != derived:
        raise ParameterError("the registry does not match the clients' signing_keys")
    return derived, keys


def _build(
    client_ids: tuple[int, ...], dimension: int, *, seed: int | None = None,
    keypair: tuple[Any, Any] | None = None,
    key_bits: int = paillier.DEFAULT_KEY_BITS,
    trust: TrustLayout = "key-holder",
    encryption: EncryptionMode = "online",
    clip: float = 1.0,
    value_bits: int = 16,
    max_summands: int | None = None,
    min_clients: int | None = None,
    round: int | None = None,
    workers: int | None = None,
    on_clip: ClipPolicy = "clip",
    insecure_allow_small_key_for_tests: bool = False,
    decryptors: int | None = None,
    decrypt_threshold: int | None = None,
    committee: Iterable[int] | None = None,
    public: ThresholdPublic | None = None,
    key_shares: Mapping[int, tp.KeyShare] | None = None,
    mode: Mode = "semi-honest",
    registry: Mapping[int, VerifyKey] | None = None,
    signing_keys: Mapping[int, SigningKey] | None = None,
) -> Session:
    insecure = insecure_allow_small_key_for_tests
    thresh = trust == "threshold"
    if mode == "malicious" and not thresh:
        raise ParameterError(f"mode='malicious' needs trust='threshold', not {trust!r}: only "
                             "its decryptors check every input and recompute the sum")
    if min_clients is None:
        min_clients = 2 if mode == "malicious" else 1
    if round is None:  # malicious mode: a fresh round, so old signed inputs never verify
        round = secrets.randbits(63) if mode == "malicious" else 0
    if public is not None or key_shares is not None:
        if public is None:
            raise ParameterError("key_shares need the public material they belong to (public=)")
        if not thresh:
            raise ParameterError(f"public= (a key dealt out of band) belongs to "
                                 f"trust='threshold', not {trust!r}")
        given = {k: v for k, v in (("keypair", keypair), ("decryptors", decryptors),
                                   ("decrypt_threshold", decrypt_threshold),
                                   ("committee", committee)) if v is not None}
        if given:
            raise ParameterError(f"with public= the key, the committee and its threshold come "
                                 f"from the public material; drop {sorted(given)}")
        reg, keys = _identities(client_ids, mode, registry, signing_keys,
                                in_process=key_shares is not None)
        return _build_dealt(client_ids, dimension, public, key_shares, encryption=encryption,
                            clip=clip, value_bits=value_bits, max_summands=max_summands,
                            min_clients=min_clients, round=round, workers=workers,
                            on_clip=on_clip, insecure=insecure, mode=mode, registry=reg,
                            signing_keys=keys)
    if not thresh and (decryptors, decrypt_threshold, committee) != (None, None, None):
        raise ParameterError("decryptors, decrypt_threshold and committee belong to "
                             f"trust='threshold', not {trust!r}")
    reg, keys = _identities(client_ids, mode, registry, signing_keys, in_process=True)
    chosen: frozenset[int] = frozenset()
    t = 0
    if thresh:
        if committee is not None:
            chosen = frozenset(int(i) for i in committee)
            if decryptors is not None and decryptors != len(chosen):
                raise ParameterError(f"decryptors={decryptors} but the committee names "
                                     f"{len(chosen)} clients")
        else:
            size = len(client_ids) if decryptors is None else decryptors
            committee_seed = derive_seed(seed, "paillier/committee") if seed is not None else (
                os.urandom(32))
            chosen = choose_committee(client_ids, size, committee_seed)
        t = len(chosen) // 2 + 1 if decrypt_threshold is None else decrypt_threshold
        # checked here so that a bad committee is named before any key work
        PaillierSumConfig(round=round, clients=frozenset(client_ids), dimension=dimension,
                          trust_layout=trust, committee=chosen, decrypt_threshold=t,
                          threshold_key_digest=bytes(32), min_clients=min_clients, mode=mode,
                          registry=reg)
    cross = trust == "cross-silo"
    if encryption == "crt" and not cross:
        raise ParameterError("encryption 'crt' needs the private key: use trust='cross-silo'")
    if keypair is None:
        gen = tp.generate_keypair if thresh else paillier.generate_keypair
        keypair = gen(key_bits, insecure_allow_small_key_for_tests=insecure)
    pk, sk = keypair
    dealt = (tp.deal((pk, sk), len(chosen), t, insecure_allow_small_key_for_tests=insecure)
             if thresh else None)
    if thresh:
        sk = None  # the dealer's: no client ever holds the private key
    config = PaillierSumConfig(round=round, clients=frozenset(client_ids), dimension=dimension,
                               trust_layout=trust, clip=clip, value_bits=value_bits,
                               max_summands=max_summands, min_clients=min_clients,
                               committee=chosen, decrypt_threshold=t,
                               threshold_key_digest=dealt.key.digest if dealt else b"",
                               mode=mode, registry=reg)
    decryptor_keys = {cid: kex.PrivateKey.generate() for cid in chosen}
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
            decryptor_key=decryptor_keys.get(cid), signing_key=keys.get(cid), **extra)
    aggregator = PaillierSumAggregator(config, expected_public_key=pk,
                                       insecure_allow_small_key_for_tests=insecure)
    others: dict[str, Any] = {}
    if dealt is not None:
        others[DEALER] = PaillierSumDealer(
            config, dealt, {c: k.public_key() for c, k in decryptor_keys.items()},
            insecure_allow_small_key_for_tests=insecure)
    elif not cross:
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


def _build_dealt(
    client_ids: tuple[int, ...], dimension: int, public: ThresholdPublic,
    key_shares: Mapping[int, tp.KeyShare] | None, *, encryption: EncryptionMode,
    clip: float, value_bits: int, max_summands: int | None, min_clients: int, round: int,
    workers: int | None, on_clip: ClipPolicy, insecure: bool, mode: Mode = "semi-honest",
    registry: Mapping[int, VerifyKey] | None = None,
    signing_keys: Mapping[int, SigningKey] | None = None,
) -> Session:
    """A threshold session on a key dealt out of band (:mod:`.dealing`): no
    dealer party; the aggregator holds the public material only and relays
    its public setup. ``key_shares`` None: a coordinator-only session (the
    clients run elsewhere and read their own shares); otherwise every
    member's share, for in-process clients."""
    if not isinstance(public, ThresholdPublic):
        raise ParameterError(f"public must be a ThresholdPublic, got {type(public).__name__}")
    if encryption == "crt":
        raise ParameterError("encryption 'crt' needs the private key: use trust='cross-silo'")
    missing = sorted(set(public.committee) - set(client_ids))
    if missing:
        raise ParameterError(f"committee members {missing} are not clients of the session; "
                             "list every member (one that is offline counts as dropped)")
    config = PaillierSumConfig(round=round, clients=frozenset(client_ids), dimension=dimension,
                               trust_layout="threshold", clip=clip, value_bits=value_bits,
                               max_summands=max_summands, min_clients=min_clients,
                               committee=frozenset(public.committee),
                               decrypt_threshold=public.threshold,
                               threshold_key_digest=public.key.digest, mode=mode,
                               registry=registry)
    pk = public.public_key
    clients: dict[int, Any] = {}
    if key_shares is not None:
        shares = shares_for(public, key_shares)
        lacking = sorted(set(public.committee) - set(shares))
        if lacking:
            raise ParameterError(f"no key share for committee members {lacking}")
        packing = config.packing(pk, insecure_allow_small_key_for_tests=insecure)
        for cid in config.client_ids:
            extra: dict[str, Any] = {}
            if encryption == "pool":
                extra["pool"] = ObfuscatorPool.precompute(
                    pk, packing.ciphertexts, workers=workers,
                    insecure_allow_small_key_for_tests=insecure)
            elif encryption == "djn":
                extra["djn"] = DJNTable(pk, insecure_allow_small_key_for_tests=insecure)
            clients[cid] = PaillierSumClient(
                cid, config, encryption=encryption, workers=workers, on_clip=on_clip,
                insecure_allow_small_key_for_tests=insecure, threshold_key=public.key,
                key_share=shares.get(cid), signing_key=(signing_keys or {}).get(cid), **extra)
    aggregator = PaillierSumAggregator(config, threshold_key=public.key,
                                       insecure_allow_small_key_for_tests=insecure)
    return Session(config=config, coordinator=aggregator, clients=clients,
                   encoder=config.quantizer, rounds=ROUNDS,
                   codec_options={"insecure_allow_small_key_for_tests": True} if insecure
                   else {})


def _codec(config: PaillierSumConfig, *,
           insecure_allow_small_key_for_tests: bool = False) -> PaillierSumCodec:
    return PaillierSumCodec(
        config, insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests)


def _restore(config: PaillierSumConfig, data: bytes, **local: Any) -> PaillierSumClient:
    return PaillierSumClient.restore(config, data, **local)


#: Paillier summation in any trust layout (``trust=`` session parameter).
PAILLIER_SUM = ProtocolDescriptor(
    name="paillier", rounds=ROUNDS, input_round="encrypt", build=_build, make_codec=_codec,
    dump_config=PaillierSumConfig.to_bytes, load_config=PaillierSumConfig.from_bytes,
    restore=_restore)
