"""The plaintext-sum baseline: a protocol added through the contract alone
gets the simulator and the testing kit's properties and adversaries."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from protocols.core import SERVER
from protocols.plaintext_sum import PLAINTEXT_SUM, PlainInput
from protocols.simulator import run
from protocols.testing import (
    PropertyFailure,
    WiringProfile,
    check_all,
    check_sum_property,
    descriptor_spec,
    profiles,
)
from secagg.errors import AbortError, ParameterError, SecAggError

# The sender and the vector travel unauthenticated in the clear, by design.
PROFILE = WiringProfile(unprotected={"PlainInput": frozenset({"sender", "vector"})})


def test_the_simulator_runs_it_with_any_ids_and_dropouts() -> None:
    ids = [0, 5, 2**64 - 1]
    inputs = {u: np.full(3, 0.5 * k) for k, u in enumerate(ids)}
    res = run(PLAINTEXT_SUM, inputs, dropouts={"input": [5]})
    assert res.included == {0, 2**64 - 1}
    np.testing.assert_allclose(res.sum, np.full(3, 1.0))
    assert res.figures[0].bytes_sent["input"] > 24 and res.figures[SERVER].total_received > 0
    with pytest.raises(AbortError):
        run(PLAINTEXT_SUM, inputs, dropouts={"input": ids})
    with pytest.raises(ParameterError, match="unknown round"):
        run(PLAINTEXT_SUM, inputs, dropouts={"masked_input": [0]})


def test_the_kit_checks_it_from_the_descriptor() -> None:
    spec = descriptor_spec(PLAINTEXT_SUM, threshold=1, min_clients=1, profile=PROFILE)
    report = check_all(spec, settings=profiles.quick)
    assert "check_tamper_property" in report.checked
    assert "check_no_double_reveal" in report.skipped  # no secret shares to reveal
    assert "plaintext" in str(report)


def test_the_kit_catches_a_planted_bug_in_it() -> None:
    def build(ids: tuple[int, ...], dimension: int, **kw: object) -> object:
        session = PLAINTEXT_SUM.build(ids, dimension, **kw)
        server = session.coordinator
        original = server.handle

        def handle(msg: PlainInput) -> object:
            out = original(msg)
            if len(server._got) == 1:  # type: ignore[attr-defined]
                np.add(server._acc, msg.vector, out=server._acc)  # type: ignore[attr-defined]
            return out

        server.handle = handle  # type: ignore[method-assign]
        return session

    broken = dataclasses.replace(PLAINTEXT_SUM, build=build)
    with pytest.raises(PropertyFailure, match="raw sum"):
        check_sum_property(descriptor_spec(broken, threshold=1, min_clients=1),
                           settings=profiles.quick)


def test_codec_config_and_state() -> None:
    s = PLAINTEXT_SUM.make_session([3, 9], 2, clip=1.0)
    codec = PLAINTEXT_SUM.codec(s.config)
    s.clients[3].set_input(s.encoder.encode(np.array([0.5, -0.5])))
    state = s.clients[3].export_state()
    (env,) = s.clients[3].start()
    data = codec.encode(env.message)
    assert codec.decode(data).sender == 3
    other = PLAINTEXT_SUM.make_session([3, 10], 2, clip=1.0)
    with pytest.raises(SecAggError, match="digest"):
        PLAINTEXT_SUM.codec(other.config).decode(data)
    back = PLAINTEXT_SUM.restore_client(s.config, state)
    assert back.round == "input" and back.start()[0].message.sender == 3
    assert PLAINTEXT_SUM.config_from_bytes(PLAINTEXT_SUM.config_to_bytes(s.config)) == s.config
    with pytest.raises(ParameterError):
        PLAINTEXT_SUM.restore_client(other.config, state)
