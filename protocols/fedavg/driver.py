"""The reference FedAvg driver: local training x aggregation x DP.

One round: charge the privacy of the round (if any); sample clients; each
trains from the global model and turns its update into the one vector it
sends (:meth:`Pipeline.client`); a fraction drops out before sending; the
server sums the survivors' vectors securely and turns the sum into the mean
update (:meth:`Pipeline.aggregate`); the global model moves by
``server_lr`` times that mean. The aggregation pipeline
(:mod:`protocols.fedavg.pipeline`) is built once from the config, so the
loop below never asks which aggregation or DP mode runs.

The mean, by DP mode: ``dp="none"`` weights client k by
``w_k = n_k / max_examples_per_client`` (a public bound; ``w_k`` travels
inside the secure sum, so the server sees only the sums and divides);
``dp="local"`` takes the unweighted mean over the clients in the sum (the
example counts are private under example-level DP); ``dp="central"``
(client-level DP) clips updates to L2 ``clip_norm``, sums them unweighted,
noises the sum at the aggregator and divides by the expected number of
clients per round (the fixed-denominator estimator of DP-FedAvg);
``dp="distributed"`` (client-level, against the server) has each client
clip, round and noise its update into integers inside the secure sum
(:mod:`protocols.fedavg.dp_distributed`) and divides the decoded sum by
``clients_per_round``. ``dp="distributed-sgd"`` (example-level, one
DP-SGD step per round, noise shares inside the secure sum) runs its own
loop (:mod:`protocols.fedavg.dp_distributed_sgd`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from secagg.errors import ParameterError, PrivacyBudgetExceeded

from .aggregation import SecureSum
from .config import FedAvgConfig
from .params import flatten_model
from .pipeline import build_pipeline
from .plots import plot_run
from .records import TIME_PARTS, FedAvgResult, RoundRecord
from .tasks import Task, make_task
from .training import LocalTrainer, evaluate

__all__ = ["TIME_PARTS", "FedAvgResult", "RoundRecord", "run_fedavg"]


def _make_trainers(cfg: FedAvgConfig, task: Task) -> list[Any]:
    loss_fn = task.loss_fn()
    trainers: list[Any] = []
    if cfg.dp == "local":
        from .dp_local import make_dp_trainers

        return make_dp_trainers(cfg, task)
    for k, ds in enumerate(task.client_datasets):
        torch.manual_seed(cfg.seed)  # same initial weights; overwritten each round anyway
        trainers.append(
            LocalTrainer(task.model_factory(), ds, loss_fn, lr=cfg.client_lr,
                         batch_size=cfg.batch_size, seed=cfg.seed * 7919 + k)
        )
    return trainers


def run_fedavg(
    cfg: FedAvgConfig,
    task: Task | None = None,
    *,
    on_round: Callable[[RoundRecord], None] | None = None,
    write: bool = True,
    on_params: Callable[[int, npt.NDArray[np.float32]], None] | None = None,
    secure_sum: SecureSum | None = None,
) -> FedAvgResult:
    """Run FedAvg as configured; return the per-round records and the model.

    Args:
        cfg: the run's configuration (validated here).
        task: a :class:`Task` of your own (one ``Dataset`` per client);
            default: the built-in ``cfg.task``.
        on_round: called with each round's record (the CLI prints it).
        write: write ``metrics.json``, ``model.pt`` and PNG plots to a new
            directory under ``cfg.out_dir``.
        on_params: called after each round with the round number and the
            global parameters (a flat float32 view; copy it to keep it).
        secure_sum: a secure-sum back-end to use instead of the one
            ``cfg.aggregation`` names (for instrumented benchmarks).
    """
    cfg.validate()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models: one thread is faster and steadier
    try:
        return _run(cfg, task, on_round, write, on_params, secure_sum)
    finally:
        torch.set_num_threads(threads)


class _UniformSampler:
    """``k`` of ``n`` clients, uniformly without replacement (public choice)."""

    def __init__(self, k: int) -> None:
        self.k = k

    def __call__(self, num_clients: int, rng: np.random.Generator) -> list[int]:
        return sorted(rng.choice(num_clients, self.k, replace=False).tolist())


def _privacy_report(
    cfg: FedAvgConfig, trainers: list[Any], dp: Any, pipeline: Any = None
) -> Callable[[], tuple[float | None, str | None, str | None]]:
    """What the run has spent so far: (epsilon, accountant, privacy unit)."""
    if cfg.dp == "distributed":
        step = pipeline.secure_sum

        def distributed() -> tuple[float | None, str | None, str | None]:
            g = step.guarantee()
            return float(g.epsilon), g.accountant_name, "client"

        return distributed
    if dp is not None:
        return lambda: (float(dp.epsilon()), dp.ledger.accountant, "client")
    if cfg.dp == "local":
        name = getattr(trainers[0], "accountant_name", None)

        def local() -> tuple[float | None, str | None, str | None]:
            vals = [e for e in (t.epsilon(cfg.delta) for t in trainers) if e is not None]
            return (max(vals) if vals else 0.0), name, "example"  # example level, per client

        return local
    return lambda: (None, None, None)


def _run(
    cfg: FedAvgConfig,
    task: Task | None,
    on_round: Callable[[RoundRecord], None] | None,
    write: bool,
    on_params: Callable[[int, npt.NDArray[np.float32]], None] | None = None,
    secure_sum: SecureSum | None = None,
) -> FedAvgResult:
    if task is None:
        task = make_task(cfg.task, cfg.num_clients, split=cfg.split, alpha=cfg.alpha,
                         seed=cfg.seed)
    if len(task.client_datasets) != cfg.num_clients:
        raise ParameterError(
            f"config key 'num_clients' is {cfg.num_clients} but the task has "
            f"{len(task.client_datasets)} client datasets"
        )
    if cfg.dp == "distributed-sgd":
        from .dp_distributed_sgd import run_distributed_sgd

        res = run_distributed_sgd(cfg, task, on_round, on_params, secure_sum)
        if write:
            res.run_dir = _write_run(cfg, res, res.model)
        return res
    rng = np.random.default_rng(cfg.seed)  # public choices only: sampling, dropouts
    torch.manual_seed(cfg.seed)
    global_model = task.model_factory()
    global_params = flatten_model(global_model)
    trainers = _make_trainers(cfg, task)
    dim = global_params.shape[0]
    # everything about aggregation and DP is decided here, once
    dp = None
    sample: Callable[[int, np.random.Generator], list[int]] = _UniformSampler(
        cfg.clients_per_round
    )
    if cfg.dp == "central":
        from .dp_central import PoissonSampler, make_client_level_dp

        dp = make_client_level_dp(cfg)
        sample = PoissonSampler(dp)
    pipeline = build_pipeline(cfg, dim, dp, secure_sum=secure_sum)
    pipeline.check_clients([len(d) for d in task.client_datasets])  # type: ignore[arg-type]
    privacy = _privacy_report(cfg, trainers, dp, pipeline)

    def guarantee() -> str | None:
        if cfg.dp != "distributed":
            return None
        return str(pipeline.secure_sum.guarantee())

    public = pipeline.release_participation
    result = FedAvgResult(config=asdict(cfg), model=global_model,
                          true_weights={k: v.tolist() for k, v in task.true_weights.items()})
    progress = _progress(cfg)
    for r in range(1, cfg.rounds + 1):
        t_round = time.perf_counter()
        t0 = time.perf_counter()
        pipeline.begin_round(r)  # privacy is charged before any client touches data
        t_privacy = time.perf_counter() - t0
        sampled = sample(cfg.num_clients, rng)
        dropped = {c for c in sampled if rng.random() < cfg.dropout_rate}
        # local training (clients that later drop out train too: they spent budget)
        t_train = t_client = 0.0
        inputs: dict[int, npt.NDArray[np.float32]] = {}
        refused: list[int] = []
        for c in sampled:
            tr = trainers[c]
            tr.params[:] = global_params
            t0 = time.perf_counter()
            try:
                tr.train(cfg.local_epochs, round=r)
            except PrivacyBudgetExceeded:
                refused.append(c)  # out of budget: the client sits the round out
                continue
            finally:
                t_train += time.perf_counter() - t0
            t0 = time.perf_counter()
            inputs[c] = pipeline.client(tr.params - global_params, tr.num_examples)
            t_client += time.perf_counter() - t0
        dropped -= set(refused)
        step = pipeline.aggregate(inputs, frozenset(dropped), r)
        if step is not None:
            global_params += (cfg.server_lr * step).astype(np.float32)
        if on_params is not None:
            on_params(r, global_params)
        t0 = time.perf_counter()
        ev = evaluate(global_model, task.test_dataset, task.kind)
        t_eval = time.perf_counter() - t0
        t0 = time.perf_counter()
        eps, accountant, unit = privacy()
        t_privacy += time.perf_counter() - t0
        m = pipeline.measurements()
        ss = m["secure_sum"]
        noise = m.get("noise", {})
        clip = m.get("clip", {})
        t_privacy += noise.get("seconds", 0.0) + ss.get("encode_seconds", 0.0)
        hot, crypto = ss["hot_path"], ss["crypto"]
        t_total = time.perf_counter() - t_round
        parts = t_train + hot + crypto + t_privacy + t_eval
        rec = RoundRecord(
            round=r,
            test_loss=ev["loss"],
            test_accuracy=ev.get("accuracy"),
            epsilon=eps,
            accountant=accountant,
            privacy_unit=unit,
            sampled=sampled if public else None,
            included=ss["included"] if public else None,
            dropped=sorted(dropped) if public else None,
            refused=refused if public else None,
            aborted=ss["aborted"] if public else None,
            clipped_values=ss["clipped_values"] if public else None,
            clipped_clients=clip.get("clipped_clients"),
            clip_norm=clip.get("clip_norm"),
            noise_std=noise.get("noise_std", ss.get("noise_std")),
            bytes_up_per_client=ss["bytes_up_per_client"],
            bytes_down_per_client=ss["bytes_down_per_client"],
            time_local_training=t_train,
            time_hot_path=hot,
            time_crypto=crypto,
            time_privacy=t_privacy,
            time_evaluation=t_eval,
            time_other=max(t_total - parts, 0.0),
            time_server_aggregation=ss["server_seconds"],
            time_round=t_total,
            privacy_guarantee=guarantee(),
            near_boundary=ss.get("near_boundary"),
        )
        result.rounds.append(rec)
        if on_round is not None:
            on_round(rec)
        if progress is not None:
            progress.update(1)
    if progress is not None:
        progress.close()
    result.final_params = global_params.copy()
    if write:
        result.run_dir = _write_run(cfg, result, global_model)
    return result


def _progress(cfg: FedAvgConfig) -> Any:
    if not cfg.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=cfg.rounds, desc="fedavg", unit="round", leave=False, disable=None)


def _write_run(cfg: FedAvgConfig, result: FedAvgResult, model: torch.nn.Module) -> Path:
    base = Path(cfg.out_dir)
    base.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"{stamp}-{cfg.task}-{cfg.aggregation}-dp{cfg.dp}"
    run_dir = base / name
    i = 1
    while run_dir.exists():
        run_dir = base / f"{name}-{i}"
        i += 1
    run_dir.mkdir()
    payload = {
        "config": result.config,
        "summary": result.summary(),
        "rounds": [asdict(x) for x in result.rounds],
        "true_weights": result.true_weights,
    }
    (run_dir / "metrics.json").write_text(json.dumps(payload, indent=2))
    torch.save(model.state_dict(), run_dir / "model.pt")
    plot_run(result, run_dir)
    return run_dir
