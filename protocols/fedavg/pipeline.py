"""FedAvg's aggregation as a pipeline of small steps.

In the spirit of TensorFlow Federated's aggregation factories, one round's
aggregation is composed from steps that each do one thing and report what
they measured:

client side (on each client, on its own update, in order)
    weighting (by example count, or none), L2 clipping (fixed or adaptive
    norm), [room for a client-side noise step: discrete noise added by
    each client inside the secure sum], then the secure sum's own client
    part: each coordinate bounded to ``±clip`` (counted), the update packed
    with the step's scalar coordinates (the weight) and integer counts (the
    clipped flag, the clipped-coordinate count) into one vector.
the secure sum
    any protocol (:mod:`protocols.fedavg.aggregation`); the server learns
    only the sum, counts included, over the clients that took part.
server side (on the sum, in order)
    noise (central DP, at the aggregator), the adaptive clip norm's update,
    the mean (divide by the summed weight, the number of clients, or the
    expected number of clients).

:func:`build_pipeline` builds the steps once from a
:class:`~protocols.fedavg.config.FedAvgConfig`; the driver's round loop
calls :meth:`Pipeline.client` on each client and :meth:`Pipeline.aggregate`
on the server, and never looks at the DP or aggregation name. Nothing
outside a client reads its plaintext update: whatever the server learns
about clipping travels inside the secure sum, as the weight does.

A new step subclasses :class:`Step`: it may add scalar coordinates
(``reals``) or integer coordinates (``count_bounds``) to every client's
vector, transform the update on the client (:meth:`Step.client`), change
the sum on the server (:meth:`Step.server`) and report
:meth:`Step.measurements`. A client-side noise step (distributed DP:
discrete noise added by each client inside the secure sum) goes into
``client_steps`` after :class:`L2Clip`; integer multiples of the secure
sum's :attr:`~protocols.fedavg.aggregation.SecureSum.resolution` land
exactly on the protocol's integer grid, as the counts do, so such noise is
summed without rounding (its scale must then be covered by the secure
sum's coordinate bound).

``dp="distributed"`` replaces the secure-sum step instead
(:class:`~protocols.fedavg.dp_distributed.DistributedSecureSumStep`): its
client part clips, rotates, rounds and noises the update into integers mod
``2^dp_bits``, which the secure sum adds exactly
(:meth:`~protocols.fedavg.aggregation.SecureSum.integer_sum`); its server
part decodes and charges the round from the survivors actually summed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from secagg import profiling
from secagg.errors import AbortError, ParameterError

from .aggregation import SecureSum, make_secure_sum
from .config import FedAvgConfig
from .steps import F32, F64, Contribution, RoundSum, Step

__all__ = [
    "CentralNoise",
    "Contribution",
    "FixedMean",
    "L2Clip",
    "MeanByClients",
    "MeanByWeight",
    "Pipeline",
    "RoundSum",
    "SecureSumStep",
    "Step",
    "WeightByExamples",
    "build_pipeline",
]

# ------------------------------------------------------------ weighting


class WeightByExamples(Step):
    """Weight each update by ``n_k / max_examples`` (a public bound); the
    weight travels inside the secure sum, so no single count reaches the
    server. Reveals the total example count: not for example-level DP."""

    name = "weighting"
    reals = ("weight",)

    def __init__(self, max_examples: int) -> None:
        self.max_examples = max_examples

    def check_clients(self, sizes: Sequence[int]) -> None:
        if max(sizes) > self.max_examples:
            raise ParameterError(
                f"a client holds {max(sizes)} examples, more than config key "
                f"'max_examples_per_client' = {self.max_examples}"
            )

    def client(self, c: Contribution) -> None:
        self.check_clients([c.num_examples])
        w = c.num_examples / self.max_examples
        np.multiply(c.vector, w, out=c.vector)
        c.reals["weight"] = w


class MeanByWeight(Step):
    """The weighted mean: the summed update over the summed weight."""

    name = "mean"

    def server(self, s: RoundSum) -> None:
        wsum = s.reals["weight"]
        s.vector = s.vector / wsum if wsum > 0 else np.zeros_like(s.vector)


class MeanByClients(Step):
    """The unweighted mean over the clients in the sum (their number is
    public to the server anyway): releases no example count."""

    name = "mean"

    def server(self, s: RoundSum) -> None:
        s.vector = s.vector / s.clients if s.clients > 0 else np.zeros_like(s.vector)


class FixedMean(Step):
    """Divide by a fixed, public denominator (DP-FedAvg's expected number of
    clients), so one client's influence on the mean is bounded."""

    name = "mean"

    def __init__(self, denominator: float) -> None:
        self.denominator = float(denominator)

    def server(self, s: RoundSum) -> None:
        from dp.client_level import mean_from_sum

        s.vector = mean_from_sum(s.vector, self.denominator)


