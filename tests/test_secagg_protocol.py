"""End-to-end rounds of the pairwise-mask protocol: correctness under dropouts,
aborts below threshold, figures, and the round discipline of both parties."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from protocols.results import AggregationResult
from protocols.secagg import (
    MaskedInput,
    SecAggClient,
    SecAggConfig,
    SecAggServer,
    ShareKeys,
    decode,
    default_encoder,
    encode,
    partition,
    simulate,
)
from protocols.secagg.config import consistency_quorum
from protocols.secagg.protocol import session_seeds as _seeds
from secagg.encoding import FixedPointEncoder
from secagg.errors import AbortError, ParameterError, ProtocolError
from secagg.sign import SigningKey

ROUNDS_SH = ["advertise", "share_keys", "masked_input", "unmask"]
ROUNDS_MAL = ["advertise", "share_keys", "masked_input", "consistency", "unmask"]


def _inputs(n: int, d: int, seed: int = 0) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {u: rng.uniform(-1, 1, d) for u in range(1, n + 1)}


def _exact(enc: FixedPointEncoder, inputs: dict[int, np.ndarray], who: frozenset[int]
           ) -> np.ndarray:
    acc = np.zeros(len(next(iter(inputs.values()))), dtype=enc.dtype)
    for u in who:
        acc += enc.encode(inputs[u])  # numpy wrap-around: the sum mod 2^k
    return acc


def _expected(cfg: SecAggConfig, drops: dict[str, set[int]], rounds: list[str],
              quorum: int | None = None) -> frozenset[int] | None:
    """Oracle: the included set, or None when the round must abort."""
    t, nb = cfg.threshold, cfg.neighbours
    live = set(cfg.client_ids)
    sets: dict[str, set[int]] = {}
    for r in rounds:
        live = live - drops.get(r, set())
        sets[r] = set(live)

    def closed_ok(group: set[int]) -> bool:
        return len(group) >= t and all(len((nb[u] | {u}) & group) >= t for u in group)

    def holders_ok(holders: set[int], u3: set[int], u2: set[int]) -> bool:
        if any(len((nb[u] | {u}) & holders) < t for u in u3):
            return False
        needed = [v for v in u2 - u3 if nb[v] & u3]
        return all(len(nb[v] & holders) >= t for v in needed)

    u1, u2, u3 = sets["advertise"], sets["share_keys"], sets["masked_input"]
    if not (closed_ok(u1) and closed_ok(u2) and closed_ok(u3) and holders_ok(u3, u3, u2)):
        return None
    if quorum is not None:
        u4 = sets["consistency"]
        if len(u3) < quorum or len(u4) < quorum or not holders_ok(u4, u3, u2):
            return None
    if not holders_ok(sets["unmask"], u3, u2):
        return None
    return frozenset(u3)


@st.composite
def _scenarios(draw: st.DrawFn) -> dict[str, object]:
    n = draw(st.integers(3, 40))
    mode = draw(st.sampled_from(["semi-honest", "semi-honest", "malicious"]))
    degree = draw(st.one_of(st.none(), st.integers(1, max(1, (n - 2) // 2)).map(lambda h: 2 * h)))
    if degree is not None and degree > n - 2:
        degree = None
    holders = n if degree is None else degree + 1
    d = draw(st.integers(1, 64))
    rounds = ROUNDS_MAL if mode == "malicious" else ROUNDS_SH
    # a few clients drop, each at some round; thresholds mostly leave room for them
    n_drop = draw(st.integers(0, max(0, n // 3)))
    dropped = draw(st.permutations(range(1, n + 1)))[:n_drop]
    drops: dict[str, set[int]] = {}
    for u in dropped:
        drops.setdefault(draw(st.sampled_from(rounds)), set()).add(u)
    room = max(2, holders - 2 * n_drop)
    threshold = draw(st.one_of(st.integers(2, room), st.integers(2, holders)))
    return dict(n=n, mode=mode, degree=degree, threshold=threshold, d=d, drops=drops,
                seed=draw(st.integers(0, 2**32)))


@given(_scenarios())
def test_secure_sum_equals_plain_sum_or_aborts(sc: dict[str, object]) -> None:
    n, d = sc["n"], sc["d"]
    assert isinstance(n, int) and isinstance(d, int)
    inputs = _inputs(n, d, seed=int(sc["seed"]))  # type: ignore[call-overload]
    enc = default_encoder(n)
    kw = dict(threshold=sc["threshold"], neighbors=sc["degree"], dropouts=sc["drops"],
              mode=sc["mode"], seed=sc["seed"], encoder=enc)
    # the same public graph simulate() derives from its seed
    malicious = sc["mode"] == "malicious"
    reg = {u: SigningKey.generate().verify_key() for u in range(1, n + 1)} if malicious else None
    cfg = SecAggConfig.create(
        range(1, n + 1), d, threshold=sc["threshold"],  # type: ignore[arg-type]
        degree=sc["degree"], session_id=0, mode=sc["mode"],  # type: ignore[arg-type]
        graph_seed=_seeds(int(sc["seed"]))[1],  # type: ignore[call-overload]
        registry=reg,
    )
    rounds = ROUNDS_MAL if malicious else ROUNDS_SH
    quorum = consistency_quorum(n, 0.05) if malicious else None
    want = _expected(cfg, sc["drops"], rounds, quorum)  # type: ignore[arg-type]
    if malicious:  # clients check the configuration, then that U3 keeps the ring connected
        bits, bound = partition.malicious_security(cfg, partition.SecurityTarget())
        if bits < 40:
            event("configuration refused by the clients")
            with pytest.raises(ParameterError):
                simulate(inputs, **kw)  # type: ignore[arg-type]
            return
        if want is not None:
            try:
                partition.check_survivors(cfg, want, bound)
            except AbortError:
                want = None
    if want is None:
        event("aborts")
        with pytest.raises(AbortError):
            simulate(inputs, **kw)  # type: ignore[arg-type]
        return
    event(f"completes with {n - len(want)} of {n} excluded")
    res = simulate(inputs, **kw)  # type: ignore[arg-type]
    assert res.included == want
    assert res.dropped == frozenset(range(1, n + 1)) - want
    assert res.raw_sum is not None
    np.testing.assert_array_equal(res.raw_sum, _exact(enc, inputs, want))
    plain = sum((inputs[u] for u in want), np.zeros(d))
    assert np.max(np.abs(res.sum - plain)) <= enc.error_bound(len(want)) + 1e-12


# -- fixed scenarios ------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["semi-honest", "malicious"])
@pytest.mark.parametrize("neighbors", ["complete", 4])
def test_dropouts_in_every_round(mode: str, neighbors: object) -> None:
    inputs = _inputs(16, 33)
    drops = {"advertise": [1], "share_keys": [5], "masked_input": [9], "unmask": [12]}
    if mode == "malicious":
        drops["consistency"] = [14]
    res = simulate(inputs, threshold=3, neighbors=neighbors, dropouts=drops,  # type: ignore[arg-type]
                   mode=mode, seed=3)  # type: ignore[arg-type]
    assert res.included == frozenset(range(1, 17)) - {1, 5, 9}
    plain = sum(inputs[u] for u in res.included)
    assert np.allclose(res.sum, plain, atol=1e-4)


def test_result_type_and_figures() -> None:
    d = 1000
    res = simulate(_inputs(6, d), seed=1, dropouts={"masked_input": [2]})
    assert isinstance(res, AggregationResult)
    assert res.sum.dtype == np.float64 and res.raw_sum is not None
    assert set(res.figures) == set(range(1, 7)) | {"server"}
    f1 = res.figures[1]
    assert set(f1.compute_seconds) == set(ROUNDS_SH)
    assert all(s >= 0 for s in f1.compute_seconds.values())
    assert d * 4 < f1.bytes_sent["masked_input"] < d * 4 + 100
    assert f1.bytes_received["share_keys"] > 0 and f1.bytes_received["unmask"] > 0
    assert "unmask" not in res.figures[2].compute_seconds  # dropped before masking
    srv = res.figures["server"]
    assert srv.bytes_received["masked_input"] == sum(
        res.figures[u].bytes_sent["masked_input"] for u in res.included)
    assert srv.total_sent == sum(res.figures[u].total_received for u in range(1, 7))


def test_uint64_encoder() -> None:
    enc = FixedPointEncoder(clip=100.0, frac_bits=30, max_summands=5, modulus_bits=64)
    inputs = {u: np.full(7, 50.0 * u / 5) for u in range(1, 6)}
    res = simulate(inputs, encoder=enc, dropouts={"share_keys": [4]}, threshold=3)
    assert res.raw_sum is not None and res.raw_sum.dtype == np.uint64
    np.testing.assert_array_equal(res.raw_sum, _exact(enc, inputs, res.included))


def test_abort_below_threshold_outputs_nothing() -> None:
    with pytest.raises(AbortError):
        simulate(_inputs(5, 4), threshold=4, dropouts={"masked_input": [1, 2]})
    with pytest.raises(AbortError):
        simulate(_inputs(5, 4), threshold=4, dropouts={"unmask": [1, 2]})
    with pytest.raises(AbortError):  # malicious: below the consistency quorum
        simulate(_inputs(10, 4), threshold=2, mode="malicious",
                 dropouts={"consistency": [1, 2, 3, 4, 5]})


def test_simulate_parameter_errors() -> None:
    with pytest.raises(ParameterError, match="round"):
        simulate(_inputs(4, 3), dropouts={"consistency": [1]})  # semi-honest has none
    with pytest.raises(ParameterError, match="round"):
        simulate(_inputs(4, 3), dropouts={"lunch": [1]})
    with pytest.raises(ParameterError, match="unknown clients"):
        simulate(_inputs(4, 3), dropouts={"unmask": [9]})
    with pytest.raises(ParameterError):
        simulate({1: np.zeros(3), 2: np.zeros(4)})
    with pytest.raises(ParameterError):
        simulate({1: np.zeros(3)})
    with pytest.raises(ParameterError):
        simulate(_inputs(4, 3), encoder=FixedPointEncoder(1.0, max_summands=3))


def test_seed_fixes_the_public_parameters_only() -> None:
    a = simulate(_inputs(30, 5), neighbors=6, threshold=3, seed=5,
                 dropouts={"masked_input": [3, 4]})
    b = simulate(_inputs(30, 5), neighbors=6, threshold=3, seed=5,
                 dropouts={"masked_input": [3, 4]})
    assert a.included == b.included
    np.testing.assert_array_equal(a.raw_sum, b.raw_sum)  # type: ignore[arg-type]


def test_secagg_plus_with_a_derived_sparse_graph() -> None:
    n = 120
    inputs = _inputs(n, 16)
    drops = {"masked_input": list(range(1, n + 1, 10)), "unmask": [2, 3]}
    res = simulate(inputs, seed=11, dropouts=drops)
    assert res.included == frozenset(range(1, n + 1)) - set(drops["masked_input"])
    assert np.allclose(res.sum, sum(inputs[u] for u in res.included), atol=1e-3)
    # SecAgg+ traffic: each client talks to k << n neighbours
    cfg = SecAggConfig.create(range(1, n + 1), 16)
    assert cfg.degree is not None and cfg.degree < n - 1


# -- round discipline, driven by hand --------------------------------------------------
def _parties(n: int = 5, d: int = 4, threshold: int = 3
             ) -> tuple[SecAggConfig, dict[int, SecAggClient], SecAggServer, dict[int, np.ndarray]]:
    cfg = SecAggConfig.create(range(1, n + 1), d, threshold=threshold, session_id=1,
                              graph_seed=bytes(32))
    rng = np.random.default_rng(1)
    xs = {u: rng.integers(0, 2**32, d, dtype=np.uint32) for u in cfg.client_ids}
    clients = {u: SecAggClient(cfg, u, input=xs[u]) for u in cfg.client_ids}
    return cfg, clients, SecAggServer(cfg), xs


def _m(envelopes: list) -> list:  # type: ignore[type-arg]
    """The message objects of a party's outgoing envelopes."""
    return [e.message for e in envelopes]


