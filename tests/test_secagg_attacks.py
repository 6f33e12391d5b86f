"""Attacks of a hand-written malicious server (and malicious clients) on real
:class:`SecAggClient` parties, every message crossing the real byte codec.

Each test plays one attack from the security review and checks that honest
clients refuse it, or that the server refuses the malicious client, and that
no output or share the attack needs ever leaves an honest client.
"""

from __future__ import annotations

import dataclasses
import math
import os
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from secagg_parties import MessageParty, WiredParties

from protocols.secagg import (
    AdvertiseKeys,
    ConsistencyRequest,
    KeyBroadcast,
    MaskedInput,
    Message,
    SealedShare,
    SecAggClient,
    SecAggConfig,
    SecAggServer,
    ShareForward,
    ShareKeys,
    UnmaskRequest,
    UnmaskResponse,
    binding,
    partition,
)
from protocols.secagg.graph import ring_order
from secagg import kex, prg, shamir
from secagg.errors import AbortError, IntegrityError, ParameterError, ProtocolError, SecAggError
from secagg.sign import SigningKey

_Messages = MessageParty  # the parties' verbs, as message objects


class _Restarting(_Messages):
    """A client whose process restarts before every message: it is saved with
    ``export_state`` and rebuilt from those bytes, the configuration's bytes
    and its identity key alone (as a transport that restarts clients does)."""

    def __init__(self, client: SecAggClient, signing_key: SigningKey | None) -> None:
        super().__init__(client)
        self.signing_key = signing_key
        self.restarts = 0

    def _restart(self) -> None:
        old: SecAggClient = self.party  # type: ignore[assignment]
        state = old.export_state()
        cfg = SecAggConfig.from_bytes(old.config.to_bytes())
        new = SecAggClient.restore(cfg, state, signing_key=self.signing_key)
        assert new.export_state() == state and new.target == old.target
        self.party, self.restarts = new, self.restarts + 1

    def start(self) -> list[Message]:
        self._restart()
        return super().start()

    def handle(self, msg: Message) -> list[Message]:
        self._restart()
        return super().handle(msg)


class Run(WiredParties):
    """One run of a configuration: fresh clients (same identities) and a server.
    With ``restart`` every client is saved and restored before each message;
    ``target`` is every client's :class:`partition.SecurityTarget`."""

    def __init__(self, cfg: SecAggConfig, keys: dict[int, SigningKey],
                 xs: dict[int, np.ndarray], *, restart: bool = False,
                 target: partition.SecurityTarget | None = None) -> None:
        self.cfg, self.xs = cfg, xs
        self.clients: dict[int, Any] = {}
        for u in cfg.client_ids:
            c = SecAggClient(cfg, u, signing_key=keys.get(u), input=xs[u], target=target)
            self.clients[u] = _Restarting(c, keys.get(u)) if restart else _Messages(c)
        self.server: Any = _Messages(SecAggServer(cfg))



def _malicious(n: int, *, threshold: int, degree: int | None = None,
               corrupt_fraction: float = 0.05, session_id: int = 7,
               graph_seed: bytes | None = None) -> tuple[SecAggConfig, dict[int, SigningKey],
                                                          dict[int, np.ndarray]]:
    keys = {u: SigningKey.generate() for u in range(1, n + 1)}
    cfg = SecAggConfig.create(
        keys, 4, threshold=threshold, degree=degree, mode="malicious",
        corrupt_fraction=corrupt_fraction, session_id=session_id,
        graph_seed=graph_seed if graph_seed is not None else os.urandom(32),
        registry={u: k.verify_key() for u, k in keys.items()})
    rng = np.random.default_rng(n)
    xs = {u: rng.integers(0, 2**32, 4, dtype=np.uint32) for u in keys}
    return cfg, keys, xs


