"""Pipelined sessions over the in-process fake Grid (``SecureAggregator``, ``fold=True``).

In steady state a round trip carries two sessions: session s's masked input
with session s+1's key advertisement, then s's unmasking with s+1's key
sharing. These tests drive several FedAvg-like rounds in a row (each round's
model depends on the previous round's sum) and check the exact sums, the
round-trip count, dropouts, error and late replies of both sessions, restarts
with two live parties, replays across sessions and the fallbacks to a fresh
start.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.flower import SecureAggregator, secure_train
from protocols.flower.server import SessionAborted, SessionReport
from protocols.flower.testing import FakeGrid, Fault
from protocols.flower.wire import (
    MAX_SECTIONS,
    RECORD,
    STATE,
    Packet,
    Section,
    saved_parties,
)
from protocols.secagg import SECAGG, SECAGG_PLUS
from secagg.errors import ParameterError, ProtocolError

DIM = 24
NODES = [0, 7, 2**64 - 1, 123456789012345678, 31337, 99]


def update_of(node: int, model: np.ndarray) -> np.ndarray:
    return np.sin(np.arange(DIM) * 0.29 + (node % 1000) * 0.07) + 0.05 * model


def make_app(node: int) -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        model = msg.content["arrays"]["w"].numpy()
        update = update_of(context.node_id, model).astype(np.float32)
        return Message(RecordDict({"arrays": ArrayRecord({"w": Array(update)})}), reply_to=msg)

    secure_train(app, train)
    return app


class Spy:
    """Watches every message and reply of a FakeGrid; checks each node holds at most
    two parties after every message."""

    def __init__(self, grid: FakeGrid) -> None:
        self.grid = grid
        self.sections: list[tuple[int, tuple[str, ...]]] = []  # (node, rounds) per message
        self.max_parties = 0
        original = grid._deliver

        def deliver(msg: Message) -> Message | None:
            packet = Packet.from_content(msg.content)
            node = msg.metadata.dst_node_id
            if packet is not None:
                self.sections.append((node, tuple(s.round for s in packet.sections)))
            reply = original(msg)
            held = saved_parties(grid.saved_state(node))
            self.max_parties = max(self.max_parties, len(held))
            return reply

        grid._deliver = deliver  # type: ignore[method-assign]


def grid_with(faults=(), nodes=NODES) -> FakeGrid:
    return FakeGrid(make_app, list(nodes), faults=list(faults))


def aggregator(grid: FakeGrid, descriptor=SECAGG_PLUS, fold=True, **params) -> SecureAggregator:
    return SecureAggregator(grid, descriptor, DIM, round_timeout=0.5, poll_interval=0.005,
                            fold=fold, **params)


def fedavg(agg: SecureAggregator, rounds: int, nodes=NODES) -> list[SessionReport | None]:
    """``rounds`` rounds in a row; each round's model is the previous model plus the
    previous round's mean update (as FedAvg); an aborted round keeps the model."""
    model = np.linspace(-1, 1, DIM)
    out: list[SessionReport | None] = []
    for _ in range(rounds):
        content = RecordDict({"arrays": ArrayRecord({"w": Array(model.copy())}),
                              "config": ConfigRecord({"lr": 0.1})})
        try:
            report = agg.aggregate(nodes, train_content=content)
        except SessionAborted:
            out.append(None)
            continue
        want = sum(update_of(n, model).astype(np.float32).astype(np.float64)
                   for n in report.result.included)
        tol = report.encoder.error_bound(len(report.result.included)) + 1e-9
        np.testing.assert_allclose(report.sum(), want, atol=tol, rtol=0)
        out.append(report)
        model = model + report.mean()
    return out


def included(reports) -> list[set[int]]:
    return [set(r.result.included) if r is not None else set() for r in reports]


