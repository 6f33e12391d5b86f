"""Paillier summation in the ``"threshold"`` trust layout: a committee of
clients holds t-of-n key shares from a trusted dealer; the aggregator
combines proven partial decryptions and never can decrypt on its own.

Small safe-prime keys (256 bits) under the test-only flag keep this fast.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols import paillier_sum as ps
from protocols.core import SERVER
from protocols.paillier_sum.parties import decryption_context
from protocols.simulator import run
from protocols.testing.network import observable_state
from secagg import kex, paillier
from secagg.errors import (
    AbortError,
    EncodingError,
    ParameterError,
    ProtocolError,
    SecAggError,
)
from secagg.paillier import threshold as tp

INSECURE = {"insecure_allow_small_key_for_tests": True}


@pytest.fixture(scope="module")
def tkp() -> tuple[Any, Any]:
    """A 256-bit safe-prime key pair (test only)."""
    return tp.generate_keypair(256, **INSECURE)


def _inputs(n: int, d: int = 6, ids: list[int] | None = None) -> dict[int, np.ndarray]:
    ids = ids if ids is not None else list(range(n))
    return {u: np.random.default_rng(u + 7).uniform(-1, 1, d) for u in ids}


def _expected_raw(inputs: dict[int, np.ndarray], included: frozenset[int],
                  clip: float = 1.0, value_bits: int = 16) -> np.ndarray:
    q = ps.PaillierQuantizer(clip, value_bits)
    return sum(q.encode(inputs[u]) for u in sorted(included))


def _sim(tkp: Any, inputs: dict[int, np.ndarray], **kw: Any) -> Any:
    return ps.simulate(inputs, trust="threshold", keypair=tkp, **INSECURE, **kw)


# -- any t of n ------------------------------------------------------------------------
@pytest.mark.parametrize(("n", "t"), [(3, 2), (5, 3), (4, 1), (4, 4)])
def test_any_t_of_n_decryptors_give_the_exact_sum(tkp: Any, n: int, t: int) -> None:
    inputs = _inputs(n)
    for drop in ([], list(range(n - t)), list(range(t, n))):
        res = _sim(tkp, inputs, decrypt_threshold=t, dropouts={"decrypt": drop}, seed=1)
        # decryptors that vanish at "decrypt" already sent their input
        assert res.included == frozenset(inputs)
        np.testing.assert_array_equal(res.raw_sum, _expected_raw(inputs, res.included))
        assert set(res.figures) == {*inputs, "server", "dealer"}


def test_t_minus_one_decryptors_abort_with_nothing(tkp: Any) -> None:
    inputs = _inputs(5)
    with pytest.raises(AbortError, match=r"2 valid partial decryption.*3 needed"):
        _sim(tkp, inputs, decrypt_threshold=3, dropouts={"decrypt": [0, 3, 4]}, seed=2)
    # by hand: the aggregator holds no result after the abort
    holder: list[Any] = []
    with pytest.raises(AbortError):
        run(_capturing(holder), inputs, dropouts={"decrypt": [1, 2, 3]}, trust="threshold",
            keypair=tkp, decrypt_threshold=3, seed=2, **INSECURE)
    agg = holder[0].coordinator
    assert agg.result is None and agg.raw_result is None and agg.state == "aborted"
    assert len(agg.valid_decryptors) == 2


def test_a_committee_drawn_from_the_seed(tkp: Any) -> None:
    ids = [3, 10, 2**64 - 1, 77, 5, 1 << 40]
    inputs = _inputs(0, ids=ids)
    holder: list[Any] = []
    res = run(_capturing(holder), inputs, trust="threshold", keypair=tkp, decryptors=3,
              decrypt_threshold=2, seed=11, **INSECURE)
    cfg = holder[0].config
    assert cfg.committee == ps.choose_committee(ids, 3, _seed_bytes(11))
    assert len(cfg.committee) == 3 and cfg.decrypt_threshold == 2
    np.testing.assert_array_equal(res.raw_sum, _expected_raw(inputs, res.included))
    # a committee member that vanishes is tolerated while t answer
    member = sorted(cfg.committee)[0]
    res = _sim(tkp, inputs, decryptors=3, decrypt_threshold=2, seed=11,
               dropouts={"decrypt": [member]})
    np.testing.assert_array_equal(res.raw_sum, _expected_raw(inputs, res.included))
    with pytest.raises(AbortError):
        _sim(tkp, inputs, decryptors=3, decrypt_threshold=2, seed=11,
             dropouts={"decrypt": sorted(cfg.committee)[:2]})
    # non-members may vanish at "decrypt" without effect
    others = sorted(set(ids) - cfg.committee)
    res = _sim(tkp, inputs, decryptors=3, decrypt_threshold=2, seed=11,
               dropouts={"decrypt": others})
    assert res.included == frozenset(ids)


def _seed_bytes(seed: int) -> bytes:
    from protocols.core import derive_seed
    return derive_seed(seed, "paillier/committee")


def test_explicit_committee_and_parameter_checks(tkp: Any) -> None:
    inputs = _inputs(4)
    res = _sim(tkp, inputs, committee=[1, 3], decrypt_threshold=2, dropouts={"encrypt": [0]})
    assert res.included == {1, 2, 3}
    with pytest.raises(ParameterError, match="decryptors=3 but the committee"):
        _sim(tkp, inputs, committee=[1, 3], decryptors=3)
    with pytest.raises(ParameterError, match="decrypt_threshold=3 is outside"):
        _sim(tkp, inputs, committee=[1, 3], decrypt_threshold=3)
    with pytest.raises(ParameterError, match="decryptors=5 is outside"):
        _sim(tkp, inputs, decryptors=5)
    with pytest.raises(ParameterError, match="belong to trust='threshold'"):
        ps.simulate(inputs, keypair=paillier.generate_keypair(256, **INSECURE),
                    decryptors=2, **INSECURE)
    phe_keys = paillier.generate_keypair(256, **INSECURE)
    with pytest.raises(ParameterError, match="safe prime"):
        ps.simulate(inputs, trust="threshold", keypair=phe_keys, **INSECURE)
    with pytest.raises(ParameterError, match="2048"):
        ps.simulate(inputs, trust="threshold", keypair=tkp)


# -- malicious decryptors ------------------------------------------------------------------
class CorruptingDecryptor(ps.PaillierSumClient):
    """Answers with a wrong partial decryption (one value squared) and the
    original proof: a malicious decryptor."""

    def _on_threshold_sum(self, msg: ps.EncryptedSum) -> list[Any]:
        out = super()._on_threshold_sum(msg)
        assert self._tkey is not None
        p = tp.PartialDecryption.from_bytes(out[0].message.payload, self._tkey)
        n2 = int(self._tkey.public_key.n) ** 2
        bad = (p.values[0] * p.values[0] % n2, *p.values[1:])
        forged = dataclasses.replace(p, values=bad)
        return [dataclasses.replace(out[0], message=ps.DecryptionShare(
            self.client_id, forged.to_bytes()))]


class WrongContextDecryptor(ps.PaillierSumClient):
    """An honest exponentiation, but proven for another round's context."""

    def _on_threshold_sum(self, msg: ps.EncryptedSum) -> list[Any]:
        out = super()._on_threshold_sum(msg)
        assert self._share is not None and self.layout is not None
        vec = paillier.EncryptedVector.from_bytes(msg.payload, self._pk, **INSECURE)
        other = tp.partial_decrypt(self._share, vec, context=b"another round")
        return [dataclasses.replace(out[0], message=ps.DecryptionShare(
            self.client_id, other.to_bytes()))]


