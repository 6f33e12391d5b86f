"""protocols.paillier_sum: parties, codecs, adversarial messages, simulate."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import paillier_sum as S
from protocols.results import AggregationResult
from secagg import paillier as P
from secagg.errors import (
    AbortError,
    EncodingError,
    IntegrityError,
    ParameterError,
    ProtocolError,
    SecAggError,
)

INSECURE = {"insecure_allow_small_key_for_tests": True}
DIM = 40


@pytest.fixture(scope="session")
def kp():
    return P.generate_keypair(512, **INSECURE)


@pytest.fixture(scope="session")
def other_kp():
    return P.generate_keypair(512, **INSECURE)


def make_inputs(n=5, dim=DIM, seed=0):
    rng = np.random.default_rng(seed)
    return {cid: rng.uniform(-1.2, 1.2, dim) for cid in range(n)}


def expected_raw(inputs, ids, value_bits=16, clip=1.0):
    """The exact integer sum the protocol must produce, and the scale."""
    m = 2 ** (value_bits - 1) - 1
    scale = m / clip
    total = np.zeros(len(next(iter(inputs.values()))), dtype=np.int64)
    for cid in ids:
        x = np.clip(inputs[cid], -clip, clip)
        total += np.clip(np.rint(x * scale), -m, m).astype(np.int64)
    return total, scale


# ------------------------------------------------------------------ simulate


@pytest.mark.parametrize(
    "trust,encryption",
    [
        ("key-holder", "online"),
        ("key-holder", "pool"),
        ("key-holder", "djn"),
        ("cross-silo", "online"),
        ("cross-silo", "crt"),
        ("cross-silo", "pool"),
    ],
)
def test_simulate_matches_the_exact_sum(kp, trust, encryption):
    inputs = make_inputs()
    res = S.simulate(inputs, keypair=kp, trust=trust, encryption=encryption, seed=3, **INSECURE)
    assert isinstance(res, AggregationResult)
    raw, scale = expected_raw(inputs, inputs)
    np.testing.assert_array_equal(res.raw_sum, raw)
    assert res.sum.dtype == np.float64
    np.testing.assert_allclose(res.sum, raw / scale)
    clipped = sum(np.clip(v, -1, 1) for v in inputs.values())
    np.testing.assert_allclose(res.sum, clipped, atol=len(inputs) * 0.5 / scale + 1e-12)
    assert res.included == frozenset(inputs) and res.dropped == frozenset()
    assert "server" in res.figures and all(c in res.figures for c in inputs)
    assert ("key_holder" in res.figures) == (trust == "key-holder")
    assert res.figures[0].bytes_sent["encrypt"] > 0
    assert (
        res.figures["server"].bytes_received["encrypt"] >= 5 * res.figures[0].bytes_sent["encrypt"]
    )


@given(
    drops=st.dictionaries(
        st.sampled_from(S.ROUNDS), st.frozensets(st.integers(0, 5), max_size=3), max_size=3
    ),
    trust=st.sampled_from(["key-holder", "cross-silo"]),
)
def test_simulate_with_any_dropouts(kp, drops, trust):
    inputs = make_inputs(n=6, dim=12, seed=1)
    gone = drops.get("setup", frozenset()) | drops.get("encrypt", frozenset())
    survivors = frozenset(inputs) - gone
    readers = survivors - drops.get("decrypt", frozenset())
    aborts = len(survivors) < 2 or (trust == "cross-silo" and not readers)
    kw = dict(keypair=kp, trust=trust, dropouts=drops, min_clients=2, **INSECURE)
    if aborts:
        with pytest.raises(AbortError):
            S.simulate(inputs, **kw)
        return
    res = S.simulate(inputs, **kw)
    assert res.included == survivors and res.dropped == gone
    np.testing.assert_array_equal(res.raw_sum, expected_raw(inputs, survivors)[0])


def test_simulate_mirrors_the_secagg_signature(kp):
    inputs = make_inputs(n=3, dim=5)
    res = S.simulate(
        inputs,
        keypair=kp,
        dropouts={"encrypt": [1]},
        seed=7,
        clip=2.0,
        value_bits=20,
        max_summands=50,
        **INSECURE,
    )
    raw, _ = expected_raw(inputs, [0, 2], value_bits=20, clip=2.0)
    np.testing.assert_array_equal(res.raw_sum, raw)
    assert res.dropped == {1}
    with pytest.raises(ParameterError, match="unknown round"):
        S.simulate(inputs, keypair=kp, dropouts={"masked_input": [1]}, **INSECURE)
    with pytest.raises(ParameterError, match="unknown clients"):
        S.simulate(inputs, keypair=kp, dropouts={"encrypt": [9]}, **INSECURE)
    with pytest.raises(ParameterError, match="minimum is 2048"):
        S.simulate(inputs, key_bits=1024)
    with pytest.raises(ParameterError, match="cross-silo"):
        S.simulate(inputs, keypair=kp, encryption="crt", **INSECURE)
    with pytest.raises(EncodingError):
        S.simulate({0: np.zeros(3), 1: np.zeros(4)}, keypair=kp, **INSECURE)
    with pytest.raises(ParameterError, match="max_summands"):
        S.simulate(inputs, keypair=kp, max_summands=2, **INSECURE)


def test_simulate_generates_a_small_key_when_asked():
    res = S.simulate(make_inputs(n=2, dim=3), key_bits=512, **INSECURE)
    assert res.figures["key_holder"].compute_seconds["setup"] >= 0
    assert res.figures["key_holder"].bytes_sent["setup"] > 0


def test_old_keyword_names_warn_and_still_work(kp):
    inputs = make_inputs(n=3, dim=4)
    with pytest.warns(DeprecationWarning, match="trust="):
        a = S.simulate(inputs, keypair=kp, layout="cross-silo", **INSECURE)
    with pytest.warns(DeprecationWarning, match="encryption="):
        b = S.simulate(inputs, keypair=kp, mode="djn", **INSECURE)
    np.testing.assert_array_equal(a.raw_sum, b.raw_sum)
    with pytest.raises(ParameterError, match="disagree"), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        S.simulate(inputs, keypair=kp, layout="cross-silo", trust="key-holder", **INSECURE)
    cfg = S.PaillierSumConfig(round=0, clients=frozenset({1}), dimension=2)
    with pytest.warns(DeprecationWarning, match="encryption="):
        S.PaillierSumClient(1, cfg, np.zeros(2), mode="online")
    # the new names warn about nothing
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        S.simulate(inputs, keypair=kp, trust="cross-silo", encryption="crt", **INSECURE)


@pytest.mark.parametrize("trust", ["key-holder", "cross-silo"])
def test_client_ids_from_zero_and_64_bit(kp, trust):
    ids = [0, 1, 2**40, 2**64 - 1]
    inputs = {u: np.full(3, 0.1 * k) for k, u in enumerate(ids)}
    res = S.simulate(inputs, keypair=kp, trust=trust, dropouts={"encrypt": [2**40]}, **INSECURE)
    assert res.included == {0, 1, 2**64 - 1}
    np.testing.assert_array_equal(res.raw_sum, expected_raw(inputs, res.included)[0])


# ------------------------------------------------------------ codecs


def _cfg(**kw):
    return S.PaillierSumConfig(**{"round": 4, "clients": frozenset({1, 2, 3}),
                                  "dimension": DIM, **kw})


def _codec(cfg):
    return S.PaillierSumCodec(cfg, **INSECURE)


def _messages(kp, cfg=None):
    pk, _ = kp
    cfg = cfg or _cfg()
    lay = cfg.packing(pk, **INSECURE)
    vec = P.encrypt(pk, lay, np.zeros(DIM), **INSECURE).to_bytes()
    return [
        S.PublicSetup(S.KEY_HOLDER, pk, lay),
        S.PublicSetup(2, pk, lay),
        S.EncryptedInput(2, vec),
        S.EncryptedSum(frozenset({1, 3}), vec),
        S.DecryptedSum(frozenset({1, 3}), np.arange(-5, 5, dtype=np.int64).repeat(4)),
    ]


def test_message_codecs_round_trip(kp):
    codec = _codec(_cfg())
    for msg in _messages(kp):
        data = codec.encode(msg)
        back = codec.decode(data)
        assert type(back) is type(msg)
        assert codec.encode(back) == data
        for f in dataclasses.fields(msg):
            a, b = getattr(msg, f.name), getattr(back, f.name)
            if isinstance(a, np.ndarray):
                np.testing.assert_array_equal(a, b)
            else:
                assert a == b


def test_messages_are_bound_to_the_configuration(kp):
    codec = _codec(_cfg())
    for other in (_cfg(round=5), _cfg(clients=frozenset({1, 2, 4})), _cfg(min_clients=2),
                  _cfg(clip=2.0)):
        for msg in _messages(kp):
            with pytest.raises(ProtocolError, match="another configuration"):
                _codec(other).decode(codec.encode(msg))


def test_encode_refuses_what_it_cannot_carry(kp):
    codec = _codec(_cfg())
    pk = kp[0]
    lay = _cfg().packing(pk, **INSECURE)
    for bad in (S.PublicSetup(9, pk, lay), S.PublicSetup(S.AGGREGATOR, pk, lay),
                S.EncryptedInput(9, b""), S.EncryptedSum(frozenset({9}), b""),
                S.DecryptedSum(frozenset({1}), np.zeros(3, np.int64)),
                S.EncryptedSum(frozenset({1}), b"", sender=1), "not a message"):
        with pytest.raises(EncodingError):
            codec.encode(bad)


def test_malformed_messages_are_refused(kp):
    codec = _codec(_cfg())
    for msg in _messages(kp):
        data = codec.encode(msg)
        step = max(1, len(data) // 30)
        for i in range(0, len(data), step):
            with pytest.raises(ProtocolError):
                codec.decode(data[:i])
        with pytest.raises(ProtocolError, match="trailing"):
            codec.decode(data + b"\0")
    with pytest.raises(ProtocolError, match="magic"):
        codec.decode(b"NOPE\x02")
    with pytest.raises(ProtocolError):
        codec.decode("not bytes")  # type: ignore[arg-type]
    from secagg.wire import Writer

    head = Writer(b"PSES", 2).raw(_cfg().digest).u8(0).u32(0)
    dup = head.u32(2).u32(1).u32(1).blob(b"").getvalue()
    with pytest.raises(ProtocolError, match="strictly increasing"):
        codec.decode(dup)
    # a sender with the wrong role for the message
    data = bytearray(codec.encode(_messages(kp)[3]))
    data[5 + 32] = 2
    with pytest.raises(ProtocolError):
        codec.decode(bytes(data))
    # the public setup refuses a small key unless the test flag is given
    setup = codec.encode(_messages(kp)[0])
    with pytest.raises(ProtocolError, match="minimum is 2048"):
        S.PaillierSumCodec(_cfg()).decode(setup)


def test_field_lengths_are_checked_before_the_field_is_read():
    """A length prefix past the field's limit is refused on the prefix alone."""
    from secagg.wire import Writer

    codec = _codec(_cfg())
    huge = Writer(b"PSEI", 2).raw(_cfg().digest).u8(2).u32(1).u32(2**30).getvalue()
    with pytest.raises(ProtocolError, match="exceeds limit"):
        codec.decode(huge + bytes(16))
    key = Writer(b"PSPS", 2).raw(_cfg().digest).u8(1).u32(0).u32(10**6).getvalue()
    with pytest.raises(ProtocolError, match="exceeds limit 4096"):
        codec.decode(key)


