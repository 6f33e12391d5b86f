"""Distributed DP for the FedAvg driver (``dp="distributed"``): client-level
DP-FedAvg whose noise is added by the clients, inside the secure sum.

Client side (:meth:`DistributedSecureSumStep.pack`): :func:`dp.distributed.encode`
clips the update to L2 ``clip_norm``, rotates it (randomized Hadamard, a
public per-round seed), scales and rounds it to integers with the norm bound
the accountant uses, adds the client's discrete noise share (from its own
AES-CTR source) and reduces it mod ``2^dp_bits``. That ``uint32`` vector is
the client's only message content: no weight, no clipped flag, no count.

The secure sum (:meth:`~protocols.fedavg.aggregation.SecureSum.integer_sum`)
adds the integer vectors mod ``2^32`` exactly; the server reduces mod
``2^dp_bits``, decodes (:func:`dp.distributed.decode`), and divides by the
number of clients sampled per round (a public, fixed denominator).

Privacy unit: one client, zero-out adjacency (a neighbouring run replaces
one client's updates by zeros), so who took part is not private and is
published. Trust: against the server (it sees only the sum of the
survivors' vectors, each carrying its noise share). The noise of one round
is calibrated so that the shares of the secure sum's *threshold* of
survivors (the fewest it admits) reach ``target_epsilon`` after ``rounds``
rounds; the accountant then charges each round from the survivors actually
summed (:meth:`dp.distributed.DistributedDPAccountant.record_round`), so
the reported epsilon never assumes more noise than was added. An aborted
secure sum releases nothing and is not charged. Every round is charged in
full: the server knows who was sampled, so no amplification by sampling is
claimed.

Released per round: the decoded noisy mean, who took part, the noise scale
and the decoder's near-boundary fraction (a function of the noisy sum).
Nothing unnoised about a single client is sent or released: the clipped
count is not sent (clipping is fixed, not adaptive).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from secagg import profiling
from secagg.errors import ParameterError

from .aggregation import SecureSum
from .config import FedAvgConfig
from .steps import Contribution, RoundSum, Step

__all__ = ["DistributedSecureSumStep", "make_distributed_params"]

#: select_parameters' argument -> the config key that sets it
_KEYS = {
    "bits": "dp_bits",
    "target_epsilon": "target_epsilon",
    "delta": "delta",
    "rounds": "rounds",
    "num_clients": "clients_per_round",
    "min_survivors": "clients_per_round",
    "l2_clip": "clip_norm",
    "gamma": "clip_norm",
    "noise_variance": "target_epsilon",
}


def make_distributed_params(cfg: FedAvgConfig, dim: int, secure_sum: SecureSum) -> Any:
    """The run's :class:`dp.distributed.DistributedDPParams` from ``cfg``.

    Calibrated for ``clients_per_round`` summands of which at least the
    secure sum's threshold survive, ``cfg.rounds`` rounds at ``target_epsilon``
    and ``delta``, modulus ``2^dp_bits`` (per-coordinate wrap probability at
    most 1e-6).

    Raises:
        ParameterError: naming the config key to change when the plan cannot work.
    """
    from dp.distributed import select_parameters

    n = cfg.clients_per_round
    t = secure_sum.threshold(n)
    assert cfg.target_epsilon is not None
    try:
        return select_parameters(
            target_epsilon=cfg.target_epsilon, delta=cfg.delta, num_clients=n,
            min_survivors=t, bits=cfg.dp_bits, dimension=dim, l2_clip=cfg.clip_norm,
            rounds=cfg.rounds, sample_rate=1.0, mechanism=cfg.dp_mechanism,
        )
    except ParameterError as exc:
        msg = str(exc)
        m = re.match(r"(\w+)=", msg)
        key = _KEYS.get(m.group(1), "") if m else ""
        where = f"config key {key!r}: " if key else ""
        raise ParameterError(
            f"dp='distributed' cannot meet its plan ({n} clients per round, threshold "
            f"{t}, {cfg.rounds} rounds, dp_bits={cfg.dp_bits}): {where}{msg}") from None


class DistributedSecureSumStep(Step):
    """The distributed mechanism around an integer secure sum (module doc).

    Measurements: the secure sum's figures (as :class:`SecureSumStep`), plus
    ``noise_std`` (std of the summed noise per coordinate, float units, at
    the actual survivors), ``near_boundary`` (the decoder's fraction of
    coordinates near the modulus edge), ``gamma`` and ``seconds`` (the
    clients' encoding time).
    """

    name = "secure_sum"

    def __init__(self, secure_sum: SecureSum, dim: int, params: Any) -> None:
        from dp.distributed import DistributedDPAccountant

        self.sum = secure_sum
        self.dim = dim
        self.params = params
        self.accountant = DistributedDPAccountant(params)
        self._seed = b""
        self._m: dict[str, Any] = {}
        self._encode_seconds = 0.0

    def begin_round(self, round_idx: int) -> None:
        from dp.distributed import rotation_seed

        # public, fresh per round; it only affects accuracy (wrap-around), not privacy
        self._seed = rotation_seed(os.urandom(16), round_idx)
        self._encode_seconds = 0.0

    @property
    def rotation_seed(self) -> bytes:
        """This round's public rotation seed."""
        return self._seed

    def pack(self, c: Contribution) -> npt.NDArray[np.uint32]:
        """Client side: the encoded, noised ``uint32`` vector (nothing else)."""
        from dp.distributed import encode

        t0 = time.perf_counter()
        enc = encode(self.params, c.vector, self._seed, dtype=np.uint32)
        self._encode_seconds += time.perf_counter() - t0
        return enc.vector  # type: ignore[return-value]

    def run(
        self, inputs: Mapping[int, Any], dropped: frozenset[int], round_idx: int
    ) -> RoundSum:
        """Server side: the secure integer sum, charged and decoded; raises
        ``AbortError`` (nothing released, nothing charged) on abort."""
        from dp.distributed import decode

        t0 = time.perf_counter()
        self._m = {"aborted": True, "clients": 0, "clipped_values": None,
                   "bytes_up_per_client": 0.0, "bytes_down_per_client": 0.0,
                   "server_seconds": 0.0, "included": [], "dropped": sorted(dropped),
                   "noise_std": None, "near_boundary": None,
                   "gamma": self.params.gamma, "encode_seconds": self._encode_seconds}
        with profiling.collect() as split:
            try:
                agg = self.sum.integer_sum(inputs, dropped, round_idx)
            finally:
                self._m["seconds"] = time.perf_counter() - t0
                self._m["hot_path"] = split.get(profiling.HOT_PATH, 0.0)
                self._m["crypto"] = split.get(profiling.CRYPTO, 0.0)
        survivors = len(agg.included)
        self.accountant.record_round(survivors)
        assert agg.raw_sum is not None
        dec = decode(self.params, agg.raw_sum, self._seed, survivors)
        clients = [k for k in agg.figures if k in inputs]
        fig = agg.figures
        self._m.update(
            aborted=False,
            clients=survivors,
            noise_std=self.params.noise_std(survivors),
            near_boundary=dec.near_boundary_fraction,
            bytes_up_per_client=float(np.mean([fig[k].total_sent for k in clients]))
            if clients else 0.0,
            bytes_down_per_client=float(np.mean([fig[k].total_received for k in clients]))
            if clients else 0.0,
            server_seconds=fig["server"].total_compute if "server" in fig else 0.0,
            included=sorted(agg.included),
            dropped=sorted(agg.dropped | (dropped & frozenset(inputs))),
        )
        return RoundSum(dec.sum, {}, {}, survivors)

    def guarantee(self) -> Any:
        """The :class:`dp.distributed_accounting.DistributedPrivacyGuarantee` so far."""
        return self.accountant.guarantee()

    def measurements(self) -> dict[str, Any]:
        return dict(self._m)
