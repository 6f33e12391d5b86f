"""The Flower transport over an in-process fake Grid: exact sums, dropouts and error
replies in every round, late replies, impersonation, restarts, the state codec.
Pipelined sessions (``SecureAggregator``): tests/test_flower_pipeline.py."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from protocols.flower.client import secure_train
from protocols.flower.server import run_session
from protocols.flower.testing import FakeGrid, Fault
from protocols.flower.wire import RECORD, STATE, NodeState, Packet, Section, saved_parties
from protocols.secagg import SECAGG, SECAGG_PLUS
from secagg.errors import AbortError, ProtocolError, SecAggError

DIM = 40
NODES = [0, 7, 2**64 - 1, 123456789012345678, 31337, 99]
ROUNDS = ("advertise", "share_keys", "masked_input", "unmask")


def update_of(node: int, model: np.ndarray) -> np.ndarray:
    """A node's deterministic local update (what its train function returns)."""
    base = np.sin(np.arange(DIM) * 0.37 + (node % 1000) * 0.11)
    return base + 0.01 * model


def make_app(node: int) -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        model = msg.content["arrays"]["w"].numpy()
        update = update_of(context.node_id, model).astype(np.float32)
        return Message(RecordDict({"arrays": ArrayRecord({"w": Array(update)})}), reply_to=msg)

    secure_train(app, train)
    return app


def model_content() -> RecordDict:
    return RecordDict({"arrays": ArrayRecord({"w": Array(np.linspace(-1, 1, DIM))}),
                       "config": ConfigRecord({"lr": 0.1})})


def expected_sum(nodes) -> np.ndarray:
    model = np.linspace(-1, 1, DIM)
    return sum(update_of(n, model).astype(np.float32).astype(np.float64) for n in nodes)


def run(grid: FakeGrid, descriptor=SECAGG_PLUS, timeout=0.5, **params):
    return run_session(grid, descriptor, grid.node_ids, DIM, round_timeout=timeout,
                       poll_interval=0.005, train_content=model_content(), **params)


def grid_with(faults=(), nodes=NODES) -> FakeGrid:
    return FakeGrid(make_app, list(nodes), faults=list(faults))


def check(report, nodes) -> None:
    assert report.result.included == frozenset(nodes)
    tol = report.encoder.error_bound(len(nodes)) + 1e-9
    np.testing.assert_allclose(report.sum(), expected_sum(nodes), atol=tol, rtol=0)


@pytest.mark.parametrize("descriptor", [SECAGG, SECAGG_PLUS], ids=lambda d: d.name)
def test_exact_sum_and_state_wiped(descriptor):
    grid = grid_with()
    report = run(grid, descriptor)
    check(report, NODES)
    assert [r.name for r in report.rounds] == list(ROUNDS)
    assert report.round_trips == 4
    for node in NODES:  # the party's secrets are gone once the session ends
        assert not [k for k in grid.saved_state(node).config_records if k.startswith(STATE)]


def test_plaintext_never_in_a_reply():
    grid = grid_with()
    seen: list[RecordDict] = []
    pull = grid.pull_messages

    def spy(ids):
        replies = list(pull(ids))
        seen.extend(r.content for r in replies if r.has_content())
        return replies

    grid.pull_messages = spy  # type: ignore[method-assign]
    run(grid)
    assert seen
    for content in seen:
        assert list(content.keys()) == [RECORD]
        assert not content.array_records


@pytest.mark.parametrize("kind", ["drop", "error", "late", "wipe"])
@pytest.mark.parametrize("rnd", ROUNDS)
def test_a_faulty_node_in_any_round(kind, rnd):
    victim = NODES[2]
    grid = grid_with([Fault(victim, rnd, kind)])
    report = run(grid)
    faulted = next(r for r in report.rounds if r.name == rnd)
    if kind == "wipe" and rnd == "advertise":
        # nothing saved yet before the first message: the node simply starts
        check(report, NODES)
        return
    assert victim in faulted.dropped
    # after its masked input arrived, a node that vanishes is still in the sum
    survivors = NODES if rnd == "unmask" else [n for n in NODES if n != victim]
    check(report, survivors)


