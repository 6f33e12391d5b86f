"""Example-level distributed DP-SGD for the FedAvg driver (``dp="distributed-sgd"``).

One round is one DP-SGD step over the union of the clients' data. Every
client (all take part) Poisson-samples each of its examples with
probability ``example_sample_rate`` from its own AES-CTR source, computes
the per-example gradients of the current global model (``torch.func``:
``vmap`` over ``grad``), and :func:`dp.distributed_sgd.encode_batch` clips
each to L2 ``max_grad_norm``, rotates and rounds each, sums them and adds
one discrete noise share mod ``2^dp_bits``. The ``uint32`` vector is all a
client sends: no batch size, no count. The secure sum
(:meth:`~protocols.fedavg.aggregation.SecureSum.integer_sum`) adds the
vectors exactly; the server decodes the noisy sum, divides it by the public
expected batch size ``example_sample_rate * total_examples`` (the total
example count is treated as public, as in Opacus) and moves the model by
``-client_lr * server_lr`` times that mean gradient.

Privacy: example level, add/remove one example, against the server
(:mod:`dp.distributed_sgd`); the noise is calibrated for the secure sum's
threshold of survivors and each step is charged from the survivors actually
summed. Amplification by sampling holds because the server sees neither
which examples were sampled nor how many (batch sizes never leave the
clients, not even inside the sum). Only one local step per round is
supported (that is what the analysis covers). An aborted secure sum
releases nothing and is not charged; the model does not move.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from secagg import profiling
from secagg.errors import AbortError, ParameterError

from .aggregation import SecureSum, make_secure_sum
from .config import FedAvgConfig
from .params import flatten_model
from .records import FedAvgResult, RoundRecord
from .tasks import Task
from .training import evaluate

__all__ = ["DistributedDPSGD", "make_dpsgd", "run_distributed_sgd"]

#: select_dpsgd_parameters' argument -> the config key that sets it
_KEYS = {
    "bits": "dp_bits", "target_epsilon": "target_epsilon", "delta": "delta",
    "rounds": "rounds", "sample_rate": "example_sample_rate", "l2_clip": "max_grad_norm",
    "gamma": "max_grad_norm", "noise_variance": "target_epsilon",
    "total_examples": "dp_bits",
}


class _Client:
    """One client's data and secret source; produces its step contribution."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        from dp.discrete import DiscreteRandom

        self.x, self.y = x, y
        self.rng = DiscreteRandom()  # fresh os.urandom seed: sampling, rounding, noise

    def sample(self, rate: float) -> npt.NDArray[np.intp]:
        """Poisson sample: each example independently with probability ``rate``."""
        n = len(self.x)
        if rate >= 1.0:
            return np.arange(n)
        u = (self.rng.words(n) >> np.uint64(11)).astype(np.float64) * 2.0**-53
        return np.flatnonzero(u < rate)


