"""Suite ``secagg``: pairwise-mask secure aggregation against Flower's SecAgg+.

For n clients and dimension d, one full round (advertise keys, share keys,
masked input, unmask) with 0% or 10% of the clients dropping out, reporting
per-client compute (mean over the clients that finished the round), server
compute, and bytes per client (sent + received, mean over the same clients),
for this library and for Flower's SecAgg+, on the same float32 inputs.

Dropouts: by default the dropping clients vanish after sharing their keys and
before sending their masked input (``--drop-round masked_input``), which is
the expensive case for the server: it must rebuild each dropout's mask key
and regenerate the pairwise masks between it and its surviving neighbours.
``--drop-round unmask`` makes them vanish after their masked input instead.

Graphs: ``secagg+`` rows use k = 14 neighbours (Flower ``num_shares = 15``,
which counts the client itself) and threshold t = 8 of those 15 share
holders, for both implementations; with n <= 15 that is the complete graph.
``complete`` rows are Bonawitz et al.'s complete graph (t = floor(n/2) + 1);
the full grid has one such row pair at n = 50, d = 10^5, because Flower's
complete-graph mode needs minutes per round beyond that.

``--scale`` (this library only): one SecAgg+ round of n = 1,000 clients
with the simulator's client pool off and on (``workers`` 1 and 2, side by
side in one invocation, so the ratio survives a loaded machine) and rounds of
n = 10,000 with 2 workers, at d = 10^5, 10% dropouts, the degree and
threshold derived by ``protocols.secagg.config``. With 2 workers each n runs
twice: the server's unmasking in the coordinator process (``unmask workers``
1) and in the pool's workers (2). Each round runs in its own
forked process; its sum is checked exactly in the integer domain. Columns:
mean compute per finishing client, server compute (and the part of it in the
unmask round: the unmasking), bytes per client, wall
time of the whole simulated round, CPU seconds the round used in all its
processes (which a loaded machine does not inflate), peak resident memory the round added to
the coordinator process (server, simulator and, with ``workers = 1``, every
client) and to the largest worker (over the process's size when the round
started), and the 1-minute load average when the round started.
Inputs are generated per client on access, so they are never all in memory.
A last row repeats n = 1,000 with the degree and threshold Hoeffding's bound
gives for the same targets (k = 78, t = 41), for the cost of the looser
derivation side by side.

Then the server's unmasking alone, for n = 1,000 and 10,000: the secrets the
server rebuilds after that round (same graph, threshold and dropouts; fresh
keys, real shares) as the server's work items, combined in one process and
over 2 worker processes, alternated ``UNMASK_REPEAT`` times on the same
items (best kept; the two must give the same bits), with the wall and CPU
seconds of every process involved. A whole round's wall time moves with the
machine's load; this alternation keeps the ratio comparable.
``--scale --unmask-only`` runs only this part. ``--scale --quick`` is
n = 60, d = 2,000 for both parts.

How Flower is driven: Flower's own client-side stage functions
(``flwr.client.mod.secure_aggregation.secaggplus_mod``: ``_setup``,
``_share_keys``, ``_collect_masked_vectors``, ``_unmask``) run in process on
a ``SecAggPlusState`` per client; the server side re-enacts
``SecAggPlusWorkflow`` stage by stage (random ring of neighbours,
``_check_threshold``, routing of ciphertexts, summing and ``mod`` of the
masked vectors, then ``combine_shares``, ``pseudo_rand_gen`` and
``generate_shared_key`` to unmask, and ``dequantize``) with Flower's own
primitives, minus the ``Grid`` messaging and the ``Strategy`` call. Flower's
bytes are the payload fields of its messages (public keys, ciphertexts,
serialized arrays, shares, 8 bytes per node id), without protobuf framing.
Flower runs once per row (it is slow); this library runs ``--repeat`` times
(best kept). Flower's masks come from ``numpy.random.RandomState`` seeded
with 32 bits of the shared secret, which is not a cryptographic generator;
this library's come from AES-256-CTR.

Install Flower into the benchmark's environment to get its columns::

    pip install 'secagg[bench]'        # or: pip install flwr

Without it the Flower columns are skipped with a message.

    python -m benchmarks secagg [--quick] [--scale [--unmask-only]] [--repeat R] [--out FILE]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import multiprocessing
import os
import random
import resource
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from protocols.parallel import SEQUENTIAL, Mapper
from protocols.secagg import SecAggConfig, binding, default_encoder, simulate, unmask
from protocols.secagg.protocol import SECAGG_PLUS
from protocols.simulator import run as run_protocol
from protocols.simulator import worker_pool
from secagg import kex, prg, shamir

from ._common import table, write_json

FLOWER_DEGREE = 14
FULL_NS = (10, 50, 100)
FULL_DS = (10**4, 10**5, 10**6)
QUICK_NS = (10,)
QUICK_DS = (10**4, 10**5)
DROP_FRACTIONS = (0.0, 0.1)
#: --scale rows: (n, d, (workers, unmask in the pool?) ...), side by side in one
#: invocation; with 2 workers once with the server's unmasking in this process
#: and once in the pool, for the unmasking's speedup from a second core.
SCALE_GRID = ((1000, 10**5, ((1, False), (2, False), (2, True))),
              (10_000, 10**5, ((2, False), (2, True))))
SCALE_QUICK = ((60, 2000, ((1, False), (2, False), (2, True))),)
#: --scale comparison row: n = 1,000 with the degree and threshold that
#: Hoeffding's bound gives for the same targets (k = 78, t = 41), 2 workers.
SCALE_HOEFFDING = (1000, 10**5, 2, 78, 41)
#: --scale: the server's unmasking alone, in one process against 2 workers,
#: alternated on the same work items (n, d); best of UNMASK_REPEAT each.
UNMASK_GRID = ((1000, 10**5), (10_000, 10**5))
UNMASK_QUICK = ((60, 2000),)
UNMASK_REPEAT = 3
TARGETS = {"server_speedup": 20.0, "client_speedup": 2.0}


@dataclass
class Figures:
    """One implementation's cost for one round."""

    client_s: float  # mean compute seconds per finishing client
    server_s: float  # server compute seconds
    bytes_per_client: float  # mean bytes sent + received per finishing client
    max_error: float  # largest |decoded - exact| over the vector