@given(st.binary(max_size=200), st.sampled_from([b"PSPS", b"PSEI", b"PSES", b"PSDS"]))
def test_random_message_bytes_are_refused(blob, magic):
    cfg = _cfg()
    with pytest.raises(SecAggError):
        _codec(cfg).decode(magic + b"\x02" + cfg.digest + blob)


def test_config_and_client_state_round_trip(kp):
    cfg = _cfg(clients=frozenset({0, 7, 2**64 - 1}), trust_layout="cross-silo", clip=0.5,
               max_summands=9, min_clients=2)
    data = S.PAILLIER_SUM.config_to_bytes(cfg)
    assert S.PAILLIER_SUM.config_from_bytes(data) == cfg
    for cut in range(len(data)):
        with pytest.raises(SecAggError):
            S.PAILLIER_SUM.config_from_bytes(data[:cut])
    c = S.PaillierSumClient(7, cfg, np.full(DIM, 0.25), keypair=kp, **INSECURE)
    state = c.export_state()
    back = S.PAILLIER_SUM.restore_client(cfg, state, keypair=kp, **INSECURE)
    assert back.round == "setup" and back.export_state() == state
    with pytest.raises(ParameterError, match="another configuration"):
        S.PAILLIER_SUM.restore_client(_cfg(), state, **INSECURE)
    for cut in range(len(state)):
        with pytest.raises(SecAggError):
            S.PAILLIER_SUM.restore_client(cfg, state[:cut], keypair=kp, **INSECURE)