class DistributedDPSGD:
    """The server's and clients' halves of one distributed DP-SGD step.

    Args:
        model: the global model (its parameters are read, never written here).
        loss_fn: per-batch loss with mean reduction (applied to one example).
        clients: per client, (inputs, labels) tensors.
        secure_sum: an integer-capable secure sum (``secagg`` or ``secagg+``).
        params: :class:`dp.distributed.DistributedDPParams` from
            :func:`dp.distributed_sgd.select_dpsgd_parameters`.
    """

    def __init__(self, model: torch.nn.Module, loss_fn: Callable[..., torch.Tensor],
                 clients: list[tuple[torch.Tensor, torch.Tensor]], secure_sum: SecureSum,
                 params: Any) -> None:
        from dp.distributed_sgd import DPSGDAccountant

        self.model = model
        self.loss_fn = loss_fn
        self.clients = [_Client(x, y) for x, y in clients]
        self.total_examples = sum(len(x) for x, _ in clients)
        self.sum = secure_sum
        self.params = params
        self.accountant = DPSGDAccountant(params)
        self.expected_batch = params.sample_rate * self.total_examples
        self._names = [n for n, _ in model.named_parameters()]

    def per_example_grads(self, x: torch.Tensor, y: torch.Tensor) -> npt.NDArray[np.float64]:
        """``len(x) x dimension`` per-example gradients at the current model."""
        from torch.func import functional_call, grad, vmap

        if len(x) == 0:
            return np.zeros((0, self.params.dimension))
        p = {n: t.detach() for n, t in self.model.named_parameters()}

        def loss(pp: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> Any:
            out = functional_call(self.model, pp, (xi.unsqueeze(0),))
            return self.loss_fn(out, yi.unsqueeze(0))

        g = vmap(grad(loss), in_dims=(None, 0, 0))(p, x, y)
        flat = torch.cat([g[n].reshape(len(x), -1) for n in self._names], dim=1)
        return flat.detach().numpy().astype(np.float64)

    def client_vector(self, k: int, seed: bytes) -> npt.NDArray[np.uint32]:
        """Client ``k``'s message for this step (sample, per-example grads, encode)."""
        from dp.distributed_sgd import encode_batch

        c = self.clients[k]
        idx = torch.from_numpy(c.sample(self.params.sample_rate))
        g = self.per_example_grads(c.x[idx], c.y[idx])
        return encode_batch(self.params, g, seed, c.rng)

    def step(self, dropped: frozenset[int], round_idx: int) -> tuple[Any, dict[str, Any]]:
        """One step: every client's vector, the secure sum, decode, charge.

        Returns ``(mean_gradient or None on abort, measurements)``."""
        from dp.distributed import decode, rotation_seed

        seed = rotation_seed(os.urandom(16), round_idx)  # public, fresh per step
        t0 = time.perf_counter()
        inputs = {k: self.client_vector(k, seed) for k in range(len(self.clients))}
        t_clients = time.perf_counter() - t0
        m: dict[str, Any] = {"client_seconds": t_clients, "aborted": True,
                             "included": [], "dropped": sorted(dropped), "noise_std": None,
                             "near_boundary": None, "bytes_up": 0.0, "bytes_down": 0.0,
                             "server_seconds": 0.0}
        t0 = time.perf_counter()
        with profiling.collect() as split:
            try:
                agg = self.sum.integer_sum(inputs, dropped, round_idx)
            except AbortError:
                agg = None
            finally:
                m["sum_seconds"] = time.perf_counter() - t0
                m["hot_path"] = split.get(profiling.HOT_PATH, 0.0)
                m["crypto"] = split.get(profiling.CRYPTO, 0.0)
        if agg is None:
            return None, m
        survivors = len(agg.included)
        self.accountant.record_step(survivors)
        assert agg.raw_sum is not None
        dec = decode(self.params, agg.raw_sum, seed, survivors)
        fig = agg.figures
        ids = [k for k in fig if k in inputs]
        m.update(
            aborted=False, included=sorted(agg.included),
            dropped=sorted(agg.dropped | (dropped & frozenset(inputs))),
            noise_std=self.params.noise_std(survivors) / self.expected_batch,
            near_boundary=dec.near_boundary_fraction,
            bytes_up=float(np.mean([fig[k].total_sent for k in ids])) if ids else 0.0,
            bytes_down=float(np.mean([fig[k].total_received for k in ids])) if ids else 0.0,
            server_seconds=fig["server"].total_compute if "server" in fig else 0.0,
        )
        return dec.sum / self.expected_batch, m


def make_dpsgd(cfg: FedAvgConfig, task: Task, model: torch.nn.Module,
               secure_sum: SecureSum | None = None) -> DistributedDPSGD:
    """The run's :class:`DistributedDPSGD`, its noise calibrated from ``cfg``."""
    from dp.distributed_sgd import select_dpsgd_parameters

    clients = []
    for ds in task.client_datasets:
        xs, ys = zip(*[ds[i] for i in range(len(ds))], strict=True)  # type: ignore[arg-type]
        clients.append((torch.stack(list(xs)), torch.stack([torch.as_tensor(v) for v in ys])))
    total = sum(len(x) for x, _ in clients)
    if cfg.delta >= 1 / total:
        raise ParameterError(
            f"config key 'delta' is {cfg.delta}; with dp='distributed-sgd' it must be below "
            f"1/total_examples = {1 / total:.3g} (a delta that large allows releasing one "
            "example outright)")
    n = cfg.num_clients
    secure = secure_sum or make_secure_sum(cfg.aggregation, clip=1.0, max_summands=n,
                                           seed=cfg.seed)
    dim = sum(p.numel() for p in model.parameters())
    assert cfg.target_epsilon is not None
    try:
        params = select_dpsgd_parameters(
            target_epsilon=cfg.target_epsilon, delta=cfg.delta, num_clients=n,
            min_survivors=secure.threshold(n), total_examples=total,
            sample_rate=cfg.example_sample_rate, steps=cfg.rounds, dimension=dim,
            l2_clip=cfg.max_grad_norm, bits=cfg.dp_bits, mechanism=cfg.dp_mechanism,
        )
    except ParameterError as exc:
        m = re.match(r"(\w+)=", str(exc))
        key = _KEYS.get(m.group(1), "") if m else ""
        where = f"config key {key!r}: " if key else ""
        raise ParameterError(
            f"dp='distributed-sgd' cannot meet its plan ({n} clients, {cfg.rounds} steps, "
            f"dp_bits={cfg.dp_bits}): {where}{exc}") from None
    return DistributedDPSGD(model, task.loss_fn(), clients, secure, params)


def run_distributed_sgd(
    cfg: FedAvgConfig,
    task: Task,
    on_round: Callable[[RoundRecord], None] | None = None,
    on_params: Callable[[int, npt.NDArray[np.float32]], None] | None = None,
    secure_sum: SecureSum | None = None,
) -> FedAvgResult:
    """The FedAvg driver's loop for ``dp="distributed-sgd"`` (module doc)."""
    rng = np.random.default_rng(cfg.seed)  # public choices only: dropouts
    torch.manual_seed(cfg.seed)
    model = task.model_factory()
    global_params = flatten_model(model)
    t0 = time.perf_counter()
    algo = make_dpsgd(cfg, task, model, secure_sum)
    t_setup = time.perf_counter() - t0
    result = FedAvgResult(config=asdict(cfg), model=model,
                          true_weights={k: v.tolist() for k, v in task.true_weights.items()})
    lr = cfg.client_lr * cfg.server_lr
    for r in range(1, cfg.rounds + 1):
        t_round = time.perf_counter()
        everyone = list(range(cfg.num_clients))
        dropped = frozenset(c for c in everyone if rng.random() < cfg.dropout_rate)
        grad, m = algo.step(dropped, r)
        if grad is not None:
            global_params -= (lr * grad).astype(np.float32)
        if on_params is not None:
            on_params(r, global_params)
        t1 = time.perf_counter()
        ev = evaluate(model, task.test_dataset, task.kind)
        t_eval = time.perf_counter() - t1
        t1 = time.perf_counter()
        g = algo.accountant.guarantee()
        t_privacy = time.perf_counter() - t1 + (t_setup if r == 1 else 0.0)
        t_total = time.perf_counter() - t_round
        parts = m["client_seconds"] + m["hot_path"] + m["crypto"] + t_privacy + t_eval
        result.rounds.append(RoundRecord(
            round=r, test_loss=ev["loss"], test_accuracy=ev.get("accuracy"),
            epsilon=float(g.epsilon), accountant=g.accountant_name, privacy_unit="example",
            sampled=everyone, included=m["included"], dropped=m["dropped"], refused=[],
            aborted=m["aborted"], clipped_values=None, clipped_clients=None,
            clip_norm=cfg.max_grad_norm, noise_std=m["noise_std"],
            bytes_up_per_client=m["bytes_up"], bytes_down_per_client=m["bytes_down"],
            # the clients' per-example gradients, rounding and noise
            time_local_training=m["client_seconds"], time_hot_path=m["hot_path"],
            time_crypto=m["crypto"], time_privacy=t_privacy, time_evaluation=t_eval,
            time_other=max(t_total - parts, 0.0),
            time_server_aggregation=m["server_seconds"], time_round=t_total,
            privacy_guarantee=str(g), near_boundary=m["near_boundary"],
        ))
        if on_round is not None:
            on_round(result.rounds[-1])
    result.final_params = global_params.copy()
    return result