def _inputs(n: int, d: int, seed: int) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {u: rng.uniform(-1.0, 1.0, d).astype(np.float32) for u in range(1, n + 1)}


def _dropouts(n: int, frac: float, seed: int) -> list[int]:
    k = round(frac * n)
    return sorted(random.Random(f"dropouts/{seed}").sample(range(1, n + 1), k))


# -- this library ---------------------------------------------------------------------
def run_ours(inputs: dict[int, np.ndarray], degree: int | str | None, threshold: int | None,
             dropped: list[int], drop_round: str, repeat: int) -> Figures:
    """Best of ``repeat`` simulated rounds (each figure minimised separately)."""
    best: Figures | None = None
    n = len(inputs)
    for r in range(repeat):
        res = simulate(inputs, threshold=threshold, neighbors=degree,  # type: ignore[arg-type]
                       dropouts={drop_round: dropped}, seed=r,
                       encoder=default_encoder(n))
        done = [u for u in inputs if "unmask" in res.figures[u].compute_seconds]
        exact = np.sum([inputs[u].astype(np.float64) for u in res.included], axis=0)
        f = Figures(
            client_s=float(np.mean([res.figures[u].total_compute for u in done])),
            server_s=res.figures["server"].total_compute,
            bytes_per_client=float(np.mean([res.figures[u].total_sent
                                             + res.figures[u].total_received for u in done])),
            max_error=float(np.max(np.abs(res.sum - exact))),
        )
        if best is None:
            best = f
        else:
            best = Figures(min(best.client_s, f.client_s), min(best.server_s, f.server_s),
                           f.bytes_per_client, max(best.max_error, f.max_error))
    assert best is not None
    return best


# -- Flower's SecAgg+ ---------------------------------------------------------------------
def flower_version() -> str | None:
    """The installed flwr version, or None when its SecAgg+ code cannot be imported."""
    try:
        importlib.import_module("flwr.client.mod.secure_aggregation.secaggplus_mod")
    except ImportError:
        return None
    return importlib.metadata.version("flwr")