# ------------------------------------------------------------ parties


def _m(envelopes):
    return [e.message for e in envelopes]


class Round:
    """A hand-driven key-holder round with 3 clients."""

    def __init__(self, kp, *, rnd=0, clients=(1, 2, 3), min_clients=1, dim=DIM):
        self.kp = kp
        self.cfg = S.PaillierSumConfig(
            round=rnd, clients=frozenset(clients), dimension=dim, min_clients=min_clients
        )
        self.codec = _codec(self.cfg)
        rng = np.random.default_rng(rnd)
        self.inputs = {c: rng.uniform(-1, 1, dim) for c in clients}
        self.kh = S.PaillierSumKeyHolder(self.cfg, *kp, **INSECURE)
        self.agg = S.PaillierSumAggregator(self.cfg, expected_public_key=kp[0], **INSECURE)
        self.clients = {
            c: S.PaillierSumClient(
                c, self.cfg, self.inputs[c], expected_public_key=kp[0], **INSECURE
            )
            for c in clients
        }
        out = self.kh.start()
        assert [e.receiver for e in out] == [*sorted(clients), S.AGGREGATOR]
        self.setup = out[-1].message
        assert self.agg.handle(self.wire(self.setup)) == []
        self.msgs = {}
        for c, cl in self.clients.items():
            (o,) = cl.handle(self.wire(self.setup))
            assert o.receiver == S.AGGREGATOR and o.sender == c
            self.msgs[c] = self.wire(o.message)

    def wire(self, msg):
        return self.codec.decode(self.codec.encode(msg))

    def expected(self, ids):
        return expected_raw(self.inputs, ids)[0]


