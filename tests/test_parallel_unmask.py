"""The SecAgg server's unmasking as work items over a mapper: the same bits in
one process and over the simulator's workers, failures surfaced as library
errors (never a hang), lying share holders refused as before, and the
running sum untouched by a failing item."""

from __future__ import annotations

import dataclasses
import os
import types
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from secagg_parties import MessageParty, WiredParties

from protocols import parallel, simulator
from protocols.parallel import SEQUENTIAL, task
from protocols.secagg import SecAggClient, SecAggConfig, SecAggServer, UnmaskResponse, simulate
from protocols.secagg import unmask as um
from protocols.secagg.protocol import SECAGG_PLUS
from protocols.simulator import WorkerError, run
from secagg import kex, prg, shamir
from secagg.errors import IntegrityError, LocalProtocolError, ParameterError, SecAggError


def _inputs(n: int, d: int, seed: int = 0) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {500 + 3 * u: rng.uniform(-1.0, 1.0, d) for u in range(n)}


@pytest.fixture
def pooled_maps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the item batches the simulator's pool ran in its workers."""
    calls: list[int] = []
    original = simulator._Pool._map

    def spy(self: Any, name: str, items: list[bytes]) -> Iterator[bytes]:
        calls.append(len(items))
        return original(self, name, items)

    monkeypatch.setattr(simulator._Pool, "_map", spy)
    return calls


# -- same bits, one process or two ---------------------------------------------------------
@pytest.mark.parametrize(("mode", "neighbors", "dropouts"), [
    ("semi-honest", 8, {"masked_input": [503, 521], "unmask": [530]}),
    ("semi-honest", "complete", {"masked_input": [512], "unmask": [500, 527]}),
    ("malicious", 8, {"masked_input": [506], "consistency": [515], "unmask": [524]}),
    ("malicious", "complete", {"masked_input": [509, 533], "unmask": [518]}),
])
def test_unmasking_over_two_workers_gives_the_sequential_bits(
        mode: str, neighbors: Any, dropouts: dict, pooled_maps: list[int]) -> None:
    inputs = _inputs(12, 40, seed=len(dropouts))
    seq = simulate(inputs, seed=7, workers=1, mode=mode, neighbors=neighbors,
                   dropouts=dropouts)
    par = simulate(inputs, seed=7, workers=2, mode=mode, neighbors=neighbors,
                   dropouts=dropouts)
    assert pooled_maps, "the unmasking did not run in the workers"
    assert seq.included == par.included
    assert seq.raw_sum.dtype == par.raw_sum.dtype
    np.testing.assert_array_equal(seq.raw_sum, par.raw_sum)
    assert par.included == frozenset(inputs) - set(dropouts["masked_input"])
    exact = np.sum([inputs[u] for u in par.included], axis=0)
    assert np.max(np.abs(par.sum - exact)) < 1e-3


def test_unmasking_in_the_pool_or_not_gives_the_same_bits(pooled_maps: list[int]) -> None:
    inputs = _inputs(10, 30, seed=2)
    drops = {"masked_input": [506, 515]}
    out = []
    for pooled in (False, True):
        before = len(pooled_maps)
        res = run(SECAGG_PLUS, inputs, seed=3, workers=2, server_pool=pooled, neighbors=6,
                  dropouts=drops)
        assert (len(pooled_maps) > before) == pooled
        out.append(res.raw_sum)
    np.testing.assert_array_equal(*out)


# -- the work items alone --------------------------------------------------------------------
def _secrets(d: int, dtype: Any) -> tuple[list[um.SelfSecret], list[um.DroppedSecret],
                                           np.ndarray]:
    """Random secrets as the server holds them, and the correction they imply,
    computed directly from the PRG."""
    t, holders = 3, 5
    selves = []
    expected = np.zeros(d, dtype=dtype)
    for u in range(1, 6):
        seed = prg.fresh_seed()
        selves.append(um.SelfSecret(u, tuple(shamir.split(seed, holders, t)[1:4])))
        prg.expand_into(expected, seed, b"self", subtract=True)
    dropped = []
    for v in (7, 8):
        key = kex.PrivateKey.generate()
        peers = []
        for u in (1, 3, 9):
            other = kex.PrivateKey.generate().public_key()
            info = kex.context("test", 1, u, v)
            peers.append((other.to_bytes(), info, u < v))
            prg.expand_into(expected, kex.agree(key, other, info), b"pair", subtract=u < v)
        shares = tuple(shamir.split(key.to_bytes(), holders, t)[:3])
        dropped.append(um.DroppedSecret(v, shares, key.public_key().to_bytes(), tuple(peers)))
    return selves, dropped, expected


