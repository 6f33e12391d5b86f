"""ServerApp: FedAvg rounds, each update sum through a SecAgg+ session."""

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from protocols.flower.fedavg import run_fedavg

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    for r in run_fedavg(grid, context.run_config):
        acc = "" if r.test_accuracy is None else f", accuracy {r.test_accuracy:.3f}"
        print(f"round {r.round}: loss {r.test_loss:.4f}{acc}, {len(r.included)}/{r.nodes} "
              f"nodes in the sum, {r.round_trips} round trips, {r.time_round:.1f} s",
              flush=True)