def run_flower(inputs: dict[int, np.ndarray], num_shares: int, threshold: int,
               dropped: list[int], drop_round: str, seed: int) -> Figures:
    """One SecAgg+ round with Flower's client stage functions and primitives."""
    fm = importlib.import_module("flwr.client.mod.secure_aggregation.secaggplus_mod")
    from flwr.common import bytes_to_ndarray, ndarrays_to_parameters
    from flwr.common.secure_aggregation.crypto.shamir import combine_shares
    from flwr.common.secure_aggregation.crypto.symmetric_encryption import generate_shared_key
    from flwr.common.secure_aggregation.ndarrays_arithmetic import (
        factor_extract,
        get_parameters_shape,
        parameters_addition,
        parameters_mod,
        parameters_subtraction,
    )
    from flwr.common.secure_aggregation.quantization import dequantize
    from flwr.common.secure_aggregation.secaggplus_constants import Key
    from flwr.common.secure_aggregation.secaggplus_utils import pseudo_rand_gen
    from flwr.supercore.primitives.asymmetric import bytes_to_private_key, bytes_to_public_key

    clip, qrange, mod, max_weight = 8.0, 2**22, 2**32, 1.0  # SecAggPlusWorkflow defaults
    ids = sorted(inputs)
    n = len(ids)
    client_s = dict.fromkeys(ids, 0.0)
    nbytes = dict.fromkeys(ids, 0)
    server_s = 0.0
    states: dict[int, Any] = {}
    gone = set(dropped)

    def on_client(u: int, fn: Any, *args: Any) -> Any:
        t0 = time.perf_counter()
        out = fn(states[u], *args)
        client_s[u] += time.perf_counter() - t0
        return out

    def size(rec: Any) -> int:
        total = 0
        for v in rec.values():
            for x in v if isinstance(v, list) else [v]:
                total += len(x) if isinstance(x, bytes) else 8
        return total

    # setup: configuration, neighbour ring, key generation
    t0 = time.perf_counter()
    shuffled = list(ids)
    random.Random(f"flower-ring/{seed}").shuffle(shuffled)
    half = num_shares >> 1
    neighbours = {u: {shuffled[(i + o) % n] for o in range(-half, half + 1)}
                  for i, u in enumerate(shuffled)}
    setup_cfg = {Key.SAMPLE_NUMBER: n, Key.SHARE_NUMBER: num_shares, Key.THRESHOLD: threshold,
                 Key.CLIPPING_RANGE: clip, Key.TARGET_RANGE: qrange, Key.MOD_RANGE: mod,
                 Key.MAX_WEIGHT: max_weight}
    server_s += time.perf_counter() - t0
    pks: dict[int, list[bytes]] = {}
    for u in ids:
        states[u] = fm.SecAggPlusState()
        states[u].nid = u
        res = on_client(u, fm._setup, setup_cfg)
        pks[u] = [res[Key.PUBLIC_KEY_1], res[Key.PUBLIC_KEY_2]]
        nbytes[u] += size(setup_cfg) + size(res)

    def check(active: set[int]) -> None:
        for u in ids:
            if len(neighbours[u] & active) < threshold:
                raise RuntimeError("Flower round aborted: insufficient available nodes")

    active = set(ids)
    check(active)
    # share keys
    fwd_ct: dict[int, list[bytes]] = {u: [] for u in ids}
    fwd_src: dict[int, list[int]] = {u: [] for u in ids}
    for u in ids:
        t0 = time.perf_counter()
        cfg = {str(v): pks[v] for v in neighbours[u] & active}
        server_s += time.perf_counter() - t0
        res = on_client(u, fm._share_keys, cfg)
        nbytes[u] += size(cfg) + size(res)
        t0 = time.perf_counter()
        for dst, ct in zip(res[Key.DESTINATION_LIST], res[Key.CIPHERTEXT_LIST], strict=True):
            fwd_ct[dst].append(ct)
            fwd_src[dst].append(u)
        server_s += time.perf_counter() - t0
    check(active)
    # collect masked vectors
    params = {u: ndarrays_to_parameters([inputs[u]]) for u in ids}
    masked_sum = None
    for u in ids:
        cfg = {Key.CIPHERTEXT_LIST: fwd_ct[u], Key.SOURCE_LIST: fwd_src[u]}
        nbytes[u] += size(cfg)
        if u in gone and drop_round == "masked_input":
            continue
        res = on_client(u, fm._collect_masked_vectors, cfg, 1, params[u])
        nbytes[u] += size(res)
        t0 = time.perf_counter()
        vec = [bytes_to_ndarray(b) for b in res[Key.MASKED_PARAMETERS]]
        masked_sum = vec if masked_sum is None else parameters_addition(masked_sum, vec)
        server_s += time.perf_counter() - t0
    t0 = time.perf_counter()
    if drop_round == "masked_input":
        active -= gone
    assert masked_sum is not None
    masked_sum = parameters_mod(masked_sum, mod)
    server_s += time.perf_counter() - t0
    check(active)
    # unmask
    dead = set(ids) - active
    shares: dict[int, list[bytes]] = {u: [] for u in ids}
    for u in sorted(active):
        cfg = {Key.ACTIVE_NODE_ID_LIST: sorted(neighbours[u] & active),
               Key.DEAD_NODE_ID_LIST: sorted(neighbours[u] & dead)}
        nbytes[u] += size(cfg)
        if u in gone:  # drop_round == "unmask"
            continue
        res = on_client(u, fm._unmask, cfg)
        nbytes[u] += size(res)
        for owner, share in zip(res[Key.NODE_ID_LIST], res[Key.SHARE_LIST], strict=True):
            shares[owner].append(share)
    t0 = time.perf_counter()
    vec = masked_sum
    for u, share_list in shares.items():
        if len(share_list) < threshold:
            raise RuntimeError("Flower round aborted: not enough shares")
        secret = combine_shares(share_list)
        if u in active:
            vec = parameters_subtraction(
                vec, pseudo_rand_gen(secret, mod, get_parameters_shape(vec)))
        else:
            for v in neighbours[u] - {u}:
                key = generate_shared_key(bytes_to_private_key(secret),
                                          bytes_to_public_key(pks[v][0]))
                mask = pseudo_rand_gen(key, mod, get_parameters_shape(vec))
                vec = (parameters_addition(vec, mask) if u > v
                       else parameters_subtraction(vec, mask))
    vec = parameters_mod(vec, mod)
    q_total, recon = factor_extract(vec)
    (mean,) = dequantize(recon, clip, qrange)
    mean = (mean - (len(active) - 1) * clip) * (qrange / q_total)
    server_s += time.perf_counter() - t0
    done = [u for u in ids if u in active and u not in gone]
    exact_mean = np.mean([inputs[u].astype(np.float64) for u in active], axis=0)
    return Figures(
        client_s=float(np.mean([client_s[u] for u in done])),
        server_s=server_s,
        bytes_per_client=float(np.mean([nbytes[u] for u in done])),
        max_error=float(np.max(np.abs(mean * len(active) - exact_mean * len(active)))),
    )