def test_key_holder_round_by_hand(kp):
    r = Round(kp)
    assert r.agg.round == "encrypt"
    assert r.agg.handle(r.msgs[1]) == []
    assert r.agg.handle(r.msgs[3]) == []
    (s,) = r.agg.close_round()
    assert s.receiver == S.KEY_HOLDER and s.message.included == {1, 3}
    assert r.agg.round == "decrypt"
    (d,) = r.kh.handle(r.wire(s.message))
    assert d.receiver == S.AGGREGATOR
    assert r.agg.handle(r.wire(d.message)) == []
    np.testing.assert_array_equal(r.agg.raw_result, r.expected([1, 3]))
    np.testing.assert_array_equal(r.agg.result.raw_sum, r.expected([1, 3]))
    assert r.agg.result.included == {1, 3}
    assert r.agg.state == "done" and r.agg.round is None
    # a straggler after the round closed changes nothing
    with pytest.raises(ProtocolError, match="closed"):
        r.agg.handle(r.msgs[2])
    # the key holder decrypts once per round
    with pytest.raises(ProtocolError, match="refusing another"):
        r.kh.handle(s.message)


def test_deprecated_verbs_warn_and_delegate(kp):
    r = Round(kp)
    with pytest.warns(DeprecationWarning, match="handle"):
        r.agg.receive(r.msgs[1])
    with pytest.warns(DeprecationWarning, match="close_round"):
        (s,) = r.agg.finish()
    with pytest.warns(DeprecationWarning, match="handle"):
        r.kh.receive(s.message)


