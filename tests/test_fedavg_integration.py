"""FedAvg over secure aggregation gives the plain FedAvg model, up to the
documented quantization error, with the same seed."""

import numpy as np
import pytest

from protocols.fedavg import Aggregator, FedAvgConfig, run_fedavg
from protocols.fedavg.tasks import make_task


def _run(aggregation, **kw):
    cfg = FedAvgConfig(aggregation=aggregation, dp="none", num_clients=6, clients_per_round=5,
                       rounds=kw.pop("rounds", 1), dropout_rate=0.2, seed=3, progress=False, **kw)
    return run_fedavg(cfg, write=False)


@pytest.fixture(scope="module")
def plain_one_round():
    return _run("plain")


@pytest.mark.parametrize("aggregation", ["secagg", "secagg+", "paillier"])
def test_one_round_matches_plain_within_quantization_bound(plain_one_round, aggregation):
    res = _run(aggregation)
    p = plain_one_round
    r, q = res.rounds[0], p.rounds[0]
    assert r.sampled == q.sampled and r.dropped == q.dropped and r.included == q.included
    assert r.included and r.dropped  # the seed gives a round with dropouts
    # The global step is the weighted mean: sum(w_k delta_k) / sum(w_k). Each of the
    # two sums is off by at most the aggregator's bound; w_k >= 1/bound.
    agg = Aggregator(aggregation, clip=4.0, max_summands=5)
    cfg = res.config
    task = make_task("digits", 6, split=cfg["split"], alpha=cfg["alpha"], seed=3)
    smallest = min(len(d) for d in task.client_datasets)
    wsum_min = len(r.included) * smallest / cfg["max_examples_per_client"]
    e = agg.quantization_error
    bound = (e + 4.0 * e / wsum_min) / (wsum_min - e)
    diff = np.abs(res.final_params - p.final_params).max()
    assert diff <= bound, (diff, bound)
    assert r.time_crypto > 0 and r.bytes_up_per_client > 0


def test_several_rounds_stay_close(plain_one_round):
    a = _run("plain", rounds=3)
    b = _run("secagg+", rounds=3)
    assert np.abs(a.final_params - b.final_params).max() < 1e-4
    assert [r.included for r in a.rounds] == [r.included for r in b.rounds]