def _signatures(run: Run, skip: tuple[int, ...]) -> tuple[
        tuple[tuple[int, bytes], ...], tuple[tuple[int, bytes], ...]]:
    """Run honestly up to the unmask requests (``skip`` vanish before masking);
    return the consistency signatures the server collected and the roster it
    showed."""
    cons = run.step(run.step(run.start()), skip=skip)
    assert all(isinstance(m, ConsistencyRequest) for m in cons)
    reqs = run.step(cons)
    assert run.server.round == "unmask"
    req = next(m for m in reqs if isinstance(m, UnmaskRequest))
    return req.signatures, cons[0].roster  # type: ignore[union-attr]


def _rebuild_input(run: Run, victim: int, b_shares: list[shamir.Share],
                   s_shares: list[shamir.Share], y: np.ndarray) -> np.ndarray:
    """What the server computes once it holds both kinds of the victim's shares."""
    cfg = run.cfg
    b_seed = shamir.combine(b_shares)
    s_key = kex.PrivateKey.from_bytes(shamir.combine(s_shares))
    x = y.copy()
    prg.expand_into(x, b_seed, binding.mask_label(cfg, "self"), subtract=True)
    for v in sorted(cfg.neighbours[victim]):
        seed = kex.agree(s_key, kex.PublicKey.from_bytes(run.server._keys[v].s_public),
                         binding.kex_info(cfg, binding.PAIRWISE_MASK, victim, v))
        prg.expand_into(x, seed, binding.mask_label(cfg, "pair"), subtract=victim < v)
    return x


# -- issue finding 1: a repeated session must not reveal an input ------------------------------
def test_three_run_replay_does_not_rebuild_a_victims_input() -> None:
    _three_run_replay(restart=False)


def _three_run_replay(*, restart: bool) -> Run:
    """n = 11, malicious mode, complete graph, t = 5, one corrupt client (11)
    within the declared fraction 0.1. The server runs the same configuration
    three times: run 1 with everyone (signatures on S1, victim included), run 2
    with the victim vanishing (signatures on S2, victim excluded). In run 3 it
    shows group A the set S1 and group B the set S2, and answers each with the
    signatures of the earlier run, to collect the victim's self-mask shares
    from A and its mask-key shares from B."""
    cfg, keys, xs = _malicious(11, threshold=5, corrupt_fraction=0.1)
    assert cfg.quorum == 7
    victim, corrupt = 1, 11
    group_a, group_b = (2, 3, 4, 5), (6, 7, 8, 9, 10)
    s1 = tuple(cfg.client_ids)
    s2 = tuple(u for u in s1 if u != victim)
    sigs1, roster1 = _signatures(Run(cfg, keys, xs), skip=())
    sigs2, roster2 = _signatures(Run(cfg, keys, xs), skip=(victim,))
    assert len(sigs1) >= cfg.quorum and len(sigs2) >= cfg.quorum

    # run 3, twice: with this run's roster, and with the rosters of runs 1 and 2
    # (so that the signatures of those runs would verify)
    for replay_roster in (False, True):
        run = Run(cfg, keys, xs, restart=restart)
        masked = run.to_clients(run.step(run.start()))
        y_victim = next(m.vector for m in masked if isinstance(m, MaskedInput)
                        and m.sender == victim)
        cons = run.to_server(masked)  # the genuine consistency requests of run 3
        assert all(isinstance(m, ConsistencyRequest) for m in cons)
        b_shares = [run.clients[corrupt]._held[victim][0]]
        s_shares = [run.clients[corrupt]._held[victim][1]]
        refused = []
        for group, shown, old, roster, dropped in (
                (group_a, s1, sigs1, roster1, ()), (group_b, s2, sigs2, roster2, (victim,))):
            for u in group:
                req = next(m for m in cons if m.receiver == u)
                if replay_roster:
                    req = dataclasses.replace(req, roster=roster)
                unmask = UnmaskRequest(receiver=u, survivors=shown, dropped=dropped,
                                       signatures=old)
                try:
                    run.clients[u].handle(run.wire(dataclasses.replace(req, survivors=shown)))
                    (resp,) = run.clients[u].handle(run.wire(unmask))
                except SecAggError:
                    refused.append(u)
                    continue
                assert isinstance(resp, UnmaskResponse)
                for r in resp.shares:
                    if r.owner == victim:
                        (b_shares if r.kind == "b" else s_shares).append(r.share)
        if len(b_shares) >= cfg.threshold and len(s_shares) >= cfg.threshold:
            x = _rebuild_input(run, victim, b_shares, s_shares, np.array(y_victim))
            pytest.fail(f"the replay rebuilt client {victim}'s input "
                        f"(exact: {np.array_equal(x, xs[victim])})")
        assert sorted(refused) == sorted(group_a + group_b)
    return run