class GarbageDecryptor(ps.PaillierSumClient):
    """Answers with bytes that are no partial decryption at all."""

    def _on_threshold_sum(self, msg: ps.EncryptedSum) -> list[Any]:
        out = super()._on_threshold_sum(msg)
        return [dataclasses.replace(out[0], message=ps.DecryptionShare(
            self.client_id, b"SGTP\x01" + bytes(40)))]


def _capturing(holder: list[Any], swap: dict[int, type] | None = None) -> Any:
    """PAILLIER_SUM whose sessions are kept in ``holder`` and whose clients in
    ``swap`` run another class (a planted malicious decryptor)."""
    def build(*args: Any, **kw: Any) -> Any:
        session = ps.PAILLIER_SUM.build(*args, **kw)
        for u, cls in (swap or {}).items():
            session.clients[u].__class__ = cls
        holder.append(session)
        return session
    return dataclasses.replace(ps.PAILLIER_SUM, build=build)


def _drive(session: Any) -> list[tuple[Any, SecAggError]]:
    """Run ``session`` as a network transport would: FIFO through the codec;
    a refused message is logged (returned) and the run goes on; the
    coordinator's round is closed when nothing is left to deliver."""
    codec = ps.PAILLIER_SUM.codec(session.config, **session.codec_options)
    queue: deque[tuple[Any, bytes]] = deque()
    refusals: list[tuple[Any, SecAggError]] = []

    def send(out: list[Any]) -> None:
        queue.extend((e.receiver, codec.encode(e.message)) for e in out)

    send(session.coordinator.start())
    for party in session.others.values():
        send(party.start())
    for c in session.clients.values():
        send(c.start())
    while True:
        while queue:
            receiver, data = queue.popleft()
            try:
                send(session.party(receiver).handle(codec.decode(data)))
            except AbortError:
                raise
            except SecAggError as exc:
                refusals.append((receiver, exc))
        if session.coordinator.round is None:
            return refusals
        send(session.coordinator.close_round())