# -- driver -------------------------------------------------------------------------------
def _row(graph: str, n: int, d: int, frac: float, args: argparse.Namespace,
         flower: bool) -> dict[str, Any]:
    inputs = _inputs(n, d, seed=n * 1000 + d % 997)
    dropped = _dropouts(n, frac, seed=n)
    if graph == "complete" or n <= FLOWER_DEGREE + 1:
        degree: int | str | None = "complete"
        holders = n
    else:
        degree, holders = FLOWER_DEGREE, FLOWER_DEGREE + 1
    t = holders // 2 + 1
    label = "complete" if degree == "complete" else f"secagg+ k={degree}"
    ours = run_ours(inputs, degree, t, dropped, args.drop_round, args.repeat)
    row: dict[str, Any] = {
        "graph": label, "n": n, "d": d, "drop": f"{frac:.0%}", "t": t,
        "client ms": ours.client_s * 1e3, "server ms": ours.server_s * 1e3,
        "KB/client": ours.bytes_per_client / 1e3,
    }
    if flower:
        fl = run_flower(inputs, holders, t, dropped, args.drop_round, seed=n)
        row.update({
            "Flower client ms": fl.client_s * 1e3, "Flower server ms": fl.server_s * 1e3,
            "Flower KB/client": fl.bytes_per_client / 1e3,
            "client x": fl.client_s / ours.client_s, "server x": fl.server_s / ours.server_s,
        })
        row["_flower_error"] = fl.max_error
    row["_error"] = ours.max_error
    print(f"  {label:>14} n={n:<4} d={d:<8} drop={frac:.0%}: ours client "
          f"{ours.client_s * 1e3:.1f} ms, server {ours.server_s * 1e3:.1f} ms"
          + (f" | Flower client {row['Flower client ms']:.1f} ms, server "
             f"{row['Flower server ms']:.1f} ms" if flower else ""), flush=True)
    return row