# -- issue finding 2: SecAgg+ partitions in malicious mode --------------------------------------
def _arcs_dropped(cfg: SecAggConfig, starts: tuple[int, int]) -> tuple[int, ...]:
    ring = ring_order(cfg.client_ids, cfg.graph_seed)
    h = (cfg.degree or 0) // 2
    return tuple(sorted(ring[(s + i) % cfg.n] for s in starts for i in range(h)))


def test_partition_by_two_dropped_arcs_is_refused() -> None:
    _two_dropped_arcs(restart=False)


def _two_dropped_arcs(*, restart: bool) -> Run:
    """n = 20, k = 8, t = 5 with no corrupt client: the server
    "drops" two arcs of k/2 = 4 consecutive ring positions, which leaves arcs
    of 5 and 7 clients with no mask between them, every neighbourhood at its
    threshold and 12 >= quorum 11 survivors. Summing one arc's masked inputs
    and removing its self masks and its masks with the dropped clients would
    reveal the sum of those 5 clients. Every honest client refuses to sign."""
    cfg, keys, xs = _malicious(20, threshold=5, degree=8)
    dropped = _arcs_dropped(cfg, (0, 9))
    run = Run(cfg, keys, xs, restart=restart)
    cons = run.step(run.step(run.start()), skip=dropped)
    assert run.server.round == "consistency"  # the server side has nothing to object
    survivors = set(cfg.client_ids) - set(dropped)
    assert {m.receiver for m in cons} == survivors
    for m in cons:
        c = run.clients[m.receiver]
        with pytest.raises(AbortError, match=r"partition|connected"):
            c.handle(run.wire(m))
        assert c.state == "masked"
    return run


def _stricter_target(*, restart: bool) -> Run:
    """n = 20, k = 8, t = 5 built for 15% corrupt clients, clients with that
    target (window bound B = 3; the default 5% target gives B = 1). The server
    drops two clients in each of two separated windows of k/2 positions: each
    window keeps 2 survivors, within what 3 corrupt clients can fill, so these
    clients refuse a set that a default-target client would sign."""
    cfg, keys, xs = _malicious(20, threshold=5, degree=8, corrupt_fraction=0.15)
    strict = partition.SecurityTarget(corrupt_fraction=0.15)
    assert partition.malicious_security(cfg, strict)[1] == 3
    assert partition.malicious_security(cfg, partition.SecurityTarget())[1] == 1
    ring = ring_order(cfg.client_ids, cfg.graph_seed)
    dropped = tuple(sorted(ring[p] for p in (1, 2, 11, 12)))
    survivors = frozenset(cfg.client_ids) - set(dropped)
    partition.check_survivors(cfg, survivors, 1)  # what a default-target client accepts
    run = Run(cfg, keys, xs, restart=restart, target=strict)
    cons = run.step(run.step(run.start()), skip=dropped)
    assert {m.receiver for m in cons} == survivors
    for m in cons:
        c = run.clients[m.receiver]
        with pytest.raises(AbortError, match="partition"):
            c.handle(run.wire(m))
        assert c.state == "masked"
    return run


def test_partition_is_refused_with_every_view_the_server_can_show() -> None:
    """The same cut shown as two different survivor sets, one per side: the
    quorum is out of reach for each side, and no side signs a partitioned set."""
    cfg, keys, xs = _malicious(20, threshold=5, degree=8)
    ring = ring_order(cfg.client_ids, cfg.graph_seed)
    dropped = _arcs_dropped(cfg, (0, 9))
    run = Run(cfg, keys, xs)
    cons = run.step(run.step(run.start()), skip=dropped)
    side_a = frozenset(ring[4:9])
    side_b = frozenset(cfg.client_ids) - side_a - set(dropped)
    signed = 0
    for m in cons:
        shown = side_a if m.receiver in side_a else side_b
        try:
            run.clients[m.receiver].handle(run.wire(
                dataclasses.replace(m, survivors=tuple(sorted(shown | {m.receiver})))))
            signed += 1
        except SecAggError:
            pass
    assert signed == 0