# ----------------------------------------------------------- clipping


class L2Clip(Step):
    """Clip each update to L2 norm ``C`` on the client (McMahan et al. 2018),
    fixed or adaptive (Andrew et al. 2021: the norm follows a private
    quantile estimate). The clipped flag travels inside the secure sum; the
    server learns only how many were clipped, and with adaptive clipping
    uses that count, noised, to move ``C``.

    Args:
        dp: the round state of client-level DP (its clip norm, adaptive or not).
        release_count: publish the exact clipped count in the measurements
            (``False`` under client-level DP, where it is not private).
    """

    name = "clip"

    def __init__(self, dp: Any, *, release_count: bool) -> None:
        self.dp = dp
        self.release_count = release_count
        self._clip = float(dp.clip_norm)
        self._clipped: int | None = None
        self._next = self._clip

    def count_bounds(self, dim: int) -> dict[str, int]:
        return {"clipped": 1}

    def begin_round(self, round_idx: int) -> None:
        self._clip = float(self.dp.clip_norm)

    def client(self, c: Contribution) -> None:
        from dp.client_level import clip_update

        res = clip_update(c.vector, self._clip)
        c.vector = res.vector.astype(np.float32)
        c.counts["clipped"] = int(res.clipped)

    def server(self, s: RoundSum) -> None:
        clipped = s.counts.get("clipped", 0)
        self._clipped = clipped
        # sum of b_i - 1/2 with b_i = 1 for an update left unclipped
        self._next = float(self.dp.end_round((s.clients - clipped) - 0.5 * s.clients))

    def measurements(self) -> dict[str, Any]:
        return {
            "clip_norm": self._clip,
            "next_clip_norm": self._next,
            "clipped_clients": self._clipped if self.release_count else None,
        }


# -------------------------------------------------------------- noise


class CentralNoise(Step):
    """Client-level DP at the aggregator: charge the round before any client
    trains, then add N(0, (z C)^2) to every coordinate of the secure sum.
    The aggregator that adds the noise is trusted for DP (it sees the
    noiseless sum), not for single updates."""

    name = "noise"

    def __init__(self, dp: Any) -> None:
        self.dp = dp
        self._std = 0.0
        self._seconds = 0.0

    def begin_round(self, round_idx: int) -> None:
        self.dp.begin_round(round_idx)
        self._seconds = 0.0  # the noise's own time (the charge is timed by the caller)

    def server(self, s: RoundSum) -> None:
        t0 = time.perf_counter()
        self._std = float(self.dp.noise_std())
        s.vector = self.dp.add_noise(s.vector)
        self._seconds += time.perf_counter() - t0

    def measurements(self) -> dict[str, Any]:
        return {"noise_std": self._std, "seconds": self._seconds}


# --------------------------------------------------------- secure sum