def _evil_session(tkp: Any, n: int, swap: dict[int, type], **kw: Any) -> Any:
    s = ps.PAILLIER_SUM.make_session(range(n), 6, trust="threshold", keypair=tkp, seed=4,
                                     **INSECURE, **kw)
    for u, c in s.clients.items():
        c.set_input(s.encoder.encode(_inputs(n)[u]))
    for u, cls in swap.items():
        s.clients[u].__class__ = cls
    return s


@pytest.mark.parametrize("evil", [CorruptingDecryptor, WrongContextDecryptor, GarbageDecryptor])
def test_a_malicious_decryptor_is_caught_named_and_dropped(tkp: Any, evil: type) -> None:
    inputs = _inputs(5, 6)
    # decryptor 0 answers first (clients are served in id order) and lies
    s = _evil_session(tkp, 5, {0: evil}, decrypt_threshold=3)
    refusals = _drive(s)
    assert [(r, type(e)) for r, e in refusals] == [(SERVER, ps.FaultyDecryptorError)]
    err = refusals[0][1]
    assert isinstance(err, ps.FaultyDecryptorError)
    assert err.decryptor == 0 and err.faulty == (1,) and "decryptor 0" in str(err)
    agg = s.coordinator
    np.testing.assert_array_equal(agg.result.raw_sum, _expected_raw(inputs, agg.included))
    assert 0 not in agg.valid_decryptors and len(agg.valid_decryptors) == 3
    # two liars among four decryptors with t = 3: two honest remain, abort, nothing out
    s = _evil_session(tkp, 5, {0: evil, 2: evil}, committee=[0, 1, 2, 3],
                      decrypt_threshold=3)
    s.clients[3].__class__ = _Silent
    with pytest.raises(AbortError, match=r"no valid answer from decryptors \[0, 2, 3\]"):
        _drive(s)
    assert s.coordinator.result is None
    # the in-process simulator reports the refusal as raised
    with pytest.raises(ps.FaultyDecryptorError, match="decryptor 0"):
        run(_capturing([], {0: evil}), inputs, trust="threshold", keypair=tkp,
            decrypt_threshold=3, seed=4, **INSECURE)


class _Silent(ps.PaillierSumClient):
    """A decryptor that never answers the sum."""

    def _on_threshold_sum(self, msg: ps.EncryptedSum) -> list[Any]:
        return []