def test_aggregator_closes_itself_when_everyone_sent(kp):
    r = Round(kp)
    assert r.agg.handle(r.msgs[1]) == [] and r.agg.handle(r.msgs[2]) == []
    (s,) = r.agg.handle(r.msgs[3])
    assert isinstance(s.message, S.EncryptedSum) and s.message.included == {1, 2, 3}


def test_the_deadline_aborts_when_nothing_more_can_come(kp):
    cfg = _cfg()
    agg = S.PaillierSumAggregator(cfg, **INSECURE)
    with pytest.raises(AbortError, match="no public setup"):
        agg.close_round()
    assert agg.round is None and agg.result is None
    r = Round(kp)
    r.agg.handle(r.msgs[1])
    r.agg.close_round()
    with pytest.raises(AbortError, match="key holder never returned"):
        r.agg.close_round()
    with pytest.raises(ProtocolError, match="aborted"):
        r.agg.handle(r.msgs[2])


def _finish_and_check(r, ids):
    (s,) = r.agg.close_round()
    (d,) = r.kh.handle(s.message)
    r.agg.handle(d.message)
    np.testing.assert_array_equal(r.agg.raw_result, r.expected(ids))


def test_replays_are_refused_and_change_nothing(kp):
    r = Round(kp)
    r.agg.handle(r.msgs[1])
    with pytest.raises(ProtocolError, match="already sent"):
        r.agg.handle(r.msgs[1])
    # the same ciphertext under another sender id
    payload = r.msgs[1].payload
    with pytest.raises(ProtocolError, match="replay"):
        r.agg.handle(S.EncryptedInput(2, payload))
    # an input from an older round never decodes under this round's codec
    old = Round(kp, rnd=7)
    with pytest.raises(ProtocolError, match="another configuration"):
        r.codec.decode(old.codec.encode(old.msgs[2]))
    with pytest.raises(ProtocolError, match="not in the round"):
        r.agg.handle(S.EncryptedInput(99, payload))
    assert r.agg.included == {1} and r.agg.state == "collecting"
    _finish_and_check(r, [1])


def test_foreign_key_and_wrong_layout_are_refused(kp, other_kp):
    r = Round(kp)
    r.agg.handle(r.msgs[2])
    pk2 = other_kp[0]
    foreign = P.encrypt(pk2, r.cfg.packing(pk2, **INSECURE), np.zeros(DIM), **INSECURE)
    with pytest.raises(ProtocolError, match="another public key"):
        r.agg.handle(S.EncryptedInput(1, foreign.to_bytes()))
    for kw in ({"dimension": DIM + 1}, {"clip": 2.0}, {"value_bits": 12}, {"max_summands": 9}):
        cfg = dataclasses.replace(r.cfg, **kw)
        vec = P.encrypt(kp[0], cfg.packing(kp[0], **INSECURE), np.zeros(cfg.dimension), **INSECURE)
        with pytest.raises(ProtocolError, match="layout"):
            r.agg.handle(S.EncryptedInput(1, vec.to_bytes()))
    # a vector that claims to be a sum already
    lay = r.cfg.packing(kp[0], **INSECURE)
    two = P.aggregate([P.encrypt(kp[0], lay, np.zeros(DIM), **INSECURE) for _ in range(2)])
    with pytest.raises(ProtocolError, match="summands"):
        r.agg.handle(S.EncryptedInput(1, two.to_bytes()))
    # ciphertexts outside the group
    data = r.msgs[1].payload
    width = lay.ciphertext_bytes
    zeroed = data[: -width * lay.ciphertexts] + bytes(width * lay.ciphertexts)
    with pytest.raises(IntegrityError):
        r.agg.handle(S.EncryptedInput(1, zeroed))
    with pytest.raises(ProtocolError):
        r.agg.handle(S.EncryptedInput(1, b"garbage"))
    assert r.agg.included == {2}
    # the refused client can still send its real input
    r.agg.handle(r.msgs[1])
    _finish_and_check(r, [1, 2])


