"""Threshold Paillier against a malicious aggregator (``mode="malicious"``).

The aggregator plays the attacker by hand: it has every client's encrypted
input and tries to have the committee decrypt something other than the sum
of at least ``min_clients`` distinct, signed inputs of this configuration.
In semi-honest mode the single-ciphertext attack works (that is why the mode
exists); in malicious mode every variant gets nothing decrypted and leaves
the decryptor unchanged.

Small safe-prime keys (256 bits) under the test-only flag keep this fast.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols import paillier_sum as ps
from protocols.core import SERVER
from protocols.paillier_sum.parties import decryption_context
from protocols.testing.network import observable_state
from secagg import paillier
from secagg.errors import (
    AbortError,
    EncodingError,
    IntegrityError,
    ParameterError,
    ProtocolError,
    SecAggError,
)
from secagg.paillier import threshold as tp
from secagg.sign import SigningKey

INSECURE = {"insecure_allow_small_key_for_tests": True}
D = 5


@pytest.fixture(scope="module")
def tkp() -> tuple[Any, Any]:
    """A 256-bit safe-prime key pair (test only)."""
    return tp.generate_keypair(256, **INSECURE)


def _inputs(ids: list[int], d: int = D) -> dict[int, np.ndarray]:
    return {u: np.random.default_rng(u + 11).uniform(-1, 1, d) for u in ids}


def _expected_raw(inputs: dict[int, np.ndarray], included: frozenset[int]) -> np.ndarray:
    q = ps.PaillierQuantizer(1.0, 16)
    return sum(q.encode(inputs[u]) for u in sorted(included))


class Round:
    """One session driven by hand up to the decryption request: the
    aggregator (the attacker here) holds every client's encrypted input."""

    def __init__(self, tkp: Any, n: int = 5, *, security: str = "malicious",
                 min_clients: int = 2, t: int = 2, committee: list[int] | None = None,
                 signing_keys: dict[int, SigningKey] | None = None, round: int = 0) -> None:
        kw: dict[str, Any] = {"mode": security}
        if signing_keys is not None:
            kw["signing_keys"] = signing_keys
        self.s = ps.PAILLIER_SUM.make_session(
            range(n), D, trust="threshold", keypair=tkp, seed=3, min_clients=min_clients,
            decrypt_threshold=t, committee=committee if committee is not None else [0, 1, 2],
            round=round, **INSECURE, **kw)
        self.cfg = self.s.config
        self.codec = ps.PaillierSumCodec(self.cfg, **INSECURE)
        self.inputs = _inputs(list(range(n)))
        for u, c in self.s.clients.items():
            c.set_input(self.s.encoder.encode(self.inputs[u]))
        self.pk = tkp[0]
        self.agg = self.s.coordinator
        self.enc: dict[int, ps.EncryptedInput] = {}
        for e in self.s.others[ps.DEALER].start():
            if e.receiver == SERVER:
                self.agg.handle(e.message)
            else:
                (out,) = self.s.clients[e.receiver].handle(e.message)
                self.enc[e.receiver] = out.message
        self.layout = self.agg.layout
        self.key = self.agg._tkey

    def member(self, u: int) -> ps.PaillierSumClient:
        return self.s.clients[u]

    def vector(self, u: int) -> paillier.EncryptedVector:
        return paillier.EncryptedVector.from_bytes(self.enc[u].payload, self.pk, **INSECURE)

    def wire(self, msg: Any) -> Any:
        """``msg`` through the codec (what a decryptor receives on a network)."""
        return self.codec.decode(self.codec.encode(msg))

    def decrypt_with(self, members: list[int], msg: Any,
                     product: paillier.EncryptedVector) -> np.ndarray:
        """Have ``members`` answer ``msg`` and combine their partials of ``product``."""
        partials = []
        for u in members:
            (out,) = self.member(u).handle(msg)
            partials.append(tp.PartialDecryption.from_bytes(out.message.payload, self.key))
        return tp.combine_integers(self.key, product, partials,
                                   context=decryption_context(self.cfg))