def test_steady_state_needs_two_round_trips_with_exact_sums():
    grid = grid_with()
    spy = Spy(grid)
    reports = fedavg(aggregator(grid), 4)
    assert included(reports) == [set(NODES)] * 4
    assert [r.round_trips for r in reports] == [4, 2, 2, 2]
    assert [[(x.name, x.folded) for x in r.rounds] for r in reports][1] == [
        ("advertise", True), ("share_keys", True), ("masked_input", False), ("unmask", False)]
    # one Flower message per node per round trip: 4 + 2 + 2 + 2 round trips
    assert Counter(n for n, _ in spy.sections) == {n: 10 for n in NODES}
    per_trip = Counter(rounds for _, rounds in spy.sections)
    assert per_trip == {
        ("advertise",): 6, ("share_keys",): 6,
        ("masked_input", "advertise"): 4 * 6, ("unmask", "share_keys"): 4 * 6}
    assert len({r.session for r in reports}) == 4
    assert spy.max_parties == MAX_SECTIONS
    # what remains on each node: the pipelined fifth session's party only
    for node in NODES:
        [left] = saved_parties(grid.saved_state(node)).values()
        assert left.session not in {r.session for r in reports}


def test_fold_off_runs_each_session_alone():
    grid = grid_with()
    spy = Spy(grid)
    reports = fedavg(aggregator(grid, fold=False), 3)
    assert [r.round_trips for r in reports] == [4, 4, 4]
    assert all(len(rounds) == 1 for _, rounds in spy.sections)
    assert spy.max_parties == 1
    for node in NODES:
        assert not saved_parties(grid.saved_state(node))


def test_malicious_mode_needs_three_round_trips(tmp_path):
    from protocols.flower.identity import (
        malicious_session,
        node_identity,
        write_registry,
        write_signing_key,
    )
    from secagg.sign import SigningKey

    keys = {i: SigningKey.generate() for i in NODES}
    registry = {i: k.verify_key() for i, k in keys.items()}
    write_registry(tmp_path / "registry.json", registry)
    node_config = {}
    for i, k in keys.items():
        write_signing_key(tmp_path / f"key-{i}", k)
        node_config[i] = {"secagg-registry": str(tmp_path / "registry.json"),
                          "secagg-signing-key": str(tmp_path / f"key-{i}"),
                          "secagg-require-malicious": "1"}

    def app_for(node: int) -> ClientApp:
        app = ClientApp()

        @app.train()
        def train(msg: Message, context: Context) -> Message:
            model = msg.content["arrays"]["w"].numpy()
            update = update_of(context.node_id, model).astype(np.float32)
            return Message(RecordDict({"a": ArrayRecord({"w": Array(update)})}), reply_to=msg)

        policy, secrets = node_identity()
        secure_train(app, train, policy=policy, local_secrets=secrets)
        return app

    grid = FakeGrid(app_for, list(NODES), node_config=node_config)
    spy = Spy(grid)
    agg = SecureAggregator(grid, SECAGG_PLUS, DIM, round_timeout=0.5, poll_interval=0.005,
                           session_factory=lambda ids: malicious_session(
                               SECAGG_PLUS, registry, ids, DIM))
    reports = fedavg(agg, 3)
    assert included(reports) == [set(NODES)] * 3
    assert [r.round_trips for r in reports] == [5, 3, 3]
    per_trip = Counter(rounds for _, rounds in spy.sections)
    assert per_trip == {
        ("advertise",): 6, ("share_keys",): 6, ("masked_input",): 3 * 6,
        ("consistency", "advertise"): 3 * 6, ("unmask", "share_keys"): 3 * 6}


# ------------------------------------------------------------------- dropouts and faults

