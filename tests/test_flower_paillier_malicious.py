"""Threshold Paillier over Flower against a malicious ServerApp (in-process fake
Grid): nodes sign their encrypted updates with the identity of SecAgg's
malicious mode (registry file and signing key, out of band), and committee
nodes decrypt only the product they compute from every signed input.

A lying ServerApp is played by an aggregator subclass that sends the
committee something other than the honest request: in semi-honest mode it
gets one node's update decrypted, in malicious mode nothing.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.app import Array, ArrayRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from protocols.core import Envelope
from protocols.flower.client import secure_train
from protocols.flower.identity import write_registry, write_signing_key
from protocols.flower.journal import read_journal
from protocols.flower.paillier import (
    JOURNAL_CONFIG_KEY,
    PUBLIC_CONFIG_KEY,
    SHARE_CONFIG_KEY,
    deal_to_files,
    flower_session,
    node_options,
    paillier_descriptor,
)
from protocols.flower.server import SessionAborted, run_session
from protocols.flower.testing import FakeGrid, Fault
from protocols.flower.wire import saved_parties
from protocols.paillier_sum import (
    EncryptedInput,
    EncryptedSum,
    PaillierQuantizer,
    PaillierSumAggregator,
    SignedInputs,
    read_public,
)
from secagg import paillier
from secagg.errors import ParameterError
from secagg.paillier import threshold as tp
from secagg.sign import SigningKey

INSECURE = {"insecure_allow_small_key_for_tests": True}
DIM = 12
CLIP = 2.0
NODES = [3, 2**64 - 2, 77, 123456789, 999]
COMMITTEE = [3, 77, 123456789]  # 2 of these 3 must answer
VICTIM = 999
DESCRIPTOR = paillier_descriptor(**INSECURE)


@pytest.fixture(scope="module")
def dealt(tmp_path_factory):
    """The dealer's files (a key dealt for malicious mode) and every node's
    identity: (public path, share paths, registry path, signing-key paths)."""
    root = tmp_path_factory.mktemp("dealer")
    keypair = tp.generate_keypair(512, **INSECURE)
    public, shares = deal_to_files(root, COMMITTEE, 2, keypair=keypair, mode="malicious",
                                   **INSECURE)
    keys = {n: SigningKey.generate() for n in NODES}
    registry = root / "registry.json"
    write_registry(registry, {n: k.verify_key() for n, k in keys.items()})
    key_paths = {}
    for n, k in keys.items():
        key_paths[n] = root / f"identity-{n}.key"
        write_signing_key(key_paths[n], k)
    return public, shares, registry, key_paths


@pytest.fixture(scope="module")
def semi(dealt, tmp_path_factory):
    """Another key (its own keypair: a keypair is dealt once), dealt for
    semi-honest sessions, with the same identities."""
    root = tmp_path_factory.mktemp("dealer-semi-honest")
    keypair = tp.generate_keypair(256, **INSECURE)
    public, shares = deal_to_files(root, COMMITTEE, 2, keypair=keypair, **INSECURE)
    return public, shares, dealt[2], dealt[3]


def journal(dealt, node: int):
    """The node's journal folder (beside the dealer's files; one per node)."""
    return dealt[0].parent / f"journal-{node}"


def node_config(dealt, **extra):
    pub, shares, registry, keys = dealt
    return {n: {PUBLIC_CONFIG_KEY: str(pub), "secagg-registry": str(registry),
                "secagg-signing-key": str(keys[n]), JOURNAL_CONFIG_KEY: str(journal(dealt, n)),
                **({SHARE_CONFIG_KEY: str(shares[n])} if n in shares else {}), **extra}
            for n in NODES}


def update_of(node: int) -> np.ndarray:
    return np.sin(np.arange(DIM) * 0.37 + (node % 1000) * 0.11)


def make_app(node: int) -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        update = update_of(context.node_id).astype(np.float32)
        return Message(RecordDict({"arrays": ArrayRecord({"w": Array(update)})}), reply_to=msg)

    secure_train(app, train, **node_options(**INSECURE))
    return app


def grid_with(dealt, faults=(), **extra) -> FakeGrid:
    return FakeGrid(make_app, list(NODES), faults=list(faults),
                    node_config=node_config(dealt, **extra))


def run(grid: FakeGrid, dealt, session=None, **params):
    if session is None:
        params = {"public": dealt[0], "clip": CLIP, **INSECURE, **params}
    return run_session(grid, DESCRIPTOR, grid.node_ids, DIM, round_timeout=0.5,
                       poll_interval=0.005, session=session, **params)


def quantized(node: int) -> np.ndarray:
    q = PaillierQuantizer(CLIP, 16)
    return q.encode(update_of(node).astype(np.float32).astype(np.float64))


def check(report, nodes) -> None:
    assert report.result.included == frozenset(nodes)
    np.testing.assert_array_equal(report.result.raw_sum, sum(quantized(n) for n in nodes))


def spent(dealt) -> dict[int, tuple[bytes, ...]]:
    """Each node's journal: the digests of the malicious sessions it started."""
    key = read_public(dealt[0], **INSECURE).key.digest
    return {n: read_journal(journal(dealt, n), n, key) for n in NODES}


