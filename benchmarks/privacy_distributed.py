"""Client-level DP-FedAvg on many clients: central against distributed DP.

A synthetic task generated in code: ``CLIENTS`` clients (1,000), each with
20 to 60 examples of a 10-class problem on 32 standardised features (labels
from a fixed random softmax model; each client's features shifted by its
own offset, so clients differ), a linear model (330 parameters, padded to
512 for the rotation) and a held-out test set of 5,000 examples from the
population. ``PER_ROUND`` (100) clients take part per round; delta = 1e-5;
the privacy unit is one client.

Compared, through the library's FedAvg driver at the same epsilon:

* ``central``: ``dp="central"``, Gaussian noise added by the aggregator
  after the secure sum; Poisson client sampling at rate 0.1, accounted with
  amplification by sampling (PLD). The server sees the un-noised sum: the
  guarantee holds against everyone else.
* ``distributed, calibrated at 90 survivors``: the same with the threshold
  set to 90 (5 % of clients drop out per round, so most rounds sum about
  95): what a higher secure-aggregation threshold would buy, at the cost of
  aborting rounds with fewer than 90 survivors (an aborted round releases
  nothing; the table counts them).
* ``distributed``: ``dp="distributed"``, discrete Gaussian shares added by
  the clients before the secure sum, ``dp_bits`` bits per coordinate; the
  noise is calibrated for the secure sum's threshold of survivors (secagg,
  complete graph, 100 clients: 51) and every round is charged in full (the
  server knows who took part: no amplification). The guarantee holds
  against the server.

The distributed runs use :class:`ClearIntegerSum`: the same exact modular
sum and the same threshold as ``secagg``, computed in the clear so a
100-client round takes milliseconds instead of ~15 s; the server's output
is identical (``tests/test_fedavg_distributed.py`` checks the secure sum
against the modular sum). It also measures the wrap rate: the fraction of
coordinates whose true integer sum fell outside ``[-2^(b-1), 2^(b-1))``
and so decoded wrongly.

Also: accuracy against ``dp_bits`` at a fixed epsilon, with the measured
wrap rate, and combinations the parameter selection refuses (with its
message).

    secagg bench privacy --distributed [--quick]
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ._common import table, write_json

SUITE = "privacy-distributed"
DELTA = 1e-5
CLIENTS = 1000
PER_ROUND = 100
FEATURES = 32
CLASSES = 10
EPSILONS = (1.0, 2.0, 4.0, 8.0)
BITS = (8, 10, 12, 14, 16, 20)
BITS_EPSILON = 4.0
ROUNDS = 8


def make_task(seed: int = 0) -> Any:
    """The synthetic many-client task (module doc); public randomness only."""
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset

    from protocols.fedavg.tasks import Task

    rng = np.random.default_rng(seed)
    w = rng.normal(0, 1.0, (FEATURES, CLASSES))

    def draw(n: int, shift: npt.NDArray[np.float64]) -> tuple[Any, Any]:
        x = rng.normal(0, 1.0, (n, FEATURES)) + shift
        logits = x @ w * 1.5
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        u = rng.random((n, 1))
        y = np.minimum((p.cumsum(1) < u).sum(1), CLASSES - 1)
        return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.int64)

    clients = []
    for _ in range(CLIENTS):
        shift = rng.normal(0, 0.5, FEATURES)
        clients.append(TensorDataset(*draw(int(rng.integers(20, 61)), shift)))
    test = TensorDataset(*draw(5000, np.zeros(FEATURES)))

    def model() -> nn.Module:
        return nn.Linear(FEATURES, CLASSES)

    return Task(model_factory=model, client_datasets=clients, test_dataset=test,
                kind="classification", name="synthetic-1000")


class ClearIntegerSum:
    """Factory of a stand-in for ``secagg``'s integer sum (module doc)."""

    @staticmethod
    def create(bits_holder: dict[str, Any]) -> Any:
        from protocols.fedavg.aggregation import SecAggSum
        from protocols.results import AggregationResult, PartyFigures

        class _Clear(SecAggSum):
            name = "secagg (summed in the clear, same threshold)"

            def _run_integer(
                self, inputs: Mapping[int, npt.NDArray[np.uint32]], dropped: frozenset[int],
                round_idx: int,
            ) -> AggregationResult:
                included = frozenset(inputs) - dropped
                total = np.zeros(len(next(iter(inputs.values()))), dtype=np.uint64)
                true = np.zeros(total.shape, dtype=np.int64)
                b = bits_holder["bits"]
                half = 1 << (b - 1)
                for c in sorted(included):
                    total += inputs[c]
                    v = inputs[c].astype(np.int64)
                    true += np.where(v >= half, v - (1 << b), v)
                bits_holder["wraps"] += int(np.count_nonzero((true < -half) | (true >= half)))
                bits_holder["coords"] += true.size
                figures: dict[object, PartyFigures] = {c: PartyFigures() for c in included}
                figures["server"] = PartyFigures()
                raw = (total % (1 << 32)).astype(np.uint32)
                return AggregationResult(sum=raw.astype(np.float64), included=included,
                                         dropped=frozenset(inputs) & dropped, raw_sum=raw,
                                         figures=figures)  # type: ignore[arg-type]

            def threshold(self, n: int) -> int:
                t = bits_holder.get("threshold")
                return super().threshold(n) if t is None else min(int(t), n)

        return _Clear(clip=1.0, max_summands=PER_ROUND, seed=0)