def _zeros(r: Round) -> paillier.EncryptedVector:
    """The aggregator's own encryption of zeros (it holds the public key)."""
    return paillier.encrypt(r.pk, r.layout, np.zeros(D), **INSECURE)


def _victim_relabelled(r: Round, victim: int) -> tuple[ps.EncryptedSum, Any]:
    """One client's ciphertext times an encryption of zeros, labelled a sum of two."""
    product = paillier.aggregate([r.vector(victim), _zeros(r)])
    return ps.EncryptedSum(frozenset({victim, (victim + 1) % 5}), product.to_bytes()), product


# -- why the mode exists ------------------------------------------------------------------
def test_semi_honest_the_committee_decrypts_one_clients_input(tkp: Any) -> None:
    r = Round(tkp, security="semi-honest")
    victim = 4
    msg, product = _victim_relabelled(r, victim)
    raw = r.decrypt_with([0, 1], r.wire(msg), product)
    q = ps.PaillierQuantizer(1.0, 16)
    np.testing.assert_array_equal(raw, q.encode(r.inputs[victim]))  # the attack works


def _refused(r: Round, u: int, msg: Any, exc: type[SecAggError] = SecAggError,
             match: str | None = None) -> None:
    """Decryptor ``u`` refuses ``msg`` (both as an object and, if it encodes, off the
    wire), answers nothing and stays unchanged."""
    party = r.member(u)
    before = party.export_state(), observable_state(party)
    with pytest.raises(exc, match=match):
        party.handle(msg)
    try:
        data = r.codec.encode(msg)
    except EncodingError:
        data = None
    if data is not None:
        with pytest.raises(SecAggError):
            party.handle(r.codec.decode(data))
    assert (party.export_state(), observable_state(party)) == before
    assert party.state == "sent"


# -- the attacks, in malicious mode -------------------------------------------------------
def test_a_single_relabelled_ciphertext_is_refused(tkp: Any) -> None:
    r = Round(tkp)
    victim = 4
    msg, _ = _victim_relabelled(r, victim)
    _refused(r, 0, msg, ProtocolError, "never the aggregator's sum")
    with pytest.raises(SecAggError, match="malicious"):  # not even encodable, nor decodable
        r.codec.encode(msg)
    semi = ps.PaillierSumCodec(dataclasses.replace(r.cfg, mode="semi-honest", registry=None),
                               **INSECURE)
    with pytest.raises(SecAggError):
        r.codec.decode(semi.encode(msg))
    # the victim's signed input alone: below min_clients
    _refused(r, 0, ps.SignedInputs((r.enc[victim],)), ProtocolError, "sum of 1 inputs")
    # ... padded with the aggregator's own encryption of zeros under another client's name
    fake = ps.EncryptedInput(0, _zeros(r).to_bytes(), r.enc[0].signature)
    _refused(r, 0, ps.SignedInputs((fake, r.enc[victim])), IntegrityError, "client 0")


def test_a_subset_below_min_clients_is_refused(tkp: Any) -> None:
    r = Round(tkp, min_clients=3)
    _refused(r, 1, ps.SignedInputs((r.enc[3], r.enc[4])), ProtocolError, "min_clients is 3")
    _refused(r, 1, ps.SignedInputs(()), ProtocolError, "sum of 0 inputs")


def test_a_duplicated_client_or_ciphertext_is_refused(tkp: Any) -> None:
    r = Round(tkp)
    victim = 4
    _refused(r, 0, ps.SignedInputs((r.enc[victim], r.enc[victim])), ProtocolError,
             "names a client twice")
    # the victim's ciphertext under another id keeps the victim's signature: refused
    moved = dataclasses.replace(r.enc[victim], sender=3)
    _refused(r, 0, ps.SignedInputs((moved, r.enc[victim])), SecAggError)
    # a re-randomised copy of the victim's input, signed by no one
    copy = paillier.aggregate([r.vector(victim), _zeros(r)])
    copy = paillier.EncryptedVector(r.pk, copy.layout, copy.ciphertexts, 1, **INSECURE)
    forged = ps.EncryptedInput(3, copy.to_bytes(), r.enc[3].signature)
    _refused(r, 0, ps.SignedInputs((forged, r.enc[victim])), IntegrityError, "client 3")
    # a colluding client that signs the victim's exact ciphertext as its own: one
    # ciphertext twice (a re-randomised copy it signs is the residue SECURITY.md names)
    colluder = r.member(3)._signing_key
    copied = ps.EncryptedInput(3, r.enc[victim].payload, colluder.sign(
        ps.input_signing_payload(r.cfg, 3, r.enc[victim].payload)))
    _refused(r, 0, ps.SignedInputs((copied, r.enc[victim])), ProtocolError,
             "one ciphertext twice")
    # strangers
    stranger = dataclasses.replace(r.enc[victim], sender=99)
    _refused(r, 0, ps.SignedInputs((r.enc[victim], stranger)), ProtocolError,
             "outside the round")