def test_corrupted_partial_bytes_on_the_wire_are_caught(tkp: Any) -> None:
    """Every single-byte change of a decryption share's payload is refused
    naming its decryptor, leaves the aggregator unchanged, and never yields a
    wrong sum."""
    cfg, _agg, shares, vec_msg = _summed_by_hand(tkp, 4, 2)
    codec = ps.PaillierSumCodec(cfg, **INSECURE)
    good = shares[0]
    rng = np.random.default_rng(0)
    for pos in rng.choice(len(good.payload), 25, replace=False):
        a = _copy_aggregator(tkp, cfg, vec_msg)
        payload = bytearray(good.payload)
        payload[pos] ^= 1 << int(rng.integers(8))
        before = observable_state(a)
        with pytest.raises(ps.FaultyDecryptorError) as info:
            a.handle(codec.decode(codec.encode(
                ps.DecryptionShare(good.sender, bytes(payload)))))
        assert info.value.decryptor == good.sender
        assert observable_state(a) == before
        a.handle(shares[1])
        assert a.result is None  # one valid of t = 2
        a.handle(good)  # the honest answer still counts
        np.testing.assert_array_equal(a.result.raw_sum, agg_expected(cfg))


# -- by hand ---------------------------------------------------------------------------
def agg_expected(cfg: ps.PaillierSumConfig) -> np.ndarray:
    return _expected_raw(_inputs(len(cfg.clients), cfg.dimension), cfg.clients)


def _session(tkp: Any, n: int, t: int, **kw: Any) -> Any:
    return ps.PAILLIER_SUM.make_session(range(n), 6, trust="threshold", keypair=tkp,
                                        decrypt_threshold=t, seed=5, **INSECURE, **kw)


def _summed_by_hand(tkp: Any, n: int, t: int) -> tuple[Any, Any, list[Any], Any]:
    """Drive one session by hand until every decryptor answered; return the
    config, the aggregator (in "summed"), the decryption shares and the sum."""
    s = _session(tkp, n, t)
    cfg = s.config
    q = s.encoder
    inputs = _inputs(n)
    for u, c in s.clients.items():
        c.set_input(q.encode(inputs[u]))
    agg = s.coordinator
    sent = s.others[ps.DEALER].start()
    outs = []
    for e in sent:
        if e.receiver == SERVER:
            agg.handle(e.message)
        else:
            outs += s.clients[e.receiver].handle(e.message)
    for e in outs:
        res = agg.handle(e.message)
    sums = res
    assert agg.state == "summed" and {e.receiver for e in sums} == set(cfg.committee)
    shares = [s.clients[e.receiver].handle(e.message)[0].message for e in sums]
    _SUMS[id(cfg)] = (sent, outs)
    return cfg, agg, shares, sums[0].message


_SUMS: dict[int, Any] = {}


def _copy_aggregator(tkp: Any, cfg: Any, vec_msg: Any) -> Any:
    """A fresh aggregator brought to "summed" with the same inputs."""
    sent, outs = _SUMS[id(cfg)]
    a = ps.PaillierSumAggregator(cfg, expected_public_key=tkp[0], **INSECURE)
    for e in sent:
        if e.receiver == SERVER:
            a.handle(e.message)
    for e in outs:
        a.handle(e.message)
    assert a.state == "summed"
    return a


def test_replays_and_strangers_are_refused_and_change_nothing(tkp: Any) -> None:
    cfg, agg, shares, _vec_msg = _summed_by_hand(tkp, 4, 3)
    agg.handle(shares[0])
    before = observable_state(agg)
    with pytest.raises(ProtocolError, match="already answered"):
        agg.handle(shares[0])
    with pytest.raises(ProtocolError, match="not a decryptor"):
        agg.handle(ps.DecryptionShare(99, shares[1].payload))
    with pytest.raises(ProtocolError, match="key holder"):
        agg.handle(ps.DecryptedSum(frozenset(cfg.clients), np.zeros(6, np.int64)))
    # another decryptor's valid partial under its own name: faulty (wrong index)
    with pytest.raises(ps.FaultyDecryptorError, match="answers for share 2, not 3"):
        agg.handle(ps.DecryptionShare(shares[2].sender, shares[1].payload))
    assert observable_state(agg) == before
    agg.handle(shares[1])
    agg.handle(shares[3])
    np.testing.assert_array_equal(agg.result.raw_sum, agg_expected(cfg))
    # a late answer after the combination is ignored, a repeat still refused
    with pytest.raises(ProtocolError, match="already answered"):
        agg.handle(shares[1])