@pytest.mark.parametrize("dtype", [np.uint32, np.uint64])
def test_any_chunking_gives_the_direct_correction(dtype: Any) -> None:
    d = 50
    selves, dropped, expected = _secrets(d, dtype)
    for width in (1, 2, 5):
        items = um.plan(d, np.dtype(dtype), b"self", b"pair", selves, dropped, width)
        assert len(items) == 1 if width == 1 else 1 < len(items) <= um.CHUNKS_PER_WORKER * width
        total = np.zeros(d, dtype=dtype)
        for data in reversed([um.run_chunk(i) for i in items]):  # order is irrelevant
            np.add(total, um.decode_correction(data, d, np.dtype(dtype)), out=total)
        np.testing.assert_array_equal(total, expected)


def test_a_key_not_matching_its_advertisement_is_refused() -> None:
    selves, dropped, _ = _secrets(8, np.uint32)
    bad = dataclasses.replace(dropped[1], s_public=dropped[0].s_public)
    (item,) = um.plan(8, np.dtype(np.uint32), b"s", b"p", selves, [dropped[0], bad], 1)
    with pytest.raises(IntegrityError, match="client 8 does not match its advertised"):
        um.run_chunk(item)


def test_truncated_or_padded_items_are_refused() -> None:
    selves, dropped, _ = _secrets(4, np.uint32)
    (item,) = um.plan(4, np.dtype(np.uint32), b"s", b"p", selves[:1], dropped[:1], 1)
    for cut in range(0, len(item), 7):
        with pytest.raises(SecAggError):
            um.run_chunk(item[:cut])
    with pytest.raises(SecAggError, match="trailing"):
        um.run_chunk(item + b"\0")
    good = um.run_chunk(item)
    with pytest.raises(SecAggError, match="length"):
        um.decode_correction(good, 5, np.dtype(np.uint32))
    with pytest.raises(SecAggError, match="dtype"):
        um.decode_correction(good, 4, np.dtype(np.uint64))


_FUZZ_SECRETS = _secrets(4, np.uint32)
_FUZZ_ITEM = um.plan(4, np.dtype(np.uint32), b"s", b"p", _FUZZ_SECRETS[0][:2],
                     _FUZZ_SECRETS[1][:1], 1)[0]


@settings(max_examples=150, deadline=None)
@given(st.integers(0, len(_FUZZ_ITEM) - 1), st.integers(1, 255))
def test_a_corrupted_item_gives_a_library_error_or_a_correction(pos: int, flip: int) -> None:
    if 5 <= pos < 13:  # the dimension: a larger valid one only costs memory (below)
        pos = 13
    item = bytearray(_FUZZ_ITEM)
    item[pos] ^= flip
    try:
        out = um.run_chunk(bytes(item))
    except SecAggError:
        return
    assert out[:4] == b"SAUR"


def test_an_item_beyond_the_vector_limit_is_refused() -> None:
    item = bytearray(_FUZZ_ITEM)
    item[5:13] = (2**28 + 1).to_bytes(8, "big")  # 2^28 + 1 uint32 > 1 GiB
    with pytest.raises(ParameterError, match="exceeds the vector limit"):
        um.run_chunk(bytes(item))


def test_bad_widths_mappers_and_tasks_are_refused() -> None:
    for width in (0, -1, True, 1.5):
        with pytest.raises(ParameterError, match="width"):
            um.plan(4, np.dtype(np.uint32), b"s", b"p", [], [], width)  # type: ignore[arg-type]
    cfg = SecAggConfig.create(range(1, 4), 4, threshold=2)
    with pytest.raises(LocalProtocolError, match="mapper"):
        SecAggServer(cfg, mapper=object())  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="not a registered task"):
        list(SEQUENTIAL.map(lambda b: b, [b"x"]))
    with pytest.raises(ParameterError, match="no registered task"):
        parallel.resolve_task("protocols.parallel:nothing_here")
    with pytest.raises(ParameterError, match="cannot be imported"):
        parallel.resolve_task("no_such_module_here:f")


# -- failures in a worker ------------------------------------------------------------------------
@task
def _echo(item: bytes) -> bytes:
    return item[::-1]


@task
def _refuse(item: bytes) -> bytes:
    if item == b"bad":
        raise IntegrityError("item refused")
    return item


@task
def _crash(item: bytes) -> bytes:
    if item == b"bad":
        raise RuntimeError("not a library error")
    return item


@task
def _die(item: bytes) -> bytes:
    if item == b"bad":
        os._exit(3)
    return item