def test_a_signed_input_claiming_two_summands_is_refused(tkp: Any) -> None:
    """A colluding client signs a vector that claims two summands (its own input
    times the victim's): the decryptor takes single inputs only."""
    r = Round(tkp)
    two = paillier.aggregate([r.vector(3), r.vector(4)])
    assert two.summands == 2
    colluder = r.member(3)._signing_key
    payload = two.to_bytes()
    doubled = ps.EncryptedInput(3, payload, colluder.sign(
        ps.input_signing_payload(r.cfg, 3, payload)))
    _refused(r, 0, ps.SignedInputs((r.enc[2], doubled)), ProtocolError, "claims 2 summands")


def test_a_semi_honest_decryptor_refuses_signed_inputs(tkp: Any) -> None:
    r = Round(tkp, security="semi-honest")
    party = r.member(0)
    before = party.export_state()
    with pytest.raises(ProtocolError, match="belong to mode='malicious'"):
        party.handle(ps.SignedInputs((r.enc[3], r.enc[4])))
    assert party.export_state() == before


def test_an_input_signed_for_another_configuration_is_refused(tkp: Any) -> None:
    keys = {u: SigningKey.generate() for u in range(5)}
    r1 = Round(tkp, signing_keys=keys, round=1)
    r2 = Round(tkp, signing_keys=keys, round=2)  # same clients, keys and key; another round
    assert r1.cfg.digest != r2.cfg.digest
    victim = 4
    # both rounds' inputs are properly signed, each for its own digest
    _refused(r2, 0, ps.SignedInputs((r2.enc[0], r1.enc[victim])), IntegrityError,
             f"client {victim}")
    # a client's signature is bound to the exact ciphertext bytes too
    _refused(r2, 0, ps.SignedInputs((r2.enc[0], dataclasses.replace(
        r2.enc[victim], payload=r1.enc[victim].payload))), IntegrityError)


def test_a_forged_signature_is_refused(tkp: Any) -> None:
    r = Round(tkp)
    victim = 4
    wrong_key = SigningKey.generate()
    for sig in (bytes(64), wrong_key.sign(ps.input_signing_payload(r.cfg, victim,
                                                                   r.enc[victim].payload)),
                r.enc[3].signature,
                r.enc[victim].signature[:-1] + bytes([r.enc[victim].signature[-1] ^ 1])):
        bad = dataclasses.replace(r.enc[victim], signature=sig)
        _refused(r, 0, ps.SignedInputs((r.enc[3], bad)), IntegrityError, f"client {victim}")
    # a signature of the wrong length is refused by the party, and cannot be encoded
    short = dataclasses.replace(r.enc[victim], signature=b"\1" * 10)
    _refused(r, 0, ps.SignedInputs((r.enc[3], short)), IntegrityError)


def test_a_second_decryption_request_is_refused_also_after_restore(tkp: Any) -> None:
    r = Round(tkp)
    everyone = tuple(r.enc[u] for u in range(5))
    without_victim = tuple(r.enc[u] for u in range(4))
    member = r.member(0)
    (first,) = member.handle(r.wire(ps.SignedInputs(everyone)))
    assert isinstance(first.message, ps.DecryptionShare) and member.state == "done"
    with pytest.raises(ProtocolError, match="already answered one decryption request"):
        member.handle(r.wire(ps.SignedInputs(without_victim)))
    saved = member.export_state()
    local = {"decryptor_key": member._decryptor_key, "signing_key": member._signing_key,
             "expected_public_key": r.pk, **INSECURE}
    again = ps.PaillierSumClient.restore(r.cfg, saved, **local)
    assert again.state == "done"
    with pytest.raises(ProtocolError, match="already answered one decryption request"):
        again.handle(r.wire(ps.SignedInputs(without_victim)))
    assert again.export_state() == saved