@pytest.mark.parametrize("kind", ["drop", "error", "late"])
@pytest.mark.parametrize("rnd", ["masked_input", "unmask"])
def test_a_fault_in_a_pipelined_round_trip(kind, rnd):
    """Node ``victim`` fails the round trip of session 2's ``rnd``, which also carries
    session 3's advertise (masked_input) or key sharing (unmask): it is a dropout of
    both; session 3 runs without it; session 4 (started afresh inside session 3's
    round trips, the victim invited) has it back."""
    victim = NODES[2]
    grid = grid_with([Fault(victim, rnd, kind, times=1, skip=1)])
    reports = fedavg(aggregator(grid), 4)
    everyone, rest = set(NODES), set(NODES) - {victim}
    # session 2 keeps a node whose masked input arrived before it vanished
    assert included(reports) == [everyone, rest if rnd == "masked_input" else everyone,
                                 rest, everyone]
    assert [r.round_trips for r in reports] == [4, 2, 2, 2]
    s2 = {r.name: r for r in reports[1].rounds}
    assert victim in s2[rnd].dropped
    s3 = {r.name: r for r in reports[2].rounds}
    lost = "advertise" if rnd == "masked_input" else "share_keys"
    assert s3[lost].folded and victim in s3[lost].dropped
    for name in ("masked_input", "unmask"):
        assert victim not in s3[name].sent_to
    if kind == "error":
        assert "error reply" in s2[rnd].dropped[victim]


@pytest.mark.parametrize("rnd", ["advertise", "share_keys"])
def test_a_dropout_in_the_first_sessions_early_rounds(rnd):
    """A node lost before the pipeline starts is still invited to the next session."""
    victim = NODES[4]
    grid = grid_with([Fault(victim, rnd, "drop", times=1)])
    reports = fedavg(aggregator(grid), 3)
    assert included(reports) == [set(NODES) - {victim}, set(NODES), set(NODES)]
    assert [r.round_trips for r in reports] == [4, 2, 2]


def test_a_node_dead_for_good_costs_one_round_deadline_per_round():
    """A node that dies after round 1 is still invited to start each next session (in
    the masked-input round trip, whose deadline for training nodes is the longer input
    deadline): for it, as it only starts a session there, the round deadline applies."""
    victim = NODES[1]
    grid = grid_with([Fault(victim, "masked_input", "drop", skip=1),
                      Fault(victim, "advertise", "drop", skip=1)])
    agg = SecureAggregator(grid, SECAGG_PLUS, DIM, round_timeout=0.5,
                           input_round_timeout=1.5, poll_interval=0.005)
    reports = fedavg(agg, 5)
    rest = set(NODES) - {victim}
    assert included(reports) == [set(NODES), rest, rest, rest, rest]
    assert [r.round_trips for r in reports] == [4, 2, 2, 2, 2]
    # round 2: it died in its masked-input round trip (it trains there: input deadline),
    # which also carried round 3's start
    assert {r.name: r for r in reports[1].rounds}["masked_input"].dropped[victim] == \
        "no reply within 1.5 s"
    assert reports[2].rounds[0].dropped[victim] == "no reply within 1.5 s"
    # rounds 4 and 5: it is only invited to start them (round deadline)
    for r in reports[3:]:
        advertise = r.rounds[0]
        assert advertise.folded and advertise.dropped[victim] == "no reply within 0.5 s"
        assert victim not in r.rounds[2].sent_to


def test_late_replies_of_both_sessions_are_never_read():
    victim = NODES[3]
    grid = grid_with([Fault(victim, "masked_input", "late", times=1, skip=1),
                      Fault(victim, "unmask", "late", times=1, skip=1)])
    late_seen: list[str] = []
    original = grid.pull_messages

    def pull(ids):
        replies = list(original(ids))
        wanted = set(ids)
        late_seen.extend(r.metadata.reply_to_message_id for r in replies
                         if r.metadata.reply_to_message_id not in wanted)
        return replies

    grid.pull_messages = pull  # type: ignore[method-assign]
    reports = fedavg(aggregator(grid), 5)
    # round 2: the masked-input trip (+ round 3's advertise) was late; round 3: sat out;
    # round 4: back, its unmask trip (+ round 5's key sharing) late; round 5: sat out
    rest = set(NODES) - {victim}
    assert included(reports) == [set(NODES), rest, rest, set(NODES), rest]
    assert len(late_seen) == 2  # offered to the driver, and ignored
    assert "no reply" in {r.name: r for r in reports[1].rounds}["masked_input"].dropped[victim]


