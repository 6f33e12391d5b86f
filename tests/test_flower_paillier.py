"""Threshold Paillier over the Flower transport (in-process fake Grid): a key dealt
out of band to files, exact sums, decryptor dropouts, a faulty partial decryption,
a relayed public setup that differs from the node's file, restarts, and the
refusal of the other layouts."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.app import Array, ArrayRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from protocols.core import Envelope
from protocols.flower.client import secure_train
from protocols.flower.paillier import (
    MIN_CLIENTS_CONFIG_KEY,
    PUBLIC_CONFIG_KEY,
    SHARE_CONFIG_KEY,
    deal_to_files,
    node_options,
    paillier_descriptor,
)
from protocols.flower.server import SessionAborted, run_session
from protocols.flower.testing import FakeGrid, Fault
from protocols.flower.wire import (
    RECORD,
    Packet,
    decode_encoder,
    encode_encoder,
    saved_parties,
)
from protocols.paillier_sum import (
    PAILLIER_SUM,
    DecryptionShare,
    EncryptedInput,
    PaillierQuantizer,
    PaillierSumClient,
    ThresholdSetup,
    read_key_share,
    read_public,
)
from protocols.paillier_sum.messages import open_vector
from secagg.errors import IntegrityError, ParameterError, ProtocolError
from secagg.paillier import EncryptedVector
from secagg.paillier import threshold as tp

INSECURE = {"insecure_allow_small_key_for_tests": True}
DIM = 24
CLIP = 2.0
NODES = [3, 2**64 - 2, 77, 123456789, 999]
COMMITTEE = [3, 77, 123456789]  # 2 of these 3 must answer
DESCRIPTOR = paillier_descriptor(**INSECURE)


@pytest.fixture(scope="module")
def keypair():
    return tp.generate_keypair(512, **INSECURE)


@pytest.fixture(scope="module")
def dealt(tmp_path_factory, keypair):
    """The trusted dealer's files: (public path, {node id: share path})."""
    return deal_to_files(tmp_path_factory.mktemp("dealer"), COMMITTEE, 2, keypair=keypair,
                         **INSECURE)


def node_config(dealt, public=None):
    pub, shares = dealt
    return {n: {PUBLIC_CONFIG_KEY: str(public or pub),
                **({SHARE_CONFIG_KEY: str(shares[n])} if n in shares else {})}
            for n in NODES}


def update_of(node: int, model: np.ndarray) -> np.ndarray:
    return np.sin(np.arange(DIM) * 0.37 + (node % 1000) * 0.11) + 0.01 * model


def app_factory(options_for=lambda node: node_options(**INSECURE)):
    def make_app(node: int) -> ClientApp:
        app = ClientApp()

        @app.train()
        def train(msg: Message, context: Context) -> Message:
            model = msg.content["arrays"]["w"].numpy()
            update = update_of(context.node_id, model).astype(np.float32)
            return Message(RecordDict({"arrays": ArrayRecord({"w": Array(update)})}),
                           reply_to=msg)

        secure_train(app, train, **options_for(node))
        return app

    return make_app


def model_content() -> RecordDict:
    return RecordDict({"arrays": ArrayRecord({"w": Array(np.linspace(-1, 1, DIM))})})


def expected_sum(nodes) -> np.ndarray:
    model = np.linspace(-1, 1, DIM)
    return sum(update_of(n, model).astype(np.float32).astype(np.float64) for n in nodes)


def grid_with(dealt, faults=(), make_app=None, config=None) -> FakeGrid:
    return FakeGrid(make_app or app_factory(), list(NODES), faults=list(faults),
                    node_config=config or node_config(dealt))


def run(grid: FakeGrid, public, **params):
    return run_session(grid, DESCRIPTOR, grid.node_ids, DIM, round_timeout=0.5,
                       poll_interval=0.005, train_content=model_content(), public=public,
                       clip=CLIP, **INSECURE, **params)


def check(report, nodes) -> None:
    assert report.result.included == frozenset(nodes)
    tol = report.encoder.error_bound(len(nodes)) + 1e-9
    np.testing.assert_allclose(report.sum(), expected_sum(nodes), atol=tol, rtol=0)


# ------------------------------------------------------------------ exact sums