def test_aggregator_order_and_setup_checks(kp, other_kp):
    r = Round(kp)
    fresh = S.PaillierSumAggregator(r.cfg, **INSECURE)
    with pytest.raises(ProtocolError, match="before the public setup"):
        fresh.handle(r.msgs[1])
    # a setup under another key than the pinned one
    pk2 = other_kp[0]
    bad = S.PublicSetup(S.KEY_HOLDER, pk2, r.cfg.packing(pk2, **INSECURE))
    pinned = S.PaillierSumAggregator(r.cfg, expected_public_key=kp[0], **INSECURE)
    with pytest.raises(ProtocolError, match="not the expected one"):
        pinned.handle(bad)
    assert pinned.state == "setup"
    unpinned = S.PaillierSumAggregator(r.cfg, **INSECURE)
    unpinned.handle(r.setup)
    assert unpinned.handle(r.setup) == []  # the same setup again is harmless
    with pytest.raises(ProtocolError, match="different key"):
        unpinned.handle(bad)
    with pytest.raises(ProtocolError, match="key holder"):
        S.PaillierSumAggregator(r.cfg, **INSECURE).handle(dataclasses.replace(bad, sender=1))
    wrong_layout = dataclasses.replace(
        r.setup, layout=dataclasses.replace(r.cfg, value_bits=8).packing(kp[0], **INSECURE))
    with pytest.raises(ProtocolError, match="layout"):
        S.PaillierSumAggregator(r.cfg, **INSECURE).handle(wrong_layout)


def test_too_few_inputs_abort_and_stay_open(kp):
    r = Round(kp, min_clients=2)
    r.agg.handle(r.msgs[3])
    with pytest.raises(AbortError, match="min_clients is 2"):
        r.agg.close_round()
    assert r.agg.state == "collecting"
    r.agg.handle(r.msgs[2])
    _finish_and_check(r, [2, 3])


def test_key_holder_refusals(kp):
    r = Round(kp, min_clients=2)
    pk = kp[0]
    lay = r.cfg.packing(pk, **INSECURE)
    one = P.encrypt(pk, lay, np.zeros(DIM), **INSECURE)
    two = one + P.encrypt(pk, lay, np.zeros(DIM), **INSECURE)
    cases = [
        (S.EncryptedSum(frozenset({1}), one.to_bytes()), "min_clients"),
        (S.EncryptedSum(frozenset({1, 2, 3}), two.to_bytes()), "summands"),
        (S.EncryptedSum(frozenset({1, 9}), two.to_bytes()), "outside the round"),
        (S.EncryptedInput(1, one.to_bytes()), "does not accept"),
    ]
    for msg, match in cases:
        with pytest.raises(ProtocolError, match=match):
            r.kh.handle(msg)
    assert r.kh.state == "announced"
    (d,) = r.kh.handle(S.EncryptedSum(frozenset({1, 2}), two.to_bytes()))
    np.testing.assert_array_equal(d.message.raw_sum, np.zeros(DIM, dtype=np.int64))
    # the aggregator refuses a decrypted sum it did not ask for
    with pytest.raises(ProtocolError, match="state"):
        r.agg.handle(d.message)


