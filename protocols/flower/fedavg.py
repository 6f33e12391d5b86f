"""FedAvg over Flower: every round's weighted update sum goes through a secure session.

Server side, :func:`run_fedavg` (call it from a ServerApp's ``@app.main()``):
each round sends the global model with the input round of one
:func:`~protocols.flower.server.run_session`; each node trains locally
(:func:`train_on_node`, the ClientApp's train function) and returns
``[w * delta, w]`` with ``w = n_k / max_examples`` (a public bound), so the
example count travels inside the secure sum and the server learns only the
sums; the server steps the model by ``server_lr`` times ``sum(w delta) /
sum(w)`` and evaluates it on the task's test set.

Nodes find their data by the node config entries ``partition-id`` and
``num-partitions`` (the Flower convention): the task's split is seeded, so
every node and the server build the same one. A node that drops out in a
round is left out of that round's sum; a round that aborts (too few nodes)
keeps the model unchanged and is recorded as aborted.

Differential privacy: ``dp="local"`` trains with DP-SGD on every node
(:func:`local_dp_trainer`, example-level, add/remove one example), the
noise calibrated so that ``num-rounds`` rounds of ``local-epochs`` spend
``target-epsilon`` at ``delta`` (or a fixed ``noise-multiplier`` against an
``epsilon-budget``). The node's privacy ledger lives in ``context.state``
(:mod:`protocols.flower.dp_state`), so a round that would pass the budget is
refused on the node before any data is read, however often the ClientApp
process restarts; the server sees that node as a dropout of the round. The server records the
epsilon every node's ledger reaches after each round, from the same public
parameters (:func:`local_dp_schedule`): the planned per-node figure.

``dp="central"`` is client-level DP (unit: one node; adjacency: add/remove
one node's update): each node clips its update to L2 ``clip-norm`` and sends
it unweighted (weight coordinate 0); the ServerApp adds Gaussian noise of
std ``noise_multiplier * clip-norm`` from the secure noise source to the
secure sum and divides by the number of nodes, as the in-process
``dp="central"`` step (:mod:`protocols.fedavg.dp_central`). Every node takes
part in every round (no sampling, no amplification claimed); the noise is
calibrated from ``target-epsilon``, ``delta`` and ``num-rounds``, or fixed by
``noise-multiplier``. The guarantee holds against whoever sees the model,
not against the ServerApp, which sees the un-noised sum.

With ``run-dir`` set, the run directory has the in-process layout
(:func:`write_run`): ``metrics.json``, ``model.pt`` and the PNG plots.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict

from secagg.encoding import FixedPointEncoder
from secagg.errors import AbortError, ParameterError

from ..core import ProtocolDescriptor
from .server import SecureAggregator, nodes_ready

__all__ = ["DP_MODES", "FlowerRound", "fedavg_defaults", "local_dp_schedule", "local_dp_trainer",
           "run_fedavg", "summarize", "train_on_node", "write_run"]

#: run-config keys and defaults of the FedAvg Flower app
DEFAULTS: dict[str, Any] = {
    "protocol": "secagg+",
    "task": "digits",
    "num-rounds": 3,
    "num-nodes": 3,
    "local-epochs": 1,
    "lr": 0.1,
    "batch-size": 32,
    "server-lr": 1.0,
    "max-examples": 1000,
    "clip": 4.0,
    "seed": 0,
    "round-timeout": 30.0,
    "train-timeout": 120.0,
    "run-dir": "",
    "dp": "none",
    "target-epsilon": 8.0,
    "noise-multiplier": 0.0,
    "epsilon-budget": 0.0,
    "delta": 1e-5,
    "max-grad-norm": 1.0,
    # dp = "central": the L2 clip of each node's update (client-level)
    "clip-norm": 1.0,
    "accountant": "pld",
    # protocol "paillier" (threshold layout): the dealer's public material file on the
    # ServerApp's machine, and the fixed-point bits per value (protocols/flower/paillier.py)
    "paillier-public": "",
    "paillier-value-bits": 28,
}
#: DP modes of the Flower FedAvg app
DP_MODES = ("none", "local", "central")


def fedavg_defaults() -> dict[str, Any]:
    """The run-config keys :func:`run_fedavg` reads, with their defaults."""
    return dict(DEFAULTS)


@dataclass
class FlowerRound:
    """One FedAvg round over Flower. Times in seconds, sizes in bytes."""

    round: int
    test_loss: float
    test_accuracy: float | None
    nodes: int
    included: list[int]
    dropped: dict[str, str]
    aborted: bool
    round_trips: int
    time_round: float
    time_rounds: dict[str, float]
    bytes_up_per_node: float
    bytes_down_per_node: float
    #: the server's evaluation of the global model (part of ``time_round``)
    time_evaluation: float = 0.0
    #: the privacy guarantee after this round (``None`` without DP): with
    #: ``dp="local"`` the planned per-node figure (every node's ledger reaches it
    #: after training this round under the run's public accounting parameters),
    #: with ``dp="central"`` the server's client-level accountant
    epsilon: float | None = None
    accountant: str | None = None
    privacy_unit: str | None = None
    #: who the guarantee holds against, in words (``None`` without DP)
    privacy_guarantee: str | None = None
    #: std of the noise the server added to the sum (``dp="central"``, model units)
    noise_std: float | None = None


def _cfg(run_config: Mapping[str, Any], key: str) -> Any:
    return run_config.get(key, DEFAULTS[key])


def _task(run_config: Mapping[str, Any], partitions: int) -> Any:
    from ..fedavg.tasks import make_task

    return make_task(str(_cfg(run_config, "task")), partitions, split="dirichlet", alpha=0.5,
                     seed=int(_cfg(run_config, "seed")))


def _protocols() -> dict[str, ProtocolDescriptor]:
    from ..paillier_sum import PAILLIER_SUM
    from ..secagg import SECAGG, SECAGG_PLUS

    return {d.name: d for d in (SECAGG, SECAGG_PLUS, PAILLIER_SUM)}


def run_fedavg(
    grid: Any,
    run_config: Mapping[str, Any],
    *,
    on_round: Callable[[FlowerRound], None] | None = None,
) -> list[FlowerRound]:
    """Run FedAvg over ``grid`` as configured by ``run_config`` (see :data:`DEFAULTS`).

    Writes the run directory (:func:`write_run`) to ``run-dir`` when that is
    set. Returns the round records.
    """
    import torch

    from ..fedavg.params import flatten_model
    from ..fedavg.training import evaluate

    descriptor = _protocols().get(str(_cfg(run_config, "protocol")))
    if descriptor is None:
        raise ParameterError(f"protocol {_cfg(run_config, 'protocol')!r} is not one of "
                             f"{sorted(_protocols())}")
    if str(_cfg(run_config, "dp")) not in DP_MODES:
        raise ParameterError(f"dp {_cfg(run_config, 'dp')!r} is not one of {list(DP_MODES)}")
    dp_mode = str(_cfg(run_config, "dp"))
    n_nodes = int(_cfg(run_config, "num-nodes"))
    central = _central_dp(run_config, n_nodes) if dp_mode == "central" else None
    nodes = nodes_ready(grid, n_nodes, timeout=120.0)
    task = _task(run_config, n_nodes)
    local = _LocalDPPlan(run_config, task) if dp_mode == "local" else None
    torch.manual_seed(int(_cfg(run_config, "seed")))
    model = task.model_factory()
    params = flatten_model(model)  # a view: writing it updates the model
    dim = params.size + 1
    # the coordinate bound of the secure sum: with central DP every coordinate of an
    # update of L2 norm <= clip-norm is <= clip-norm
    clip = float(_cfg(run_config, "clip-norm")) if central is not None else float(
        _cfg(run_config, "clip"))
    frac = min(24, 30 - int(np.ceil(np.log2(clip * len(nodes)))))
    encoder = FixedPointEncoder(clip=clip, frac_bits=frac, max_summands=len(nodes),
                                modulus_bits=32)
    session_params: dict[str, Any] = {"encoder": encoder}
    if descriptor.name == "paillier":
        # hook: threshold Paillier on the dealer's public material (protocols/flower/paillier.py)
        from .paillier import fedavg_params

        session_params = fedavg_params(run_config, clip)
    # sessions are pipelined: each round's key advertisement and key sharing ride on the
    # previous round's masked-input and unmask round trips (2 round trips per round after
    # the first in semi-honest mode)
    agg = SecureAggregator(grid, descriptor, dim,
                           round_timeout=float(_cfg(run_config, "round-timeout")),
                           input_round_timeout=float(_cfg(run_config, "train-timeout")),
                           **session_params)
    records: list[FlowerRound] = []
    for rnd in range(1, int(_cfg(run_config, "num-rounds")) + 1):
        t0 = time.monotonic()
        if central is not None:
            central.begin_round(rnd)  # charged before any node trains
        content = RecordDict({
            "arrays": ArrayRecord({"params": Array(np.array(params, copy=True))}),
            "config": ConfigRecord({"round": rnd}),
        })
        aborted, included, dropped, rounds, up, down, trips = False, [], {}, [], 0, 0, 0
        try:
            report = agg.aggregate(nodes, train_content=content, group_id=str(rnd))
        except AbortError as exc:
            aborted = True
            dropped = {"*": str(exc)[:3000]}
        else:
            total = report.sum()
            server_lr = float(_cfg(run_config, "server-lr"))
            if central is not None:
                # client-level DP: noise on the sum of clipped updates, then the mean over
                # the fixed number of nodes (unweighted, as the in-process central DP step)
                noisy = central.add_noise(total[:-1])
                params += (server_lr * noisy / central.expected_clients).astype(np.float32)
            elif float(total[-1]) > 0:
                params += (server_lr * total[:-1] / float(total[-1])).astype(np.float32)
            included = sorted(report.result.included)
            for r in report.rounds:
                dropped.update({str(k): f"{r.name}: {v}" for k, v in r.dropped.items()})
                up += r.bytes_up
                down += r.bytes_down
            # the rounds this FedAvg round drove (its folded ones rode on, and were timed
            # with, the previous round's round trips)
            rounds = [(r.name, r.seconds) for r in report.rounds if not r.folded]
            trips = report.round_trips
        privacy: dict[str, Any] = {}
        if central is not None:
            noise_std = central.noise_std()
            central.end_round()
            spent = central.epsilon()
            privacy = {"epsilon": spent.epsilon, "accountant": spent.accountant,
                       "privacy_unit": spent.unit, "privacy_guarantee": CENTRAL_GUARANTEE,
                       "noise_std": noise_std}
        elif local is not None:
            privacy = {"epsilon": local.after_round(), "accountant": local.accountant,
                       "privacy_unit": "example", "privacy_guarantee": LOCAL_GUARANTEE}
        t_eval = time.monotonic()
        metrics = evaluate(model, task.test_dataset, task.kind)
        t_end = time.monotonic()
        rec = FlowerRound(
            round=rnd, test_loss=metrics["loss"], test_accuracy=metrics.get("accuracy"),
            nodes=len(nodes), included=included, dropped=dropped, aborted=aborted,
            round_trips=trips, time_round=t_end - t0,
            time_rounds=dict(rounds), bytes_up_per_node=up / max(len(nodes), 1),
            bytes_down_per_node=down / max(len(nodes), 1), time_evaluation=t_end - t_eval,
            **privacy)
        records.append(rec)
        if on_round is not None:
            on_round(rec)
    run_dir = str(_cfg(run_config, "run-dir"))
    if run_dir:
        write_run(Path(run_dir), {k: _cfg(run_config, k) for k in DEFAULTS}, records, model)
    return records


#: who the guarantees hold against, as the round records say it
LOCAL_GUARANTEE = ("example-level (add/remove one example of a node's partition), every node's "
                   "own DP-SGD: holds against the server and every other party; the figure is "
                   "the planned one each node's ledger reaches after this round")
CENTRAL_GUARANTEE = ("client-level (add/remove one node's whole update), Gaussian noise added "
                     "by the ServerApp to the secure sum, every node in every round (no "
                     "amplification by sampling): holds against whoever sees the model or the "
                     "released updates, NOT against the ServerApp, which sees the un-noised sum")


def summarize(records: list[FlowerRound]) -> dict[str, Any]:
    """The run's summary as ``metrics.json`` carries it (times in seconds, sizes in
    bytes; ``round_trips``: protocol round trips over the whole run)."""
    if not records:
        return {"rounds": 0}
    last = records[-1]
    parts: dict[str, float] = {}
    for r in records:
        for name, sec in _time_parts(r).items():
            parts[name] = parts.get(name, 0.0) + sec
    return {
        "rounds": len(records),
        "final_test_accuracy": last.test_accuracy,
        "final_test_loss": last.test_loss,
        "epsilon": last.epsilon,
        "accountant": last.accountant,
        "privacy_unit": last.privacy_unit,
        "privacy_guarantee": last.privacy_guarantee,
        "aborted_rounds": sum(r.aborted for r in records),
        "time": {**parts, "round": sum(r.time_round for r in records)},
        "bytes_up_per_node_per_round": float(np.mean([r.bytes_up_per_node for r in records])),
        "bytes_down_per_node_per_round": float(
            np.mean([r.bytes_down_per_node for r in records])),
        "round_trips": sum(r.round_trips for r in records),
    }


def _time_parts(rec: FlowerRound) -> dict[str, float]:
    """``rec``'s wall time as exclusive parts adding up to ``time_round``: the
    protocol round trips it drove, the server's evaluation, and ``other``
    (training dispatch not inside a timed round trip, the server's model step,
    accounting)."""
    parts = {f"round trip: {name}": sec for name, sec in rec.time_rounds.items()}
    parts["evaluation"] = rec.time_evaluation
    parts["other"] = max(0.0, rec.time_round - sum(parts.values()))
    return parts


def write_run(path: Path, config: dict[str, Any], records: list[FlowerRound],
              model: Any) -> Path:
    """Write the run directory at ``path``, the in-process driver's layout:
    ``metrics.json`` (``config``, ``engine``, ``summary``, ``rounds``),
    ``model.pt`` (the global model's state_dict) and the PNG plots
    (``accuracy.png`` or ``loss.png``, ``time_split.png``; none, with a
    warning, without matplotlib). Returns ``path``."""
    import torch

    from ..fedavg.plots import MetricSeries, plot_metric, plot_time_split

    path.mkdir(parents=True, exist_ok=True)
    payload = {"config": config, "engine": "flower", "summary": summarize(records),
               "rounds": [asdict(r) for r in records]}
    (path / "metrics.json").write_text(json.dumps(payload, indent=2))
    torch.save(model.state_dict(), path / "model.pt")
    if not records:
        return path
    dp = str(config.get("dp", "none"))
    target = None
    if dp != "none" and float(config.get("noise-multiplier", 0.0)) <= 0:
        target = float(config.get("target-epsilon", 0.0))
    series = MetricSeries(
        rounds=[r.round for r in records],
        accuracy=([float(r.test_accuracy or 0.0) for r in records]
                  if records[0].test_accuracy is not None else None),
        loss=[r.test_loss for r in records],
        epsilon=[r.epsilon for r in records],
        privacy_unit=records[-1].privacy_unit, accountant=records[-1].accountant,
        delta=float(config.get("delta", 0.0)), target_epsilon=target)
    title = (f"{config.get('task')} over Flower, {records[0].nodes} nodes, "
             f"{config.get('protocol')}, " + ("no DP" if dp == "none" else f"{dp} DP"))
    if plot_metric(series, path, title) is not None:
        names: list[str] = []
        for r in records:
            names += [n for n in _time_parts(r) if n not in names]
        # evaluation and other on top, the round trips in the order they ran below them
        names = [n for n in names if n not in ("evaluation", "other")] + ["evaluation", "other"]
        split = {n: [_time_parts(r).get(n, 0.0) for r in records] for n in names}
        plot_time_split(series.rounds, split, path, title)
    return path


class _LocalDPPlan:
    """The server's copy of the nodes' local-DP accounting (``dp="local"``):
    the public parameters every node's ledger uses (:func:`local_dp_schedule`),
    and the epsilon that ledger reaches round by round (a round that would
    pass the budget is refused on the node, so it is not counted)."""

    def __init__(self, run_config: Mapping[str, Any], task: Any) -> None:
        from dp import accounting

        rate, steps, delta = local_dp_schedule(run_config, task)
        self.rate, self.steps, self.delta = rate, steps, delta
        self.accountant = str(_cfg(run_config, "accountant"))
        sigma = float(_cfg(run_config, "noise-multiplier"))
        budget = float(_cfg(run_config, "epsilon-budget"))
        rounds = int(_cfg(run_config, "num-rounds"))
        if sigma > 0:
            self.sigma, self.budget = sigma, budget if budget > 0 else math.inf
        else:
            target = float(_cfg(run_config, "target-epsilon"))
            self.sigma = accounting.noise_multiplier(target, rate, rounds * steps, delta,
                                                     accountant=self.accountant)
            self.budget = budget if budget > 0 else target
        self.charged = 0  # steps every node's ledger holds so far

    def _eps(self, steps: int) -> float:
        from dp import accounting

        return float(accounting.epsilon(self.rate, self.sigma, steps, self.delta,
                                        accountant=self.accountant).epsilon)

    def after_round(self) -> float:
        """The epsilon every node's ledger holds after training one more round."""
        if self._eps(self.charged + self.steps) <= self.budget:
            self.charged += self.steps
        return self._eps(self.charged) if self.charged else 0.0


def _central_dp(run_config: Mapping[str, Any], n_nodes: int) -> Any:
    """The ServerApp's :class:`dp.client_level.ClientLevelDP` for ``dp="central"``,
    calibrated as the in-process driver's (:func:`protocols.fedavg.dp_central.
    make_client_level_dp`) with every node in every round (rate 1: no
    amplification by sampling). Run-config errors name the key."""
    from ..fedavg.config import FedAvgConfig
    from ..fedavg.dp_central import make_client_level_dp

    def number(key: str) -> float:
        v = _cfg(run_config, key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ParameterError(f"run config {key}={v!r} must be a finite number")
        return float(v)

    clip_norm = number("clip-norm")
    if clip_norm <= 0:
        raise ParameterError(f"run config clip-norm={clip_norm} must be > 0 with dp='central'")
    delta = number("delta")
    if not 0 < delta < 1 / n_nodes:
        raise ParameterError(f"run config delta={delta} must be in (0, 1/num-nodes) with "
                             f"dp='central' (num-nodes={n_nodes}: 1/{n_nodes} = "
                             f"{1 / n_nodes:.3g})")
    sigma = number("noise-multiplier")
    target = number("target-epsilon")
    if sigma < 0:
        raise ParameterError(f"run config noise-multiplier={sigma} must be >= 0 "
                             "(0: calibrate from target-epsilon)")
    if sigma == 0 and target <= 0:
        raise ParameterError(f"run config target-epsilon={target} must be > 0 with dp='central' "
                             "and noise-multiplier = 0")
    rounds = int(_cfg(run_config, "num-rounds"))
    accountant = str(_cfg(run_config, "accountant"))
    cfg = FedAvgConfig(num_clients=n_nodes, clients_per_round=n_nodes, rounds=rounds,
                       dp="central", delta=delta, clip_norm=clip_norm,
                       target_epsilon=None if sigma > 0 else target,
                       noise_multiplier=sigma if sigma > 0 else None, dropout_rate=0.0,
                       accountant=accountant, progress=False)
    return make_client_level_dp(cfg)


def train_on_node(msg: Message, context: Context) -> Message:
    """The ClientApp train function of FedAvg: local SGD on this node's partition.

    Replies with one array ``[w * delta, w]`` (``w = n_k / max-examples``,
    clipped to 1); wrap it with :func:`~protocols.flower.client.secure_train`
    so that array never leaves the node.
    """
    import torch

    from ..fedavg.params import flatten_model
    from ..fedavg.training import LocalTrainer

    cfg = context.run_config
    part = int(context.node_config.get("partition-id", -1))
    parts = int(context.node_config.get("num-partitions", 0))
    if not 0 <= part < parts:
        raise ParameterError(f"node config partition-id={part} is outside 0..num-partitions-1 "
                             f"(num-partitions={parts})")
    task = _task(cfg, parts)
    model = task.model_factory()
    params = flatten_model(model)
    arrays: Any = msg.content["arrays"]
    incoming: npt.NDArray[np.float32] = arrays["params"].numpy()
    if incoming.shape != params.shape:
        raise ParameterError(f"model has {params.size} parameters, the server sent "
                             f"{incoming.size}")
    params[:] = incoming
    config: Any = msg.content["config"]
    rnd = int(config["round"])
    dp_mode = str(_cfg(cfg, "dp"))
    if dp_mode == "local":
        from .dp_state import save_ledger

        dp_trainer, binding = local_dp_trainer(context, task, part, model)
        params = flatten_model(dp_trainer.model)
        try:
            with torch.enable_grad():
                dp_trainer.train_round(int(_cfg(cfg, "local-epochs")), round=rnd)
        finally:
            # the charge (made before any data is read) is saved even if training fails
            save_ledger(context, dp_trainer.ledger, binding)
        num_examples = dp_trainer.dataset_size
    elif dp_mode in ("none", "central"):
        trainer = LocalTrainer(model, task.client_datasets[part], task.loss_fn(),
                               lr=float(_cfg(cfg, "lr")),
                               batch_size=int(_cfg(cfg, "batch-size")),
                               seed=int(_cfg(cfg, "seed")) * 1_000_003 + part * 1009 + rnd)
        with torch.enable_grad():
            trainer.train(int(_cfg(cfg, "local-epochs")), round=rnd)
        num_examples = trainer.num_examples
    else:
        raise ParameterError(f"dp {dp_mode!r} is not one of {list(DP_MODES)}")
    delta = params.astype(np.float64) - incoming.astype(np.float64)
    if dp_mode == "central":
        from dp.client_level import clip_update

        # client-level DP: the update clipped to L2 clip-norm counts once, unweighted (the
        # server divides by the number of nodes); the weight coordinate stays 0
        clipped = clip_update(delta, float(_cfg(cfg, "clip-norm"))).vector
        vector = np.concatenate([clipped, [0.0]])
    else:
        w = min(1.0, num_examples / float(_cfg(cfg, "max-examples")))
        vector = np.concatenate([w * delta, [w]])
    return Message(RecordDict({"arrays": ArrayRecord({"update": Array(vector)})}), reply_to=msg)


def local_dp_trainer(context: Context, task: Any, part: int,
                     model: Any) -> tuple[Any, dict[str, Any]]:
    """This node's :class:`dp.LocalDPTrainer` over ``model``, continuing the ledger
    saved in ``context.state``; returns it with the ledger's binding.

    Every node uses one Poisson rate, ``batch-size / median partition size``
    (as the in-process driver), so all nodes' accounting is the same. With
    ``target-epsilon`` the noise is calibrated for ``num-rounds`` rounds of
    ``local-epochs``; with ``noise-multiplier > 0`` the budget is
    ``epsilon-budget`` (0: unlimited). Secure noise always (CryptoRandom).
    """
    from dp import LocalDPTrainer

    from .dp_state import ledger_binding, load_ledger

    cfg = context.run_config
    rate, steps, delta = local_dp_schedule(cfg, task)
    sigma = float(_cfg(cfg, "noise-multiplier"))
    target = float(_cfg(cfg, "target-epsilon"))
    budget = float(_cfg(cfg, "epsilon-budget"))
    planned = int(_cfg(cfg, "num-rounds")) * steps
    kw: dict[str, Any] = (
        {"noise_multiplier": sigma, "epsilon_budget": budget if budget > 0 else math.inf}
        if sigma > 0 else
        {"target_epsilon": target, "planned_steps": planned,
         "epsilon_budget": budget if budget > 0 else None})
    # a throwaway trainer's fresh ledger fixes the accounting parameters of the binding
    dataset = task.client_datasets[part]
    common: dict[str, Any] = dict(sample_rate=rate,
                                  max_grad_norm=float(_cfg(cfg, "max-grad-norm")),
                                  lr=float(_cfg(cfg, "lr")), loss_fn=task.loss_fn(),
                                  delta=delta, accountant=str(_cfg(cfg, "accountant")),
                                  secure_mode=True, **kw)
    trainer = LocalDPTrainer(model, dataset, **common)
    binding = ledger_binding(node_id=int(context.node_id), run_id=int(context.run_id),
                             sample_rate=trainer.sample_rate,
                             noise_multiplier=trainer.noise_multiplier, ledger=trainer.ledger)
    saved = load_ledger(context, binding)
    if saved is not None:
        trainer.ledger = saved
    return trainer, binding


def local_dp_schedule(run_config: Mapping[str, Any], task: Any) -> tuple[float, int, float]:
    """The public accounting parameters of ``dp="local"``, the same on every node
    and on the server: ``(sample_rate, steps_per_round, delta)``; the rate is
    ``batch-size / median partition size`` (as the in-process driver)."""
    from dp.accounting import steps_for_epochs

    sizes = [len(d) for d in task.client_datasets]
    delta = float(_cfg(run_config, "delta"))
    if delta >= 1 / max(sizes):
        raise ParameterError(f"run config delta={delta} must be below 1/N for the largest "
                             f"partition, N = {max(sizes)}: 1/N = {1 / max(sizes):.3g}")
    rate = min(1.0, int(_cfg(run_config, "batch-size")) / float(np.median(sizes)))
    return rate, steps_for_epochs(int(_cfg(run_config, "local-epochs")), rate), delta