def test_a_decryptor_answers_once_and_only_sums_of_min_clients(tkp: Any) -> None:
    s = ps.PAILLIER_SUM.make_session(range(4), 6, trust="threshold", keypair=tkp,
                                     decrypt_threshold=2, min_clients=3, seed=5, **INSECURE)
    for u, c in s.clients.items():
        c.set_input(s.encoder.encode(_inputs(4)[u]))
    setups = {e.receiver: e.message for e in s.others[ps.DEALER].start()}
    c0 = s.clients[0]
    enc = c0.handle(setups[0])[0].message
    pk = setups[SERVER].key.public_key
    vec = paillier.EncryptedVector.from_bytes(enc.payload, pk, **INSECURE)
    with pytest.raises(ProtocolError, match="refusing to decrypt a sum of 1 inputs"):
        c0.handle(ps.EncryptedSum(frozenset({1}), vec.to_bytes()))
    assert c0.state == "sent"
    agg_vec = paillier.aggregate([vec, vec, vec])
    out = c0.handle(ps.EncryptedSum(frozenset({0, 1, 2}), agg_vec.to_bytes()))
    assert isinstance(out[0].message, ps.DecryptionShare)
    with pytest.raises(ProtocolError, match="already answered one sum"):
        c0.handle(ps.EncryptedSum(frozenset({0, 1, 2}), agg_vec.to_bytes()))


def test_shares_reach_only_their_decryptor_sealed(tkp: Any) -> None:
    s = _session(tkp, 4, 2, committee=[1, 2])
    setups = {e.receiver: e.message for e in s.others[ps.DEALER].start()}
    assert setups[SERVER].sealed_share == b"" and setups[0].sealed_share == b""
    assert setups[1].sealed_share and setups[2].sealed_share
    raw1 = s.clients[1]  # no plaintext share on the wire
    assert tp.KeyShare.__name__ not in repr(setups[1])
    for e_bytes in (setups[1].sealed_share,):
        assert b"SGTS" not in e_bytes
    # decryptor 2's sealed share handed to decryptor 1: refused, 1 unchanged
    swapped = dataclasses.replace(setups[1], sealed_share=setups[2].sealed_share)
    with pytest.raises(ProtocolError, match="cannot open its key share"):
        raw1.handle(swapped)
    assert raw1.state == "new" and raw1._share is None
    # a non-member sent a share, a member sent none, the aggregator sent one
    with pytest.raises(ProtocolError, match="not a decryptor but was sent a key share"):
        s.clients[0].handle(setups[1])
    with pytest.raises(ProtocolError, match="received no key share"):
        raw1.handle(setups[0])
    with pytest.raises(ProtocolError, match="sent the aggregator a key share"):
        s.coordinator.handle(setups[1])
    # a setup from another config (another round) cannot be opened either
    other = _session(tkp, 4, 2, committee=[1, 2], round=1)
    other_setups = {e.receiver: e.message for e in other.others[ps.DEALER].start()}
    with pytest.raises(ProtocolError):
        raw1.handle(dataclasses.replace(setups[1],
                                        sealed_share=other_setups[1].sealed_share))
    assert raw1.state == "new"
    raw1.set_input(np.zeros(6, np.int64))
    out = raw1.handle(setups[1])
    assert raw1._share is not None and raw1._share.index == 1 and out
    # the dealer deals once and forgets its shares
    dealer = s.others[ps.DEALER]
    assert dealer._shares is None
    with pytest.raises(SecAggError):
        dealer.start()
    with pytest.raises(ProtocolError, match="dealer does not accept"):
        dealer.handle(setups[0])


