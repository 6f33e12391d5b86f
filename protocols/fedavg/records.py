"""What a FedAvg run records: one :class:`RoundRecord` per round, and the
:class:`FedAvgResult` that holds them (written to ``metrics.json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["TIME_PARTS", "FedAvgResult", "RoundRecord"]


@dataclass
class RoundRecord:
    """What one round did and cost. Times in seconds, sizes in bytes.

    The round's wall time ``time_round`` is the exact sum of exclusive
    parts: ``time_local_training`` (the clients' SGD or DP-SGD),
    ``time_hot_path`` (encode, mask arithmetic, decode; all parties),
    ``time_crypto`` (PRG, key agreement, AEAD, Shamir, signatures, Paillier;
    all parties), ``time_privacy`` (charging and evaluating the privacy
    accountant, the aggregator's noise), ``time_evaluation`` (the global
    model on the test set) and ``time_other`` (everything else: the
    protocols' codecs and bookkeeping, the pipeline's client and server
    steps, sampling). ``time_server_aggregation`` is the server's own
    compute in the secure sum, *including* its share of hot path and
    cryptography, so it is reported beside the split, not inside it.

    Participation (``sampled``, ``included``, ``dropped``, ``refused``,
    ``aborted``) and the exact clipping counts are ``None`` with client-level
    DP (``dp="central"``): its amplification by sampling assumes nobody
    learns who took part, so they are not published.
    """

    round: int
    test_loss: float
    test_accuracy: float | None
    epsilon: float | None
    accountant: str | None
    privacy_unit: str | None
    sampled: list[int] | None
    included: list[int] | None
    dropped: list[int] | None
    refused: list[int] | None
    aborted: bool | None
    clipped_values: int | None  # coordinates cut to the secure sum's bound, over the sum
    clipped_clients: int | None  # updates scaled down to the L2 clip norm (central DP)
    clip_norm: float | None  # the L2 clip norm used this round (central DP)
    noise_std: float | None  # std of the noise on the sum (central or distributed DP)
    bytes_up_per_client: float
    bytes_down_per_client: float
    time_local_training: float
    time_hot_path: float
    time_crypto: float
    time_privacy: float
    time_evaluation: float
    time_other: float
    time_server_aggregation: float
    time_round: float
    #: dp=distributed: the guarantee so far, with its mechanism and whom it holds against
    privacy_guarantee: str | None = None
    #: dp=distributed: fraction of the decoded sum's coordinates near the modulus edge
    near_boundary: float | None = None


#: The exclusive parts of ``time_round``, in the order they are shown.
TIME_PARTS = ("local_training", "hot_path", "crypto", "privacy", "evaluation", "other")


@dataclass
class FedAvgResult:
    """A finished run: the config, one record per round, the final model."""

    config: dict[str, Any]
    rounds: list[RoundRecord] = field(default_factory=list)
    final_params: npt.NDArray[np.float32] | None = None
    model: Any = None  # the global torch module
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
            "privacy_guarantee": r[-1].privacy_guarantee,
            "aborted_rounds": (
                None if any(x.aborted is None for x in r) else sum(bool(x.aborted) for x in r)
            ),
            "time": {
                k: sum(getattr(x, f"time_{k}") for x in r)
                for k in (*TIME_PARTS, "server_aggregation", "round")
            },
            "bytes_up_per_client_per_round": float(np.mean([x.bytes_up_per_client for x in r])),
            "bytes_down_per_client_per_round": float(
                np.mean([x.bytes_down_per_client for x in r])
            ),
        }
