"""Malicious-server mode over Flower: a registry file on each node, tied to node ids."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.app import Array, ArrayRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from protocols.flower import run_session, secure_train
from protocols.flower.identity import (
    malicious_session,
    node_identity,
    read_registry,
    read_signing_key,
    write_registry,
    write_signing_key,
)
from protocols.flower.server import SessionAborted
from protocols.flower.testing import FakeGrid
from protocols.secagg import SECAGG, SECAGG_PLUS
from secagg.errors import ParameterError
from secagg.sign import SigningKey

IDS = [3, 2**64 - 2, 12345, 0, 99]
DIM = 16


def update_of(node: int) -> np.ndarray:
    return np.cos(np.arange(DIM) * 0.5 + node % 97)


def make_app(node: int) -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        return Message(RecordDict({"a": ArrayRecord({"u": Array(update_of(context.node_id))})}),
                       reply_to=msg)

    policy, secrets = node_identity()
    secure_train(app, train, policy=policy, local_secrets=secrets)
    return app


@pytest.fixture
def federation(tmp_path):
    keys = {i: SigningKey.generate() for i in IDS}
    registry = tmp_path / "registry.json"
    write_registry(registry, {i: k.verify_key() for i, k in keys.items()})
    node_config = {}
    for i, k in keys.items():
        write_signing_key(tmp_path / f"key-{i}", k)
        node_config[i] = {"secagg-registry": str(registry),
                          "secagg-signing-key": str(tmp_path / f"key-{i}")}
    return keys, registry, node_config


def grid(node_config) -> FakeGrid:
    return FakeGrid(make_app, list(IDS), node_config=node_config)


@pytest.mark.parametrize("descriptor", [SECAGG, SECAGG_PLUS], ids=lambda d: d.name)
def test_malicious_mode_session_is_exact(federation, descriptor):
    _keys, registry, node_config = federation
    session = malicious_session(descriptor, read_registry(registry), IDS, DIM)
    report = run_session(grid(node_config), descriptor, IDS, DIM, round_timeout=0.5,
                         poll_interval=0.005, train_content=RecordDict(), session=session)
    assert report.result.included == frozenset(IDS)
    assert "consistency" in [r.name for r in report.rounds]
    np.testing.assert_allclose(report.sum(), sum(update_of(i) for i in IDS),
                               atol=report.encoder.error_bound(len(IDS)))


def test_a_server_that_swaps_a_key_is_refused_by_every_node(federation):
    _keys, registry, node_config = federation
    forged = read_registry(registry)
    forged[IDS[1]] = SigningKey.generate().verify_key()  # a Sybil the server controls
    session = malicious_session(SECAGG_PLUS, forged, IDS, DIM)
    with pytest.raises(SessionAborted) as info:
        run_session(grid(node_config), SECAGG_PLUS, IDS, DIM, round_timeout=0.5,
                    poll_interval=0.005, train_content=RecordDict(), session=session)
    dropped = info.value.rounds[0].dropped
    assert set(dropped) == set(IDS)
    assert all("differs from this node's registry" in why for why in dropped.values())


def test_a_node_requiring_malicious_mode_refuses_semi_honest(federation):
    _keys, _registry, node_config = federation
    for cfg in node_config.values():
        cfg["secagg-require-malicious"] = "1"
    with pytest.raises(SessionAborted, match="malicious-mode sessions only"):
        run_session(grid(node_config), SECAGG_PLUS, IDS, DIM, round_timeout=0.5,
                    poll_interval=0.005, train_content=RecordDict())


def test_registry_and_key_files(tmp_path, federation):
    keys, registry, node_config = federation
    assert read_registry(registry) == {i: k.verify_key() for i, k in keys.items()}
    assert read_signing_key(node_config[IDS[0]]["secagg-signing-key"]).to_bytes() == \
        keys[IDS[0]].to_bytes()
    bad = tmp_path / "bad.json"
    data = json.loads(registry.read_text())
    for mutate in (lambda d: d.update(version=2), lambda d: d["entries"].update({"x": "00"}),
                   lambda d: d["entries"].update({"7": "zz"}),
                   lambda d: d["entries"].update({"7": next(iter(d["entries"].values()))}),
                   lambda d: d["entries"].update({str(2**64): "00" * 32})):
        d = json.loads(json.dumps(data))
        mutate(d)
        bad.write_text(json.dumps(d))
        with pytest.raises(ParameterError):
            read_registry(bad)
    with pytest.raises(ParameterError):
        malicious_session(SECAGG_PLUS, read_registry(registry), [*IDS, 42], DIM)
