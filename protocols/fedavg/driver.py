"""The reference FedAvg driver: local training x aggregation x DP.

One round: sample ``clients_per_round`` clients; each trains from the
global model; a fraction drops out before sending; the survivors' weighted
updates are summed by the chosen aggregation; the server steps the global
model by ``server_lr`` times the weighted mean update.

Weighting without revealing counts: client k sends ``w_k * delta_k`` and
``w_k`` in one vector, ``w_k = n_k / max_examples_per_client`` (a public
bound), so the server sees only the sums and divides. With ``dp="central"``
(client-level DP) updates are instead clipped to L2 ``clip_norm``, summed
unweighted, noised by the aggregator and divided by the expected number of
clients per round (the fixed-denominator estimator of DP-FedAvg).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from secagg import profiling
from secagg.errors import AbortError, ParameterError, PrivacyBudgetExceeded

from .aggregation import Aggregator
from .config import FedAvgConfig
from .params import flatten_model
from .tasks import Task, make_task
from .training import LocalTrainer, evaluate

__all__ = ["FedAvgResult", "RoundRecord", "run_fedavg"]


@dataclass
class RoundRecord:
    """What one round did and cost. Times in seconds, sizes in bytes.

    The round's wall time splits exclusively into ``time_local_training``,
    ``time_hot_path`` (encode, mask arithmetic, decode; all parties),
    ``time_crypto`` (PRG, key agreement, AEAD, Shamir, signatures, Paillier;
    all parties) and ``time_other`` (codecs and protocol bookkeeping), plus
    evaluation. ``time_server_aggregation`` is the server's own compute in
    the aggregation, *including* its share of hot path and cryptography, so
    it is reported beside the split, not inside it.
    """

    round: int
    test_loss: float
    test_accuracy: float | None
    epsilon: float | None
    accountant: str | None
    privacy_unit: str | None
    sampled: list[int]
    included: list[int]
    dropped: list[int]
    refused: list[int]
    aborted: bool
    clipped_values: int  # coordinates clipped by the aggregation, all senders together
    bytes_up_per_client: float
    bytes_down_per_client: float
    time_local_training: float
    time_hot_path: float
    time_crypto: float
    time_server_aggregation: float
    time_other: float
    time_round: float


@dataclass
class FedAvgResult:
    """A finished run: the config, one record per round, the final model."""

    config: dict[str, Any]
    rounds: list[RoundRecord] = field(default_factory=list)
    final_params: npt.NDArray[np.float32] | None = None
    model: torch.nn.Module | None = None
    run_dir: Path | None = None
    true_weights: dict[str, list[float]] = field(default_factory=dict)

    @property
    def final(self) -> RoundRecord:
        return self.rounds[-1]

    def summary(self) -> dict[str, Any]:
        r = self.rounds
        return {
            "rounds": len(r),
            "final_test_accuracy": r[-1].test_accuracy,
            "final_test_loss": r[-1].test_loss,
            "epsilon": r[-1].epsilon,
            "accountant": r[-1].accountant,
            "privacy_unit": r[-1].privacy_unit,
            "aborted_rounds": sum(x.aborted for x in r),
            "time": {
                k: sum(getattr(x, f"time_{k}") for x in r)
                for k in ("local_training", "hot_path", "crypto", "server_aggregation",
                          "other", "round")
            },
            "bytes_up_per_client_per_round": float(np.mean([x.bytes_up_per_client for x in r])),
            "bytes_down_per_client_per_round": float(
                np.mean([x.bytes_down_per_client for x in r])
            ),
        }


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
) -> FedAvgResult:
    """Run FedAvg as configured; return the per-round records and the model.

    Args:
        cfg: the run's configuration (validated here).
        task: a :class:`Task` of your own (one ``Dataset`` per client);
            default: the built-in ``cfg.task``.
        on_round: called with each round's record (the CLI prints it).
        write: write ``metrics.json``, ``model.pt`` and PNG plots to a new
            directory under ``cfg.out_dir``.
    """
    cfg.validate()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models: one thread is faster and steadier
    try:
        return _run(cfg, task, on_round, write)
    finally:
        torch.set_num_threads(threads)


def _run(
    cfg: FedAvgConfig,
    task: Task | None,
    on_round: Callable[[RoundRecord], None] | None,
    write: bool,
) -> FedAvgResult:
    if task is None:
        task = make_task(cfg.task, cfg.num_clients, split=cfg.split, alpha=cfg.alpha,
                         seed=cfg.seed)
    if len(task.client_datasets) != cfg.num_clients:
        raise ParameterError(
            f"config key 'num_clients' is {cfg.num_clients} but the task has "
            f"{len(task.client_datasets)} client datasets"
        )
    biggest = max(len(d) for d in task.client_datasets)  # type: ignore[arg-type]
    if cfg.dp != "central" and biggest > cfg.max_examples_per_client:
        raise ParameterError(
            f"a client holds {biggest} examples, more than config key "
            f"'max_examples_per_client' = {cfg.max_examples_per_client}"
        )
    rng = np.random.default_rng(cfg.seed)  # public choices only: sampling, dropouts
    torch.manual_seed(cfg.seed)
    global_model = task.model_factory()
    global_params = flatten_model(global_model)
    trainers = _make_trainers(cfg, task)
    dim = global_params.shape[0]
    central = None
    if cfg.dp == "central":
        from .dp_central import CentralDP

        central = CentralDP(cfg)
    secure = cfg.aggregation in ("secagg", "secagg+")
    min_clients = 3 if secure else 1
    aggregator = Aggregator(
        cfg.aggregation,
        # central DP: updates have L2 norm <= clip_norm, so every coordinate does too
        clip=cfg.clip_norm if central is not None else cfg.update_clip,
        # Poisson sampling (central DP) can pick everyone
        max_summands=cfg.num_clients if central is not None else cfg.clients_per_round,
        paillier_key_bits=cfg.paillier_key_bits,
        seed=cfg.seed,
    )
    result = FedAvgResult(config=asdict(cfg), model=global_model,
                          true_weights={k: v.tolist() for k, v in task.true_weights.items()})
    progress = _progress(cfg)
    for r in range(1, cfg.rounds + 1):
        t_round = time.perf_counter()
        if central is not None:
            central.begin_round(r)  # charged before any client touches data
            sampled = central.sample(cfg.num_clients)
        else:
            sampled = sorted(
                rng.choice(cfg.num_clients, cfg.clients_per_round, replace=False).tolist()
            )
        dropped = {c for c in sampled if rng.random() < cfg.dropout_rate}
        # local training (clients that later drop out train too: they spent budget)
        t0 = time.perf_counter()
        inputs: dict[int, npt.NDArray[np.float32]] = {}
        refused: list[int] = []
        for c in sampled:
            tr = trainers[c]
            tr.params[:] = global_params
            try:
                tr.train(cfg.local_epochs, round=r)
            except PrivacyBudgetExceeded:
                refused.append(c)  # out of budget: the client sits the round out
                continue
            delta = tr.params - global_params
            if central is not None:
                vec = central.client_step(delta)
            else:
                w = tr.num_examples / cfg.max_examples_per_client
                vec = np.empty(dim + 1, dtype=np.float32)
                np.multiply(delta, w, out=vec[:dim])
                vec[dim] = w
            inputs[c + 1] = vec  # protocol ids start at 1
        t_train = time.perf_counter() - t0
        dropped -= set(refused)
        ids_dropped = frozenset(c + 1 for c in dropped)
        # coordinates the aggregation will clip to +-clip, over the clients that send
        clipped = sum(
            int(np.count_nonzero(np.abs(v) > aggregator.clip))
            for k, v in inputs.items()
            if k not in ids_dropped
        )
        t0 = time.perf_counter()
        aborted = False
        with profiling.collect() as split:
            try:
                if len(inputs) - len(ids_dropped) < min_clients:
                    raise AbortError(f"only {len(inputs) - len(ids_dropped)} clients reached "
                                     f"the sum; at least {min_clients} are needed")
                agg = aggregator(inputs, ids_dropped, r)
            except AbortError:
                aborted = True
        t_agg = time.perf_counter() - t0
        if not aborted:
            total = agg.sum
            if central is not None:
                step = central.server_step(total)
            else:
                wsum = total[dim]
                step = total[:dim] / wsum if wsum > 0 else np.zeros(dim)
            global_params += (cfg.server_lr * step).astype(np.float32)
            clients = [k for k in agg.figures if k != "server" and k in inputs]
            up = float(np.mean([agg.figures[k].total_sent for k in clients])) if clients else 0.0
            down = (
                float(np.mean([agg.figures[k].total_received for k in clients]))
                if clients else 0.0
            )
            t_server = agg.figures["server"].total_compute if "server" in agg.figures else 0.0
            included = sorted(k - 1 for k in agg.included)
        else:
            up = down = t_server = 0.0
            included = []
        ev = evaluate(global_model, task.test_dataset, task.kind)
        eps, accountant, unit = _epsilon(cfg, trainers, central)
        hot, crypto = split.get(profiling.HOT_PATH, 0.0), split.get(profiling.CRYPTO, 0.0)
        rec = RoundRecord(
            round=r,
            test_loss=ev["loss"],
            test_accuracy=ev.get("accuracy"),
            epsilon=eps,
            accountant=accountant,
            privacy_unit=unit,
            sampled=sampled,
            included=included,
            dropped=sorted(dropped),
            refused=refused,
            aborted=aborted,
            clipped_values=clipped,
            bytes_up_per_client=up,
            bytes_down_per_client=down,
            time_local_training=t_train,
            time_hot_path=hot,
            time_crypto=crypto,
            time_server_aggregation=t_server,
            time_other=max(t_agg - hot - crypto, 0.0),
            time_round=time.perf_counter() - t_round,
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


def _epsilon(
    cfg: FedAvgConfig, trainers: list[Any], central: Any
) -> tuple[float | None, str | None, str | None]:
    if cfg.dp == "none":
        return None, None, None
    if central is not None:
        return central.epsilon(), central.accountant_name, "client"
    spent = [t.epsilon(cfg.delta) for t in trainers]  # example level, per client
    vals = [e for e in spent if e is not None]
    name = getattr(trainers[0], "accountant_name", None)
    return (max(vals) if vals else 0.0), name, "example"


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
    from .plots import plot_run

    plot_run(result, run_dir)
    return run_dir