def test_late_reply_is_never_read():
    victim = NODES[1]
    grid = grid_with([Fault(victim, "share_keys", "late")])
    report = run(grid)
    check(report, [n for n in NODES if n != victim])
    # the late reply was offered in a later pull and ignored, the node sent nothing more
    later = [r for r in report.rounds if r.name in ("masked_input", "unmask")]
    assert all(victim not in r.sent_to for r in later)


def test_dropouts_in_every_round_at_once():
    faults = [Fault(NODES[0], "advertise", "drop"), Fault(NODES[1], "share_keys", "error"),
              Fault(NODES[2], "masked_input", "late"), Fault(NODES[3], "unmask", "drop")]
    nodes = [*NODES, 11, 12, 13, 14]
    grid = grid_with(faults, nodes)
    report = run(grid, SECAGG_PLUS, threshold=5)
    check(report, [n for n in nodes if n not in NODES[:3]])


def test_too_many_dropouts_abort_without_output():
    faults = [Fault(n, "share_keys", "drop") for n in NODES[:4]]
    with pytest.raises(AbortError):
        run(grid_with(faults), SECAGG, threshold=4)


def _forge_sender(other: int):
    def forge(reply: Message) -> Message:
        from protocols.secagg import SECAGG_PLUS as D  # the codec of the running config

        packet = Packet.from_content(reply.content)
        assert packet is not None
        cfg = D.config_from_bytes(forge.config)  # type: ignore[attr-defined]
        codec = D.codec(cfg)
        [sec] = packet.sections
        msgs = [codec.decode(p) for p in sec.payloads]
        forged = [type(m)(**{**m.__dict__, "sender": other}) for m in msgs]
        packet = Packet(packet.protocol, (Section(sec.session, sec.round,
                                                  tuple(codec.encode(m) for m in forged)),))
        return Message(RecordDict({RECORD: packet.to_record()}), reply_to=forge.msg)  # type: ignore[attr-defined]
    return forge


def test_a_node_cannot_speak_for_another_id():
    liar, victim = NODES[4], NODES[5]
    grid = grid_with()
    original = grid._deliver

    def deliver(msg):
        reply = original(msg)
        packet = Packet.from_content(msg.content)
        if msg.metadata.dst_node_id == liar and packet and packet.round == "advertise":
            forge = _forge_sender(victim)
            forge.config = packet.sections[0].config  # type: ignore[attr-defined]
            forge.msg = msg  # type: ignore[attr-defined]
            return forge(reply)
        return reply

    grid._deliver = deliver  # type: ignore[method-assign]
    report = run(grid)
    advertise = report.rounds[0]
    assert liar in advertise.dropped and "as" in advertise.dropped[liar]
    check(report, [n for n in NODES if n != liar])


def test_a_reply_from_the_wrong_node_is_a_dropout():
    grid = grid_with()
    original = grid._deliver

    def deliver(msg):
        reply = original(msg)
        if reply is not None and msg.metadata.dst_node_id == NODES[3]:
            reply.metadata.__dict__["_src_node_id"] = NODES[4]
        return reply

    grid._deliver = deliver  # type: ignore[method-assign]
    report = run(grid)
    assert NODES[3] in report.rounds[0].dropped
    check(report, [n for n in NODES if n != NODES[3]])


@pytest.mark.parametrize("rnd", ROUNDS)
def test_restart_between_messages(rnd):
    grid = grid_with([Fault(n, rnd, "restart") for n in NODES])
    check(run(grid), NODES)


