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
process restarts; the server sees that node as a dropout of the round.
"""

from __future__ import annotations

import json
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

__all__ = ["DP_MODES", "FlowerRound", "fedavg_defaults", "local_dp_trainer", "run_fedavg",
           "train_on_node"]

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
    "accountant": "pld",
    # protocol "paillier" (threshold layout): the dealer's public material file on the
    # ServerApp's machine, and the fixed-point bits per value (protocols/flower/paillier.py)
    "paillier-public": "",
    "paillier-value-bits": 28,
}
#: DP modes of the Flower FedAvg app
DP_MODES = ("none", "local")


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

    Writes ``metrics.json`` to ``run-dir`` when that is set. Returns the
    round records.
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
    n_nodes = int(_cfg(run_config, "num-nodes"))
    nodes = nodes_ready(grid, n_nodes, timeout=120.0)
    task = _task(run_config, n_nodes)
    torch.manual_seed(int(_cfg(run_config, "seed")))
    model = task.model_factory()
    params = flatten_model(model)  # a view: writing it updates the model
    dim = params.size + 1
    clip = float(_cfg(run_config, "clip"))
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
            weight = float(total[-1])
            if weight > 0:
                step = float(_cfg(run_config, "server-lr")) * total[:-1] / weight
                params += step.astype(np.float32)
            included = sorted(report.result.included)
            for r in report.rounds:
                dropped.update({str(k): f"{r.name}: {v}" for k, v in r.dropped.items()})
                up += r.bytes_up
                down += r.bytes_down
            # the rounds this FedAvg round drove (its folded ones rode on, and were timed
            # with, the previous round's round trips)
            rounds = [(r.name, r.seconds) for r in report.rounds if not r.folded]
            trips = report.round_trips
        metrics = evaluate(model, task.test_dataset, task.kind)
        rec = FlowerRound(
            round=rnd, test_loss=metrics["loss"], test_accuracy=metrics.get("accuracy"),
            nodes=len(nodes), included=included, dropped=dropped, aborted=aborted,
            round_trips=trips, time_round=time.monotonic() - t0,
            time_rounds=dict(rounds), bytes_up_per_node=up / max(len(nodes), 1),
            bytes_down_per_node=down / max(len(nodes), 1))
        records.append(rec)
        if on_round is not None:
            on_round(rec)
    run_dir = str(_cfg(run_config, "run-dir"))
    if run_dir:
        path = Path(run_dir)
        path.mkdir(parents=True, exist_ok=True)
        cfg = {k: _cfg(run_config, k) for k in DEFAULTS}
        (path / "metrics.json").write_text(json.dumps(
            {"config": cfg, "engine": "flower", "rounds": [asdict(r) for r in records]},
            indent=2))
    return records


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
    elif dp_mode == "none":
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
    import math

    from dp import LocalDPTrainer
    from dp.accounting import steps_for_epochs

    from .dp_state import ledger_binding, load_ledger

    cfg = context.run_config
    sizes = [len(d) for d in task.client_datasets]
    delta = float(_cfg(cfg, "delta"))
    if delta >= 1 / max(sizes):
        raise ParameterError(f"run config delta={delta} must be below 1/N for the largest "
                             f"partition, N = {max(sizes)}: 1/N = {1 / max(sizes):.3g}")
    rate = min(1.0, int(_cfg(cfg, "batch-size")) / float(np.median(sizes)))
    sigma = float(_cfg(cfg, "noise-multiplier"))
    target = float(_cfg(cfg, "target-epsilon"))
    budget = float(_cfg(cfg, "epsilon-budget"))
    planned = int(_cfg(cfg, "num-rounds")) * steps_for_epochs(int(_cfg(cfg, "local-epochs")),
                                                               rate)
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