def test_malicious_mode_gives_the_exact_sum_and_signs_every_input(dealt):
    grid = grid_with(dealt)
    before = spent(dealt)
    report = run(grid, dealt, mode="malicious", registry=dealt[2])
    check(report, NODES)
    assert [r.name for r in report.rounds] == ["encrypt", "decrypt"]
    assert report.rounds[1].sent_to == frozenset(COMMITTEE)
    after = spent(dealt)
    new = {after[n][-1] for n in NODES}
    for n in NODES:  # finished parties are gone; the session's digest is in the journal
        assert not saved_parties(grid.saved_state(n))
        assert after[n][:-1] == before[n]
    assert len(new) == 1 and len(new.pop()) == 32


def test_dropouts_of_nodes_and_decryptors(dealt):
    grid = grid_with(dealt, [Fault(NODES[1], "encrypt", "drop"),
                             Fault(COMMITTEE[0], "decrypt", "wipe")])
    report = run(grid, dealt, mode="malicious", registry=dealt[2])
    check(report, [n for n in NODES if n != NODES[1]])
    # the wiped decryptor held no party for the session: it refused, the others decrypted
    assert COMMITTEE[0] not in report.rounds[1].answered
    grid = grid_with(dealt, [Fault(n, "decrypt", "drop") for n in COMMITTEE[:2]])
    with pytest.raises(SessionAborted):
        run(grid, dealt, mode="malicious", registry=dealt[2])


# -------------------------------------------------------------- a lying ServerApp


class Lying(PaillierSumAggregator):
    """Sends the committee the victim's input instead of the honest request and
    tries to combine the answers as if they were the sum."""

    lie = "single"

    def _on_input(self, msg):
        out = super()._on_input(msg)
        self.__dict__.setdefault("payloads", {})[msg.sender] = msg
        return out

    def _send_sum(self):
        out = super()._send_sum()
        got = self.__dict__["payloads"]
        victim = paillier.EncryptedVector.from_bytes(got[VICTIM].payload, self._pk, **INSECURE)
        zeros = paillier.encrypt(self._pk, self.layout, np.zeros(DIM), **INSECURE)
        other = next(c for c in sorted(got) if c != VICTIM)
        if self.config.mode == "semi-honest":  # one ciphertext, labelled a sum of two
            product = paillier.aggregate([victim, zeros])
            request: EncryptedSum | SignedInputs = EncryptedSum(
                frozenset({VICTIM, other}), product.to_bytes())
        elif self.lie == "single":
            request, product = SignedInputs((got[VICTIM],)), victim
        else:  # "forged": its own zeros under another node's id and signature
            fake = EncryptedInput(other, zeros.to_bytes(), got[other].signature)
            request = SignedInputs(tuple(sorted((got[VICTIM], fake), key=lambda i: i.sender)))
            product = paillier.aggregate([victim, zeros])
        self._sum, self._included = product, set(request.included)
        return [Envelope(e.receiver, request) for e in out]


def lying_session(dealt, mode, lie="single"):
    params = {"public": dealt[0], "clip": CLIP, "mode": mode, **INSECURE}
    if mode == "malicious":
        params["registry"] = dealt[2]
    session = flower_session(DESCRIPTOR, NODES, DIM, None, params)
    session.coordinator.__class__ = Lying
    session.coordinator.lie = lie
    return session


def test_semi_honest_a_lying_serverapp_decrypts_one_nodes_update(semi):
    report = run(grid_with(semi), semi, session=lying_session(semi, "semi-honest"))
    np.testing.assert_array_equal(report.result.raw_sum, quantized(VICTIM))  # the attack


