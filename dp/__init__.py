"""Differential privacy: accounting, DP-SGD through Opacus, client-level DP.

Every guarantee this package reports is a :class:`PrivacyGuarantee` that
names its accountant, its privacy unit (one *example* for DP-SGD, one
*client* for client-level DP-FedAvg) and its adjacency (add/remove one unit).

Heavy dependencies (torch, Opacus) load only when :class:`LocalDPTrainer`
or :mod:`dp.local` is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import accounting, client_level, ledger, secure_noise
from .accounting import (
    ACCOUNTANTS,
    ADJACENCY,
    DEFAULT_ACCOUNTANT,
    AccountantLimitError,
    DeltaWarning,
    PrivacyGuarantee,
    Segment,
    check_delta,
    client_level_epsilon,
    compare_accountants,
    epsilon,
    epsilon_of_history,
    federated_sample_level_epsilon,
    noise_multiplier,
    sample_rate_for,
    steps_for_epochs,
)
from .client_level import (
    AdaptiveClipping,
    ClientContribution,
    ClientLevelDP,
    ClippedUpdate,
    GaussianNoise,
    RoundResult,
    clip_update,
    mean_from_sum,
    sample_clients,
    sum_vectors,
)
from .discrete import DiscreteRandom
from .distributed import DistributedDPAccountant, DistributedDPParams
from .distributed_accounting import DistributedPrivacyGuarantee
from .ledger import ClientLedgers, LedgerEntry, PrivacyLedger
from .secure_noise import CryptoRandom

if TYPE_CHECKING:
    from . import local
    from .local import (
        LocalDPTrainer,
        PoissonBatchSampler,
        RoundStats,
        UnchargedStepError,
        UnclippedGradientError,
        make_dp_compatible,
        time_grad_sample_modes,
    )

__all__ = [
    "ACCOUNTANTS",
    "ADJACENCY",
    "DEFAULT_ACCOUNTANT",
    "AccountantLimitError",
    "AdaptiveClipping",
    "ClientContribution",
    "ClientLedgers",
    "ClientLevelDP",
    "ClippedUpdate",
    "CryptoRandom",
    "DeltaWarning",
    "DiscreteRandom",
    "DistributedDPAccountant",
    "DistributedDPParams",
    "DistributedPrivacyGuarantee",
    "GaussianNoise",
    "LedgerEntry",
    "LocalDPTrainer",
    "PoissonBatchSampler",
    "PrivacyGuarantee",
    "PrivacyLedger",
    "RoundResult",
    "RoundStats",
    "Segment",
    "UnchargedStepError",
    "UnclippedGradientError",
    "accounting",
    "check_delta",
    "client_level",
    "client_level_epsilon",
    "clip_update",
    "compare_accountants",
    "epsilon",
    "epsilon_of_history",
    "federated_sample_level_epsilon",
    "ledger",
    "local",
    "make_dp_compatible",
    "mean_from_sum",
    "noise_multiplier",
    "sample_clients",
    "sample_rate_for",
    "secure_noise",
    "steps_for_epochs",
    "sum_vectors",
    "time_grad_sample_modes",
]

_LAZY = {
    "local",
    "LocalDPTrainer",
    "PoissonBatchSampler",
    "RoundStats",
    "UnchargedStepError",
    "UnclippedGradientError",
    "make_dp_compatible",
    "time_grad_sample_modes",
}


def __dir__() -> list[str]:
    # only the public API (not typing helpers or __future__ imports)
    return sorted(__all__)


def __getattr__(name: str) -> Any:
    # dp.local imports torch and Opacus (seconds); load it on first use.
    if name in _LAZY:
        import importlib

        mod = importlib.import_module(".local", __name__)
        return mod if name == "local" else getattr(mod, name)
    raise AttributeError(f"module 'dp' has no attribute {name!r}")
