"""Threshold Paillier over Flower, malicious mode: what a ServerApp can no longer
replay, and the key (not each node's flag) decides the mode.

* A node records the configuration digest of every malicious-mode session it
  starts in a journal file (``secagg-paillier-journal``), so a rerun of a
  configuration is refused in a **new Flower run** (a fresh ``context.state``)
  and after a **SuperNode restart** (the same files), not only in the run.
  Without the config key, or with a journal that is corrupt, truncated,
  foreign or unsafe, a node refuses malicious-mode sessions (fail closed).
* The dealer states the key's mode in the public material: every node
  refuses a session of the other mode on it, so a semi-honest session cannot
  get a malicious-mode input decrypted alone even when only the victim sets
  ``secagg-require-malicious``.

The fake Grid plays the lying ServerApp (an aggregator subclass).
"""

from __future__ import annotations

import os
import secrets
import stat

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("flwr")

from flwr.app import Array, ArrayRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from protocols.core import Envelope
from protocols.flower.client import secure_train
from protocols.flower.identity import read_registry, write_registry, write_signing_key
from protocols.flower.journal import journal_file, read_journal, write_journal
from protocols.flower.paillier import (
    JOURNAL_CONFIG_KEY,
    PUBLIC_CONFIG_KEY,
    SHARE_CONFIG_KEY,
    deal_to_files,
    fedavg_params,
    flower_session,
    node_options,
    paillier_descriptor,
)
from protocols.flower.server import SessionAborted, run_session
from protocols.flower.testing import FakeGrid
from protocols.paillier_sum import (
    EncryptedSum,
    PaillierSumAggregator,
    SignedInputs,
    ThresholdPublic,
    read_public,
)
from secagg import paillier, wire
from secagg.errors import IntegrityError, ParameterError, ProtocolError, SecAggError
from secagg.paillier import threshold as tp
from secagg.sign import SigningKey

INSECURE = {"insecure_allow_small_key_for_tests": True}
DIM = 6
CLIP = 2.0
NODES = [3, 77, 123, 999, 5000]
COMMITTEE = [3, 77, 123]  # 2 of these 3 decrypt
VICTIM = 999
DESCRIPTOR = paillier_descriptor(**INSECURE)


@pytest.fixture(scope="module")
def identities(tmp_path_factory):
    root = tmp_path_factory.mktemp("identities")
    keys = {n: SigningKey.generate() for n in NODES}
    write_registry(root / "registry.json", {n: k.verify_key() for n, k in keys.items()})
    paths = {}
    for n, k in keys.items():
        paths[n] = root / f"id-{n}.key"
        write_signing_key(paths[n], k)
    return root / "registry.json", paths


def _deal(tmp_path, identities, mode, bits=256):
    public, shares = deal_to_files(tmp_path / f"dealer-{mode}", COMMITTEE, 2,
                                   keypair=tp.generate_keypair(bits, **INSECURE), mode=mode,
                                   **INSECURE)
    journals = tmp_path / f"journals-{mode}"  # each node's journal folder is made in it
    journals.mkdir()
    return {"public": public, "shares": shares, "registry": identities[0],
            "keys": identities[1], "journals": journals}


@pytest.fixture
def mal(tmp_path, identities):
    """A key dealt for malicious mode, each node with its own journal folder."""
    return _deal(tmp_path, identities, "malicious")


@pytest.fixture
def semi(tmp_path, identities):
    """Another key (its own keypair), dealt for semi-honest sessions."""
    return _deal(tmp_path, identities, "semi-honest")


def node_config(d, *, journal=True, flag=lambda n: False):
    out = {}
    for n in NODES:
        c = {PUBLIC_CONFIG_KEY: str(d["public"]), "secagg-registry": str(d["registry"]),
             "secagg-signing-key": str(d["keys"][n])}
        if journal:
            c[JOURNAL_CONFIG_KEY] = str(d["journals"] / f"node-{n}")
        if n in d["shares"]:
            c[SHARE_CONFIG_KEY] = str(d["shares"][n])
        if flag(n):
            c["secagg-require-malicious"] = "1"
        out[n] = c
    return out


def update_of(node: int, run_id: int) -> np.ndarray:
    return np.sin(np.arange(DIM) * 0.37 + node * 0.11 + run_id * 1.3)