def test_saved_state_round_trip_and_tamper():
    grid = grid_with()
    # stop after the first round: push/pull the advertise round by hand through the driver
    grid.faults = [Fault(n, "share_keys", "drop") for n in NODES]
    with pytest.raises(AbortError):
        run(grid, SECAGG)
    for node in NODES:
        [saved] = saved_parties(grid.saved_state(node)).values()
        cfg = SECAGG.config_from_bytes(saved.config)
        party = SECAGG.restore_client(cfg, saved.party)
        assert party.address == node and party.round == "share_keys"
        assert SECAGG.restore_client(cfg, party.export_state()).export_state() == \
            party.export_state()
        bad = bytearray(saved.party)
        bad[0] ^= 1
        with pytest.raises(SecAggError):
            SECAGG.restore_client(cfg, bytes(bad))
        other = SECAGG.make_session(NODES, DIM).config  # same ids, another session
        with pytest.raises(SecAggError):
            SECAGG.restore_client(other, saved.party)
        with pytest.raises(SecAggError):
            SECAGG.restore_client(cfg, saved.party[:-1])


def test_a_message_of_another_session_is_refused():
    """A node holding session A's party refuses a session-B message that is not a start."""
    grid = grid_with()
    run(grid)  # leaves no state; now plant a state from a fresh aborted session
    grid.faults = [Fault(n, "share_keys", "drop") for n in NODES]
    with pytest.raises(AbortError):
        run(grid)
    grid.faults = []
    node = NODES[0]
    [saved] = saved_parties(grid.saved_state(node)).values()
    other = Packet("secagg+", (Section(bytes(16), "share_keys", ()),))
    content = RecordDict({RECORD: other.to_record()})
    msg = Message(content, dst_node_id=node, message_type="query.secagg", ttl=5)
    msg.metadata.__dict__["_message_id"] = "x"
    with pytest.raises(ProtocolError, match="another session"):
        grid._apps[node](msg, grid._context(node))
    assert saved.session != bytes(16)


def test_state_decoder_rejects_bad_records():
    good = NodeState(bytes(16), "secagg", b"c", (1.0, 2.0, 3.0, 32.0), b"p").to_record()
    assert NodeState.from_record(good).party == b"p"
    for key, value in [("v", 1), ("session", "x"), ("session", bytes(15)), ("encoder", [1.0]),
                       ("party", 3), ("protocol", b"x"), ("protocol", ""), ("extra", 1)]:
        rec = ConfigRecord(dict(good))
        rec[key] = value
        with pytest.raises(ProtocolError):
            NodeState.from_record(rec)
    rec = ConfigRecord(dict(good))
    del rec["party"]
    with pytest.raises(ProtocolError):
        NodeState.from_record(rec)


def test_packet_decoder_rejects_bad_records():
    good = Packet("secagg", (Section(bytes(16), "advertise", (b"a",)),)).to_record()
    assert Packet.from_content(RecordDict({RECORD: good})).sections[0].payloads == (b"a",)
    assert Packet.from_content(RecordDict()) is None
    for key, value in [("v", 1), ("v", 0), ("0.session", bytes(15)),
                       ("0.payloads", [b"a"] * 65), ("0.payloads", ["a"]), ("0.round", 3),
                       ("0.round", ""), ("0.config", "x"), ("0.encoder", [1.0]),
                       ("sections", 0), ("sections", 3), ("sections", True), ("protocol", b"x"),
                       ("next.session", bytes(16)), ("1.session", bytes(16)),
                       ("0.config", b"c")]:  # a config without an encoder
        rec = ConfigRecord(dict(good))
        rec[key] = value
        with pytest.raises(ProtocolError):
            Packet.from_content(RecordDict({RECORD: rec}))
    for key in ("v", "protocol", "sections", "0.session", "0.round", "0.payloads"):
        rec = ConfigRecord(dict(good))
        del rec[key]
        with pytest.raises(ProtocolError):
            Packet.from_content(RecordDict({RECORD: rec}))