def _wire(msg: object, cfg: SecAggConfig) -> object:
    return decode(encode(msg, cfg), cfg)  # type: ignore[arg-type]


def test_late_duplicate_and_future_messages_are_refused() -> None:
    cfg, clients, server, xs = _parties()
    out = []
    for u, c in clients.items():
        for m in _m(c.start()):
            out += _m(server.handle(_wire(m, cfg)))  # type: ignore[arg-type]
    assert server.round == "share_keys"
    early = []
    for m in out:
        early += _m(clients[m.receiver].handle(_wire(m, cfg)))  # type: ignore[arg-type]
    fwd = []
    for m in early[:4]:
        fwd += _m(server.handle(_wire(m, cfg)))  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="duplicate"):
        _m(server.handle(_wire(early[0], cfg)))  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="expected ShareKeys"):
        _m(server.handle(MaskedInput(sender=1, vector=np.zeros(4, np.uint32))))
    fwd += _m(server.close_round())  # client 5 is late: it drops out of the protocol
    assert server.round == "masked_input" and set(server.live["share_keys"]) == {1, 2, 3, 4}
    with pytest.raises(ProtocolError, match="closed"):
        _m(server.handle(_wire(early[4], cfg)))  # type: ignore[arg-type]
    masked = []
    for m in fwd:
        masked += _m(clients[m.receiver].handle(_wire(m, cfg)))  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="not part of round"):
        _m(server.handle(MaskedInput(sender=5, vector=np.zeros(4, np.uint32))))
    unmask = []
    for m in masked:
        unmask += _m(server.handle(_wire(m, cfg)))  # type: ignore[arg-type]
    # a client refuses a second message for a round it finished
    with pytest.raises(ProtocolError, match="closed"):
        _m(clients[1].handle(fwd[0]))  # type: ignore[arg-type]
    for m in unmask:
        for r in _m(clients[m.receiver].handle(_wire(m, cfg))):  # type: ignore[arg-type]
            _m(server.handle(_wire(r, cfg)))  # type: ignore[arg-type]
    assert server.round is None and server.state == "done" and server.result is not None
    want = sum((xs[u] for u in (1, 2, 3, 4)), np.zeros(4, np.uint32))
    np.testing.assert_array_equal(server.result.raw_sum, want)
    assert server.result.included == frozenset({1, 2, 3, 4})
    with pytest.raises(ProtocolError):
        _m(server.handle(masked[0]))  # type: ignore[arg-type]
    with pytest.raises(ProtocolError):
        server.close_round()
    assert _m(server.start()) == []