def make_app(node: int) -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        u = update_of(context.node_id, context.run_id).astype(np.float32)
        return Message(RecordDict({"arrays": ArrayRecord({"w": Array(u)})}), reply_to=msg)

    secure_train(app, train, **node_options(**INSECURE))
    return app


def grid(d, run_id=1, **kw) -> FakeGrid:
    """A fresh Grid: every node gets a fresh ``context.state`` (a new run, or a
    restarted SuperNode when ``run_id`` repeats), on the same node files."""
    return FakeGrid(make_app, list(NODES), node_config=node_config(d, **kw), run_id=run_id)


def run(g: FakeGrid, session):
    return run_session(g, DESCRIPTOR, NODES, DIM, round_timeout=0.5, poll_interval=0.005,
                       session=session)


def fixed_round_session(d, rnd=424242):
    """What a malicious ServerApp builds: a configuration with a round it picks."""
    return DESCRIPTOR.make_session(NODES, DIM, trust="threshold",
                                   public=read_public(d["public"], **INSECURE), round=rnd,
                                   clip=CLIP, mode="malicious",
                                   registry=read_registry(d["registry"]), min_clients=2,
                                   **INSECURE)


def replaying(old_inputs):
    """An aggregator that asks the committee for ``old_inputs`` without the victim's."""

    class Replay(PaillierSumAggregator):
        def _send_sum(self):
            out = super()._send_sum()
            req = SignedInputs(tuple(old_inputs[c] for c in sorted(old_inputs) if c != VICTIM))
            vecs = [paillier.EncryptedVector.from_bytes(i.payload, self._pk, **INSECURE)
                    for i in req.inputs]
            self._sum, self._included = paillier.aggregate(vecs), set(req.included)
            return [Envelope(e.receiver, req) for e in out]

    return Replay


def _all_refused(info, words, round_name="encrypt"):
    first = info.value.rounds[0]
    assert first.name == round_name and not first.answered
    assert set(first.dropped) == set(NODES)
    assert all(words in why for why in first.dropped.values()), first.dropped
    assert all(r.name != "decrypt" for r in info.value.rounds)  # nothing sent to decrypt


# ------------------------------------------------------- replay across runs/restarts


def test_a_new_run_cannot_replay_a_configuration(mal):
    """Run 1 signs inputs under a configuration; run 2 (fresh ``context.state``
    on every node) reuses it to get a subset of run 1's inputs decrypted: the
    difference would be the victim's update. Every node refuses run 2."""
    s1 = fixed_round_session(mal)
    rep1 = run(grid(mal, run_id=1), s1)
    assert rep1.result.included == frozenset(NODES)
    old = dict(s1.coordinator._inputs)
    s2 = fixed_round_session(mal)
    s2.coordinator.__class__ = replaying(old)
    with pytest.raises(SessionAborted) as info:
        run(grid(mal, run_id=2), s2)
    _all_refused(info, "already took part")
    assert s2.coordinator.result is None


def test_a_restarted_node_refuses_a_configuration_it_started(mal):
    """The same run id, fresh contexts (every SuperNode restarted), same files."""
    rep = run(grid(mal, run_id=5), fixed_round_session(mal, 77))
    assert rep.result.included == frozenset(NODES)
    with pytest.raises(SessionAborted) as info:
        run(grid(mal, run_id=5), fixed_round_session(mal, 77))
    _all_refused(info, "already took part")
    # another configuration still runs on the restarted nodes
    assert run(grid(mal, run_id=5), fixed_round_session(mal, 78)).result.included == \
        frozenset(NODES)


def test_the_journal_is_written_before_the_node_answers(mal):
    """One entry per node per session, on disk when the encrypt round ends."""
    key = read_public(mal["public"], **INSECURE).key.digest

    seen: dict[int, tuple[bytes, ...]] = {}

    class Peek(PaillierSumAggregator):
        def _send_sum(self):  # after every input arrived, before any decryption
            for n in NODES:
                seen[n] = read_journal(mal["journals"] / f"node-{n}", n, key)
            return super()._send_sum()

    s = flower_session(DESCRIPTOR, NODES, DIM, None,
                       {"public": mal["public"], "clip": CLIP, "mode": "malicious",
                        "registry": mal["registry"], **INSECURE})
    s.coordinator.__class__ = Peek
    run(grid(mal), s)
    assert len(seen) == len(NODES) and all(v == (s.config.digest,) for v in seen.values())
    for n in NODES:  # the folder and the file are private to the node's user
        folder = mal["journals"] / f"node-{n}"
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(journal_file(folder, n, key)).st_mode) == 0o600
        assert [p.name for p in folder.iterdir()] == [journal_file(folder, n, key).name]