def test_error_replies_from_many_nodes_abort_and_the_next_round_starts_afresh():
    """Session 2 aborts in its unmask trip (too few left): nothing is output, the
    pipelined session 3 is dropped, and round 3 starts a fresh session (4 trips)."""
    victims = NODES[:4]
    grid = grid_with([Fault(v, "unmask", "error", times=1, skip=1) for v in victims])
    reports = fedavg(aggregator(grid, SECAGG, threshold=4), 4)
    assert reports[1] is None
    assert included(reports) == [set(NODES), set(), set(NODES), set(NODES)]
    assert [r.round_trips for r in reports if r is not None] == [4, 4, 2]
    assert len({r.session for r in reports if r is not None}) == 3


def test_the_pipelined_session_aborting_falls_back_to_a_fresh_start():
    """Too few nodes start session 2 (its configuration is garbled for 3 of 6): it
    aborts at its advertise round; session 1 is unaffected, round 2 starts afresh."""
    grid = grid_with()
    original = grid._deliver
    state = {"garbled": 0}

    def deliver(msg):
        packet = Packet.from_content(msg.content)
        if (packet and len(packet.sections) == 2 and packet.sections[1].config is not None
                and msg.metadata.dst_node_id in NODES[:3] and state["garbled"] < 3):
            state["garbled"] += 1
            msg.content[RECORD]["1.config"] = b"garbage"
        return original(msg)

    grid._deliver = deliver  # type: ignore[method-assign]
    agg = aggregator(grid, SECAGG, threshold=4)
    reports = fedavg(agg, 3)
    assert included(reports) == [set(NODES)] * 3
    assert [r.round_trips for r in reports] == [4, 4, 2]


@pytest.mark.parametrize("fault", ["restart", "wipe"])
def test_restarts_between_every_message_with_two_live_parties(fault):
    faults = [Fault(n, r, "restart") for n in NODES
              for r in ("advertise", "share_keys", "masked_input", "unmask")]
    if fault == "wipe":
        # one node loses both saved parties before session 2's unmask trip: it refuses
        # both sections (an error reply), so it leaves session 2's unmask and session 3
        faults.insert(0, Fault(NODES[5], "unmask", "wipe", times=1, skip=1))
    grid = grid_with(faults)
    spy = Spy(grid)
    reports = fedavg(aggregator(grid), 4)
    assert spy.max_parties == 2
    assert [r.round_trips for r in reports] == [4, 2, 2, 2]
    if fault == "restart":
        assert included(reports) == [set(NODES)] * 4
    else:
        assert included(reports) == [set(NODES), set(NODES), set(NODES) - {NODES[5]},
                                     set(NODES)]
        assert "no saved party" in {r.name: r for r in reports[1].rounds}["unmask"].dropped[
            NODES[5]]


# ------------------------------------------------------------- a node misusing the sections

def _rewrite_reply(grid: FakeGrid, node: int, rewrite) -> None:
    """Let ``rewrite(packet) -> Packet | None`` change ``node``'s replies."""
    original = grid._deliver

    def deliver(msg):
        reply = original(msg)
        if reply is None or msg.metadata.dst_node_id != node or reply.has_error():
            return reply
        new = rewrite(Packet.from_content(reply.content))
        if new is None:
            return reply
        return Message(RecordDict({RECORD: new.to_record()}), reply_to=msg)

    grid._deliver = deliver  # type: ignore[method-assign]


def test_a_node_replaying_its_session_1_advertisement_into_session_2_is_refused():
    liar = NODES[4]
    grid = grid_with()
    first_advert: list[bytes] = []

    def rewrite(packet: Packet) -> Packet | None:
        if packet.round == "advertise" and not first_advert:
            first_advert.extend(packet.sections[0].payloads)
            return None
        if len(packet.sections) == 2 and packet.sections[1].round == "advertise":
            cur, nxt = packet.sections
            return Packet(packet.protocol, (cur, Section(nxt.session, nxt.round,
                                                         tuple(first_advert))))
        return None

    _rewrite_reply(grid, liar, rewrite)
    reports = fedavg(aggregator(grid), 3)
    s2_advertise = reports[1].rounds[0]
    assert s2_advertise.folded and liar in s2_advertise.dropped
    assert "undecodable" in s2_advertise.dropped[liar]
    # its session-1 masked input was genuine: in; session 2 runs without it; it joins
    # session 3 through a message carrying that session's start alone (nothing to replay)
    assert included(reports) == [set(NODES), set(NODES) - {liar}, set(NODES)]