@pytest.mark.parametrize("lie", ["single", "forged"])
def test_malicious_a_lying_serverapp_gets_nothing_decrypted(dealt, lie):
    session = lying_session(dealt, "malicious", lie)
    with pytest.raises(SessionAborted) as info:
        run(grid_with(dealt), dealt, session=session)
    decrypt = info.value.rounds[-1]
    assert decrypt.name == "decrypt" and not decrypt.answered
    assert set(decrypt.dropped) == set(COMMITTEE)
    words = "min_clients" if lie == "single" else "not signed by its registry key"
    assert all(words in why for why in decrypt.dropped.values()), decrypt.dropped
    assert session.coordinator.result is None


def test_a_rerun_of_a_sessions_configuration_is_refused(dealt):
    """Rerunning a configuration would meet fresh parties that decrypt again;
    each node refuses a digest it already started."""
    public = read_public(dealt[0], **INSECURE)

    def session():
        return DESCRIPTOR.make_session(NODES, DIM, trust="threshold", public=public,
                                       round=12345, clip=CLIP, mode="malicious",
                                       registry={n: k for n, k in _registry(dealt).items()},
                                       min_clients=2, **INSECURE)

    grid = grid_with(dealt)
    check(run(grid, dealt, session=session()), NODES)
    with pytest.raises(SessionAborted) as info:
        run(grid, dealt, session=session())
    assert all("already took part" in why for why in info.value.rounds[0].dropped.values())


def _registry(dealt):
    from protocols.flower.identity import read_registry

    return read_registry(dealt[2])


def test_a_registry_other_than_the_nodes_file_is_refused(dealt):
    reg = _registry(dealt)
    reg[VICTIM] = SigningKey.generate().verify_key()  # a key the server controls
    with pytest.raises(SessionAborted) as info:
        run(grid_with(dealt), dealt, mode="malicious", registry=reg)
    assert all("differs from this node's registry" in why
               for why in info.value.rounds[0].dropped.values())


def test_server_side_refusals(dealt):
    with pytest.raises(ParameterError, match="needs registry="):
        run(grid_with(dealt), dealt, mode="malicious")
    with pytest.raises(ParameterError, match="belongs to mode='malicious'"):
        run(grid_with(dealt), dealt, registry=dealt[2])
    with pytest.raises(ParameterError, match="signing_keys"):
        run(grid_with(dealt), dealt, mode="malicious", registry=dealt[2],
            signing_keys={n: SigningKey.generate() for n in NODES})
    reg = _registry(dealt)
    del reg[VICTIM]
    with pytest.raises(ParameterError, match="no registry entry"):
        run(grid_with(dealt), dealt, mode="malicious", registry=reg)


def test_nodes_that_require_malicious_mode_refuse_a_semi_honest_session(dealt, semi):
    grid = grid_with(semi, **{"secagg-require-malicious": "1"})
    with pytest.raises(SessionAborted) as info:
        run(grid, semi)
    assert all("malicious-mode sessions only" in why
               for why in info.value.rounds[0].dropped.values())
    grid = grid_with(dealt, **{"secagg-require-malicious": "1"})
    check(run(grid, dealt, mode="malicious", registry=dealt[2]), NODES)


def test_fedavg_rounds_in_malicious_mode(dealt, tmp_path):
    pytest.importorskip("torch")
    from protocols.flower.fedavg import run_fedavg, train_on_node

    def make_fedavg_app(node: int) -> ClientApp:
        app = ClientApp()

        @app.train()
        def train(msg: Message, context: Context) -> Message:
            return train_on_node(msg, context)

        secure_train(app, train, **node_options(**INSECURE))
        return app

    cfg = {"protocol": "paillier", "task": "linear-regression", "num-rounds": 2,
           "num-nodes": len(NODES), "round-timeout": 1.0, "train-timeout": 10.0, "lr": 0.05,
           "run-dir": str(tmp_path), "paillier-public": str(dealt[0]),
           "paillier-registry": str(dealt[2]), "insecure-allow-small-key-for-tests": True}
    config = node_config(dealt, **{"secagg-require-malicious": "1"})
    for i, n in enumerate(NODES):
        config[n].update({"partition-id": i, "num-partitions": len(NODES)})
    grid = FakeGrid(make_fedavg_app, list(NODES), run_config=cfg, node_config=config)
    before = spent(dealt)
    records = run_fedavg(grid, cfg)
    assert [r.round for r in records] == [1, 2]
    assert records[-1].test_loss < records[0].test_loss
    for r in records:  # nodes that refuse semi-honest sessions took part in every round
        assert not r.aborted and set(r.included) == set(NODES)
    after = spent(dealt)
    for n in NODES:  # each session's digest joined every node's journal
        assert after[n][:-2] == before[n] and len(after[n]) == len(before[n]) + 2