def test_a_node_without_a_journal_refuses_malicious_sessions(mal):
    with pytest.raises(SessionAborted) as info:
        run(grid(mal, journal=False), fixed_round_session(mal))
    _all_refused(info, JOURNAL_CONFIG_KEY)


@pytest.mark.parametrize("damage", ["truncate", "flip", "extend", "empty", "foreign"])
def test_a_damaged_journal_fails_closed(mal, damage):
    key = read_public(mal["public"], **INSECURE).key.digest
    run(grid(mal), fixed_round_session(mal, 1))
    for n in NODES:
        path = journal_file(mal["journals"] / f"node-{n}", n, key)
        data = path.read_bytes()
        if damage == "truncate":
            data = data[:-33]  # the last entry gone, the checksum kept
        elif damage == "flip":
            data = data[:-40] + bytes([data[-40] ^ 1]) + data[-39:]
        elif damage == "extend":
            data += b"\0"
        elif damage == "empty":
            data = b""
        else:  # the next node's journal copied here
            other = NODES[(NODES.index(n) + 1) % len(NODES)]
            folder = mal["journals"] / f"node-{other}"
            data = journal_file(folder, other, key).read_bytes()
        path.write_bytes(data)
    with pytest.raises(SessionAborted) as info:
        run(grid(mal), fixed_round_session(mal, 2))  # a new configuration, refused anyway
    words = "belongs to node" if damage == "foreign" else "corrupt or truncated"
    _all_refused(info, words)


# --------------------------------------------------------------- the key's mode


def _victim_only_flag(n: int) -> bool:
    return n == VICTIM


def test_a_semi_honest_session_on_a_malicious_key_decrypts_nothing(mal):
    """Only the victim sets secagg-require-malicious; the ServerApp runs a
    semi-honest session on the same key and sends the committee the victim's
    signed ciphertext (times E(0)) as a sum of two. Every node refuses the
    session at its start: the key was dealt for malicious mode."""
    g = grid(mal, flag=_victim_only_flag)
    s1 = flower_session(DESCRIPTOR, NODES, DIM, None,
                        {"public": mal["public"], "clip": CLIP, "mode": "malicious",
                         "registry": mal["registry"], **INSECURE})
    run(g, s1)
    victim = s1.coordinator._inputs[VICTIM].payload

    class Lying(PaillierSumAggregator):
        def _send_sum(self):
            out = super()._send_sum()
            v = paillier.EncryptedVector.from_bytes(victim, self._pk, **INSECURE)
            prod = paillier.aggregate(
                [v, paillier.encrypt(self._pk, self.layout, np.zeros(DIM), **INSECURE)])
            self._sum, self._included = prod, {3, 77}
            return [Envelope(e.receiver, EncryptedSum(frozenset({3, 77}), prod.to_bytes()))
                    for e in out]

    public = read_public(mal["public"], **INSECURE)
    s2 = DESCRIPTOR.make_session(NODES, DIM, trust="threshold", public=public,
                                 round=secrets.randbits(63), clip=CLIP, min_clients=2,
                                 **INSECURE)
    s2.coordinator.__class__ = Lying
    with pytest.raises(SessionAborted) as info:
        run(g, s2)
    first = info.value.rounds[0]
    assert not first.answered and all(r.name != "decrypt" for r in info.value.rounds)
    for n, why in first.dropped.items():
        words = "malicious-mode sessions only" if n == VICTIM else "dealt for malicious"
        assert words in why, (n, why)
    assert s2.coordinator.result is None