def test_refused_message_leaves_the_server_unchanged() -> None:
    _cfg, clients, server, xs = _parties()
    out = []
    for c in clients.values():
        for m in _m(c.start()):
            out += _m(server.handle(m))
    shares = [r for m in out for r in _m(clients[m.receiver].handle(m))]
    bad = ShareKeys(sender=1, shares=shares[0].shares[:-1])  # type: ignore[attr-defined]
    with pytest.raises(ProtocolError, match="expected its live neighbours"):
        _m(server.handle(bad))
    fwd = []
    for m in shares:
        fwd += _m(server.handle(m))
    masked = [r for m in fwd for r in _m(clients[m.receiver].handle(m))]
    with pytest.raises(ProtocolError):
        _m(server.handle(MaskedInput(sender=1, vector=np.zeros(3, np.uint32))))
    with pytest.raises(ProtocolError):
        _m(server.handle(MaskedInput(sender=1, vector=np.zeros(4, np.uint64))))
    reqs = []
    for m in masked:
        reqs += _m(server.handle(m))
    for m in reqs:
        for r in _m(clients[m.receiver].handle(m)):
            _m(server.handle(r))
    assert server.result is not None
    np.testing.assert_array_equal(server.result.raw_sum,
                                  sum((xs[u] for u in xs), np.zeros(4, np.uint32)))


