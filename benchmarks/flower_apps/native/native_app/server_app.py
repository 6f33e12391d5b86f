"""FedAvg rounds through Flower's DefaultWorkflow, with or without SecAggPlusWorkflow
(``seconds``: the mean over ``rounds`` rounds)."""

import json
import time
from pathlib import Path

import numpy as np
from flwr.common import Context, ndarrays_to_parameters
from flwr.server import LegacyContext, ServerApp, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

app = ServerApp()


@app.main()
def main(grid, context: Context) -> None:
    cfg = context.run_config
    n = int(cfg["num-nodes"])
    d = int(cfg["dimension"])
    end = time.monotonic() + 120
    while len(list(grid.get_node_ids())) < n and time.monotonic() < end:
        time.sleep(0.2)
    strategy = FedAvg(fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=n,
                      min_available_clients=n,
                      initial_parameters=ndarrays_to_parameters([np.zeros(d, np.float32)]))
    rounds = int(cfg["rounds"])
    legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=rounds,
                           round_timeout=float(cfg["timeout"])), strategy=strategy)
    if cfg["mode"] == "secagg+":
        fit = SecAggPlusWorkflow(num_shares=min(n, 15), reconstruction_threshold=max(2, n // 2 + 1),
                                 timeout=float(cfg["timeout"]))
        workflow = DefaultWorkflow(fit_workflow=fit)
    else:
        workflow = DefaultWorkflow()
    if cfg["pause-path"]:
        pause = Path(str(cfg["pause-path"]))
        pause.write_text("start")
        stop = time.monotonic() + 60
        while pause.exists() and time.monotonic() < stop:
            time.sleep(0.05)
    t0 = time.monotonic()
    workflow(grid, legacy)
    seconds = time.monotonic() - t0
    hist = legacy.history
    fit = hist.metrics_distributed_fit if hasattr(hist, "metrics_distributed_fit") else {}
    if cfg["result-path"]:
        Path(str(cfg["result-path"])).write_text(json.dumps(
            {"seconds": seconds / rounds, "rounds": rounds, "fit_metrics": str(fit)[:200]}))
