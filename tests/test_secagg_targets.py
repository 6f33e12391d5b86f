"""Where a SecAgg client's security target comes from: the session builders
and the testing kit give each client the corrupt fraction the round was
built for, and only draw malicious-mode parameters an honest client accepts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from protocols.secagg import (
    SECAGG,
    SECAGG_PLUS,
    SecAggClient,
    SecurityTarget,
    derive_malicious_parameters,
    rounds_for,
)
from protocols.testing.spec import DropoutSchedule, Scenario
from protocols.testing.strategies import secagg_parameters
from protocols.testing.wirings import SecAggWiring
from secagg.errors import ParameterError


@pytest.mark.parametrize("descriptor", [SECAGG, SECAGG_PLUS])
def test_session_clients_require_the_sessions_corrupt_fraction(descriptor: object) -> None:
    s = descriptor.make_session(list(range(1, 21)), 3, seed=1,  # type: ignore[attr-defined]
                                mode="malicious", corrupt_fraction=0.15)
    for c in s.clients.values():
        assert c.target == SecurityTarget(corrupt_fraction=0.15)
    # the default target would accept a quorum that 15% corrupt clients break
    assert s.config.quorum == 12
    weak = dataclasses.replace(s.config, quorum=11)
    with pytest.raises(ParameterError, match="quorum 11 is below"):
        SecAggClient(weak, 1, signing_key=s.clients[1]._signing_key, target=s.clients[1].target)


def test_derived_malicious_parameters_are_exported_and_accepted() -> None:
    k, t = derive_malicious_parameters(20)
    assert (k, t) == (8, 4)


@pytest.mark.parametrize("n", [20, 30])
def test_kit_draws_only_malicious_rings_clients_accept(n: int) -> None:
    """At n >= 20 (one corrupt client of 5%) degree 2 cuts the ring; the kit
    must not draw it, and every drawn configuration builds its clients."""
    seen: set[str] = set()

    @given(secagg_parameters(n, mode="malicious", graph="harary"))
    @settings(max_examples=15, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def check(params: object) -> None:
        inputs = {u: np.zeros(2) for u in range(1, n + 1)}
        scenario = Scenario(inputs, params,  # type: ignore[arg-type]
                            DropoutSchedule(rounds_for("malicious")), seed=3)
        wiring = SecAggWiring(scenario)  # builds every client: refused configs raise
        cfg = wiring.session.config  # type: ignore[attr-defined]
        assert cfg.degree is None or cfg.degree >= 4
        seen.add(params.label)  # type: ignore[attr-defined]

    check()
    assert seen