def test_two_t_groups_cannot_each_decrypt_a_subset(tkp: Any) -> None:
    """The subset-difference attack needs two disjoint groups of t decryptors;
    malicious mode refuses configurations where they exist (2t <= k), and with
    2t > k any second request reaches a decryptor that already answered."""
    with pytest.raises(ParameterError, match="2 \\* decrypt_threshold > committee size"):
        Round(tkp, t=2, committee=[0, 1, 2, 3])
    # semi-honest allows 2-of-4: groups {0, 1} and {2, 3} decrypt two subsets, whose
    # difference is the victim's input
    r = Round(tkp, security="semi-honest", t=2, committee=[0, 1, 2, 3])
    victim = 4
    every = paillier.aggregate([r.vector(u) for u in range(5)])
    rest = paillier.aggregate([r.vector(u) for u in range(4)])
    a = r.decrypt_with([0, 1], ps.EncryptedSum(frozenset(range(5)), every.to_bytes()), every)
    b = r.decrypt_with([2, 3], ps.EncryptedSum(frozenset(range(4)), rest.to_bytes()), rest)
    np.testing.assert_array_equal(a - b, ps.PaillierQuantizer(1.0, 16).encode(r.inputs[victim]))
    # malicious, 2-of-3: after {0, 1} answered the full set, any other pair holds 0 or 1
    m = Round(tkp, t=2, committee=[0, 1, 2])
    full = ps.SignedInputs(tuple(m.enc[u] for u in range(5)))
    less = ps.SignedInputs(tuple(m.enc[u] for u in range(4)))
    for u in (0, 1):
        m.member(u).handle(m.wire(full))
    m.member(2).handle(m.wire(less))  # one partial of the other subset: below t
    for u in (0, 1):
        with pytest.raises(ProtocolError, match="already answered"):
            m.member(u).handle(m.wire(less))


# -- the aggregator and the clients ---------------------------------------------------------
def test_the_aggregator_refuses_a_badly_signed_input_unchanged(tkp: Any) -> None:
    r = Round(tkp)
    agg = ps.PaillierSumAggregator(r.cfg, expected_public_key=r.pk, **INSECURE)
    agg.handle(_relayed_setup(r))
    before = observable_state(agg)
    for bad in (dataclasses.replace(r.enc[1], signature=bytes(64)),
                dataclasses.replace(r.enc[1], signature=b""),
                dataclasses.replace(r.enc[1], sender=2),
                dataclasses.replace(r.enc[1], payload=r.enc[2].payload)):
        with pytest.raises(SecAggError):
            agg.handle(bad)
        assert observable_state(agg) == before
    for u in range(5):
        agg.handle(r.enc[u])
    assert agg.state == "summed"


def _relayed_setup(r: Round) -> ps.ThresholdSetup:
    return ps.ThresholdSetup(r.key, r.layout, bytes(32))


def test_a_client_needs_its_registry_signing_key(tkp: Any) -> None:
    r = Round(tkp)
    with pytest.raises(ParameterError, match="needs its Ed25519 signing_key"):
        ps.PaillierSumClient(3, r.cfg, expected_public_key=r.pk, **INSECURE)
    with pytest.raises(ParameterError, match="does not match its registry entry"):
        ps.PaillierSumClient(3, r.cfg, expected_public_key=r.pk,
                             signing_key=SigningKey.generate(), **INSECURE)
    semi = Round(tkp, security="semi-honest")
    with pytest.raises(ParameterError, match="belongs to mode='malicious'"):
        ps.PaillierSumClient(3, semi.cfg, expected_public_key=r.pk,
                             signing_key=SigningKey.generate(), **INSECURE)
    saved = r.member(3).export_state()
    with pytest.raises(ParameterError, match="signing_key"):
        ps.PaillierSumClient.restore(r.cfg, saved, expected_public_key=r.pk, **INSECURE)


