"""The simulator's process pool: same result as the sequential run, bytes only
across processes, refusals re-raised as themselves, bounded server memory."""

from __future__ import annotations

import multiprocessing.reduction
import tracemalloc

import numpy as np
import pytest

from protocols import simulator
from protocols.paillier_sum import simulate as paillier_simulate
from protocols.secagg import simulate
from protocols.secagg.protocol import SECAGG_PLUS
from protocols.simulator import LocalSecrets, WorkerError, resolve_workers, run
from secagg.errors import AbortError, ParameterError
from secagg.sign import SigningKey


def _inputs(n: int, d: int, seed: int = 0) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {1000 + 7 * u: rng.uniform(-1.0, 1.0, d) for u in range(n)}


def _by_round(res) -> dict:
    return {k: (dict(f.bytes_sent), dict(f.bytes_received), sorted(f.compute_seconds))
            for k, f in res.figures.items()}


@pytest.mark.parametrize(("mode", "dropouts"), [
    ("semi-honest", {"masked_input": [1007, 1035, 1063]}),
    ("semi-honest", {"share_keys": [1014], "unmask": [1021, 1049]}),
    ("malicious", {"masked_input": [1000, 1077], "consistency": [1042]}),
])
def test_pool_gives_the_sequential_result(mode: str, dropouts: dict) -> None:
    inputs = _inputs(24, 300)
    seq = simulate(inputs, seed=11, workers=1, mode=mode, dropouts=dropouts, neighbors=12)
    par = simulate(inputs, seed=11, workers=2, mode=mode, dropouts=dropouts, neighbors=12)
    assert seq.included == par.included
    assert seq.dropped == par.dropped
    np.testing.assert_array_equal(seq.raw_sum, par.raw_sum)
    np.testing.assert_array_equal(seq.sum, par.sum)
    # every party sent and received the same bytes in the same rounds
    assert _by_round(seq) == _by_round(par)
    exact = np.sum([inputs[u] for u in par.included], axis=0)
    assert np.max(np.abs(par.sum - exact)) < 1e-3


def test_three_workers_and_complete_graph() -> None:
    inputs = _inputs(10, 50, seed=3)
    seq = simulate(inputs, seed=5, workers=1, neighbors="complete")
    par = simulate(inputs, seed=5, workers=3, neighbors="complete")
    assert seq.included == par.included == frozenset(inputs)
    np.testing.assert_array_equal(seq.raw_sum, par.raw_sum)


def test_nothing_is_pickled_across_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_a: object, **_k: object) -> bytes:
        raise AssertionError("something was pickled for a worker")

    monkeypatch.setattr(multiprocessing.reduction.ForkingPickler, "dumps", refuse)
    res = simulate(_inputs(12, 40), seed=2, workers=2, mode="malicious",
                   dropouts={"masked_input": [1007]})
    assert len(res.included) == 11


def test_a_refusal_in_a_worker_is_reraised_as_itself() -> None:
    inputs = _inputs(8, 20)
    keys = {u: SigningKey.generate() for u in inputs}
    wrong = LocalSecrets(export=lambda u: {"k": SigningKey.generate().to_bytes()},
                         load=lambda named: {"signing_key": SigningKey.from_bytes(named["k"])})
    with pytest.raises(ParameterError, match=r"registry|identity|key"):
        run(SECAGG_PLUS, inputs, seed=1, workers=2, local_secrets=wrong, mode="malicious",
            signing_keys=keys)


def test_abort_is_the_same_under_the_pool() -> None:
    inputs = _inputs(8, 20)
    most = sorted(inputs)[:6]
    for workers in (1, 2):
        with pytest.raises(AbortError):
            simulate(inputs, seed=1, workers=workers, dropouts={"masked_input": most})


def test_workers_are_checked_and_resolved() -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ParameterError, match="workers"):
            resolve_workers(bad, 10, 10)  # type: ignore[arg-type]
    assert resolve_workers(None, 10, 10) == 1  # too small to pay for processes
    assert resolve_workers(8, 3, 10) == 3
    assert resolve_workers(1, 10**4, 10**5) == 1


def test_frames_refuse_truncation() -> None:
    frame = simulator._W(b"R").u32(3).blob(b"abcdef").bytes()
    for cut in range(1, len(frame)):
        r = simulator._R(frame[:cut])
        with pytest.raises(WorkerError, match="truncated"):
            r.u32()
            r.blob()


def test_server_never_holds_every_masked_vector() -> None:
    # the clients live in the workers, so what is traced here is the server's
    n, d = 64, 100_000
    inputs = _inputs(n, 64)
    big = {u: np.resize(v, d) for u, v in inputs.items()}
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        res = simulate(big, seed=4, workers=2, neighbors=8,
                       dropouts={"masked_input": [1007]})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(res.included) == n - 1
    all_vectors = (n - 1) * d * 4
    assert peak < all_vectors / 2, (peak, all_vectors)


def test_paillier_workers_keep_their_meaning() -> None:
    from secagg import paillier

    kp = paillier.generate_keypair(512, insecure_allow_small_key_for_tests=True)
    inputs = {u: np.full(4, 0.25 * u) for u in range(1, 4)}
    res = paillier_simulate(inputs, keypair=kp, workers=2, seed=0,
                            insecure_allow_small_key_for_tests=True)
    np.testing.assert_allclose(res.sum, np.full(4, 1.5), atol=1e-3)