class SecureSumStep(Step):
    """The secure sum and its client part.

    Client side: bound each coordinate of the update to ``±clip`` and count
    how many were cut, then pack update, scalar coordinates and integer
    counts into one vector. Counts are sent as exact multiples of the sum's
    fixed-point resolution (in base-``B`` digits when one slot cannot hold
    the largest total), so the server recovers their sums exactly and
    nothing else about them.
    """

    name = "secure_sum"

    def __init__(
        self,
        secure_sum: SecureSum,
        dim: int,
        reals: Sequence[str],
        count_bounds: Mapping[str, int],
    ) -> None:
        self.sum = secure_sum
        self.dim = dim
        self.real_names = tuple(reals)
        # scalar coordinates lie in [-1, 1]; scaled into the coordinate bound
        self.real_scale = min(1.0, secure_sum.clip)
        res = secure_sum.resolution
        # one digit slot: |digit * res| <= clip, exact in float32 (< 2^22)
        self.base = max(2, min(math.floor(secure_sum.clip / res), 1 << 22))
        self.count_layout: list[tuple[str, int]] = []  # (name, number of digits)
        bounds = {**count_bounds, "clipped_values": dim}
        for name, bound in bounds.items():
            digits = 1
            while self.base**digits <= bound:
                digits += 1
            self.count_layout.append((name, digits))
        self.length = dim + len(self.real_names) + sum(d for _, d in self.count_layout)
        self._m: dict[str, Any] = {}

    def pack(self, c: Contribution) -> F32:
        """Client side: the one vector this client sends (see the class doc)."""
        vec = np.empty(self.length, dtype=np.float32)
        clip = self.sum.clip
        over = int(np.count_nonzero(np.abs(c.vector) > clip))
        np.clip(c.vector, -clip, clip, out=vec[: self.dim])
        c.counts["clipped_values"] = over
        pos = self.dim
        for name in self.real_names:
            vec[pos] = c.reals[name] * self.real_scale
            pos += 1
        res = self.sum.resolution
        for name, digits in self.count_layout:
            value = c.counts.get(name, 0)
            for _ in range(digits):
                vec[pos] = (value % self.base) * res
                value //= self.base
                pos += 1
        return vec

    def run(
        self, inputs: Mapping[int, F32], dropped: frozenset[int], round_idx: int
    ) -> RoundSum:
        """Server side: the secure sum, unpacked; raises ``AbortError`` on abort."""
        t0 = time.perf_counter()
        self._m = {"aborted": True, "clients": 0, "clipped_values": None,
                   "bytes_up_per_client": 0.0, "bytes_down_per_client": 0.0,
                   "server_seconds": 0.0, "included": [], "dropped": sorted(dropped)}
        with profiling.collect() as split:
            try:
                agg = self.sum(inputs, dropped, round_idx)
            finally:
                self._m["seconds"] = time.perf_counter() - t0
                self._m["hot_path"] = split.get(profiling.HOT_PATH, 0.0)
                self._m["crypto"] = split.get(profiling.CRYPTO, 0.0)
        total = agg.sum
        reals = {n: float(total[self.dim + i]) / self.real_scale
                 for i, n in enumerate(self.real_names)}
        counts: dict[str, int] = {}
        pos = self.dim + len(self.real_names)
        res = self.sum.resolution
        for name, digits in self.count_layout:
            value = 0
            for d in range(digits):
                value += int(np.rint(total[pos] / res)) * self.base**d
                pos += 1
            counts[name] = value
        clients = [k for k in agg.figures if k in inputs]
        fig = agg.figures
        self._m.update(
            aborted=False,
            clients=len(agg.included),
            clipped_values=counts["clipped_values"],
            bytes_up_per_client=float(np.mean([fig[k].total_sent for k in clients]))
            if clients else 0.0,
            bytes_down_per_client=float(np.mean([fig[k].total_received for k in clients]))
            if clients else 0.0,
            server_seconds=fig["server"].total_compute if "server" in fig else 0.0,
            included=sorted(agg.included),
            dropped=sorted(agg.dropped | (dropped & frozenset(inputs))),
        )
        return RoundSum(np.asarray(total[: self.dim], dtype=np.float64), reals, counts,
                        len(agg.included))

    def measurements(self) -> dict[str, Any]:
        return dict(self._m)


# ------------------------------------------------------------ pipeline