def test_setup_checks(tkp: Any) -> None:
    s = _session(tkp, 3, 2)
    setups = {e.receiver: e.message for e in s.others[ps.DEALER].start()}
    other = tp.deal(tkp, 3, 3, **INSECURE)
    wrong_t = dataclasses.replace(setups[SERVER], key=other.key)
    with pytest.raises(ProtocolError, match="not the one the configuration names"):
        s.coordinator.handle(wrong_t)
    # same n and t, fresh shares and verification keys: refused by the config's key digest
    redealt = tp.deal(tkp, 3, 2, **INSECURE)
    for party in (s.coordinator, s.clients[0]):
        with pytest.raises(ProtocolError, match="not the one the configuration names"):
            party.handle(dataclasses.replace(setups[SERVER], key=redealt.key))
    # a dealer key or a share sent to a party that holds no share
    with pytest.raises(ProtocolError, match="dealer key"):
        s.coordinator.handle(dataclasses.replace(setups[SERVER], dealer_key=bytes(31) + b"1"))
    assert s.coordinator.state == "setup"
    with pytest.raises(ProtocolError, match="comes from the dealer"):
        s.coordinator.handle(ps.PublicSetup(0, tkp[0], setups[SERVER].layout))


# -- the -2^63 bound (issue: np.abs leaves it negative) ---------------------------------------
def test_a_decrypted_sum_of_minus_two_to_the_63_is_refused() -> None:
    kp = paillier.generate_keypair(256, **INSECURE)
    s = ps.PAILLIER_SUM.make_session(range(2), 3, keypair=kp, **INSECURE)
    for u, c in s.clients.items():
        c.set_input(np.zeros(3, np.int64))
    agg = s.coordinator
    setups = s.others[ps.KEY_HOLDER].start()
    agg.handle(setups[-1].message)
    for e in setups[:-1]:
        for f in s.clients[e.receiver].handle(e.message):
            agg.handle(f.message)
    assert agg.state == "summed"
    raw = np.array([0, -(2**63), 0], dtype=np.int64)
    with pytest.raises(ProtocolError, match="past the largest possible"):
        agg.handle(ps.DecryptedSum(agg.included, raw))
    assert agg.result is None and agg.state == "summed"
    with pytest.raises(ProtocolError, match="past the largest possible"):
        agg.handle(ps.DecryptedSum(agg.included, np.array([2**63 - 1, 0, 0], np.int64)))
    bound = 2 * agg.layout.max_int
    agg.handle(ps.DecryptedSum(agg.included, np.array([-bound, bound, 0], np.int64)))
    assert agg.result is not None


# -- state export / restore ------------------------------------------------------------------
def test_decryptor_state_round_trips_with_the_share_still_sealed(tkp: Any) -> None:
    s = _session(tkp, 3, 2)
    cfg = s.config
    inputs = _inputs(3)
    for u, c in s.clients.items():
        c.set_input(s.encoder.encode(inputs[u]))
    setups = {e.receiver: e.message for e in s.others[ps.DEALER].start()}
    agg = s.coordinator
    agg.handle(setups[SERVER])
    fresh = s.clients[0].export_state()
    keys = {u: c._decryptor_key for u, c in s.clients.items()}
    restored = {}
    for u in range(3):
        c = ps.PAILLIER_SUM.restore_client(cfg, fresh if u == 0 else s.clients[u].export_state(),
                                           decryptor_key=keys[u], **INSECURE)
        (enc,) = c.handle(setups[u])
        saved = c.export_state()
        assert share_bytes_absent(saved, c)
        c = ps.PAILLIER_SUM.restore_client(cfg, saved, decryptor_key=keys[u], **INSECURE)
        assert c.round == "decrypt" and c._share is not None
        restored[u] = c
        out = agg.handle(enc.message)
    for e in out:
        agg.handle(restored[e.receiver].handle(e.message)[0].message)
    np.testing.assert_array_equal(agg.result.raw_sum, _expected_raw(inputs, cfg.clients))
    # the share cannot be restored without its decryptor's key
    c1 = restored[1]
    with pytest.raises(SecAggError):
        ps.PAILLIER_SUM.restore_client(cfg, c1.export_state(),
                                       decryptor_key=kex.PrivateKey.generate(), **INSECURE)
    with pytest.raises(ParameterError, match="needs its X25519"):
        ps.PAILLIER_SUM.restore_client(cfg, c1.export_state(), **INSECURE)
    # another configuration refuses the state
    other = _session(tkp, 3, 2, round=9).config
    with pytest.raises(ParameterError, match="another configuration"):
        ps.PAILLIER_SUM.restore_client(other, c1.export_state(), decryptor_key=keys[1],
                                       **INSECURE)


