"""protocols.paillier_sum: parties, codecs, adversarial messages, simulate."""

from __future__ import annotations

import dataclasses

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
    "layout,mode",
    [
        ("key-holder", "online"),
        ("key-holder", "pool"),
        ("key-holder", "djn"),
        ("cross-silo", "online"),
        ("cross-silo", "crt"),
        ("cross-silo", "pool"),
    ],
)
def test_simulate_matches_the_exact_sum(kp, layout, mode):
    inputs = make_inputs()
    res = S.simulate(inputs, keypair=kp, layout=layout, mode=mode, seed=3, **INSECURE)
    assert isinstance(res, AggregationResult)
    raw, scale = expected_raw(inputs, inputs)
    np.testing.assert_array_equal(res.raw_sum, raw)
    assert res.sum.dtype == np.float64
    np.testing.assert_allclose(res.sum, raw / scale)
    clipped = sum(np.clip(v, -1, 1) for v in inputs.values())
    np.testing.assert_allclose(res.sum, clipped, atol=len(inputs) * 0.5 / scale + 1e-12)
    assert res.included == frozenset(inputs) and res.dropped == frozenset()
    assert "server" in res.figures and all(c in res.figures for c in inputs)
    assert ("key_holder" in res.figures) == (layout == "key-holder")
    assert res.figures[0].bytes_sent["encrypt"] > 0
    assert (
        res.figures["server"].bytes_received["encrypt"] >= 5 * res.figures[0].bytes_sent["encrypt"]
    )


@given(
    drops=st.dictionaries(
        st.sampled_from(S.ROUNDS), st.frozensets(st.integers(0, 5), max_size=3), max_size=3
    ),
    layout=st.sampled_from(["key-holder", "cross-silo"]),
)
def test_simulate_with_any_dropouts(kp, drops, layout):
    inputs = make_inputs(n=6, dim=12, seed=1)
    gone = drops.get("setup", frozenset()) | drops.get("encrypt", frozenset())
    survivors = frozenset(inputs) - gone
    readers = survivors - drops.get("decrypt", frozenset())
    aborts = len(survivors) < 2 or (layout == "cross-silo" and not readers)
    kw = dict(keypair=kp, layout=layout, dropouts=drops, min_clients=2, **INSECURE)
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
        S.simulate(inputs, keypair=kp, mode="crt", **INSECURE)
    with pytest.raises(EncodingError):
        S.simulate({0: np.zeros(3), 1: np.zeros(4)}, keypair=kp, **INSECURE)
    with pytest.raises(ParameterError, match="max_summands"):
        S.simulate(inputs, keypair=kp, max_summands=2, **INSECURE)


def test_simulate_generates_a_small_key_when_asked():
    res = S.simulate(make_inputs(n=2, dim=3), key_bits=512, **INSECURE)
    assert res.figures["key_holder"].compute_seconds["keygen"] >= 0


# ------------------------------------------------------------ codecs


def _messages(kp):
    pk, _ = kp
    cfg = S.PaillierSumConfig(round=4, clients=frozenset({1, 2, 3}), dimension=DIM)
    lay = cfg.packing(pk, **INSECURE)
    vec = P.encrypt(pk, lay, np.zeros(DIM), **INSECURE).to_bytes()
    return [
        S.PublicSetup(4, None, pk, lay, cfg.clients, 1),
        S.PublicSetup(4, 2, pk, lay, cfg.clients, 1),
        S.EncryptedInput(4, 2, vec),
        S.EncryptedSum(4, frozenset({1, 3}), vec),
        S.DecryptedSum(4, frozenset({1, 3}), np.arange(-5, 5, dtype=np.int64)),
    ]


def test_message_codecs_round_trip(kp):
    for msg in _messages(kp):
        data = msg.to_bytes()
        back = S.decode_message(data, **INSECURE)
        assert type(back) is type(msg)
        assert back.to_bytes() == data
        for f in dataclasses.fields(msg):
            a, b = getattr(msg, f.name), getattr(back, f.name)
            if isinstance(a, np.ndarray):
                np.testing.assert_array_equal(a, b)
            else:
                assert a == b


