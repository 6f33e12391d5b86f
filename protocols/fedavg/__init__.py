"""The reference FedAvg driver: local training x secure aggregation x DP.

``run_fedavg(FedAvgConfig(...))`` trains, records each round and writes a
run directory; ``Task`` lets users bring their own per-client datasets.
"""

from .aggregation import Aggregator, make_secure_sum
from .config import AGGREGATIONS, DP_MODES, FedAvgConfig
from .driver import FedAvgResult, RoundRecord, run_fedavg
from .pipeline import Pipeline, Step, build_pipeline
from .params import flatten_model
from .tasks import Task, digits_task, linear_regression_task

__all__ = [
    "AGGREGATIONS",
    "DP_MODES",
    "Aggregator",
    "FedAvgConfig",
    "FedAvgResult",
    "RoundRecord",
    "Pipeline",
    "Step",
    "Task",
    "build_pipeline",
    "digits_task",
    "flatten_model",
    "linear_regression_task",
    "make_secure_sum",
    "run_fedavg",
]