def test_a_node_answering_one_session_with_the_others_messages_is_refused():
    """In the unmask trip the node swaps the two sessions' payloads (session 1's unmask
    shares labelled as session 2's key sharing and the reverse)."""
    liar = NODES[0]
    grid = grid_with()

    def rewrite(packet: Packet) -> Packet | None:
        if packet.round != "unmask" or len(packet.sections) != 2:
            return None
        a, b = packet.sections
        return Packet(packet.protocol, (Section(a.session, a.round, b.payloads),
                                        Section(b.session, b.round, a.payloads)))

    _rewrite_reply(grid, liar, rewrite)
    reports = fedavg(aggregator(grid), 2)
    s1_unmask = reports[0].rounds[-1]
    assert liar in s1_unmask.dropped and "undecodable" in s1_unmask.dropped[liar]
    s2_keys = reports[1].rounds[1]
    assert s2_keys.folded and liar in s2_keys.dropped
    # session 1 still has its masked input (its shares were not needed); session 2 lacks it
    assert included(reports) == [set(NODES), set(NODES) - {liar}]


def test_a_reply_naming_a_session_it_was_not_sent_is_refused_whole():
    liar = NODES[3]
    grid = grid_with()

    def rewrite(packet: Packet) -> Packet | None:
        if packet.round != "masked_input":
            return None
        cur = packet.sections[0]
        return Packet(packet.protocol, (cur, Section(b"\x01" * 16, "advertise", ())))

    _rewrite_reply(grid, liar, rewrite)
    reports = fedavg(aggregator(grid), 2)
    mi = {r.name: r for r in reports[0].rounds}["masked_input"]
    assert "did not carry" in mi.dropped[liar]
    assert included(reports) == [set(NODES) - {liar}, set(NODES) - {liar}]


def test_the_node_refuses_a_server_message_replayed_into_the_other_session():
    """The server (or the relay) moves session 1's unmask request into session 2's
    section and the reverse: the node refuses both (each section decodes with its own
    session's codec), raises, and keeps both parties as they were."""
    grid = grid_with()
    victim = NODES[2]
    original = grid._deliver
    seen: dict[str, object] = {}

    def deliver(msg):
        packet = Packet.from_content(msg.content)
        if (msg.metadata.dst_node_id == victim and packet is not None
                and packet.round == "unmask" and len(packet.sections) == 2):
            a, b = packet.sections
            swapped = Packet(packet.protocol, (Section(a.session, a.round, b.payloads),
                                               Section(b.session, b.round, a.payloads)))
            msg.content[RECORD] = swapped.to_record()
            before = dict(grid.saved_state(victim).config_records)
            reply = original(msg)
            seen["error"] = reply.error.reason if reply is not None and reply.has_error() \
                else None
            seen["kept"] = dict(grid.saved_state(victim).config_records) == before
            return reply
        return original(msg)

    grid._deliver = deliver  # type: ignore[method-assign]
    reports = fedavg(aggregator(grid), 2)
    assert seen["error"] and "session" in str(seen["error"]) and seen["kept"]
    assert victim in reports[0].rounds[-1].dropped
    assert included(reports) == [set(NODES), set(NODES) - {victim}]


def _call_app(grid: FakeGrid, node: int, packet: Packet) -> Message:
    """Hand ``packet`` straight to ``node``'s ClientApp (no Grid, so its error raises)."""
    msg = Message(RecordDict({RECORD: packet.to_record()}), dst_node_id=node,
                  message_type="query.secagg", ttl=5)
    msg.metadata.__dict__["_message_id"] = "x"
    return grid._apps[node](msg, grid._context(node))


def test_the_node_refuses_a_second_start_of_a_live_session():
    grid = grid_with()
    fedavg(aggregator(grid), 1)
    node = NODES[0]
    [held] = saved_parties(grid.saved_state(node)).values()
    packet = Packet("secagg+", (Section(held.session, "advertise", (), held.config,
                                        held.encoder),))
    with pytest.raises(ProtocolError, match="already started"):
        _call_app(grid, node, packet)