def test_malicious_mode_is_refused_outside_its_conditions(tkp: Any) -> None:
    keys = {u: SigningKey.generate() for u in range(4)}
    reg = {u: k.verify_key() for u, k in keys.items()}
    base = dict(round=0, clients=frozenset(range(4)), dimension=3, trust_layout="threshold",
                committee=frozenset({0, 1, 2}), decrypt_threshold=2,
                threshold_key_digest=bytes(32), min_clients=2, mode="malicious", registry=reg)
    ps.PaillierSumConfig(**base)
    for change, words in [
        ({"trust_layout": "key-holder", "committee": frozenset(), "decrypt_threshold": 0,
          "threshold_key_digest": b""}, "needs trust_layout='threshold'"),
        ({"trust_layout": "cross-silo", "committee": frozenset(), "decrypt_threshold": 0,
          "threshold_key_digest": b""}, "needs trust_layout='threshold'"),
        ({"decrypt_threshold": 1}, "use decrypt_threshold >= 2"),
        ({"min_clients": 1}, "min_clients >= 2"),
        ({"registry": None}, "needs a registry"),
        ({"registry": {u: reg[u] for u in range(3)}}, "missing \\[3\\]"),
        ({"registry": {**reg, 3: reg[0]}}, "same identity key"),
        ({"registry": {**reg, 3: keys[3]}}, "VerifyKey"),
        ({"mode": "paranoid"}, "mode must be one of"),
        ({"mode": "semi-honest"}, "registry belongs to mode='malicious'"),
    ]:
        with pytest.raises(ParameterError, match=words):
            ps.PaillierSumConfig(**{**base, **change})
    with pytest.raises(ParameterError, match="needs trust='threshold'"):
        ps.simulate(_inputs([0, 1]), security="malicious", keypair=tkp, **INSECURE)


def test_the_config_binds_mode_and_registry(tkp: Any) -> None:
    keys = {u: SigningKey.generate() for u in range(4)}
    reg = {u: k.verify_key() for u, k in keys.items()}
    base = dict(round=0, clients=frozenset(range(4)), dimension=3, trust_layout="threshold",
                committee=frozenset({0, 1, 2}), decrypt_threshold=2,
                threshold_key_digest=bytes(32), min_clients=2)
    semi = ps.PaillierSumConfig(**base)
    mal = ps.PaillierSumConfig(**base, mode="malicious", registry=reg)
    other = ps.PaillierSumConfig(**base, mode="malicious",
                                 registry={**reg, 0: SigningKey.generate().verify_key()})
    assert len({semi.digest, mal.digest, other.digest}) == 3
    assert semi.to_bytes()[4] == 2 and mal.to_bytes()[4] == 3  # versions
    assert semi != mal and hash(ps.PaillierSumConfig.from_bytes(mal.to_bytes())) == hash(mal)
    back = ps.PaillierSumConfig.from_bytes(mal.to_bytes())
    assert back == mal and back.mode == "malicious" and dict(back.registry) == reg
    for cut in range(1, 33):  # a registry cut short is refused
        with pytest.raises(SecAggError):
            ps.PaillierSumConfig.from_bytes(mal.to_bytes()[:-cut])
    with pytest.raises(SecAggError):
        ps.PaillierSumConfig.from_bytes(mal.to_bytes() + b"\0")


# -- exact sums ------------------------------------------------------------------------------
def _sim(tkp: Any, inputs: dict[int, np.ndarray], **kw: Any) -> Any:
    return ps.simulate(inputs, trust="threshold", keypair=tkp, security="malicious",
                       **INSECURE, **kw)


@pytest.mark.parametrize(("n", "k", "t"), [(3, 3, 2), (5, 3, 2), (5, 5, 3), (4, 4, 3),
                                           (4, 1, 1)])
