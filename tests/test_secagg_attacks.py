"""Attacks of a hand-written malicious server (and malicious clients) on real
:class:`SecAggClient` parties, every message crossing the real byte codec.

Each test plays one attack from the security review and checks that honest
clients refuse it, or that the server refuses the malicious client, and that
no output or share the attack needs ever leaves an honest client.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from protocols.secagg import (
    ConsistencyRequest,
    Message,
    SecAggClient,
    SecAggConfig,
    SecAggServer,
    UnmaskRequest,
    UnmaskResponse,
    binding,
    decode,
    encode,
)
from protocols.secagg.graph import ring_order
from secagg import kex, prg, shamir
from secagg.errors import AbortError, SecAggError
from secagg.sign import SigningKey


class Run:
    """One run of a configuration: fresh clients (same identities) and a server."""

    def __init__(self, cfg: SecAggConfig, keys: dict[int, SigningKey],
                 xs: dict[int, np.ndarray]) -> None:
        self.cfg, self.xs = cfg, xs
        self.clients = {u: SecAggClient(cfg, u, signing_key=keys.get(u), input=xs[u])
                        for u in cfg.client_ids}
        self.server = SecAggServer(cfg)

    def wire(self, m: Message) -> Message:
        return decode(encode(m, self.cfg), self.cfg)

    def start(self) -> list[Message]:
        out: list[Message] = []
        for c in self.clients.values():
            for m in c.start():
                out += self.server.handle(self.wire(m))
        return out

    def to_clients(self, msgs: list[Message], skip: tuple[int, ...] = ()) -> list[Message]:
        return [r for m in msgs if m.receiver not in skip
                for r in self.clients[m.receiver].handle(self.wire(m))]

    def to_server(self, msgs: list[Message]) -> list[Message]:
        out: list[Message] = []
        rnd = self.server.round
        for m in msgs:
            out += self.server.handle(self.wire(m))
        if self.server.round == rnd:
            out += self.server.close_round()
        return out

    def step(self, msgs: list[Message], skip: tuple[int, ...] = ()) -> list[Message]:
        return self.to_server(self.to_clients(msgs, skip))


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


def _signatures(run: Run, skip: tuple[int, ...]) -> tuple[tuple[int, bytes], ...]:
    """Run honestly up to the unmask requests (``skip`` vanish before masking);
    return the consistency signatures the server collected."""
    reqs = run.step(run.step(run.step(run.start()), skip=skip))
    assert run.server.round == "unmask"
    req = next(m for m in reqs if isinstance(m, UnmaskRequest))
    return req.signatures


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
    sigs1 = _signatures(Run(cfg, keys, xs), skip=())
    sigs2 = _signatures(Run(cfg, keys, xs), skip=(victim,))
    assert len(sigs1) >= cfg.quorum and len(sigs2) >= cfg.quorum

    run = Run(cfg, keys, xs)
    masked = run.to_clients(run.step(run.start()))
    y_victim = next(m.vector for m in masked if m.sender == victim)
    cons = run.to_server(masked)  # the genuine consistency requests of run 3
    assert all(isinstance(m, ConsistencyRequest) for m in cons)
    b_shares = [run.clients[corrupt]._held[victim][0]]
    s_shares = [run.clients[corrupt]._held[victim][1]]
    refused = []
    for group, shown, old, dropped in ((group_a, s1, sigs1, ()), (group_b, s2, sigs2, (victim,))):
        for u in group:
            req = next(m for m in cons if m.receiver == u)
            run.clients[u].handle(run.wire(dataclasses.replace(req, survivors=shown)))
            unmask = UnmaskRequest(receiver=u, survivors=tuple(v for v in shown),
                                   dropped=dropped, signatures=old)
            try:
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


# -- issue finding 2: SecAgg+ partitions in malicious mode --------------------------------------
def _arcs_dropped(cfg: SecAggConfig, starts: tuple[int, int]) -> tuple[int, ...]:
    ring = ring_order(cfg.client_ids, cfg.graph_seed)
    h = (cfg.degree or 0) // 2
    return tuple(sorted(ring[(s + i) % cfg.n] for s in starts for i in range(h)))


def test_partition_by_two_dropped_arcs_is_refused() -> None:
    """The README's malicious example (n = 20, k = 8, t = 5): the server
    "drops" two arcs of k/2 = 4 consecutive ring positions, which leaves arcs
    of 5 and 7 clients with no mask between them, every neighbourhood at its
    threshold and 12 >= quorum 11 survivors. Summing one arc's masked inputs
    and removing its self masks and its masks with the dropped clients would
    reveal the sum of those 5 clients. Every honest client refuses to sign."""
    cfg, keys, xs = _malicious(20, threshold=5, degree=8)
    dropped = _arcs_dropped(cfg, (0, 9))
    run = Run(cfg, keys, xs)
    cons = run.step(run.step(run.start()), skip=dropped)
    assert run.server.round == "consistency"  # the server side has nothing to object
    survivors = set(cfg.client_ids) - set(dropped)
    assert {m.receiver for m in cons} == survivors
    for m in cons:
        c = run.clients[m.receiver]
        with pytest.raises(AbortError, match=r"partition|connected"):
            c.handle(run.wire(m))
        assert c.state == "masked"


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