def test_aggregator_checks_the_decrypted_sum(kp):
    r = Round(kp)
    r.agg.handle(r.msgs[1])
    r.agg.handle(r.msgs[2])
    r.agg.close_round()
    good = np.zeros(DIM, dtype=np.int64)
    with pytest.raises(ProtocolError, match="other clients"):
        r.agg.handle(S.DecryptedSum(frozenset({1, 3}), good))
    with pytest.raises(ProtocolError, match="values"):
        r.agg.handle(S.DecryptedSum(frozenset({1, 2}), good[:-1]))
    with pytest.raises(ProtocolError, match="largest possible"):
        r.agg.handle(S.DecryptedSum(frozenset({1, 2}), good + 2**40))
    assert r.agg.state == "summed"


def test_client_checks(kp, other_kp):
    r = Round(kp)
    cfg = r.cfg
    c = S.PaillierSumClient(1, cfg, np.zeros(DIM), expected_public_key=kp[0], **INSECURE)
    pk2 = other_kp[0]
    bad = S.PublicSetup(S.KEY_HOLDER, pk2, cfg.packing(pk2, **INSECURE))
    with pytest.raises(ProtocolError, match="expected"):
        c.handle(bad)
    with pytest.raises(ProtocolError, match="key holder"):
        c.handle(dataclasses.replace(r.setup, sender=2))
    assert c.state == "new" and c.round == "setup"
    c.handle(r.setup)
    assert c.round is None
    with pytest.raises(ProtocolError, match="already received"):
        c.handle(r.setup)
    with pytest.raises(ProtocolError, match="does not accept"):
        c.handle(S.EncryptedSum(frozenset({1}), b""))
    with pytest.raises(ParameterError, match="not in the round"):
        S.PaillierSumClient(8, cfg, np.zeros(DIM))
    with pytest.raises(EncodingError, match="shape"):
        S.PaillierSumClient(1, cfg, np.zeros(DIM + 1))
    with pytest.raises(EncodingError, match="dtype"):
        S.PaillierSumClient(1, cfg, np.array(["x"] * DIM))
    with pytest.raises(ParameterError, match="never hold the private key"):
        S.PaillierSumClient(1, cfg, np.zeros(DIM), keypair=kp, **INSECURE)
    with pytest.raises(ParameterError, match="cross-silo"):
        S.PaillierSumClient(1, cfg, np.zeros(DIM), encryption="crt")
    with pytest.raises(ParameterError, match="pool"):
        S.PaillierSumClient(1, cfg, np.zeros(DIM), encryption="pool")
    with pytest.raises(ParameterError, match="key-holder"):
        S.PaillierSumKeyHolder(dataclasses.replace(cfg, trust_layout="cross-silo"), *kp)
    # an input-less client refuses the setup and stays unchanged
    empty = S.PaillierSumClient(2, cfg, expected_public_key=kp[0], **INSECURE)
    with pytest.raises(ParameterError, match="set_input"):
        empty.handle(r.setup)
    assert empty.state == "new"
    with pytest.raises(ParameterError):
        empty.set_input(np.zeros(DIM))  # floats: not the integer domain
    with pytest.raises(EncodingError, match="largest"):
        empty.set_input(np.full(DIM, 2**15, dtype=np.int64))
    empty.set_input(cfg.quantizer.encode(r.inputs[2]))
    (o,) = empty.handle(r.setup)
    assert o.message.sender == 2