class Pipeline:
    """The steps of one run, in order, around one secure sum.

    Args:
        client_steps: run on each client, in order, before the secure sum.
        secure_sum: the secure-sum step (its client part runs last).
        server_steps: run on the sum, in order.
        release_participation: publish who took part and whether the round
            aborted (``False`` under client-level DP: the guarantee's
            amplification by sampling assumes nobody learns who took part).
        release_on_abort: an aborted sum still releases the server steps'
            output on a zero sum (client-level DP: noise only, so an abort
            looks like any round); otherwise the round changes nothing.
    """

    def __init__(
        self,
        client_steps: Sequence[Step],
        secure_sum: Any,
        server_steps: Sequence[Step],
        *,
        release_participation: bool = True,
        release_on_abort: bool = False,
    ) -> None:
        self.client_steps = list(client_steps)
        self.secure_sum = secure_sum
        self.server_steps = list(server_steps)
        self.release_participation = release_participation
        self.release_on_abort = release_on_abort

    @property
    def steps(self) -> list[Step]:
        """Every step once, in order (client steps, secure sum, server steps)."""
        out: list[Step] = []
        for s in [*self.client_steps, self.secure_sum, *self.server_steps]:
            if s not in out:
                out.append(s)
        return out

    def check_clients(self, sizes: Sequence[int]) -> None:
        """Before the run: every step checks the client dataset sizes."""
        for s in self.steps:
            s.check_clients(sizes)

    def begin_round(self, round_idx: int) -> None:
        """Before any client trains (privacy is charged here)."""
        for s in self.steps:
            s.begin_round(round_idx)

    def client(self, update: F32, num_examples: int) -> npt.NDArray[Any]:
        """Client side: the one vector this client sends into the secure sum."""
        c = Contribution(np.array(update, dtype=np.float32, copy=True), int(num_examples))
        for s in self.client_steps:
            s.client(c)
        return self.secure_sum.pack(c)

    def aggregate(
        self, inputs: Mapping[int, F32], dropped: frozenset[int], round_idx: int
    ) -> F64 | None:
        """Server side: the mean update of this round, or ``None`` if the
        round aborted and releases nothing."""
        try:
            s = self.secure_sum.run(inputs, dropped, round_idx)
        except AbortError:
            if not self.release_on_abort:
                return None
            s = RoundSum(np.zeros(self.secure_sum.dim), {}, {}, 0, aborted=True)
        for step in self.server_steps:
            step.server(s)
        return s.vector

    def measurements(self) -> dict[str, dict[str, Any]]:
        """This round's figures, by step name."""
        return {s.name: s.measurements() for s in self.steps if s.measurements()}


def build_pipeline(
    cfg: FedAvgConfig, dim: int, dp: Any = None, *, secure_sum: SecureSum | None = None
) -> Pipeline:
    """The pipeline ``cfg`` describes, for updates of ``dim`` coordinates.

    ``dp`` is the run's :class:`dp.client_level.ClientLevelDP` when
    ``cfg.dp == "central"`` (see :func:`protocols.fedavg.dp_central.make_client_level_dp`).
    ``secure_sum`` replaces the back-end ``cfg.aggregation`` names (e.g. an
    instrumented one in a benchmark).
    """
    if cfg.dp == "distributed":
        from .dp_distributed import DistributedSecureSumStep, make_distributed_params

        secure = secure_sum or make_secure_sum(
            cfg.aggregation, clip=1.0, max_summands=cfg.clients_per_round, seed=cfg.seed)
        params = make_distributed_params(cfg, dim, secure)
        return Pipeline([], DistributedSecureSumStep(secure, dim, params),
                        [FixedMean(cfg.clients_per_round)])
    central = cfg.dp == "central"
    client_steps: list[Step]
    server_steps: list[Step]
    if central:
        if dp is None:
            raise ParameterError("dp='central' needs the run's ClientLevelDP")
        clip = L2Clip(dp, release_count=False)
        client_steps = [clip]
        server_steps = [CentralNoise(dp), clip, FixedMean(dp.expected_clients)]
        # every coordinate of an update of L2 norm <= C is <= C
        bound = max(cfg.clip_norm, cfg.update_clip) if cfg.adaptive_clipping else cfg.clip_norm
        max_summands = cfg.num_clients  # Poisson sampling can pick everyone
    elif cfg.dp == "local":
        # example-level DP: the example counts are private, so the mean is unweighted
        client_steps, server_steps = [], [MeanByClients()]
        bound, max_summands = cfg.update_clip, cfg.clients_per_round
    else:
        client_steps = [WeightByExamples(cfg.max_examples_per_client)]
        server_steps = [MeanByWeight()]
        bound, max_summands = cfg.update_clip, cfg.clients_per_round
    secure = secure_sum or make_secure_sum(
        cfg.aggregation, clip=bound, max_summands=max_summands,
        paillier_key_bits=cfg.paillier_key_bits, seed=cfg.seed)
    reals = [n for s in client_steps for n in s.reals]
    counts: dict[str, int] = {}
    for s in client_steps:
        counts.update(s.count_bounds(dim))
    return Pipeline(
        client_steps,
        SecureSumStep(secure, dim, reals, counts),
        server_steps,
        release_participation=not central,
        release_on_abort=central,
    )
