"""Run this library's protocols over Flower's Deployment Engine (extra ``flower``).

* :func:`run_session` (server side): one session of any protocol of the party
  contract over a ServerApp's ``Grid``, one deadline per round;
  :class:`SecureAggregator` runs sessions back to back, each next session's
  first round riding on the previous one's last round trip;
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