class _LazyInputs(Mapping[int, np.ndarray]):
    """Client id -> float32 vector in [-1, 1), generated on access from a
    per-client seed (benchmark data, not masks), so 10,000 x 10^5 inputs never
    sit in memory at once."""

    def __init__(self, n: int, d: int, seed: int) -> None:
        self.n, self.d, self.seed = n, d, seed

    def __getitem__(self, u: int) -> np.ndarray:
        if not 1 <= u <= self.n:
            raise KeyError(u)
        return np.random.default_rng((self.seed, u)).uniform(-1.0, 1.0, self.d).astype(
            np.float32)

    def __iter__(self) -> Iterator[int]:
        return iter(range(1, self.n + 1))

    def __len__(self) -> int:
        return self.n


def _rss() -> int:
    """This process's resident set size now, in bytes (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _cpu() -> float:
    """CPU seconds (user + system) of this process and its exited children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _scale_round(n: int, d: int, workers: int, server_pool: bool, drop_round: str,
                 degree: int | None = None, threshold: int | None = None) -> dict[str, Any]:
    """One derived-parameter SecAgg+ round; runs in a fresh forked process so its
    peak memory is its own. Checks the sum exactly in the integer domain.
    ``server_pool``: the server's unmasking runs in the client workers too."""
    inputs = _LazyInputs(n, d, seed=n)
    dropped = _dropouts(n, 0.1, seed=n)
    enc = default_encoder(n)
    start_rss, start_cpu = _rss(), _cpu()
    t0 = time.perf_counter()
    res = run_protocol(SECAGG_PLUS, inputs, dropouts={drop_round: dropped}, seed=1,
                       encoder=enc, neighbors=degree, threshold=threshold,
                       workers=workers, server_pool=server_pool)
    wall = time.perf_counter() - t0
    cpu = _cpu() - start_cpu  # the workers have exited: their time is in RUSAGE_CHILDREN
    server_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    worker_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    exact = np.zeros(d, dtype=np.uint32)
    for u in sorted(res.included):
        np.add(exact, enc.encode(inputs[u]), out=exact)
    done = [u for u in inputs if "unmask" in res.figures[u].compute_seconds]
    return {
        "workers": workers, "included": len(res.included),
        "exact": res.raw_sum is not None and bool(np.array_equal(exact, res.raw_sum)),
        "client_s": float(np.mean([res.figures[u].total_compute for u in done])),
        "server_s": res.figures["server"].total_compute,
        "unmask_s": res.figures["server"].compute_seconds.get("unmask", 0.0),
        "bytes": float(np.mean([res.figures[u].total_sent + res.figures[u].total_received
                                for u in done])),
        "wall_s": wall, "cpu_s": cpu, "server_peak": server_rss - start_rss,
        "worker_peak": worker_rss - start_rss if workers > 1 else None,
    }


def _in_child(fn: Any, *args: Any) -> dict[str, Any]:
    """``fn(*args)`` in a forked process; the result comes back as JSON bytes."""
    ctx = multiprocessing.get_context("fork")
    mine, theirs = ctx.Pipe(duplex=False)

    def target() -> None:
        try:
            theirs.send_bytes(json.dumps({"ok": fn(*args)}).encode())
        except Exception as exc:  # reported to the parent
            theirs.send_bytes(json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())

    proc = ctx.Process(target=target)
    proc.start()
    theirs.close()
    try:
        answer = json.loads(mine.recv_bytes())
    except EOFError:
        answer = {"error": f"the benchmark process exited with code {proc.exitcode}"}
    proc.join()
    if "error" in answer:
        raise RuntimeError(answer["error"])
    out: dict[str, Any] = answer["ok"]
    return out