def test_a_weak_configuration_is_refused_by_every_honest_client() -> None:
    """Degree 2 and threshold 2 at n = 20: one corrupt client on each side of a
    ring position cuts the ring, whatever the dropouts. Every client refuses
    the configuration before sending anything; derived parameters pass."""
    keys = {u: SigningKey.generate() for u in range(1, 21)}
    reg = {u: k.verify_key() for u, k in keys.items()}
    weak = SecAggConfig.create(keys, 4, threshold=2, degree=2, mode="malicious",
                               graph_seed=os.urandom(32), registry=reg)
    for u in weak.client_ids:
        with pytest.raises(ParameterError, match="degree 2 and threshold 2"):
            SecAggClient(weak, u, signing_key=keys[u])
    # the complete graph with t <= C corrupt clients (here C = 2 of 40)
    keys40 = {u: SigningKey.generate() for u in range(1, 41)}
    reg40 = {u: k.verify_key() for u, k in keys40.items()}
    low_t = SecAggConfig.create(keys40, 4, threshold=2, degree="complete", mode="malicious",
                                registry=reg40)
    with pytest.raises(ParameterError, match="does not exceed the 2 corrupt"):
        SecAggClient(low_t, 1, signing_key=keys40[1])
    SecAggClient(dataclasses.replace(low_t, threshold=3), 1, signing_key=keys40[1])
    # an all-zero ring seed is not random
    zero = dataclasses.replace(SecAggConfig.create(keys, 4, degree=8, threshold=5,
                                                   mode="malicious", registry=reg),
                               graph_seed=bytes(32))
    with pytest.raises(ParameterError, match="graph seed"):
        SecAggClient(zero, 1, signing_key=keys[1])
    # a client that tolerates more corrupt clients asks for more
    ok = SecAggConfig.create(keys, 4, degree=8, threshold=5, mode="malicious", registry=reg)
    SecAggClient(ok, 1, signing_key=keys[1])
    with pytest.raises(ParameterError, match="quorum"):
        SecAggClient(ok, 1, signing_key=keys[1],
                     target=partition.SecurityTarget(corrupt_fraction=0.3))


def test_quorum_lower_bounds_on_both_sides() -> None:
    """Two quorums must share an honest client: the configuration accepts
    floor(n/2) + 1 and refuses one less; a client with corrupt fraction gamma
    accepts floor((n + C)/2) + 1 and refuses one less."""
    keys = {u: SigningKey.generate() for u in range(1, 21)}
    cfg = SecAggConfig.create(keys, 4, degree="complete", threshold=11, mode="malicious",
                              registry={u: k.verify_key() for u, k in keys.items()})
    assert dataclasses.replace(cfg, quorum=11).quorum == 11
    with pytest.raises(ParameterError, match="quorum"):
        dataclasses.replace(cfg, quorum=10)
    target = partition.SecurityTarget(corrupt_fraction=0.2)  # C = 4: q = 13
    SecAggClient(dataclasses.replace(cfg, quorum=13), 1, signing_key=keys[1], target=target)
    with pytest.raises(ParameterError, match="quorum 12 is below"):
        SecAggClient(dataclasses.replace(cfg, quorum=12), 1, signing_key=keys[1],
                     target=target)


def _brute_force_partitioned(cfg: SecAggConfig, survivors: frozenset[int], bound: int) -> bool:
    """Two windows of k/2 ring positions, each with at most ``bound`` survivors,
    with a survivor outside both on each side: every pair tried."""
    ring = ring_order(cfg.client_ids, cfg.graph_seed)
    n, h = cfg.n, (cfg.degree or 0) // 2
    for i in range(n):
        wi = {(i + a) % n for a in range(h)}
        if sum(ring[p] in survivors for p in wi) > bound:
            continue
        for j in range(n):
            wj = {(j + a) % n for a in range(h)}
            if wi & wj or sum(ring[p] in survivors for p in wj) > bound:
                continue
            arc1 = [(i + h + a) % n for a in range((j - i - h) % n)]
            arc2 = [(j + h + a) % n for a in range((i - j - h) % n)]
            if any(ring[p] in survivors for p in arc1) and any(ring[p] in survivors
                                                              for p in arc2):
                return True
    return False