def test_a_malicious_session_on_a_semi_honest_key_is_refused(semi):
    """The other way round: a key dealt semi-honest runs no malicious session
    (its committee would decrypt anything in a semi-honest one)."""
    with pytest.raises(SessionAborted) as info:
        run(grid(semi), fixed_round_session(semi))
    _all_refused(info, "dealt for semi-honest")
    assert not any(semi["journals"].iterdir())  # refused before any journal entry


def test_a_semi_honest_key_needs_no_journal(semi):
    s = flower_session(DESCRIPTOR, NODES, DIM, None,
                       {"public": semi["public"], "clip": CLIP, **INSECURE})
    assert run(grid(semi, journal=False), s).result.included == frozenset(NODES)


def test_the_server_refuses_a_mode_other_than_the_keys(mal, semi):
    with pytest.raises(ParameterError, match="dealt for mode='malicious'"):
        flower_session(DESCRIPTOR, NODES, DIM, None,
                       {"public": mal["public"], "clip": CLIP, **INSECURE})
    with pytest.raises(ParameterError, match="dealt for mode='semi-honest'"):
        flower_session(DESCRIPTOR, NODES, DIM, None,
                       {"public": semi["public"], "clip": CLIP, "mode": "malicious",
                        "registry": semi["registry"], **INSECURE})
    base = {"insecure-allow-small-key-for-tests": True}
    with pytest.raises(ParameterError, match="dealt for malicious sessions only"):
        fedavg_params({**base, "paillier-public": str(mal["public"])}, 1.0)
    with pytest.raises(ParameterError, match="dealt for semi-honest sessions only"):
        fedavg_params({**base, "paillier-public": str(semi["public"]),
                       "paillier-registry": str(semi["registry"])}, 1.0)
    assert fedavg_params({**base, "paillier-public": str(mal["public"]),
                          "paillier-registry": str(mal["registry"])}, 1.0)["mode"] == \
        "malicious"


# ------------------------------------------------------------ public material codec


@pytest.fixture(scope="module")
def dealt_key():
    return tp.deal(tp.generate_keypair(256, **INSECURE), 3, 2, **INSECURE).key


def test_public_material_states_its_mode(dealt_key):
    ids = (4, 10, 2**64 - 1)
    for mode in ("semi-honest", "malicious"):
        pub = ThresholdPublic(dealt_key, ids, mode)
        back = ThresholdPublic.from_bytes(pub.to_bytes(), **INSECURE)
        assert back.mode == mode and back == pub
    a, b = ThresholdPublic(dealt_key, ids), ThresholdPublic(dealt_key, ids, "malicious")
    assert a != b and a.digest != b.digest
    # v1 (before the mode): read as semi-honest
    v1 = wire.write_ids(wire.Writer(b"PSTK", 1).blob(dealt_key.to_bytes()), ids,
                        width=64).getvalue()
    assert ThresholdPublic.from_bytes(v1, **INSECURE) == a
    with pytest.raises(ProtocolError):  # a v1 file has no mode byte
        ThresholdPublic.from_bytes(v1 + b"\x01", **INSECURE)
    v2 = a.to_bytes()
    with pytest.raises(ProtocolError, match="mode byte 2"):
        ThresholdPublic.from_bytes(v2[:-1] + b"\x02", **INSECURE)
    with pytest.raises(ParameterError, match="mode must be one of"):
        ThresholdPublic(dealt_key, ids, "curious")


# ---------------------------------------------------------------- journal file


KEY = bytes(range(32))