def share_bytes_absent(saved: bytes, client: Any) -> bool:
    """The saved state never holds the plaintext share."""
    s = client._share.share
    return s.to_bytes((s.bit_length() + 7) // 8, "big") not in saved


# -- configuration and codec -----------------------------------------------------------------
def test_config_round_trips_and_other_layouts_keep_their_bytes(tkp: Any) -> None:
    cfg = ps.PaillierSumConfig(round=3, clients=frozenset({5, 9, 2**64 - 1}), dimension=4,
                               trust_layout="threshold", committee=frozenset({9, 2**64 - 1}),
                               decrypt_threshold=2, threshold_key_digest=bytes(range(32)))
    data = cfg.to_bytes()
    assert data[4] == 2 and ps.PaillierSumConfig.from_bytes(data) == cfg
    kh = ps.PaillierSumConfig(round=3, clients=frozenset({5, 9}), dimension=4)
    assert kh.to_bytes()[4] == 1 and ps.PaillierSumConfig.from_bytes(kh.to_bytes()) == kh
    assert cfg.decryptor_index(2**64 - 1) == 2
    bad = [
        dict(trust_layout="threshold"),
        dict(trust_layout="threshold", committee=frozenset({5}), decrypt_threshold=2),
        dict(trust_layout="threshold", committee=frozenset({7}), decrypt_threshold=1),
        dict(committee=frozenset({5}), decrypt_threshold=1),
        dict(decrypt_threshold=1),
        dict(threshold_key_digest=bytes(32)),
        dict(trust_layout="threshold", committee=frozenset({5}), decrypt_threshold=1,
             threshold_key_digest=b"short"),
    ]
    for kw in bad:
        with pytest.raises(ParameterError):
            ps.PaillierSumConfig(round=0, clients=frozenset({5, 9}), dimension=4, **kw)
    # a v2 body under the v1 version byte, or a threshold layout under v1, is refused
    with pytest.raises(SecAggError):
        ps.PaillierSumConfig.from_bytes(data[:4] + b"\x01" + data[5:])
    v2_kh = bytearray(data)
    v2_kh[4 + 1 + 8] = 0  # layout code -> key-holder under version 2
    with pytest.raises(SecAggError):
        ps.PaillierSumConfig.from_bytes(bytes(v2_kh))


def _valid_messages(tkp: Any) -> tuple[Any, list[bytes]]:
    cfg, _agg, shares, _vec_msg = _summed_by_hand(tkp, 3, 2)
    codec = ps.PaillierSumCodec(cfg, **INSECURE)
    sent, _ = _SUMS[id(cfg)]
    setup_msgs = [e.message for e in sent]
    return codec, [codec.encode(m) for m in (*setup_msgs[:2], setup_msgs[-1], *shares)]


def test_new_messages_round_trip_and_are_bound(tkp: Any) -> None:
    codec, blobs = _valid_messages(tkp)
    for b in blobs:
        m = codec.decode(b)
        assert codec.encode(m) == b
    other = ps.PaillierSumCodec(dataclasses.replace(codec.config, round=1), **INSECURE)
    for b in blobs:
        with pytest.raises(SecAggError, match="another configuration"):
            other.decode(b)
    strict = ps.PaillierSumCodec(codec.config)  # without the test-only flag
    with pytest.raises(SecAggError, match="2048"):
        strict.decode(blobs[0])
    setup = codec.decode(blobs[0])
    with pytest.raises(EncodingError):
        codec.encode(dataclasses.replace(setup, dealer_key=b"short"))
    with pytest.raises(EncodingError):
        codec.encode(dataclasses.replace(setup, sender=SERVER))
    with pytest.raises(EncodingError):
        codec.encode(ps.DecryptionShare(99, b"x"))
    # a threshold setup under a key-holder configuration is refused
    kh = ps.PaillierSumCodec(ps.PaillierSumConfig(round=0, clients=frozenset({0, 1, 2}),
                                                  dimension=6), **INSECURE)
    with pytest.raises(SecAggError):
        kh.decode(blobs[0])


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_threshold_messages_raise_only_library_errors(tkp: Any,
                                                             data: st.DataObject) -> None:
    codec, blobs = _FUZZ.get("v") or _FUZZ.setdefault("v", _valid_messages(tkp))
    blob = bytearray(data.draw(st.sampled_from(blobs)))
    kind = data.draw(st.sampled_from(["flip", "truncate", "extend", "splice"]))
    if kind == "flip":
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(blob) - 1))
            blob[i] ^= data.draw(st.integers(1, 255))
    elif kind == "truncate":
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    elif kind == "extend":
        blob += data.draw(st.binary(min_size=1, max_size=16))
    else:
        i = data.draw(st.integers(0, len(blob)))
        blob[i:i] = data.draw(st.binary(max_size=8))
    try:
        m = codec.decode(bytes(blob))
    except SecAggError:
        return
    assert codec.encode(m)  # whatever decodes re-encodes