def _scale_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    plan: list[tuple[int, int, int, bool, int | None, int | None, str]] = []
    for n, d, setups in (SCALE_QUICK if args.quick else SCALE_GRID):
        cfg = SecAggConfig.create(range(1, n + 1), d)
        label = (f"secagg+ k={cfg.degree}" if cfg.degree is not None else "complete")
        plan += [(n, d, w, pooled, None, None, f"{label} t={cfg.threshold} (derived)")
                 for w, pooled in setups]
    if not args.quick:
        n, d, w, k, t = SCALE_HOEFFDING
        plan.append((n, d, w, True, k, t, f"secagg+ k={k} t={t} (Hoeffding)"))
    rows = []
    for n, d, workers, pooled, k, t, label in plan:
        load = os.getloadavg()[0]
        f = _in_child(_scale_round, n, d, workers, pooled, args.drop_round, k, t)
        if not f["exact"]:
            raise RuntimeError(f"{label} n={n} workers={workers}: the sum is not exact")
        unmask_workers = workers if pooled else 1
        print(f"  scale: {label} n={n} d={d} workers={workers} unmask workers "
              f"{unmask_workers}: {f['wall_s']:.1f} s wall, "
              f"{f['client_s'] * 1e3:.1f} ms/client, server {f['server_s']:.2f} s "
              f"(unmask {f['unmask_s']:.2f} s), {f['cpu_s']:.0f} CPU s, load {load:.1f}",
              flush=True)
        rows.append({
            "graph": label, "n": n, "d": d, "drop": "10%", "workers": workers,
            "unmask workers": unmask_workers,
            "client ms": f["client_s"] * 1e3, "server s": f["server_s"],
            "unmask s": f["unmask_s"],
            "KB/client": f["bytes"] / 1e3, "round s": f["wall_s"], "CPU s": f["cpu_s"],
            "server MB": f["server_peak"] / 1e6,
            "worker MB": (f["worker_peak"] / 1e6 if f["worker_peak"] is not None
                          else float("nan")),
            "load": load, "_exact": f["exact"], "_error": 0.0,
        })
    return rows


def _unmask_items(n: int, d: int) -> tuple[SecAggConfig, list[unmask.SelfSecret],
                                           list[unmask.DroppedSecret]]:
    """The secrets the server rebuilds after the --scale round (same derived
    graph and threshold, same 10% dropped before the masked input): each
    survivor's self-mask seed and each needed dropout's mask key as the t
    lowest-index shares its live holders return, with the dropout's surviving
    neighbours' keys and HKDF contexts. Fresh secrets, real shares and keys."""
    cfg = SecAggConfig.create(range(1, n + 1), d)
    gone = set(_dropouts(n, 0.1, seed=n))
    live = set(range(1, n + 1)) - gone
    t, nb = cfg.threshold, cfg.neighbours

    def shares(owner: int, secret: bytes, holders: set[int]) -> tuple[shamir.Share, ...]:
        idx = sorted(cfg.share_index(owner, h) for h in holders & live)[:t]
        return tuple(s for s in shamir.split(secret, max(idx), t) if s.index in idx)

    keys = {u: kex.PrivateKey.generate() for u in range(1, n + 1)}
    selves = [unmask.SelfSecret(u, shares(u, prg.fresh_seed(), nb[u] | {u}))
              for u in sorted(live)]
    dropped = [
        unmask.DroppedSecret(
            v, shares(v, keys[v].to_bytes(), nb[v]), keys[v].public_key().to_bytes(),
            tuple((keys[u].public_key().to_bytes(),
                   binding.kex_info(cfg, binding.PAIRWISE_MASK, v, u), u < v)
                  for u in sorted(nb[v] & live)))
        for v in sorted(gone) if nb[v] & live]
    return cfg, selves, dropped


def _proc_cpu(pids: tuple[int, ...]) -> list[float]:
    """CPU seconds (user + system) used so far by this process, then by each
    live process of ``pids`` (Linux ``/proc``; 0 for them elsewhere)."""
    out = [time.process_time()]
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            out.append(0.0)
            continue
        out.append((int(fields[11]) + int(fields[12])) / tick)  # utime, stime
    return out