def test_cross_silo_by_hand(kp):
    cfg = S.PaillierSumConfig(
        round=2, clients=frozenset({10, 20, 30}), dimension=DIM, trust_layout="cross-silo"
    )
    codec = _codec(cfg)
    xs = {c: np.full(DIM, c / 100) for c in cfg.clients}
    clients = {
        c: S.PaillierSumClient(c, cfg, xs[c], keypair=kp, encryption="crt", **INSECURE)
        for c in cfg.clients
    }
    agg = S.PaillierSumAggregator(cfg, **INSECURE)
    out = clients[10].start() + clients[30].start()
    assert clients[10].round == "decrypt"
    with pytest.raises(ProtocolError, match="already sent"):
        clients[10].start()
    res = []
    for o in out:
        assert o.receiver == S.AGGREGATOR
        res += agg.handle(codec.decode(codec.encode(o.message)))
    assert res == [] and agg.included == {10, 30}
    sums = agg.close_round()
    assert [e.receiver for e in sums] == [10, 20, 30]
    s = sums[0]
    for c in (10, 20):  # a client that never sent may still decrypt the sum
        assert clients[c].handle(codec.decode(codec.encode(s.message))) == []
        np.testing.assert_allclose(clients[c].result, np.full(DIM, 0.4), atol=1e-4)
        assert clients[c].round is None
    with pytest.raises(ProtocolError, match="already decrypted"):
        clients[10].handle(s.message)
    # the aggregator never sees the plaintext, and refuses to
    assert agg.result is None and agg.round is None
    with pytest.raises(ProtocolError, match="never receives"):
        agg.handle(S.DecryptedSum(frozenset({10, 30}), np.zeros(DIM, dtype=np.int64)))
    # a setup from outside the round
    with pytest.raises(ProtocolError, match="client of the round"):
        S.PaillierSumAggregator(cfg, **INSECURE).handle(
            dataclasses.replace(out[0].message, sender=S.KEY_HOLDER)
        )


def test_config_validation():
    with pytest.raises(ParameterError):
        S.PaillierSumConfig(round=-1, clients=frozenset({1}), dimension=3)
    with pytest.raises(ParameterError):
        S.PaillierSumConfig(round=0, clients=frozenset(), dimension=3)
    with pytest.raises(ParameterError):
        S.PaillierSumConfig(round=0, clients=frozenset({2**64}), dimension=3)
    with pytest.raises(ParameterError):
        S.PaillierSumConfig(round=0, clients=frozenset({-1}), dimension=3)
    S.PaillierSumConfig(round=0, clients=frozenset({0, 2**64 - 1}), dimension=3)
    with pytest.raises(ParameterError):
        S.PaillierSumConfig(round=0, clients=frozenset({1}), dimension=3, min_clients=2)
    with pytest.raises(ParameterError):
        S.PaillierSumConfig(round=0, clients=frozenset({1}), dimension=3, trust_layout="x")  # type: ignore[arg-type]


def test_simulate_at_2048_bits():
    """One round at the default key size (the key is generated here)."""
    inputs = make_inputs(n=3, dim=100, seed=5)
    res = S.simulate(inputs, dropouts={"encrypt": [0]})
    raw, _ = expected_raw(inputs, [1, 2])
    np.testing.assert_array_equal(res.raw_sum, raw)
    assert res.included == {1, 2}


def test_deprecated_module_names_warn():
    from protocols.core import Envelope

    with pytest.warns(DeprecationWarning, match="Envelope"):
        assert S.Outgoing is Envelope
    with pytest.warns(DeprecationWarning, match="one Envelope per client"):
        S.CLIENTS
    with pytest.raises(AttributeError):
        S.decode_nothing


@given(st.binary(max_size=120))
def test_config_and_state_decoders_raise_only_library_errors(blob):
    cfg = S.PaillierSumConfig(round=0, clients=frozenset({1, 2}), dimension=3)
    for data in (b"PSCF\x01" + blob, b"PSCS\x01" + cfg.digest + blob):
        try:
            if data.startswith(b"PSCF"):
                S.PAILLIER_SUM.config_from_bytes(data)
            else:
                S.PAILLIER_SUM.restore_client(cfg, data)
        except SecAggError:
            pass