def test_the_node_refuses_two_input_rounds_in_one_message():
    grid = grid_with()
    node = NODES[0]
    secs = tuple(Section(bytes([i]) * 16, "masked_input", ()) for i in (1, 2))
    with pytest.raises(ProtocolError, match="input round of two"):
        _call_app(grid, node, Packet("secagg+", secs))


def test_the_node_refuses_a_refusal_field_from_the_server():
    grid = grid_with()
    node = NODES[0]
    packet = Packet("secagg+", (Section(bytes(16), "share_keys", (), error="x"),))
    with pytest.raises(ProtocolError, match="replies only"):
        _call_app(grid, node, packet)


def test_a_corrupt_saved_record_costs_its_session_only():
    """A node's saved records are garbled after round 1: it drops out of the pipelined
    session 2 (nothing restores from them), joins session 3 and the records are gone."""
    from flwr.common.serde import recorddict_to_proto

    grid = grid_with()
    agg = aggregator(grid)
    victim = NODES[1]
    reports = fedavg(agg, 1)
    state = grid.saved_state(victim)
    [key] = [k for k in state.config_records if k.startswith(STATE)]
    state[key] = ConfigRecord({"v": 2, "junk": b"x"})
    state[STATE + ".ff"] = ConfigRecord({"v": 2})
    grid._state[victim] = recorddict_to_proto(state).SerializeToString()
    reports += fedavg(agg, 2)
    assert included(reports) == [set(NODES), set(NODES) - {victim}, set(NODES)]
    keys = [k for k in grid.saved_state(victim).config_records if k.startswith(STATE)]
    assert len(keys) == 1 and STATE + ".ff" not in keys


def test_another_node_set_starts_afresh_and_stale_parties_are_wiped():
    grid = grid_with()
    spy = Spy(grid)
    agg = aggregator(grid)
    first = fedavg(agg, 2)
    fewer = fedavg(agg, 2, nodes=NODES[:-1])
    again = fedavg(agg, 1)
    assert [r.round_trips for r in first + fewer + again] == [4, 2, 4, 2, 4]
    assert spy.max_parties == 2
    # the node left out of the middle rounds held a stale party until its next message
    for node in NODES:
        [left] = saved_parties(grid.saved_state(node)).values()
        assert left.session not in {r.session for r in first + fewer + again}


def test_no_party_record_outlives_its_session_apart_from_the_pipelined_one():
    grid = grid_with()
    reports = fedavg(aggregator(grid), 2)
    for node in NODES:
        keys = [k for k in grid.saved_state(node).config_records if k.startswith(STATE)]
        assert len(keys) == 1 and all(r.session.hex() not in keys[0] for r in reports)


# ------------------------------------------------------------------- the wire, fuzzed

def _good_two_sections() -> dict:
    return dict(Packet("secagg+", (
        Section(b"\x01" * 16, "masked_input", (b"abc", b"")),
        Section(b"\x02" * 16, "advertise", (), b"cfg", (4.0, 16.0, 6.0, 32.0)),
    )).to_record())


_values = st.one_of(
    st.integers(-3, 70), st.booleans(), st.floats(allow_nan=True), st.text(max_size=70),
    st.binary(max_size=20), st.lists(st.binary(max_size=4), max_size=70),
    st.lists(st.floats(allow_nan=True), max_size=5), st.lists(st.integers(0, 64), max_size=5),
    st.lists(st.text(max_size=3), max_size=3))
_keys = st.sampled_from(["v", "protocol", "sections", "0.session", "0.round", "0.payloads",
                         "0.config", "0.encoder", "1.session", "1.round", "1.payloads",
                         "1.config", "1.encoder", "0.error", "1.error", "2.session",
                         "next.session", "extra"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["set", "del"]), _keys, _values), min_size=1,
                max_size=4))