def test_journal_round_trip_and_limits(tmp_path):
    folder = tmp_path / "j"
    assert read_journal(folder, 5, KEY) == ()  # no folder yet: nothing recorded
    entries = [secrets.token_bytes(32) for _ in range(3)]
    write_journal(folder, 5, KEY, entries)
    assert read_journal(folder, 5, KEY) == tuple(entries)
    assert read_journal(folder, 6, KEY) == ()  # another node's file
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert len(journal_file(folder, 5, KEY).read_bytes()) == 4 + 1 + 8 + 32 + 4 + 3 * 32 + 32
    with pytest.raises(ParameterError, match="twice"):
        write_journal(folder, 5, KEY, entries + entries[:1])
    with pytest.raises(ParameterError, match="32 bytes"):
        write_journal(folder, 5, KEY, [b"short"])
    assert [p.name for p in folder.iterdir()] == [journal_file(folder, 5, KEY).name]


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes and links")
def test_unsafe_journal_files_and_folders_are_refused(tmp_path):
    folder = tmp_path / "j"
    write_journal(folder, 5, KEY, [KEY])
    path = journal_file(folder, 5, KEY)
    os.chmod(path, 0o644)
    with pytest.raises(IntegrityError, match="0600"):
        read_journal(folder, 5, KEY)
    os.chmod(path, 0o600)
    os.chmod(folder, 0o770)
    with pytest.raises(IntegrityError, match="group or others"):
        read_journal(folder, 5, KEY)
    os.chmod(folder, 0o700)
    # a symlink in place of the file, or of the folder
    real = tmp_path / "elsewhere.bin"
    real.write_bytes(path.read_bytes())
    os.chmod(real, 0o600)
    path.unlink()
    path.symlink_to(real)
    with pytest.raises(IntegrityError, match="symlink"):
        read_journal(folder, 5, KEY)
    before = real.read_bytes()  # a write replaces the link, never writes its target
    write_journal(folder, 5, KEY, [KEY, bytes(32)])
    assert not path.is_symlink() and real.read_bytes() == before
    assert read_journal(folder, 5, KEY) == (KEY, bytes(32))
    link = tmp_path / "linked"
    link.symlink_to(folder, target_is_directory=True)
    with pytest.raises(IntegrityError, match="symlink"):
        write_journal(link, 5, KEY, [KEY])
    # a FIFO is refused without blocking, a folder is not a file
    path.unlink()
    os.mkfifo(path, 0o600)
    with pytest.raises(IntegrityError, match="not a regular file"):
        read_journal(folder, 5, KEY)
    path.unlink()
    path.mkdir()
    with pytest.raises(SecAggError):
        read_journal(folder, 5, KEY)
    (tmp_path / "plain").write_text("x")
    with pytest.raises(ParameterError, match="not a folder"):
        read_journal(tmp_path / "plain", 5, KEY)


@settings(max_examples=max(60, settings().max_examples),
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_journals_raise_only_library_errors(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("fuzz")
    entries = [bytes([i]) * 32 for i in range(data.draw(st.integers(0, 3)))]
    write_journal(folder, 9, KEY, entries)
    path = journal_file(folder, 9, KEY)
    good = path.read_bytes()
    kind = data.draw(st.sampled_from(["flip", "truncate", "extend", "splice"]))
    i = data.draw(st.integers(0, len(good) - 1))
    if kind == "flip":
        bad = good[:i] + bytes([good[i] ^ (1 << data.draw(st.integers(0, 7)))]) + good[i + 1:]
    elif kind == "truncate":
        bad = good[:i]
    elif kind == "extend":
        bad = good + data.draw(st.binary(min_size=1, max_size=40))
    else:
        bad = good[:i] + data.draw(st.binary(min_size=1, max_size=40)) + good[i:]
    path.write_bytes(bad)
    try:
        got = read_journal(folder, 9, KEY)
    except SecAggError:
        return
    assert bad == good and got == tuple(entries)


def test_a_relative_journal_path_is_refused_and_write_errors_are_library_errors(
        tmp_path, monkeypatch):
    """The journal folder must be absolute (a relative one would follow the
    node's working directory); a failing write (disk full) refuses the session
    with a library error and leaves no temporary file."""
    import errno
    import os

    from flwr.app import Context, RecordDict

    from protocols.flower import journal as J
    from protocols.flower.paillier import _spend

    ctx = Context(run_id=1, node_id=7, node_config={JOURNAL_CONFIG_KEY: "journals"},
                  state=RecordDict(), run_config={})
    with pytest.raises(ParameterError, match="absolute"):
        _spend(ctx, b"k" * 32, b"d" * 32)
    folder = tmp_path / "j"

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    real_fsync = os.fsync
    monkeypatch.setattr(J.os, "fsync", full)
    with pytest.raises(ParameterError, match="cannot write the journal"):
        J.write_journal(folder, 7, b"k" * 32, [b"d" * 32])
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(J.os, "fsync", real_fsync)
    J.write_journal(folder, 7, b"k" * 32, [b"d" * 32])
    assert J.read_journal(folder, 7, b"k" * 32) == (b"d" * 32,)