def _config(dp: str, eps: float, rounds: int, seed: int, bits: int = 16) -> Any:
    from protocols.fedavg import FedAvgConfig

    return FedAvgConfig(
        task="digits", num_clients=CLIENTS, clients_per_round=PER_ROUND, rounds=rounds,
        local_epochs=1, batch_size=16, client_lr=0.5, server_lr=1.0,
        aggregation="secagg" if dp == "distributed" else "plain", dropout_rate=0.05,
        dp=dp, target_epsilon=eps if math.isfinite(eps) else None, delta=DELTA,
        clip_norm=1.0, dp_bits=bits,
        progress=False, seed=seed,
    )


def central_unamplified_std(eps: float, rounds: int) -> float:
    """Noise std on the sum (clip norm 1) central DP would need *without*
    amplification by sampling (every round charged in full), for reference."""
    from dp import accounting

    return float(accounting.noise_multiplier(eps, 1.0, rounds, DELTA))


def run_one(task: Any, dp: str, eps: float, rounds: int, seed: int,
            bits: int = 16, threshold: int | None = None) -> dict[str, Any]:
    """One FedAvg run; its final accuracy, epsilon and (distributed) wrap rate.

    ``threshold`` overrides the secure sum's (distributed only): noise is then
    calibrated for that many survivors, and the accountant still charges the
    survivors actually summed."""
    from protocols.fedavg import run_fedavg
    from secagg.errors import ParameterError

    holder: dict[str, Any] = {"bits": bits, "wraps": 0, "coords": 0, "threshold": threshold}
    t0 = time.perf_counter()
    try:
        cfg = _config(dp, eps, rounds, seed, bits)
        res = run_fedavg(cfg, task, write=False,
                         secure_sum=ClearIntegerSum.create(holder) if dp == "distributed"
                         else None)
    except ParameterError as exc:
        return {"dp": dp, "epsilon_target": eps, "bits": bits, "refused": str(exc)}
    fin = res.final
    out: dict[str, Any] = {
        "dp": dp if threshold is None else f"{dp}, calibrated at {threshold} survivors",
        "epsilon_target": eps, "bits": bits if dp == "distributed" else None,
        "accuracy": fin.test_accuracy, "epsilon": fin.epsilon, "accountant": fin.accountant,
        "noise_std_sum": fin.noise_std, "seconds": time.perf_counter() - t0,
        "guarantee": fin.privacy_guarantee,
        "aborted_rounds": sum(bool(r.aborted) for r in res.rounds),
    }
    if dp == "central":
        out["central_unamplified_std"] = central_unamplified_std(eps, rounds)
    if dp == "distributed":
        out["wrap_rate"] = holder["wraps"] / max(1, holder["coords"])
        out["near_boundary"] = max(r.near_boundary or 0.0 for r in res.rounds)
    return out


