"""The reference FedAvg driver: local training x secure aggregation x DP.

``run_fedavg(FedAvgConfig(...))`` trains, records each round and writes a
run directory; ``Task`` lets users bring their own per-client datasets; the
aggregation is a pipeline of small steps (:mod:`protocols.fedavg.pipeline`).

Names are imported on first use, so ``from protocols.fedavg import
FedAvgConfig`` needs only the core install; the driver needs the ``fedavg``
extra (torch, Opacus, scikit-learn).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .aggregation import Aggregator, make_secure_sum
    from .config import AGGREGATIONS, DP_MODES, FIELD_HELP, FedAvgConfig
    from .driver import run_fedavg
    from .params import flatten_model
    from .pipeline import Pipeline, Step, build_pipeline
    from .records import FedAvgResult, RoundRecord
    from .tasks import Task, digits_task, linear_regression_task

_WHERE = {
    "AGGREGATIONS": "config",
    "DP_MODES": "config",
    "FIELD_HELP": "config",
    "FedAvgConfig": "config",
    "Aggregator": "aggregation",
    "make_secure_sum": "aggregation",
    "FedAvgResult": "records",
    "RoundRecord": "records",
    "run_fedavg": "driver",
    "Pipeline": "pipeline",
    "Step": "pipeline",
    "build_pipeline": "pipeline",
    "flatten_model": "params",
    "Task": "tasks",
    "digits_task": "tasks",
    "linear_regression_task": "tasks",
}

__all__ = [
    "AGGREGATIONS",
    "DP_MODES",
    "FIELD_HELP",
    "Aggregator",
    "FedAvgConfig",
    "FedAvgResult",
    "Pipeline",
    "RoundRecord",
    "Step",
    "Task",
    "build_pipeline",
    "digits_task",
    "flatten_model",
    "linear_regression_task",
    "make_secure_sum",
    "run_fedavg",
]


def __getattr__(name: str) -> Any:
    try:
        module = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module 'protocols.fedavg' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
