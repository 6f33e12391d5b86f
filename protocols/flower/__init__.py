"""Run this library's protocols over Flower's Deployment Engine (extra ``flower``).

* :func:`run_session` (server side): one session of any protocol of the party
  contract over a ServerApp's ``Grid``, one deadline per round;
  :class:`SecureAggregator` runs sessions back to back, pipelined: the next
  session's rounds before its input round ride on the current one's last
  round trips (2 round trips per FedAvg round after the first, semi-honest);
* :func:`secure_train` / :func:`secure_aggregation_mod` (node side): the
  node's client party around the user's own train function, its state kept
  in ``context.state``;
* :mod:`protocols.flower.paillier`: threshold Paillier on a key dealt out of
  band (the ServerApp holds public material only; each committee node reads
  its share from its own file);
* :class:`LocalDeployment`: a SuperLink and N SuperNodes on loopback with TLS
  and node authentication, stopped by pid on every path.
"""

from .client import CLIENT_FACTORIES, default_to_vector, secure_aggregation_mod, secure_train
from .deployment import DeploymentError, LocalDeployment
from .server import (
    RoundReport,
    SecureAggregator,
    SessionAborted,
    SessionReport,
    nodes_ready,
    run_session,
)

__all__ = [
    "CLIENT_FACTORIES",
    "DeploymentError",
    "LocalDeployment",
    "RoundReport",
    "SecureAggregator",
    "SessionAborted",
    "SessionReport",
    "default_to_vector",
    "nodes_ready",
    "run_session",
    "secure_aggregation_mod",
    "secure_train",
]