def test_any_t_of_the_committee_gives_the_exact_sum(tkp: Any, n: int, k: int, t: int) -> None:
    inputs = _inputs(list(range(n)))
    committee = list(range(n - k, n))
    for drop in ([], committee[: k - t], committee[t:]):
        res = _sim(tkp, inputs, committee=committee, decrypt_threshold=t,
                   dropouts={"decrypt": drop}, seed=1)
        assert res.included == frozenset(inputs)
        np.testing.assert_array_equal(res.raw_sum, _expected_raw(inputs, res.included))


def test_client_dropouts_and_fewer_than_t_decryptors(tkp: Any) -> None:
    inputs = _inputs([5, 9, 2**64 - 1, 40, 77])
    res = _sim(tkp, inputs, committee=[5, 9, 40], decrypt_threshold=2,
               dropouts={"encrypt": [2**64 - 1, 77], "decrypt": [9]}, seed=2)
    assert res.included == frozenset({5, 9, 40})
    np.testing.assert_array_equal(res.raw_sum, _expected_raw(inputs, res.included))
    with pytest.raises(AbortError, match="1 valid partial decryption"):
        _sim(tkp, inputs, committee=[5, 9, 40], decrypt_threshold=2,
             dropouts={"decrypt": [9, 40]}, seed=2)
    with pytest.raises(AbortError, match="min_clients"):
        _sim(tkp, inputs, committee=[5, 9, 40], decrypt_threshold=2, min_clients=4,
             dropouts={"encrypt": [2**64 - 1, 77]}, seed=2)


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_malicious_outcome_follows_the_count_rule(tkp: Any, data: st.DataObject) -> None:
    n = data.draw(st.integers(2, 6), label="clients")
    k = data.draw(st.integers(1, n), label="committee size")
    t = data.draw(st.integers(k // 2 + 1, k), label="t")
    m = data.draw(st.integers(2, n), label="min_clients")
    ids = list(range(n))
    committee = sorted(data.draw(st.sets(st.sampled_from(ids), min_size=k, max_size=k)))
    enc_drop = data.draw(st.sets(st.sampled_from(ids), max_size=n - 1), label="encrypt drops")
    dec_drop = data.draw(st.sets(st.sampled_from(ids)), label="decrypt drops")
    inputs = _inputs(ids, 3)
    alive = set(committee) - enc_drop - dec_drop
    kw = dict(committee=committee, decrypt_threshold=t, min_clients=m,
              dropouts={"encrypt": sorted(enc_drop), "decrypt": sorted(dec_drop)})
    if n - len(enc_drop) >= m and len(alive) >= t:
        res = _sim(tkp, inputs, **kw)
        assert res.included == frozenset(ids) - enc_drop
        np.testing.assert_array_equal(res.raw_sum, _expected_raw(inputs, res.included))
    else:
        with pytest.raises(AbortError):
            _sim(tkp, inputs, **kw)


def test_a_faulty_decryptor_is_still_named(tkp: Any) -> None:
    r = Round(tkp)
    for u in range(5):
        out = r.agg.handle(r.enc[u])
    request = out[0].message
    assert isinstance(request, ps.SignedInputs) and request.included == frozenset(range(5))
    assert {e.receiver for e in out} == {0, 1, 2}
    (good,) = r.member(1).handle(r.wire(request))
    (bad,) = r.member(0).handle(r.wire(request))
    flipped = bad.message.payload[:-1] + bytes([bad.message.payload[-1] ^ 1])
    with pytest.raises(ps.FaultyDecryptorError, match="decryptor 0"):
        r.agg.handle(ps.DecryptionShare(0, flipped))
    r.agg.handle(good.message)
    (third,) = r.member(2).handle(r.wire(request))
    r.agg.handle(third.message)
    np.testing.assert_array_equal(r.agg.result.raw_sum,
                                  _expected_raw(r.inputs, frozenset(range(5))))


# -- codec -------------------------------------------------------------------------------------
def _valid_blobs(tkp: Any) -> tuple[ps.PaillierSumCodec, list[bytes]]:
    r = Round(tkp, n=3, committee=[0, 1, 2])
    for u in range(3):
        out = r.agg.handle(r.enc[u])
    request = out[0].message
    (share,) = r.member(0).handle(request)
    return r.codec, [r.codec.encode(m) for m in (r.enc[1], request, share.message)]


def test_signed_messages_round_trip_and_are_strict(tkp: Any) -> None:
    codec, blobs = _valid_blobs(tkp)
    for b in blobs:
        assert b[4] == 5  # version 5 under a malicious configuration (committed-form proofs)
        assert codec.encode(codec.decode(b)) == b
    enc, request = codec.decode(blobs[0]), codec.decode(blobs[1])
    assert len(enc.signature) == 64 and len(request.inputs) == 3
    semi_cfg = dataclasses.replace(codec.config, mode="semi-honest", registry=None, min_clients=2)
    semi = ps.PaillierSumCodec(semi_cfg, **INSECURE)
    for b in blobs:  # another digest, another version
        with pytest.raises(SecAggError):
            semi.decode(b)
    for b in blobs[:2]:  # re-framed as semi-honest: a signed input and a request do not parse
        with pytest.raises(SecAggError):
            semi.decode(b[:4] + b"\x02" + semi_cfg.digest + b[37:])
    with pytest.raises(EncodingError, match="carries no signature"):
        semi.encode(enc)
    with pytest.raises(EncodingError, match="belong to mode='malicious'"):
        semi.encode(request)
    with pytest.raises(EncodingError, match="64-byte signature"):
        codec.encode(dataclasses.replace(enc, signature=b""))
    with pytest.raises(EncodingError, match="increasing id order"):
        codec.encode(ps.SignedInputs(tuple(reversed(request.inputs))))
    with pytest.raises(EncodingError, match="increasing id order"):
        codec.encode(ps.SignedInputs((request.inputs[0], request.inputs[0])))
    with pytest.raises(EncodingError):
        codec.encode(ps.SignedInputs(request.inputs, sender=1))
    for cut in range(1, 80):
        with pytest.raises(SecAggError):
            codec.decode(blobs[1][:-cut])


_FUZZ: dict[str, Any] = {}


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_signed_messages_raise_only_library_errors(tkp: Any,
                                                          data: st.DataObject) -> None:
    codec, blobs = _FUZZ.get("v") or _FUZZ.setdefault("v", _valid_blobs(tkp))
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
    assert codec.encode(m) == bytes(blob)  # whatever decodes is canonical


@settings(max_examples=60, deadline=None)
@given(blob=st.binary(max_size=200))
def test_random_bytes_after_the_signed_inputs_magic_decode_canonically_or_not(
        blob: bytes) -> None:
    keys = {u: SigningKey.generate().verify_key() for u in range(3)}
    cfg = ps.PaillierSumConfig(round=0, clients=frozenset(range(3)), dimension=2,
                               trust_layout="threshold", committee=frozenset(range(3)),
                               decrypt_threshold=2, threshold_key_digest=bytes(32),
                               min_clients=2, mode="malicious", registry=keys)
    codec = ps.PaillierSumCodec(cfg, **INSECURE)
    data = b"PSSI\x04" + cfg.digest + b"\x00" + blob
    try:
        m = codec.decode(data)
    except SecAggError:
        return
    assert isinstance(m, ps.SignedInputs) and codec.encode(m) == data


def test_malicious_sessions_draw_a_fresh_round_unless_given(tkp: Any) -> None:
    public, _shares = ps.deal_committee([0, 1, 2], 2, keypair=tkp, **INSECURE)
    keys = {u: SigningKey.generate().verify_key() for u in range(4)}

    def config(**kw: Any) -> ps.PaillierSumConfig:
        if kw.get("mode") == "malicious":
            kw["registry"] = keys
        return ps.PAILLIER_SUM.make_session(range(4), D, trust="threshold", public=public,
                                            **INSECURE, **kw).config

    a, b = config(mode="malicious"), config(mode="malicious")
    assert a.round != b.round and a.digest != b.digest  # old signed inputs never verify
    assert config(mode="malicious", round=5).digest == config(mode="malicious", round=5).digest
    assert config().round == 0 and config().mode == "semi-honest"