def _connected(cfg: SecAggConfig, nodes: frozenset[int]) -> bool:
    if not nodes:
        return True
    start = next(iter(nodes))
    seen, todo = {start}, [start]
    while todo:
        u = todo.pop()
        for v in cfg.neighbours[u] & nodes:
            if v not in seen:
                seen.add(v)
                todo.append(v)
    return seen == nodes


@settings(max_examples=150, deadline=None)
@given(st.integers(6, 30), st.data())
def test_survivor_check_matches_brute_force_and_implies_connectivity(
        n: int, data: st.DataObject) -> None:
    k = data.draw(st.sampled_from(range(2, n - 1, 2)), label="k")
    cfg = SecAggConfig.create(range(1, n + 1), 2, degree=k, threshold=2,
                              graph_seed=data.draw(st.binary(min_size=32, max_size=32)))
    survivors = frozenset(data.draw(st.sets(st.sampled_from(cfg.client_ids), min_size=1)))
    bound = data.draw(st.integers(0, k // 2 - 1), label="bound")
    want = _brute_force_partitioned(cfg, survivors, bound)
    try:
        partition.check_survivors(cfg, survivors, bound)
        refused = False
    except AbortError:
        refused = True
    assert refused == want
    if not refused:  # any <= bound survivors per window may be corrupt: still connected
        corrupt = data.draw(st.sets(st.sampled_from(sorted(survivors))), label="corrupt")
        ring = ring_order(cfg.client_ids, cfg.graph_seed)
        h = k // 2
        if all(sum(ring[(i + a) % n] in corrupt for a in range(h)) <= bound
               for i in range(n)):
            assert _connected(cfg, survivors - corrupt)


def test_hypergeometric_tail_against_exact_fractions() -> None:
    for pop, marked, draws in [(19, 1, 8), (199, 10, 82), (200, 10, 41), (999, 50, 78),
                               (40, 0, 6), (30, 30, 5)]:
        for at_least in range(0, min(marked, draws) + 2):
            exact = sum(Fraction(math.comb(marked, x) * math.comb(pop - marked, draws - x),
                                 math.comb(pop, draws))
                        for x in range(at_least, min(marked, draws) + 1))
            got = partition.hypergeometric_tail(pop, marked, draws, at_least)
            assert got == pytest.approx(float(exact), rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("derivation", ["semi-honest", "malicious"])
def test_partition_at_n_200_with_derived_parameters(derivation: str) -> None:
    """n = 200, dropout fraction 0.15: k = 82, t = 41 (what the semi-honest
    derivation gave with Hoeffding's bound, and malicious mode used before),
    and the malicious derivation's own.
    Ten corrupt clients sit at random ring positions. The server drops the
    honest clients of two windows of k/2 positions 49 positions apart, keeping
    the corrupt ones, which would cut the honest survivors apart: refused.
    Random 15% dropouts are accepted."""
    keys = {u: SigningKey.generate().verify_key() for u in range(1, 201)}
    if derivation == "semi-honest":
        k, t = 82, 41
        cfg = SecAggConfig.create(keys, 2, degree=k, threshold=t, mode="malicious",
                                  registry=keys)
    else:
        cfg = SecAggConfig.create(keys, 2, mode="malicious", registry=keys,
                                  dropout_fraction=0.15)
    assert cfg.degree is not None
    h = cfg.degree // 2
    bits, bound = partition.malicious_security(cfg, partition.SecurityTarget())
    assert bits >= 40 and bound < h
    ring = ring_order(cfg.client_ids, cfg.graph_seed)
    rng = np.random.default_rng(3)
    corrupt = set(rng.choice(cfg.client_ids, 10, replace=False).tolist())
    cut = [ring[p % 200] for s in (0, h + 49) for p in range(s, s + h)]
    survivors = frozenset(cfg.client_ids) - (set(cut) - corrupt)
    assert len(survivors) >= (cfg.quorum or 0)
    assert not _connected(cfg, survivors - corrupt)
    with pytest.raises(AbortError, match="partition"):
        partition.check_survivors(cfg, survivors, bound)
    for _ in range(5):
        drop = set(rng.choice(cfg.client_ids, 30, replace=False).tolist())
        partition.check_survivors(cfg, frozenset(cfg.client_ids) - drop, bound)


# -- issue finding 4: distinct senders, whatever path a message came in by ---------------------
def test_repeated_entries_in_message_objects_are_refused() -> None:
    """handle() also takes message objects, which never went through the
    codec's strictly-increasing check: one signature repeated up to the quorum,
    one neighbour listed four times in a share forward or a key broadcast, a
    survivor listed twice."""
    cfg, keys, xs = _malicious(8, threshold=3, corrupt_fraction=0.0)
    run = Run(cfg, keys, xs)
    kbs = run.start()
    kb = next(m for m in kbs if m.receiver == 1)
    assert isinstance(kb, KeyBroadcast)
    c1 = run.clients[1]
    with pytest.raises(ProtocolError, match="twice"):
        c1.handle(dataclasses.replace(kb, keys=(kb.keys[0],) + (kb.keys[1],) * 4))
    assert c1.state == "advertised"
    fwds = run.to_server(run.to_clients(kbs))
    fwd = next(m for m in fwds if m.receiver == 1)
    assert isinstance(fwd, ShareForward)
    with pytest.raises(ProtocolError, match="twice"):
        c1.handle(dataclasses.replace(fwd, shares=(fwd.shares[0],) * 4 + fwd.shares[1:2]))
    assert c1.state == "shared"
    cons = run.to_server(run.to_clients(fwds))
    req = next(m for m in cons if m.receiver == 1)
    assert isinstance(req, ConsistencyRequest)
    with pytest.raises(ProtocolError, match="twice"):
        c1.handle(dataclasses.replace(req, survivors=(1, 1, *req.survivors[1:])))
    assert c1.state == "masked"
    reqs = run.to_server(run.to_clients(cons))
    ureq = next(m for m in reqs if m.receiver == 1)
    assert isinstance(ureq, UnmaskRequest) and cfg.quorum is not None
    one = ureq.signatures[0]
    with pytest.raises(SecAggError):
        c1.handle(dataclasses.replace(ureq, signatures=(one,) * cfg.quorum))
    assert c1.state == "signed"
    (resp,) = c1.handle(ureq)
    assert isinstance(resp, UnmaskResponse)


def test_server_counts_distinct_senders_for_message_objects() -> None:
    cfg, keys, xs = _malicious(6, threshold=3, corrupt_fraction=0.0)
    run = Run(cfg, keys, xs)
    kbs = run.start()
    share_keys = run.to_clients(kbs)
    sk = share_keys[0]
    assert isinstance(sk, ShareKeys)
    with pytest.raises(ProtocolError):
        run.server.handle(dataclasses.replace(sk, shares=(sk.shares[0],) * len(sk.shares)))
    assert sk.sender in run.server.waiting_for
    run.server.handle(sk)
    with pytest.raises(ProtocolError, match="duplicate"):
        run.server.handle(sk)
    assert sk.sender not in run.server.waiting_for


# -- issue finding 3: one malicious client must not abort every round ---------------------------
_ORDER_8 = (325606250916557431795983626356110631294008115727848805560023387167927233504
            ).to_bytes(32, "little")


def _bad_advert(cfg: SecAggConfig, keys: dict[int, SigningKey], u: int, c_pub: bytes,
                s_pub: bytes) -> AdvertiseKeys:
    """A malicious client's advertisement: any keys, validly signed by its identity."""
    sig = b""
    if cfg.mode == "malicious":
        sig = keys[u].sign(binding.advertise_payload(cfg, u, c_pub, s_pub))
    return AdvertiseKeys(sender=u, c_public=c_pub, s_public=s_pub, signature=sig)


@pytest.mark.parametrize("mode", ["semi-honest", "malicious"])
@pytest.mark.parametrize("attack", ["zero", "order-8", "order-8 high bit", "copy c",
                                    "copy s as c"])
def test_a_malicious_advertisement_drops_only_its_sender(mode: str, attack: str) -> None:
    n = 7
    keys = {u: SigningKey.generate() for u in range(1, n + 1)}
    cfg = SecAggConfig.create(
        keys, 4, threshold=4, degree="complete", mode=mode,  # type: ignore[arg-type]
        registry={u: k.verify_key() for u, k in keys.items()} if mode == "malicious" else None)
    rng = np.random.default_rng(0)
    xs = {u: rng.integers(0, 2**32, 4, dtype=np.uint32) for u in keys}
    run = Run(cfg, keys if mode == "malicious" else {}, xs)
    bad = 7
    advs = {u: run.clients[u].start()[0] for u in range(1, n)}
    for u in range(1, n):
        assert run.server.handle(run.wire(advs[u])) == []
    honest = advs[1]
    assert isinstance(honest, AdvertiseKeys)
    fresh = kex.PrivateKey.generate().public_key().to_bytes()
    c_pub, s_pub = {
        "zero": (bytes(32), fresh),
        "order-8": (fresh, _ORDER_8),
        "order-8 high bit": (bytes(_ORDER_8[:31]) + bytes([_ORDER_8[31] | 0x80]), fresh),
        "copy c": (honest.c_public, fresh),
        "copy s as c": (honest.s_public, fresh),
    }[attack]
    with pytest.raises(ProtocolError, match=r"low-order|already advertised"):
        run.server.handle(run.wire(_bad_advert(cfg, keys, bad, c_pub, s_pub)))
    kbs = run.server.close_round()
    assert run.server.live["advertise"] == frozenset(range(1, n))
    rest = run.step(run.step(kbs))
    while run.server.round is not None:
        rest = run.step(rest)
    assert run.server.result is not None
    want = sum((xs[u] for u in range(1, n)), np.zeros(4, np.uint32))
    np.testing.assert_array_equal(run.server.result.raw_sum, want)


@pytest.mark.parametrize("attack", ["low-order c", "low-order s", "copied key"])
def test_a_client_excludes_a_bad_key_the_server_forwarded(attack: str) -> None:
    _excluded_key(attack, restart=False)


def _excluded_key(attack: str, *, restart: bool) -> Run:
    """A server that forwards a bad key anyway (an older or a lying server):
    the client leaves that neighbour out instead of aborting, up to the
    unmasking (where it holds no share of that neighbour)."""
    cfg, keys, xs = _malicious(8, threshold=3, corrupt_fraction=0.0)
    run = Run(cfg, keys, xs, restart=restart)
    kbs = run.start()
    kb = next(m for m in kbs if m.receiver == 1)
    assert isinstance(kb, KeyBroadcast)
    entries = list(kb.keys)
    victim = entries[2]
    c_pub, s_pub = victim.c_public, victim.s_public
    if attack == "low-order c":
        c_pub = bytes(32)
    elif attack == "low-order s":
        s_pub = _ORDER_8
    else:
        c_pub = entries[1].c_public
    sig = keys[victim.client].sign(binding.advertise_payload(cfg, victim.client, c_pub, s_pub))
    entries[2] = dataclasses.replace(victim, c_public=c_pub, s_public=s_pub, signature=sig)
    (out,) = run.clients[1].handle(run.wire(dataclasses.replace(kb, keys=tuple(entries))))
    assert isinstance(out, ShareKeys)
    excluded = {victim.client} | ({entries[1].client} if attack == "copied key" else set())
    assert {s.peer for s in out.shares} == set(cfg.neighbours[1]) - excluded
    # the excluded neighbours' shares are forwarded anyway: client 1 skips them
    others = [r for m in kbs if m.receiver != 1
              for r in run.clients[m.receiver].handle(run.wire(m))]
    sealed = tuple(SealedShare(m.sender, next(s.ciphertext for s in m.shares if s.peer == 1))
                   for m in sorted(others, key=lambda m: m.sender))
    assert excluded <= {s.peer for s in sealed}
    (y,) = run.clients[1].handle(run.wire(ShareForward(receiver=1, shares=sealed)))
    assert isinstance(y, MaskedInput)
    assert set(run.clients[1]._held) == set(cfg.client_ids) - excluded
    return run


@pytest.mark.parametrize("attack", ["replay", "partition", "stricter target", "excluded key"])
def test_a_client_restored_before_every_message_refuses_the_attacks(attack: str) -> None:
    """A transport that restarts every client before each message (saved with
    ``export_state``, rebuilt with ``restore`` from bytes and the identity key)
    keeps every check of this file: the three-run replay is refused (the
    signed session binding survives the restart), a partitioning survivor set
    is refused (the window bound, and the client's own stricter target,
    survive), and a neighbour excluded for a bad key stays excluded."""
    run = {"replay": lambda: _three_run_replay(restart=True),
           "partition": lambda: _two_dropped_arcs(restart=True),
           "stricter target": lambda: _stricter_target(restart=True),
           "excluded key": lambda: _excluded_key("copied key", restart=True)}[attack]()
    restarts = [c.restarts for c in run.clients.values()]
    assert min(restarts) >= 1 and max(restarts) >= 3  # every client, and up to the attack


def test_low_order_list_matches_x25519() -> None:
    """Every key the check calls low-order makes X25519 refuse the agreement,
    in canonical and non-canonical encodings; random keys never do."""
    from protocols.secagg.keycheck import is_low_order
    from secagg.errors import IntegrityError

    me = kex.PrivateKey.generate()
    p = 2**255 - 19
    order8 = int.from_bytes(_ORDER_8, "little")
    for u in (0, 1, p - 1, p, p + 1, order8, order8 + p if order8 + p < 2**255 else order8):
        for top in (0, 1 << 255):
            key = ((u | top) % 2**256).to_bytes(32, "little")
            assert is_low_order(key)
            with pytest.raises(IntegrityError):
                kex.agree(me, kex.PublicKey.from_bytes(key), b"ctx")
    for _ in range(200):
        key = os.urandom(32)
        assert not is_low_order(key)


def test_an_advertisement_replayed_from_another_run_never_enters_a_mask() -> None:
    """Same configuration and session id twice: the server shows client 1 the
    run-1 advertisement of client 2 (validly signed, same digest) in run 2.
    Client 2's run-2 shares then fail to open at client 1, so client 1 never
    masks with the replayed key; without them it masks without client 2."""
    cfg, keys, xs = _malicious(6, threshold=3, corrupt_fraction=0.0)
    first = Run(cfg, keys, xs)
    kb1 = next(m for m in first.start() if m.receiver == 1)
    assert isinstance(kb1, KeyBroadcast)
    old = next(e for e in kb1.keys if e.client == 2)
    run = Run(cfg, keys, xs)
    kbs = run.start()
    kb = next(m for m in kbs if m.receiver == 1)
    assert isinstance(kb, KeyBroadcast)
    replayed = dataclasses.replace(kb, keys=tuple(old if e.client == 2 else e for e in kb.keys))
    run.clients[1].handle(run.wire(replayed))  # signature valid: accepted
    others = [r for m in kbs if m.receiver != 1 for r in run.clients[m.receiver].handle(m)]
    sealed = {m.sender: next(s.ciphertext for s in m.shares if s.peer == 1)
              for m in others if isinstance(m, ShareKeys)}
    with_2 = ShareForward(receiver=1, shares=tuple(SealedShare(v, ct)
                                                   for v, ct in sorted(sealed.items())))
    with pytest.raises(IntegrityError):
        run.clients[1].handle(with_2)
    without_2 = ShareForward(receiver=1, shares=tuple(SealedShare(v, ct) for v, ct
                                                      in sorted(sealed.items()) if v != 2))
    (y,) = run.clients[1].handle(without_2)
    assert isinstance(y, MaskedInput)