_FUZZ: dict[str, Any] = {}


@settings(max_examples=60, deadline=None)
@given(blob=st.binary(max_size=200), magic=st.sampled_from([b"PSTS", b"PSPD"]))
def test_random_bytes_with_the_new_magics_are_refused(blob: bytes, magic: bytes) -> None:
    cfg = ps.PaillierSumConfig(round=0, clients=frozenset({0, 1}), dimension=2,
                               trust_layout="threshold", committee=frozenset({0, 1}),
                               decrypt_threshold=1, threshold_key_digest=bytes(32))
    with pytest.raises(SecAggError):
        ps.PaillierSumCodec(cfg, **INSECURE).decode(magic + b"\x02" + cfg.digest + blob)


# -- hypothesis over (n, t, dropout sets) -----------------------------------------------------
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_threshold_outcome_follows_the_count_rule(tkp: Any, data: st.DataObject) -> None:
    n = data.draw(st.integers(2, 6), label="clients")
    d = data.draw(st.integers(1, n), label="decryptors")
    t = data.draw(st.integers(1, d), label="t")
    ids = list(range(n))
    committee = sorted(data.draw(st.sets(st.sampled_from(ids), min_size=d, max_size=d)))
    enc_drop = data.draw(st.sets(st.sampled_from(ids), max_size=n - 1), label="encrypt drops")
    dec_drop = data.draw(st.sets(st.sampled_from(ids)), label="decrypt drops")
    inputs = _inputs(n, 3)
    alive = set(committee) - enc_drop - dec_drop
    kw = dict(committee=committee, decrypt_threshold=t,
              dropouts={"encrypt": sorted(enc_drop), "decrypt": sorted(dec_drop)})
    if len(alive) >= t:
        res = _sim(tkp, inputs, **kw)
        assert res.included == frozenset(ids) - enc_drop
        np.testing.assert_array_equal(res.raw_sum, _expected_raw(inputs, res.included))
    else:
        with pytest.raises(AbortError):
            _sim(tkp, inputs, **kw)


def test_decryption_context_binds_the_config(tkp: Any) -> None:
    a = _session(tkp, 3, 2).config
    b = _session(tkp, 3, 2, round=1).config
    assert decryption_context(a) != decryption_context(b)
    assert a.digest in decryption_context(a)