def main(quick: bool, seeds: list[int], out_dir: Path) -> int:
    import torch

    torch.set_num_threads(1)
    started = time.perf_counter()
    task = make_task(0)
    rounds = ROUNDS
    rows: list[dict[str, Any]] = []

    def avg(dp: str, eps: float, bits: int = 16, threshold: int | None = None
            ) -> dict[str, Any]:
        runs = [run_one(task, dp, eps, rounds, s, bits, threshold) for s in seeds]
        if "refused" in runs[0]:
            row = runs[0]
        else:
            row = dict(runs[0])
            row["accuracy"] = float(np.mean([r["accuracy"] for r in runs]))
            row["epsilon"] = (None if runs[0]["epsilon"] is None
                              else max(r["epsilon"] for r in runs))
            if dp == "distributed":
                row["wrap_rate"] = float(np.mean([r["wrap_rate"] for r in runs]))
            row["runs"] = runs
        print({k: v for k, v in row.items() if k not in ("runs", "guarantee")}, flush=True)
        return row

    for eps in EPSILONS:
        rows.append(avg("central", eps))
        rows.append(avg("distributed", eps, 16))
        rows.append(avg("distributed", eps, 16, threshold=90))
    bits_rows = [avg("distributed", BITS_EPSILON, b) for b in BITS]
    rows.append(avg("none", math.inf))

    def fmt(r: dict[str, Any]) -> dict[str, Any]:
        if "refused" in r:
            return {"dp": r["dp"], "ε target": r["epsilon_target"], "bits": r["bits"],
                    "accuracy": "refused", "ε reported": "-", "noise std (sum)": "-",
                    "central std, no amplification": "-",
                    "wrap rate": "-", "aborted rounds": "-"}
        return {"dp": r["dp"], "ε target": r["epsilon_target"],
                "bits": r["bits"] if r["bits"] else "-",
                "accuracy": f"{r['accuracy']:.3f}",
                "ε reported": f"{r['epsilon']:.3g}" if r["epsilon"] is not None else "-",
                "noise std (sum)": f"{r['noise_std_sum']:.3g}" if r["noise_std_sum"] else "-",
                "central std, no amplification": f"{r['central_unamplified_std']:.3g}"
                if "central_unamplified_std" in r else "-",
                "wrap rate": f"{r['wrap_rate']:.2g}" if "wrap_rate" in r else "-",
                "aborted rounds": sum(x["aborted_rounds"] for x in r.get("runs", [r]))}

    print()
    print(f"{CLIENTS} clients, {PER_ROUND} per round, {rounds} rounds, δ = {DELTA:g}, "
          f"{len(seeds)} seed(s):\n")
    print(table([fmt(r) for r in rows]))
    print(f"\naccuracy against bits at ε = {BITS_EPSILON:g}:\n")
    print(table([fmt(r) for r in bits_rows]))
    for r in bits_rows:
        if "refused" in r:
            print(f"bits={r['bits']}: {r['refused']}")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = write_json(SUITE, {
        "task": f"synthetic, {CLIENTS} clients, {FEATURES} features, {CLASSES} classes, linear",
        "clients_per_round": PER_ROUND, "rounds": rounds, "delta": DELTA, "seeds": seeds,
        "quick": quick, "results": rows, "bits": bits_rows,
        "total_seconds": time.perf_counter() - started,
    }, str(out_dir / f"{SUITE}.json"))
    print(f"\nwrote {path} in {time.perf_counter() - started:.0f} s")
    return 0