def test_malformed_messages_are_refused(kp):
    for msg in _messages(kp):
        data = msg.to_bytes()
        step = max(1, len(data) // 30)
        for i in range(0, len(data), step):
            with pytest.raises(ProtocolError):
                S.decode_message(data[:i], **INSECURE)
        with pytest.raises(ProtocolError, match="trailing"):
            S.decode_message(data + b"\0", **INSECURE)
    with pytest.raises(ProtocolError, match="magic"):
        S.decode_message(b"NOPE\x01", **INSECURE)
    with pytest.raises(ProtocolError):
        S.decode_message("not bytes")  # type: ignore[arg-type]
    # duplicate ids in an id list
    from secagg.wire import Writer

    dup = Writer(b"PSES").u64(0).u32(2).u32(1).u32(1).blob(b"").getvalue()
    with pytest.raises(ProtocolError, match="strictly increasing"):
        S.decode_message(dup)
    # the public setup refuses a small key unless the test flag is given
    setup = _messages(kp)[0].to_bytes()
    with pytest.raises(ProtocolError, match="minimum is 2048"):
        S.decode_message(setup)


@given(st.binary(max_size=200), st.sampled_from([b"PSPS", b"PSEI", b"PSES", b"PSDS"]))
def test_random_message_bytes_are_refused(blob, magic):
    with pytest.raises(SecAggError):
        S.decode_message(magic + b"\x01" + blob, **INSECURE)


# ------------------------------------------------------------ parties


class Round:
    """A hand-driven key-holder round with 3 clients."""

    def __init__(self, kp, *, rnd=0, clients=(1, 2, 3), min_clients=1, dim=DIM):
        self.kp = kp
        self.cfg = S.PaillierSumConfig(
            round=rnd, clients=frozenset(clients), dimension=dim, min_clients=min_clients
        )
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
        self.setup = out[0].message.to_bytes()
        assert self.agg.receive(self.setup) == []
        self.msgs = {}
        for c, cl in self.clients.items():
            (o,) = cl.receive(self.setup)
            assert o.to == S.AGGREGATOR
            self.msgs[c] = o.message.to_bytes()

    def expected(self, ids):
        return expected_raw(self.inputs, ids)[0]


def test_key_holder_round_by_hand(kp):
    r = Round(kp)
    assert r.agg.receive(r.msgs[1]) == []
    assert r.agg.receive(r.msgs[3]) == []
    (s,) = r.agg.finish()
    assert s.to == S.KEY_HOLDER and s.message.included == {1, 3}
    (d,) = r.kh.receive(s.message.to_bytes())
    assert d.to == S.AGGREGATOR
    assert r.agg.receive(d.message.to_bytes()) == []
    np.testing.assert_array_equal(r.agg.raw_result, r.expected([1, 3]))
    assert r.agg.state == "done"
    # a straggler after the round closed changes nothing
    with pytest.raises(ProtocolError, match="closed"):
        r.agg.receive(r.msgs[2])
    # the key holder decrypts once per round
    with pytest.raises(ProtocolError, match="refusing another"):
        r.kh.receive(s.message)


def test_aggregator_closes_itself_when_everyone_sent(kp):
    r = Round(kp)
    assert r.agg.receive(r.msgs[1]) == [] and r.agg.receive(r.msgs[2]) == []
    (s,) = r.agg.receive(r.msgs[3])
    assert isinstance(s.message, S.EncryptedSum) and s.message.included == {1, 2, 3}


def _finish_and_check(r, ids):
    (s,) = r.agg.finish()
    (d,) = r.kh.receive(s.message)
    r.agg.receive(d.message)
    np.testing.assert_array_equal(r.agg.raw_result, r.expected(ids))


def test_replays_are_refused_and_change_nothing(kp):
    r = Round(kp)
    r.agg.receive(r.msgs[1])
    with pytest.raises(ProtocolError, match="already sent"):
        r.agg.receive(r.msgs[1])
    # the same ciphertext under another sender id
    payload = S.decode_message(r.msgs[1], **INSECURE).payload
    with pytest.raises(ProtocolError, match="replay"):
        r.agg.receive(S.EncryptedInput(0, 2, payload))
    # an input from an older round
    old = Round(kp, rnd=7)
    with pytest.raises(ProtocolError, match="round 7"):
        r.agg.receive(old.msgs[2])
    with pytest.raises(ProtocolError, match="not in the round"):
        r.agg.receive(S.EncryptedInput(0, 99, payload))
    assert r.agg.included == {1} and r.agg.state == "collecting"
    _finish_and_check(r, [1])


def test_foreign_key_and_wrong_layout_are_refused(kp, other_kp):
    r = Round(kp)
    r.agg.receive(r.msgs[2])
    pk2 = other_kp[0]
    foreign = P.encrypt(pk2, r.cfg.packing(pk2, **INSECURE), np.zeros(DIM), **INSECURE)
    with pytest.raises(ProtocolError, match="another public key"):
        r.agg.receive(S.EncryptedInput(0, 1, foreign.to_bytes()))
    for kw in ({"dimension": DIM + 1}, {"clip": 2.0}, {"value_bits": 12}, {"max_summands": 9}):
        cfg = dataclasses.replace(r.cfg, **kw)
        vec = P.encrypt(kp[0], cfg.packing(kp[0], **INSECURE), np.zeros(cfg.dimension), **INSECURE)
        with pytest.raises(ProtocolError, match="layout"):
            r.agg.receive(S.EncryptedInput(0, 1, vec.to_bytes()))
    # a vector that claims to be a sum already
    lay = r.cfg.packing(kp[0], **INSECURE)
    two = P.aggregate([P.encrypt(kp[0], lay, np.zeros(DIM), **INSECURE) for _ in range(2)])
    with pytest.raises(ProtocolError, match="summands"):
        r.agg.receive(S.EncryptedInput(0, 1, two.to_bytes()))
    # ciphertexts outside the group
    data = S.decode_message(r.msgs[1], **INSECURE).payload
    width = lay.ciphertext_bytes
    zeroed = data[: -width * lay.ciphertexts] + bytes(width * lay.ciphertexts)
    with pytest.raises(IntegrityError):
        r.agg.receive(S.EncryptedInput(0, 1, zeroed))
    with pytest.raises(ProtocolError):
        r.agg.receive(S.EncryptedInput(0, 1, b"garbage"))
    assert r.agg.included == {2}
    # the refused client can still send its real input
    r.agg.receive(r.msgs[1])
    _finish_and_check(r, [1, 2])


def test_aggregator_order_and_setup_checks(kp, other_kp):
    r = Round(kp)
    fresh = S.PaillierSumAggregator(r.cfg, **INSECURE)
    with pytest.raises(ProtocolError, match="before the public setup"):
        fresh.receive(r.msgs[1])
    with pytest.raises(ProtocolError, match="cannot finish"):
        fresh.finish()
    # a setup under another key than the pinned one
    pk2 = other_kp[0]
    bad = S.PublicSetup(0, None, pk2, r.cfg.packing(pk2, **INSECURE), r.cfg.clients, 1)
    pinned = S.PaillierSumAggregator(r.cfg, expected_public_key=kp[0], **INSECURE)
    with pytest.raises(ProtocolError, match="not the expected one"):
        pinned.receive(bad)
    assert pinned.state == "setup"
    unpinned = S.PaillierSumAggregator(r.cfg, **INSECURE)
    unpinned.receive(r.setup)
    assert unpinned.receive(r.setup) == []  # the same setup again is harmless
    with pytest.raises(ProtocolError, match="different key"):
        unpinned.receive(bad)
    with pytest.raises(ProtocolError, match="key holder"):
        S.PaillierSumAggregator(r.cfg, **INSECURE).receive(dataclasses.replace(bad, sender=1))
    wrong_layout = dataclasses.replace(
        S.decode_message(r.setup, **INSECURE),
        layout=dataclasses.replace(r.cfg, value_bits=8).packing(kp[0], **INSECURE),
    )
    with pytest.raises(ProtocolError, match="layout"):
        S.PaillierSumAggregator(r.cfg, **INSECURE).receive(wrong_layout)
    with pytest.raises(ProtocolError, match="min_clients"):
        S.PaillierSumAggregator(r.cfg, **INSECURE).receive(
            dataclasses.replace(S.decode_message(r.setup, **INSECURE), min_clients=2)
        )


def test_too_few_inputs_abort_and_stay_open(kp):
    r = Round(kp, min_clients=2)
    r.agg.receive(r.msgs[3])
    with pytest.raises(AbortError, match="min_clients is 2"):
        r.agg.finish()
    assert r.agg.state == "collecting"
    r.agg.receive(r.msgs[2])
    _finish_and_check(r, [2, 3])


def test_key_holder_refusals(kp):
    r = Round(kp, min_clients=2)
    pk = kp[0]
    lay = r.cfg.packing(pk, **INSECURE)
    one = P.encrypt(pk, lay, np.zeros(DIM), **INSECURE)
    two = one + P.encrypt(pk, lay, np.zeros(DIM), **INSECURE)
    cases = [
        (S.EncryptedSum(0, frozenset({1}), one.to_bytes()), "min_clients"),
        (S.EncryptedSum(0, frozenset({1, 2, 3}), two.to_bytes()), "summands"),
        (S.EncryptedSum(0, frozenset({1, 9}), two.to_bytes()), "outside the round"),
        (S.EncryptedSum(5, frozenset({1, 2}), two.to_bytes()), "round 5"),
        (S.EncryptedInput(0, 1, one.to_bytes()), "does not accept"),
    ]
    for msg, match in cases:
        with pytest.raises(ProtocolError, match=match):
            r.kh.receive(msg)
    assert r.kh.state == "announced"
    (d,) = r.kh.receive(S.EncryptedSum(0, frozenset({1, 2}), two.to_bytes()))
    np.testing.assert_array_equal(d.message.raw_sum, np.zeros(DIM, dtype=np.int64))
    # the aggregator refuses a decrypted sum it did not ask for
    with pytest.raises(ProtocolError, match="state"):
        r.agg.receive(d.message)


def test_aggregator_checks_the_decrypted_sum(kp):
    r = Round(kp)
    r.agg.receive(r.msgs[1])
    r.agg.receive(r.msgs[2])
    r.agg.finish()
    good = np.zeros(DIM, dtype=np.int64)
    with pytest.raises(ProtocolError, match="other clients"):
        r.agg.receive(S.DecryptedSum(0, frozenset({1, 3}), good))
    with pytest.raises(ProtocolError, match="values"):
        r.agg.receive(S.DecryptedSum(0, frozenset({1, 2}), good[:-1]))
    with pytest.raises(ProtocolError, match="largest possible"):
        r.agg.receive(S.DecryptedSum(0, frozenset({1, 2}), good + 2**40))
    assert r.agg.state == "summed"


def test_client_checks(kp, other_kp):
    r = Round(kp)
    cfg = r.cfg
    c = S.PaillierSumClient(1, cfg, np.zeros(DIM), expected_public_key=kp[0], **INSECURE)
    pk2 = other_kp[0]
    bad = S.PublicSetup(0, None, pk2, cfg.packing(pk2, **INSECURE), cfg.clients, 1)
    with pytest.raises(ProtocolError, match="expected"):
        c.receive(bad)
    with pytest.raises(ProtocolError, match="key holder"):
        c.receive(dataclasses.replace(S.decode_message(r.setup, **INSECURE), sender=2))
    assert c.state == "new"
    c.receive(r.setup)
    with pytest.raises(ProtocolError, match="already received"):
        c.receive(r.setup)
    with pytest.raises(ProtocolError, match="does not accept"):
        c.receive(S.EncryptedSum(0, frozenset({1}), b""))
    with pytest.raises(ParameterError, match="not in the round"):
        S.PaillierSumClient(8, cfg, np.zeros(DIM))
    with pytest.raises(EncodingError, match="shape"):
        S.PaillierSumClient(1, cfg, np.zeros(DIM + 1))
    with pytest.raises(EncodingError, match="dtype"):
        S.PaillierSumClient(1, cfg, np.array(["x"] * DIM))
    with pytest.raises(ParameterError, match="never hold the private key"):
        S.PaillierSumClient(1, cfg, np.zeros(DIM), keypair=kp, **INSECURE)
    with pytest.raises(ParameterError, match="cross-silo"):
        S.PaillierSumClient(1, cfg, np.zeros(DIM), mode="crt")
    with pytest.raises(ParameterError, match="pool"):
        S.PaillierSumClient(1, cfg, np.zeros(DIM), mode="pool")
    with pytest.raises(ParameterError, match="key-holder"):
        S.PaillierSumKeyHolder(dataclasses.replace(cfg, trust_layout="cross-silo"), *kp)


def test_cross_silo_by_hand(kp):
    cfg = S.PaillierSumConfig(
        round=2, clients=frozenset({10, 20, 30}), dimension=DIM, trust_layout="cross-silo"
    )
    xs = {c: np.full(DIM, c / 100) for c in cfg.clients}
    clients = {
        c: S.PaillierSumClient(c, cfg, xs[c], keypair=kp, mode="crt", **INSECURE)
        for c in cfg.clients
    }
    agg = S.PaillierSumAggregator(cfg, **INSECURE)
    out = clients[10].start() + clients[30].start()
    with pytest.raises(ProtocolError, match="already sent"):
        clients[10].start()
    res = []
    for o in out:
        assert o.to == S.AGGREGATOR
        res += agg.receive(o.message.to_bytes())
    assert res == [] and agg.included == {10, 30}
    (s,) = agg.finish()
    assert s.to == S.CLIENTS
    for c in (10, 20):  # a client that never sent may still decrypt the sum
        assert clients[c].receive(s.message.to_bytes()) == []
        np.testing.assert_allclose(clients[c].result, np.full(DIM, 0.4), atol=1e-4)
    with pytest.raises(ProtocolError, match="already decrypted"):
        clients[10].receive(s.message)
    # the aggregator never sees the plaintext, and refuses to
    assert agg.result is None
    with pytest.raises(ProtocolError, match="never receives"):
        agg.receive(S.DecryptedSum(2, frozenset({10, 30}), np.zeros(DIM, dtype=np.int64)))
    # a setup from outside the round
    with pytest.raises(ProtocolError, match="client of the round"):
        S.PaillierSumAggregator(cfg, **INSECURE).receive(
            dataclasses.replace(out[0].message, sender=None)
        )


def test_config_validation():
    with pytest.raises(ParameterError):
        S.PaillierSumConfig(round=-1, clients=frozenset({1}), dimension=3)
    with pytest.raises(ParameterError):
        S.PaillierSumConfig(round=0, clients=frozenset(), dimension=3)
    with pytest.raises(ParameterError):
        S.PaillierSumConfig(round=0, clients=frozenset({2**32}), dimension=3)
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