def test_exact_sum_in_two_round_trips_and_state_wiped(dealt):
    grid = grid_with(dealt)
    report = run(grid, dealt[0])
    check(report, NODES)
    assert isinstance(report.encoder, PaillierQuantizer)
    assert [r.name for r in report.rounds] == ["encrypt", "decrypt"]
    assert report.round_trips == 2
    assert report.rounds[1].sent_to == frozenset(COMMITTEE)  # only the committee decrypts
    for node in NODES:
        assert not saved_parties(grid.saved_state(node))


def test_the_server_takes_parsed_public_material_too(dealt):
    report = run(grid_with(dealt), read_public(dealt[0], **INSECURE))
    check(report, NODES)


def test_replies_hold_no_plaintext_and_the_server_sends_no_share(dealt):
    grid = grid_with(dealt)
    down: list[bytes] = []
    up: list[RecordDict] = []
    push, pull = grid.push_messages, grid.pull_messages

    def spy_push(messages):
        messages = list(messages)
        for m in messages:
            down.extend(p for sec in Packet.from_content(m.content).sections
                        for p in sec.payloads)
        return push(messages)

    def spy_pull(ids):
        replies = list(pull(ids))
        up.extend(r.content for r in replies if r.has_content())
        return replies

    grid.push_messages, grid.pull_messages = spy_push, spy_pull  # type: ignore[method-assign]
    run(grid, dealt[0])
    for content in up:
        assert list(content.keys()) == [RECORD] and not content.array_records
    shares = [read_key_share(dealt[1][n], n, read_public(dealt[0], **INSECURE), **INSECURE)
              for n in COMMITTEE]
    secrets = [s.share.to_bytes((s.share.bit_length() + 7) // 8, "big") for s in shares]
    setups = [p for p in down if p[:4] == ThresholdSetup.MAGIC]
    assert len(setups) == len(NODES)
    for payload in down:
        assert not any(sec in payload for sec in secrets)


# ------------------------------------------------------------- decryptor dropouts


@pytest.mark.parametrize("kind", ["drop", "error", "late", "wipe"])
def test_one_decryptor_lost_t_still_answer(dealt, kind):
    grid = grid_with(dealt, [Fault(COMMITTEE[1], "decrypt", kind)])
    report = run(grid, dealt[0])
    check(report, NODES)  # its input arrived before it vanished


@pytest.mark.parametrize("kind", ["drop", "error"])
def test_fewer_than_t_decryptors_abort_with_nothing(dealt, kind):
    grid = grid_with(dealt, [Fault(COMMITTEE[0], "decrypt", kind),
                             Fault(COMMITTEE[2], "decrypt", kind)])
    with pytest.raises(SessionAborted, match="valid partial decryption") as info:
        run(grid, dealt[0])
    last = info.value.rounds[-1]
    assert last.name == "decrypt" and set(last.dropped) == {COMMITTEE[0], COMMITTEE[2]}
    assert "1 valid partial decryption(s) of the 2 needed" in str(info.value)


def test_a_member_dropped_before_its_input_still_decrypts_for_the_others(dealt):
    victim = COMMITTEE[0]
    grid = grid_with(dealt, [Fault(victim, "encrypt", "drop")])
    report = run(grid, dealt[0])
    check(report, [n for n in NODES if n != victim])


def test_a_committee_node_offline_from_the_start_is_a_dropout(dealt):
    online = [n for n in NODES if n != COMMITTEE[2]]
    grid = FakeGrid(app_factory(), online, node_config=node_config(dealt))
    report = run(grid, dealt[0])
    check(report, online)
    # the session's clients still name it (the committee is fixed), it is never messaged
    assert COMMITTEE[2] not in report.rounds[0].sent_to | report.rounds[1].sent_to


# ------------------------------------------------------- a faulty partial decryption


class _Lying(PaillierSumClient):
    """A decryptor whose partial decryption is corrupted (last byte of the proof)."""

    def handle(self, message):
        out = super().handle(message)
        return [Envelope(e.receiver, DecryptionShare(
            e.message.sender, e.message.payload[:-1] + bytes([e.message.payload[-1] ^ 1])))
            if isinstance(e.message, DecryptionShare) else e for e in out]


def _liar_app(liar: int):
    """Nodes as usual, but ``liar`` decrypts with :class:`_Lying` parties."""
    lying = dataclasses.replace(
        DESCRIPTOR, restore=lambda config, data, **local: _Lying.restore(config, data, **local))

    def options(node):
        opts = node_options(**INSECURE)
        if node == liar:
            opts["protocols"] = (lying,)
        return opts

    return app_factory(options)


def test_a_faulty_partial_decryption_is_named_and_the_rest_decrypt(dealt):
    liar = COMMITTEE[0]
    grid = grid_with(dealt, make_app=_liar_app(liar))
    report = run(grid, dealt[0])
    check(report, NODES)
    why = report.rounds[1].dropped[liar]
    assert f"decryptor {liar}" in why
    assert liar not in report.rounds[1].answered


def test_a_faulty_decryptor_below_t_aborts(dealt):
    liar = COMMITTEE[0]
    grid = grid_with(dealt, [Fault(COMMITTEE[1], "decrypt", "drop")],
                     make_app=_liar_app(liar))
    with pytest.raises(SessionAborted) as info:
        run(grid, dealt[0])
    assert f"decryptor {liar}" in info.value.rounds[-1].dropped[liar]


class _Inflating(PaillierSumClient):
    """A client whose encrypted input is raised to the power 2^40 (out of range)."""

    def handle(self, message):
        out = super().handle(message)
        return [Envelope(e.receiver, _inflate(e.message, self._pk))
                if isinstance(e.message, EncryptedInput) else e for e in out]


def _inflate(msg, public_key):
    vec = open_vector(msg.payload, public_key, True)
    n2 = public_key.n ** 2
    cts = [pow(c, 1 << 40, n2) for c in vec.ciphertexts]
    return EncryptedInput(msg.sender, EncryptedVector(public_key, vec.layout, cts, 1,
                                                      **INSECURE).to_bytes())


def test_an_out_of_range_input_aborts_and_blames_no_decryptor(dealt):
    cheat = NODES[1]  # not on the committee

    def options(node):
        opts = node_options(**INSECURE)
        if node == cheat:
            opts["factories"] = {PAILLIER_SUM.name: lambda config, cid, **local:
                                 _Inflating(cid, config, **local)}
        return opts

    grid = grid_with(dealt, make_app=app_factory(options))
    with pytest.raises(SessionAborted, match="decrypted sum malformed") as info:
        run(grid, dealt[0])
    decrypt = info.value.rounds[-1]
    assert not set(decrypt.dropped) & set(COMMITTEE)  # no decryptor named as faulty


# ------------------------------------------- the relayed public setup vs the node's file


def test_a_session_on_other_public_material_is_refused_by_every_node(dealt, keypair,
                                                                     tmp_path):
    # the server builds the session from another dealing for the same committee
    other_pub, _ = deal_to_files(tmp_path, COMMITTEE, 2, keypair=keypair, **INSECURE)
    grid = grid_with(dealt)
    with pytest.raises(SessionAborted) as info:
        run(grid, other_pub)
    dropped = info.value.rounds[0].dropped
    assert set(dropped) == set(NODES)
    assert all("differs from this node's public material" in why for why in dropped.values())


def test_a_node_whose_file_differs_sits_out(dealt, keypair, tmp_path):
    other_pub, _ = deal_to_files(tmp_path, COMMITTEE, 2, keypair=keypair, **INSECURE)
    outsider = NODES[1]
    config = node_config(dealt)
    config[outsider] = {PUBLIC_CONFIG_KEY: str(other_pub)}
    grid = grid_with(dealt, config=config)
    report = run(grid, dealt[0])
    check(report, [n for n in NODES if n != outsider])
    assert "IntegrityError" in report.rounds[0].dropped[outsider]


def test_a_tampered_relayed_setup_is_refused(dealt, keypair, tmp_path):
    """The configuration matches the nodes' files, but the relayed setup carries
    another key: every node refuses it (the server relays it unauthenticated)."""
    other_pub, _ = deal_to_files(tmp_path, COMMITTEE, 2, keypair=keypair, **INSECURE)
    other = read_public(other_pub, **INSECURE)
    grid = grid_with(dealt)
    push = grid.push_messages

    def tamper(messages):
        messages = list(messages)
        for m in messages:
            packet = Packet.from_content(m.content)
            if packet.round != "encrypt":
                continue
            [sec] = packet.sections
            config = DESCRIPTOR.config_from_bytes(sec.config)
            codec = DESCRIPTOR.codec(config)
            fake = ThresholdSetup(other.key, config.packing(other.public_key, **INSECURE),
                                  bytes(32), sender="server")
            m.content[RECORD] = dataclasses.replace(packet, sections=(dataclasses.replace(
                sec, payloads=(codec.encode(fake),)),)).to_record()
        return push(messages)

    grid.push_messages = tamper  # type: ignore[method-assign]
    with pytest.raises(SessionAborted) as info:
        run(grid, dealt[0])
    dropped = info.value.rounds[0].dropped
    assert set(dropped) == set(NODES)
    assert all("threshold key" in why for why in dropped.values())


def test_a_node_without_public_material_refuses(dealt):
    config = node_config(dealt)
    config[NODES[4]] = {}
    report = run(grid_with(dealt, config=config), dealt[0])
    check(report, NODES[:4])
    assert PUBLIC_CONFIG_KEY in report.rounds[0].dropped[NODES[4]]


def test_a_member_without_its_share_file_refuses(dealt):
    config = node_config(dealt)
    config[COMMITTEE[2]] = {PUBLIC_CONFIG_KEY: str(dealt[0])}
    report = run(grid_with(dealt, config=config), dealt[0])
    survivors = [n for n in NODES if n != COMMITTEE[2]]
    check(report, survivors)
    assert SHARE_CONFIG_KEY in report.rounds[0].dropped[COMMITTEE[2]]


# ------------------------------------------------------------------------ restarts


def test_a_node_restarting_between_messages_keeps_no_share_in_its_state(dealt):
    public = read_public(dealt[0], **INSECURE)
    shares = {n: read_key_share(dealt[1][n], n, public, **INSECURE) for n in COMMITTEE}
    grid = grid_with(dealt, [Fault(n, "decrypt", "restart") for n in COMMITTEE])
    seen: dict[int, bytes] = {}

    def on_round(rnd, targets):
        if rnd != "decrypt":
            return
        for n in COMMITTEE:  # what survives between the two messages
            [saved] = saved_parties(grid.saved_state(n)).values()
            assert saved.protocol == "paillier"
            seen[n] = grid._state[n]

    report = run_session(grid, DESCRIPTOR, grid.node_ids, DIM, round_timeout=0.5,
                         poll_interval=0.005, train_content=model_content(), public=dealt[0],
                         clip=CLIP, on_round=on_round, **INSECURE)
    check(report, NODES)
    # restored parties answered (the driver stops reading once t are in)
    assert len(report.rounds[1].answered) >= 2 and not report.rounds[1].dropped
    assert set(seen) == set(COMMITTEE)
    for n, state in seen.items():
        share = shares[n]
        secret = share.share.to_bytes((share.share.bit_length() + 7) // 8, "big")
        assert secret not in state and share.to_bytes() not in state


def test_a_decryptor_that_lost_its_state_drops(dealt):
    grid = grid_with(dealt, [Fault(COMMITTEE[0], "decrypt", "wipe"),
                             Fault(COMMITTEE[1], "decrypt", "restart")])
    report = run(grid, dealt[0])
    check(report, NODES)
    assert report.rounds[1].answered == frozenset(COMMITTEE[1:])


# ----------------------------------------------------------------------- refusals


@pytest.mark.parametrize("trust, words", [
    ("key-holder", ["key_holder", "auxiliary", "trust='threshold'"]),
    ("cross-silo", ["whole private key", "trust='threshold'"]),
])
def test_other_layouts_are_refused_before_anything_is_sent(dealt, trust, words):
    grid = grid_with(dealt)
    with pytest.raises(ParameterError) as info:
        run_session(grid, PAILLIER_SUM, NODES, DIM, round_timeout=1.0, trust=trust,
                    key_bits=512, **INSECURE)
    for w in words:
        assert w in str(info.value)
    assert grid.log == [] and grid._queue == {}


@pytest.mark.parametrize("params, words", [
    ({}, ["public=", "dealt out of band"]),
    ({"keypair": "k"}, ["keypair", "never holds key material"]),
    ({"committee": [3]}, ["committee"]),
])
def test_the_server_never_deals_or_takes_key_material(dealt, params, words):
    grid = grid_with(dealt)
    with pytest.raises(ParameterError) as info:
        run_session(grid, PAILLIER_SUM, NODES, DIM, round_timeout=1.0, trust="threshold",
                    **params)
    for w in words:
        assert w in str(info.value)
    assert grid.log == []


def test_every_session_has_its_own_round_and_digest(dealt):
    from protocols.flower.paillier import fedavg_params, flower_session

    public = read_public(dealt[0], **INSECURE)
    params = {"public": public, "clip": CLIP, **INSECURE}
    a = flower_session(DESCRIPTOR, NODES, DIM, None, params)
    b = flower_session(DESCRIPTOR, NODES, DIM, None, params)
    assert a.config.round != b.config.round and a.config.digest != b.config.digest
    assert 0 <= a.config.round < 2**63 and 0 <= b.config.round < 2**63
    # the FedAvg parameters too: each of its rounds is a session of its own
    run_config = {"paillier-public": str(dealt[0]), "insecure-allow-small-key-for-tests": True}
    fed = fedavg_params(run_config, CLIP)
    digests = {flower_session(DESCRIPTOR, NODES, DIM, None, fed).config.digest
               for _ in range(3)}
    assert len(digests) == 3
    # a fixed round would repeat across the sessions of one aggregator: refused
    with pytest.raises(ParameterError, match="round"):
        flower_session(DESCRIPTOR, NODES, DIM, None, {**params, "round": 7})


def test_a_session_with_an_in_process_dealer_is_refused(dealt, keypair):
    session = PAILLIER_SUM.make_session(NODES, DIM, trust="threshold", keypair=keypair,
                                        committee=COMMITTEE, decrypt_threshold=2, **INSECURE)
    grid = grid_with(dealt)
    with pytest.raises(ParameterError, match="in-process dealer"):
        run_session(grid, DESCRIPTOR, NODES, DIM, round_timeout=1.0, session=session)
    assert grid.log == []


def test_a_session_built_from_public_material_runs(dealt):
    public = read_public(dealt[0], **INSECURE)
    session = PAILLIER_SUM.make_session(NODES, DIM, trust="threshold", public=public,
                                        clip=CLIP, min_clients=2, **INSECURE)
    assert session.clients == {} and session.others == {}
    grid = grid_with(dealt)
    report = run_session(grid, DESCRIPTOR, NODES, DIM, round_timeout=0.5, poll_interval=0.005,
                         train_content=model_content(), session=session)
    check(report, NODES)


# --------------------------------------------------------------------------- files


def test_dealer_files(dealt, tmp_path):
    pub_path, share_paths = dealt
    public = read_public(pub_path, **INSECURE)
    assert public.committee == tuple(sorted(COMMITTEE)) and public.threshold == 2
    assert set(share_paths) == set(COMMITTEE)
    for n, path in share_paths.items():
        assert os.stat(path).st_mode & 0o077 == 0
        share = read_key_share(path, n, public, **INSECURE)
        assert share.index == public.index_of(n)
    # a node cannot use another node's share file
    with pytest.raises(IntegrityError, match="belongs to client"):
        read_key_share(share_paths[COMMITTEE[0]], COMMITTEE[1], public, **INSECURE)
    # every truncation and a flipped byte of the public file are refused
    data = pub_path.read_bytes()
    for cut in range(0, len(data), max(1, len(data) // 40)):
        (tmp_path / "cut").write_bytes(data[:cut])
        with pytest.raises((ProtocolError, ParameterError)):
            read_public(tmp_path / "cut", **INSECURE)
    with pytest.raises(ParameterError, match="2048"):
        read_public(pub_path)  # a test-size key without the test-only flag


def test_paillier_quantizer_on_the_wire():
    q = PaillierQuantizer(2.5, 20)
    back = decode_encoder(tuple(encode_encoder(q)))
    assert isinstance(back, PaillierQuantizer)
    assert (back.clip, back.value_bits, back.scale) == (q.clip, q.value_bits, q.scale)
    for bad in ([2.5, q.scale * 2, 20.0, 0.0], [2.5, q.scale, 1.0, 0.0],
                [2.5, q.scale, 20.5, 0.0], [-1.0, q.scale, 20.0, 0.0]):
        with pytest.raises(ProtocolError):
            decode_encoder(tuple(bad))
    with pytest.raises(ParameterError, match="PaillierQuantizer"):
        encode_encoder(object())


def test_a_relayed_quantizer_must_be_the_configurations(dealt):
    from protocols.flower.paillier import check_relayed_quantizer, flower_session
    from secagg.encoding import FixedPointEncoder

    s = flower_session(DESCRIPTOR, NODES, DIM, None,
                       {"public": read_public(dealt[0], **INSECURE), "clip": CLIP,
                        "value_bits": 20, **INSECURE})
    q = s.config.quantizer
    check_relayed_quantizer(s.config, decode_encoder(tuple(encode_encoder(q))))
    for other in (PaillierQuantizer(CLIP * 4, 20), PaillierQuantizer(CLIP, 24),
                  FixedPointEncoder(clip=CLIP, frac_bits=10, max_summands=5, modulus_bits=32)):
        with pytest.raises(ProtocolError, match="relayed"):
            check_relayed_quantizer(s.config, other)
    check_relayed_quantizer(object(), other)  # another protocol's config passes


def test_nodes_refuse_a_relayed_quantizer_other_than_the_configurations(dealt):
    from protocols.flower.paillier import flower_session

    s = flower_session(DESCRIPTOR, NODES, DIM, None,
                       {"public": read_public(dealt[0], **INSECURE), "clip": CLIP, **INSECURE})
    # a smaller clip at the same value bits: every update goes out clipped to +-clip/64
    lying = dataclasses.replace(s, encoder=PaillierQuantizer(CLIP / 64, s.config.value_bits))
    with pytest.raises(SessionAborted) as info:
        run_session(grid_with(dealt), DESCRIPTOR, NODES, DIM, round_timeout=0.5,
                    poll_interval=0.005, train_content=model_content(), session=lying)
    assert all("relayed quantizer" in why for why in info.value.rounds[0].dropped.values())


# ------------------------------------------------------------------- FedAvg rounds


def test_fedavg_rounds_with_threshold_paillier(dealt, tmp_path):
    pytest.importorskip("torch")
    import json

    from protocols.flower.fedavg import run_fedavg, train_on_node

    def make_app(node: int) -> ClientApp:
        app = ClientApp()

        @app.train()
        def train(msg: Message, context: Context) -> Message:
            return train_on_node(msg, context)

        secure_train(app, train, **node_options(**INSECURE))
        return app

    cfg = {"protocol": "paillier", "task": "linear-regression", "num-rounds": 2,
           "num-nodes": len(NODES), "round-timeout": 1.0, "train-timeout": 10.0, "lr": 0.05,
           "run-dir": str(tmp_path), "paillier-public": str(dealt[0]),
           "insecure-allow-small-key-for-tests": True}
    config = node_config(dealt)
    for i, n in enumerate(NODES):
        config[n].update({"partition-id": i, "num-partitions": len(NODES)})
    victim = COMMITTEE[1]
    grid = FakeGrid(make_app, list(NODES), run_config=cfg, node_config=config,
                    faults=[Fault(victim, "decrypt", "drop", times=1)])
    records = run_fedavg(grid, cfg)
    assert [r.round for r in records] == [1, 2]
    assert records[-1].test_loss < records[0].test_loss
    for r in records:  # a decryptor lost in round 1's decryption: t still answered
        assert not r.aborted and set(r.included) == set(NODES)
        assert r.round_trips == 2
        assert r.bytes_up_per_node > 0
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["config"]["protocol"] == "paillier" and len(saved["rounds"]) == 2
    # two decryptors lost: the round aborts, the model stays, the next round goes on
    grid = FakeGrid(make_app, list(NODES), run_config=cfg, node_config=config,
                    faults=[Fault(n, "decrypt", "drop", times=1) for n in COMMITTEE[:2]])
    first, second = run_fedavg(grid, cfg)
    assert first.aborted and first.included == [] and "valid partial" in first.dropped["*"]
    assert not second.aborted and set(second.included) == set(NODES)


def test_nodes_refuse_sums_of_too_few_inputs(dealt):
    grid = grid_with(dealt)
    with pytest.raises(SessionAborted) as info:
        run(grid, dealt[0], min_clients=1)  # a "sum" of one input is that input
    assert all("min_clients=1" in why for why in info.value.rounds[0].dropped.values())
    # a node may lower its own floor; the server's default is 2
    config = node_config(dealt)
    for n in NODES:
        config[n][MIN_CLIENTS_CONFIG_KEY] = 1
    check(run(grid_with(dealt, config=config), dealt[0], min_clients=1), NODES)
    grid = grid_with(dealt, [Fault(n, "encrypt", "drop") for n in NODES[1:]])
    with pytest.raises(SessionAborted, match="min_clients is 2"):
        run(grid, dealt[0])