def test_packet_decoder_fuzz_accepts_only_canonical_records(edits):
    """Random field edits of a two-section record: the decoder raises ProtocolError or
    returns a packet whose re-encoding is the very record it read (nothing else, and
    never another exception)."""
    rec = _good_two_sections()
    for op, key, value in edits:
        if op == "del":
            rec.pop(key, None)
        else:
            rec[key] = value
    try:
        content = RecordDict({RECORD: ConfigRecord(rec)})
    except (TypeError, ValueError):  # Flower's ConfigRecord refused the value itself
        return
    try:
        packet = Packet.from_content(content)
    except ProtocolError:
        return
    assert packet is not None
    assert 1 <= len(packet.sections) <= MAX_SECTIONS
    assert len({s.session for s in packet.sections}) == len(packet.sections)
    assert dict(packet.to_record()) == rec


# ------------------------------------------------- a server that abuses the pipeline


def _counting_app(trained: list[int]):
    def factory(node: int) -> ClientApp:
        app = ClientApp()

        @app.train()
        def train(msg: Message, context: Context) -> Message:
            trained.append(node)
            model = msg.content["arrays"]["w"].numpy()
            update = update_of(context.node_id, model).astype(np.float32)
            return Message(RecordDict({"arrays": ArrayRecord({"w": Array(update)})}),
                           reply_to=msg)

        secure_train(app, train)
        return app

    return factory


def _send(grid: FakeGrid, node: int, sections) -> Message:
    content = RecordDict({"arrays": ArrayRecord({"w": Array(np.zeros(DIM))}),
                          RECORD: Packet("secagg+", tuple(sections)).to_record()})
    msg = Message(content, dst_node_id=node, message_type="query.secagg", ttl=5)
    [mid] = grid.push_messages([msg])
    [reply] = grid.pull_messages([mid])
    return reply


def test_the_input_round_label_alone_never_makes_a_node_train():
    """The server labels sections with the input round where the party is not
    at it (a live pipelined party that already shared keys, resent with no
    request; a fresh start): the node refuses and never calls the train
    function, so the server cannot make it train at will."""
    trained: list[int] = []
    grid = FakeGrid(_counting_app(trained), list(NODES))
    fedavg(aggregator(grid), 1)
    node = NODES[0]
    [held] = saved_parties(grid.saved_state(node)).values()  # the pipelined next session
    trained.clear()
    for _ in range(3):
        reply = _send(grid, node, [Section(held.session, "masked_input", ())])
        assert reply.has_error()
    for i in range(3):
        other = SECAGG_PLUS.make_session(list(NODES), DIM - 1).config
        reply = _send(grid, node, [Section(bytes([9, i]) * 8, "masked_input", (),
                                           SECAGG_PLUS.config_to_bytes(other), held.encoder)])
        assert reply.has_error() and "speaks first" in reply.error.reason
    assert trained == []


def test_a_new_session_with_a_live_sessions_configuration_is_refused():
    trained: list[int] = []
    grid = FakeGrid(_counting_app(trained), list(NODES))
    fedavg(aggregator(grid), 1)
    node = NODES[0]
    [held] = saved_parties(grid.saved_state(node)).values()
    reply = _send(grid, node, [Section(b"\x05" * 16, "advertise", (), held.config, held.encoder)])
    assert reply.has_error() and "configuration of a live one" in reply.error.reason


@pytest.mark.parametrize("param", ["seed", "session_id", "graph_seed"])
def test_fixed_session_parameters_are_refused_when_pipelining(param):
    value = b"\x01" * 32 if param == "graph_seed" else 5
    with pytest.raises(ParameterError, match="same configuration"):
        aggregator(grid_with(), **{param: value})
    aggregator(grid_with(), fold=False, **{param: value})  # one session at a time: fine


def test_the_encoder_fields_must_be_floats():
    rec = dict(Packet("secagg+", (Section(b"\x02" * 16, "advertise", (), b"cfg",
                                          (4.0, 16.0, 6.0, 32.0)),)).to_record())
    rec["0.encoder"] = [4, 16, 6, 32]
    with pytest.raises(ProtocolError, match="floats"):
        Packet.from_content(RecordDict({RECORD: ConfigRecord(rec)}))