def test_client_state_checks() -> None:
    cfg, clients, server, _ = _parties()
    c = clients[1]
    with pytest.raises(ParameterError):
        c.set_input(np.zeros(3, np.uint32))
    with pytest.raises(ParameterError):
        c.set_input(np.zeros(4, np.float64))  # type: ignore[arg-type]
    with pytest.raises(ParameterError):
        SecAggClient(cfg, 99)
    _m(c.start())
    with pytest.raises(ProtocolError, match="already started"):
        _m(c.start())
    SecAggClient(cfg, 2)
    out = []
    for u, cl in clients.items():
        for m in (_m(cl.start()) if u != 1 else []):
            out += _m(server.handle(m))
    assert out == []  # client 1's advertisement is missing; the round is still open


@pytest.mark.slow
def test_one_thousand_clients_secagg_plus() -> None:
    n, d = 1000, 100_000
    rng = np.random.default_rng(0)
    inputs = {u: rng.uniform(-1, 1, d).astype(np.float32) for u in range(1, n + 1)}
    drops = {"masked_input": list(range(1, n + 1, 10))}
    res = simulate(inputs, seed=2, dropouts=drops)
    assert len(res.included) == 900
    plain = sum(inputs[u].astype(np.float64) for u in res.included)
    assert np.max(np.abs(res.sum - plain)) < 1e-3


@pytest.mark.slow
def test_client_masking_cost_is_tens_of_milliseconds() -> None:
    n, d = 100, 1_000_000
    rng = np.random.default_rng(0)
    inputs = {u: rng.uniform(-1, 1, d).astype(np.float32) for u in range(1, n + 1)}
    t0 = time.perf_counter()
    res = simulate(inputs, neighbors=14, threshold=8, seed=1)
    assert time.perf_counter() - t0 < 60
    per_client = np.median([res.figures[u].compute_seconds["masked_input"]
                            for u in range(1, n + 1)])
    assert per_client < 0.1  # 15 AES-CTR masks of 4 MB each