def _unmask_once(mapper: Mapper, cfg: SecAggConfig, items: list[bytes]
                 ) -> tuple[float, float, float, bytes]:
    """The server's combine step over ``mapper``: wall seconds, CPU seconds of
    every process involved together and of the busiest one (what the wall
    time would be with a free core per process), and the correction."""
    pids: tuple[int, ...] = getattr(mapper, "pids", ())
    c0, t0 = _proc_cpu(pids), time.perf_counter()
    total = np.zeros(cfg.dimension, dtype=cfg.dtype)
    for data in mapper.map(unmask.run_chunk, items):
        np.add(total, unmask.decode_correction(data, cfg.dimension, cfg.dtype), out=total)
    wall = time.perf_counter() - t0
    used = [b - a for a, b in zip(c0, _proc_cpu(pids), strict=True)]
    return wall, sum(used), max(used), total.tobytes()


def _unmask_ab(n: int, d: int, repeat: int) -> dict[str, Any]:
    """The unmasking of one n-client round in this process and over 2 workers,
    alternated ``repeat`` times (which goes first alternates too)."""
    cfg, selves, dropped = _unmask_items(n, d)
    labels = binding.mask_label(cfg, "self"), binding.mask_label(cfg, "pair")
    times: dict[int, list[float]] = {1: [], 2: []}
    cpu: dict[int, list[float]] = {1: [], 2: []}
    busiest: dict[int, list[float]] = {1: [], 2: []}
    with worker_pool(2) as pool:
        mappers: dict[int, Mapper] = {1: SEQUENTIAL, 2: pool}
        items = {w: unmask.plan(d, cfg.dtype, *labels, selves, dropped, m.width)
                 for w, m in mappers.items()}
        results = set()
        for r in range(repeat):
            for w in ((1, 2) if r % 2 == 0 else (2, 1)):
                seconds, used, most, total = _unmask_once(mappers[w], cfg, items[w])
                times[w].append(seconds)
                cpu[w].append(used)
                busiest[w].append(most)
                results.add(total)
    if len(results) != 1:
        raise RuntimeError(f"n={n}: the unmasking gave different bits over 1 and 2 workers")
    return {"k": cfg.degree, "t": cfg.threshold, "self": len(selves), "dropped": len(dropped),
            "pairs": sum(len(v.peers) for v in dropped), "one_s": min(times[1]),
            "two_s": min(times[2]), "all_one_s": times[1], "all_two_s": times[2],
            "one_cpu": min(cpu[1]), "two_cpu": min(cpu[2]),
            "one_busiest": min(busiest[1]), "two_busiest": min(busiest[2])}


def _unmask_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for n, d in (UNMASK_QUICK if args.quick else UNMASK_GRID):
        load = os.getloadavg()[0]
        f = _in_child(_unmask_ab, n, d, UNMASK_REPEAT)
        x = f["one_s"] / f["two_s"]
        y = f["one_busiest"] / f["two_busiest"] if f["two_busiest"] > 0 else float("nan")
        print(f"  unmask: n={n} d={d} k={f['k']} t={f['t']}: {f['self']} self masks, "
              f"{f['dropped']} dropped keys, {f['pairs']} pair masks: one process "
              f"{f['one_s']:.2f} s ({f['one_cpu']:.2f} CPU s), 2 workers {f['two_s']:.2f} s "
              f"({f['two_cpu']:.2f} CPU s, busiest process {f['two_busiest']:.2f}): "
              f"{x:.2f}x wall, {y:.2f}x busiest-process CPU, load {load:.1f}", flush=True)
        rows.append({"n": n, "d": d, "k": f["k"], "t": f["t"], "self masks": f["self"],
                     "dropped keys": f["dropped"], "pair masks": f["pairs"],
                     "1 process s": f["one_s"], "2 workers s": f["two_s"], "speedup": x,
                     "1 process CPU s": f["one_cpu"], "2 workers CPU s": f["two_cpu"],
                     "2 workers busiest CPU s": f["two_busiest"], "CPU-path speedup": y,
                     "load": load, "_all_one_s": f["all_one_s"],
                     "_all_two_s": f["all_two_s"]})
    return rows