@pytest.fixture
def pool() -> Iterator[Any]:
    p = simulator._Pool(2, SECAGG_PLUS, None)
    try:
        yield p
    finally:
        p.close()


def test_the_pool_maps_in_item_order(pool: Any) -> None:
    items = [bytes([i]) * (i + 1) for i in range(11)]
    assert list(pool.map(_echo, items)) == [i[::-1] for i in items]
    assert pool.width == 2 and isinstance(pool, parallel.Mapper)


@pytest.mark.parametrize(("fn", "error"), [(_refuse, IntegrityError), (_crash, WorkerError)])
def test_a_task_that_raises_in_a_worker_surfaces_as_a_library_error(
        pool: Any, fn: parallel.Task, error: type[SecAggError]) -> None:
    items = [b"a", b"b", b"bad", b"c", b"d", b"e"]
    with pytest.raises(error):
        list(pool.map(fn, items))
    # every worker answered before the error was raised: the pool still works
    assert list(pool.map(_echo, [b"xy", b"zw"])) == [b"yx", b"wz"]


def test_a_worker_that_dies_surfaces_as_a_worker_error(pool: Any) -> None:
    with pytest.raises(WorkerError, match="exited"):
        list(pool.map(_die, [b"a", b"bad", b"c", b"d"]))


def test_a_worker_failing_during_the_unmasking_ends_the_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The workers fork after this patch, so the unmasking's reconstruction fails
    there: the run raises a library error instead of waiting for an answer."""
    def broken(_sets: Iterable[Any]) -> list[bytes]:
        raise RuntimeError("reconstruction crashed")

    monkeypatch.setattr(um, "shamir", types.SimpleNamespace(
        combine_many=broken, SHARE_BYTES=shamir.SHARE_BYTES, Share=shamir.Share))
    with pytest.raises(WorkerError, match="reconstruction crashed"):
        simulate(_inputs(10, 20), seed=1, workers=2, neighbors=6,
                 dropouts={"masked_input": [503]})


# -- a lying share holder, with the unmasking over a pool --------------------------------------
class _Net(WiredParties):
    def __init__(self, mapper: parallel.Mapper, n: int = 6, d: int = 6) -> None:
        ids = range(1, n + 1)
        self.cfg = SecAggConfig.create(ids, d, threshold=3, session_id=1,
                                       graph_seed=bytes(32), corrupt_fraction=0.0)
        rng = np.random.default_rng(1)
        self.xs = {u: rng.integers(0, 2**32, d, dtype=np.uint32) for u in ids}
        self.clients = {u: MessageParty(SecAggClient(self.cfg, u, input=self.xs[u]))
                        for u in ids}
        self.server = MessageParty(SecAggServer(self.cfg, mapper=mapper))


@pytest.mark.parametrize("pooled", [False, True])
def test_a_lying_s_share_is_refused_and_the_sum_untouched(pool: Any, pooled: bool) -> None:
    net = _Net(pool if pooled else SEQUENTIAL)
    reqs = net.step(net.step(net.start()), skip=(6,))  # client 6 drops: its key is rebuilt
    replies = net.to_clients(reqs)
    liar = next(r for r in replies if r.sender == 1)
    assert isinstance(liar, UnmaskResponse)
    forged = tuple(dataclasses.replace(s, share=dataclasses.replace(
        s.share, value=(s.share.value + 1) % shamir.PRIME)) if s.kind == "s" else s
        for s in liar.shares)
    replies = [dataclasses.replace(liar, shares=forged) if r is liar else r for r in replies]
    for r in replies[:-1]:
        net.server.handle(net.wire(r))
    server = net.server.party
    acc = server._acc.copy()
    with pytest.raises(IntegrityError):
        net.server.handle(net.wire(replies[-1]))
    assert server.result is None and server.round == "unmask"
    np.testing.assert_array_equal(server._acc, acc)


def test_worker_pool_is_a_mapper_and_one_worker_is_this_process() -> None:
    with simulator.worker_pool(1) as one:
        assert one is SEQUENTIAL
    with simulator.worker_pool(2) as two:
        assert two.width == 2
        assert list(two.map(_echo, [b"ab", b"cd", b"ef"])) == [b"ba", b"dc", b"fe"]
    with pytest.raises(ParameterError, match="workers"), simulator.worker_pool(0):
        pass


def test_a_copied_server_shares_the_stateless_default_mapper() -> None:
    import copy

    server = SecAggServer(SecAggConfig.create(range(1, 4), 4, threshold=2))
    assert copy.deepcopy(server)._mapper is SEQUENTIAL is copy.copy(SEQUENTIAL)