def unmask_speedups(rows: list[dict[str, Any]]) -> dict[str, float]:
    """n -> the server's unmasking seconds in this process over those in the
    pool, from the rows with 2 client workers (same round, side by side)."""
    out: dict[str, float] = {}
    for n in sorted({r["n"] for r in rows}):
        alone = [r["unmask s"] for r in rows if r["n"] == n and r["workers"] == 2
                 and r["unmask workers"] == 1 and "(derived)" in r["graph"]]
        pooled = [r["unmask s"] for r in rows if r["n"] == n and r["workers"] == 2
                  and r["unmask workers"] == 2 and "(derived)" in r["graph"]]
        if alone and pooled and pooled[0] > 0:
            out[str(n)] = alone[0] / pooled[0]
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="secagg bench secagg", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="n = 10, d <= 10^5 (under a minute); with --scale: n = 60, d = 2,000")
    ap.add_argument("--scale", action="store_true",
                    help="only the derived-parameter SecAgg+ rounds at n = 1,000 and 10,000, "
                         "d = 10^5 (this library)")
    ap.add_argument("--unmask-only", action="store_true",
                    help="with --scale: only the server's unmasking, one process against "
                         "2 workers")
    ap.add_argument("--repeat", type=int, default=2, help="rounds per row for this library")
    ap.add_argument("--drop-round", choices=("masked_input", "unmask"), default="masked_input",
                    help="where the dropping clients vanish (default: before the masked input)")
    ap.add_argument("--no-flower", action="store_true", help="skip the Flower columns")
    ap.add_argument("--out", default=None, help="JSON output (default bench-results/secagg.json)")
    args = ap.parse_args(argv)

    version = None if args.no_flower else flower_version()
    if not args.no_flower and version is None:
        print("Flower (flwr) is not installed: skipping the Flower columns. "
              "Install it with: pip install 'secagg[bench]'  (or: pip install flwr)")
    flower = version is not None
    # warm up imports and caches so the first row is not charged for them
    warm = _inputs(4, 16, seed=0)
    run_ours(warm, "complete", 3, [], args.drop_round, 1)
    if flower:
        run_flower(warm, 4, 3, [], args.drop_round, seed=0)
    rows: list[dict[str, Any]] = []
    unmask_rows: list[dict[str, Any]] = []
    if args.scale:
        if not args.unmask_only:
            rows.extend(_scale_rows(args))
        unmask_rows = _unmask_rows(args)
    else:
        ns, ds = (QUICK_NS, QUICK_DS) if args.quick else (FULL_NS, FULL_DS)
        grid = [("secagg+", n, d) for n in ns for d in ds]
        if not args.quick:
            grid.append(("complete", 50, 10**5))
        for graph, n, d in grid:
            for frac in DROP_FRACTIONS:
                rows.append(_row(graph, n, d, frac, args, flower))
    shown = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    print()
    if shown:
        print(table(shown))
    if unmask_rows:
        print("\nthe server's unmasking alone:\n")
        print(table([{k: v for k, v in r.items() if not k.startswith("_")}
                     for r in unmask_rows]))
    payload: dict[str, Any] = {
        "flwr": version, "drop_round": args.drop_round, "repeat": args.repeat,
        "targets": TARGETS, "rows": rows,
    }
    if args.scale:
        payload["unmask_rows"] = unmask_rows
        payload["unmask_speedup"] = {str(r["n"]): r["speedup"] for r in unmask_rows}
        payload["unmask_speedup_in_round"] = unmask_speedups(rows)
        for n, x in payload["unmask_speedup_in_round"].items():
            print(f"\nserver unmasking inside the n = {n} round: {x:.2f}x faster over 2 "
                  f"workers than in one process")
    if flower and not args.scale:
        payload["min_server_speedup"] = min(r["server x"] for r in rows)
        payload["min_client_speedup"] = min(r["client x"] for r in rows)
        print(f"\nserver speedup >= {payload['min_server_speedup']:.1f}x "
              f"(target {TARGETS['server_speedup']:.0f}x), client speedup >= "
              f"{payload['min_client_speedup']:.1f}x (target {TARGETS['client_speedup']:.0f}x)")
    path = write_json("secagg", payload, args.out)
    print(f"wrote {path}")
    return 0
