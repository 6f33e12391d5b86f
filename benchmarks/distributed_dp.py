"""Suite ``distributed_dp``: the cost and the wrap-around of distributed DP.

Run from the checkout: ``python -m benchmarks.distributed_dp`` (or
``python -m benchmarks distributed_dp``); ``--quick`` runs a smaller grid.

* Samplers at d = 10^5 and 10^6: the exact discrete Gaussian and Skellam
  samplers (``dp.discrete``) against the library's secure continuous
  Gaussian (``dp.CryptoRandom.gaussian``: Box-Muller on AES-CTR, four draws
  per value), all at variance 10^4.
* A client's distributed-DP work at d = 10^5 and 10^6: the randomized
  Hadamard rotation, the discrete Gaussian noise share, and the whole
  :func:`dp.distributed.encode` (clip, rotate, round, noise, reduce),
  against the PRG masking it precedes (one ``secagg.prg.expand_into`` mask
  of the padded length; a SecAgg client adds one per neighbour plus a
  self-mask).
* Before and after, in the same run: the rotation as the library computes
  it (Kronecker factors of at most 32 x 32, one BLAS product per factor)
  against the textbook butterfly kept here as a reference (log2 D numpy
  passes), and the samplers in cache-sized passes against one pass over
  the whole vector (``dp.discrete._CHUNK`` lifted; same algorithm, same
  law).
* Example-level DP-SGD (:func:`dp.distributed_sgd.encode_batch`, one
  client's batch of per-example gradients): the batched encoder against the
  one-row-at-a-time encoder it replaced (kept here as
  :func:`per_row_encode_batch`), at the digits linear model's dimension
  (650, padded to 1024: ``secagg bench privacy --distributed-sgd``) for
  batches of 1, 16, 64 and 256 rows, and at d = 10^5 for 16 rows; both give
  the same output under the same key (checked in the run). With
  ``--digits-run``, also whole distributed DP-SGD runs of the privacy
  benchmark on digits, with each encoder in turn under fixed client seeds
  (:func:`fixed_dpsgd_sources`): wall seconds and test accuracy.
  ``--batch-only`` runs only these.
* Wrap rate against bits (8..20): for each bit width, the parameters
  :func:`dp.distributed.select_parameters` chooses (or its refusal), the
  measured fraction of coordinates of the round's sum that wrapped, the
  bound it promised, and the error of the decoded sum against the central
  Gaussian noise for the same epsilon; and the measured wrap rate if the
  quantization chosen for 20 bits were kept at every width.

All timings are the best of several runs, side by side in one process; the
ratios are the result, not the absolute times.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import math
import os
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import numpy as np

import dp
from dp import discrete
from dp import distributed as ddp
from dp import distributed_sgd as dsgd
from secagg import prg

from ._common import table, write_json

VARIANCE = 1e4


def butterfly_hadamard(x: np.ndarray) -> np.ndarray:
    """The reference rotation core: the orthonormal Walsh-Hadamard transform
    by the textbook butterfly, log2(D) vectorised passes (the library's
    transform before it moved to Kronecker factors)."""
    a = np.array(x, dtype=np.float64)
    n = a.shape[0]
    b = np.empty_like(a)
    h = 1
    while h < n:
        av, bv = a.reshape(-1, 2, h), b.reshape(-1, 2, h)
        np.add(av[:, 0, :], av[:, 1, :], out=bv[:, 0, :])
        np.subtract(av[:, 0, :], av[:, 1, :], out=bv[:, 1, :])
        a, b = b, a
        h *= 2
    a *= 1.0 / math.sqrt(n)
    return a


@contextlib.contextmanager
def previous_hot_path() -> Iterator[None]:
    """Inside: the butterfly rotation and one-pass samplers (the "before")."""
    had, chunk = ddp.hadamard, discrete._CHUNK
    ddp.hadamard, discrete._CHUNK = butterfly_hadamard, 1 << 62  # type: ignore[assignment]
    try:
        yield
    finally:
        ddp.hadamard, discrete._CHUNK = had, chunk  # type: ignore[assignment]


def _before(fn: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        with previous_hot_path():
            return fn()
    return run


def _interleaved(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Best wall time of each function, the functions called in turn in every
    repetition so that a busy machine slows them alike."""
    best = dict.fromkeys(fns, math.inf)
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def _sampler_rows(dims: list[int], repeat: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    src = discrete.DiscreteRandom()
    cont = dp.CryptoRandom()
    sd = math.sqrt(VARIANCE)
    for d in dims:
        dg = lambda: discrete.discrete_gaussian(VARIANCE, d, src)  # noqa: E731
        sk = lambda: discrete.skellam(VARIANCE, d, src)  # noqa: E731
        t = _interleaved({
            "cont": lambda: cont.gaussian(sd, d),
            "dg": dg, "dg0": _before(dg), "sk": sk, "sk0": _before(sk),
        }, repeat)
        t_cont, t_dg, t_sk = t["cont"], t["dg"], t["sk"]
        rows.append({
            "d": f"10^{round(math.log10(d))}",
            "secure Gaussian (float) ms": t_cont * 1e3,
            "discrete Gaussian ms": t_dg * 1e3,
            "Skellam ms": t_sk * 1e3,
            "discrete Gaussian / float": t_dg / t_cont,
            "Skellam / float": t_sk / t_cont,
            "discrete Gaussian one pass ms": t["dg0"] * 1e3,
            "Skellam one pass ms": t["sk0"] * 1e3,
            "discrete Gaussian speed-up": t["dg0"] / t_dg,
            "Skellam speed-up": t["sk0"] / t_sk,
        })
    return rows


def _client_rows(dims: list[int], repeat: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    src = discrete.DiscreteRandom()
    seed = ddp.rotation_seed(b"bench", 0)
    for d in dims:
        params = ddp.DistributedDPParams(
            mechanism="dgauss", dimension=d, l2_clip=1.0, bits=20, gamma=1e-3,
            noise_variance=VARIANCE, num_clients=100, min_survivors=70)
        dpad = params.padded_dimension
        x = np.random.default_rng(0).normal(0, 1 / math.sqrt(d), d)
        padded = np.zeros(dpad)
        padded[:d] = x
        masked = np.zeros(dpad, dtype=np.uint32)
        mask_seed = prg.fresh_seed()
        rot = lambda: ddp.rotate(padded, seed)  # noqa: E731
        noise = lambda: discrete.discrete_gaussian(VARIANCE, dpad, src)  # noqa: E731
        enc = lambda: ddp.encode(params, x, seed, rng=src)  # noqa: E731
        t = _interleaved({
            "mask": lambda: prg.expand_into(masked, mask_seed, b"m"),
            "rot": rot, "rot0": _before(rot), "noise": noise, "noise0": _before(noise),
            "enc": enc, "enc0": _before(enc),
        }, repeat)
        t_mask, t_rot, t_noise, t_enc = t["mask"], t["rot"], t["noise"], t["enc"]
        rows.append({
            "d": f"10^{round(math.log10(d))}",
            "padded": dpad,
            "PRG mask ms": t_mask * 1e3,
            "rotation ms": t_rot * 1e3,
            "noise share ms": t_noise * 1e3,
            "whole encode ms": t_enc * 1e3,
            "encode / mask": t_enc / t_mask,
            "encode / 15 masks": t_enc / (15 * t_mask),
            "rotation before ms": t["rot0"] * 1e3,
            "noise share before ms": t["noise0"] * 1e3,
            "whole encode before ms": t["enc0"] * 1e3,
            "rotation speed-up": t["rot0"] / t_rot,
            "noise share speed-up": t["noise0"] / t_noise,
            "encode speed-up": t["enc0"] / t_enc,
        })
    return rows


def _round(params: ddp.DistributedDPParams, xs: list[np.ndarray], seed: bytes,
           keys: list[bytes]) -> tuple[float, np.ndarray]:
    """One round's measured wrap fraction and decoded error, with the same
    client randomness as the 62-bit reference (which cannot wrap)."""
    wide = dataclasses.replace(params, bits=62)
    total = np.zeros(params.padded_dimension, dtype=np.uint64)
    ref = np.zeros(params.padded_dimension, dtype=np.uint64)
    for x, k in zip(xs, keys, strict=True):
        total += ddp.encode(params, x, seed, rng=discrete.DiscreteRandom(k), dtype=np.uint64).vector
        ref += ddp.encode(wide, x, seed, rng=discrete.DiscreteRandom(k), dtype=np.uint64).vector
    bits = params.bits
    v = (total & np.uint64((1 << bits) - 1)).astype(np.int64)
    got = np.where(v >= 1 << (bits - 1), v - (1 << bits), v)
    r = (ref & np.uint64((1 << 62) - 1)).astype(np.int64)
    want = np.where(r >= 1 << 61, r - (1 << 62), r)
    wrap = float(np.mean(got != want))
    out = ddp.decode(params, total, seed, len(xs))
    clipped = sum(x * min(1.0, params.l2_clip / float(np.linalg.norm(x))) for x in xs)
    return wrap, out.sum - clipped


def _wrap_rows(bit_list: list[int], d: int, n: int, rounds: int) -> list[dict[str, object]]:
    plan = dict(target_epsilon=1.0, delta=1e-5, num_clients=n, min_survivors=n,
                dimension=d, l2_clip=1.0, rounds=10)
    central = dp.noise_multiplier(1.0, 1.0, 10, 1e-5)  # PLD, same plan, trusted server
    rng = np.random.default_rng(1)
    seeds = [ddp.rotation_seed(b"bench-wrap", r) for r in range(rounds)]
    # updates at the clipping norm, all pointing roughly the same way (worst case)
    base = rng.normal(size=d)
    xs = [(base + 0.3 * rng.normal(size=d)) for _ in range(n)]
    xs = [x / np.linalg.norm(x) for x in xs]
    keys = [[os.urandom(32) for _ in range(n)] for _ in range(rounds)]
    fixed = ddp.select_parameters(bits=20, **plan)
    rows: list[dict[str, object]] = []
    for bits in bit_list:
        row: dict[str, object] = {"bits": bits}
        try:
            p = ddp.select_parameters(bits=bits, **plan)
        except Exception as exc:  # a refusal is a result here
            row["selected"] = "refused: " + str(exc).split(";")[0][:60]
        else:
            res = [_round(p, xs, seeds[r], keys[r]) for r in range(rounds)]
            err = np.concatenate([e for _, e in res])
            row.update({
                "selected": "ok",
                "gamma": p.gamma,
                "bound per coord": p.wrap_probability,
                "measured wrap": float(np.mean([w for w, _ in res])),
                "error std / central std": float(err.std()) / central,
            })
        f = dataclasses.replace(fixed, bits=bits)
        row["wrap at 20-bit gamma"] = float(np.mean(
            [_round(f, xs, seeds[r], keys[r])[0] for r in range(rounds)]))
        rows.append(row)
    return rows


def per_row_encode_batch(params: ddp.DistributedDPParams, grads: np.ndarray, seed: bytes,
                         rng: discrete.DiscreteRandom) -> np.ndarray:
    """The reference batch encoder (the "before"): one example row at a time,
    clip, sign flip, rotate (:func:`dp.distributed.hadamard` of one vector),
    scale, conditional rounding with one draw per attempt; then one noise
    share and the reduction mod 2^bits. :func:`dp.distributed_sgd.encode_batch`
    gives the same vector under the same ``rng`` seed."""
    g = np.asarray(grads, dtype=np.float64)
    d_pad = params.padded_dimension
    signs = ddp._signs(seed, d_pad)
    limit = math.floor(Fraction(params.l2_sensitivity) ** 2)
    total = np.zeros(d_pad, dtype=np.int64)
    for row in g:
        norm = math.sqrt(float(row @ row))
        x = np.zeros(d_pad, dtype=np.float64)
        x[: params.dimension] = row
        if norm > params.l2_clip:
            x *= params.l2_clip / norm
        y = ddp.hadamard(x * signs)
        y *= params.scale
        floor = np.floor(y)
        frac = y - floor
        base = floor.astype(np.int64)
        for _ in range(ddp.MAX_ROUNDING_ATTEMPTS):
            u = (rng.words(d_pad) >> np.uint64(11)).astype(np.float64) * 2.0**-53
            z = base + (u < frac)
            if int(np.square(z).sum()) <= limit:
                break
        else:
            raise RuntimeError("conditional rounding failed")  # probability below beta^1000
        total += z
    if params.mechanism == "dgauss":
        total += discrete.discrete_gaussian(params.noise_variance, d_pad, rng)
    else:
        total += discrete.skellam(params.noise_variance, d_pad, rng)
    return (total.view(np.uint64) & np.uint64((1 << params.bits) - 1)).astype(np.uint32)


def _dpsgd_params(d: int) -> ddp.DistributedDPParams:
    """The privacy benchmark's distributed DP-SGD plan at epsilon 1 (10
    clients, secagg threshold 6, 1,437 examples, full batches, 30 steps,
    clip 1, 32 bits) at dimension ``d``."""
    return dsgd.select_dpsgd_parameters(
        target_epsilon=1.0, delta=1e-5, num_clients=10, min_survivors=6,
        total_examples=1437, sample_rate=1.0, steps=30, dimension=d, l2_clip=1.0)


def _batch_rows(cases: list[tuple[int, int]], repeat: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    seed = ddp.rotation_seed(b"bench-dpsgd", 0)
    src = discrete.DiscreteRandom()
    for d, b in cases:
        params = _dpsgd_params(d)
        rng = np.random.default_rng(b)
        # per-example gradients: random directions, norms uniform in [0.2, 3]
        # times the clip norm (about 70 % clipped)
        g = rng.normal(size=(b, d))
        g /= np.linalg.norm(g, axis=1, keepdims=True)
        g *= rng.uniform(0.2, 3.0, size=(b, 1))
        key = os.urandom(32)
        a, r = discrete.DiscreteRandom(key), discrete.DiscreteRandom(key)
        same = (np.array_equal(dsgd.encode_batch(params, g, seed, a),
                               per_row_encode_batch(params, g, seed, r))
                and a.words_drawn == r.words_drawn)
        t = _interleaved({
            "old": lambda: per_row_encode_batch(params, g, seed, src),
            "new": lambda: dsgd.encode_batch(params, g, seed, src),
        }, repeat)
        rows.append({
            "d": d, "padded": params.padded_dimension, "B": b,
            "per-row ms": t["old"] * 1e3, "batched ms": t["new"] * 1e3,
            "speed-up": t["old"] / t["new"],
            "batched µs per row": t["new"] * 1e6 / b,
            "same output": "yes" if same else "NO",
        })
    return rows


@contextlib.contextmanager
def per_row_dpsgd() -> Iterator[None]:
    """Inside: :func:`dp.distributed_sgd.encode_batch` is
    :func:`per_row_encode_batch` (the distributed DP-SGD driver looks it up
    at every step)."""
    real = dsgd.encode_batch
    dsgd.encode_batch = per_row_encode_batch  # type: ignore[assignment]
    try:
        yield
    finally:
        dsgd.encode_batch = real


@contextlib.contextmanager
def fixed_dpsgd_sources(tag: bytes) -> Iterator[None]:
    """Inside: the randomness of a distributed DP-SGD run is a function of
    ``tag``, so that two runs can be compared bit for bit. Every
    :class:`dp.discrete.DiscreteRandom` made without a seed (each client's
    sampling, rounding and noise source) takes seed number i =
    SHA-256(tag || i), and the per-step rotation seeds ignore their fresh
    context. For benchmarks only: whoever knows these seeds can remove the
    noise."""
    real_random, real_rotation = discrete.DiscreteRandom, ddp.rotation_seed
    counter = iter(range(1 << 62))

    class Fixed(real_random):  # type: ignore[misc, valid-type]
        def __init__(self, seed: bytes | None = None) -> None:
            if seed is None:
                seed = hashlib.sha256(tag + next(counter).to_bytes(8, "big")).digest()
            super().__init__(seed)

    discrete.DiscreteRandom = Fixed  # type: ignore[misc]
    ddp.rotation_seed = lambda context, r: real_rotation(tag, r)  # type: ignore[assignment]
    try:
        yield
    finally:
        discrete.DiscreteRandom = real_random  # type: ignore[misc]
        ddp.rotation_seed = real_rotation


def _digits_rows(repeat: int, eps: float = 1.0, seed: int = 0) -> list[dict[str, object]]:
    """One distributed DP-SGD run of ``secagg bench privacy --distributed-sgd``
    ("noise for threshold", seed ``seed``) per encoder, ``repeat`` times in
    turn (the order swapped every time, after one untimed run that warms up
    the process), under the same fixed client seeds."""
    import torch

    from . import privacy

    torch.set_num_threads(1)
    data = privacy.load_data()
    cfg = privacy.DISTRIBUTED_SGD[eps]
    with fixed_dpsgd_sources(b"bench-digits"):
        privacy.run_distributed_sgd(data, eps, cfg, seed)
    runs: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
    for i in range(repeat):
        for name in ("old", "new") if i % 2 == 0 else ("new", "old"):
            with fixed_dpsgd_sources(b"bench-digits"), (
                    per_row_dpsgd() if name == "old" else contextlib.nullcontext()):
                t0 = time.perf_counter()
                r = privacy.run_distributed_sgd(data, eps, cfg, seed)
                r["wall"] = time.perf_counter() - t0
            runs[name].append(r)
    old, new = runs["old"], runs["new"]
    return [{
        "epsilon": eps, "steps": new[0]["steps"], "runs each": repeat,
        "per-row s (best)": min(r["wall"] for r in old),
        "batched s (best)": min(r["wall"] for r in new),
        "speed-up": min(r["wall"] for r in old) / min(r["wall"] for r in new),
        "per-row s (mean)": float(np.mean([r["wall"] for r in old])),
        "batched s (mean)": float(np.mean([r["wall"] for r in new])),
        "accuracy per-row": old[0]["accuracy"], "accuracy batched": new[0]["accuracy"],
        "same accuracy": "yes" if len({r["accuracy"] for r in old + new}) == 1 else "NO",
    }]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="secagg bench distributed_dp", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    ap.add_argument("--out", help="JSON output path (default bench-results/distributed_dp.json)")
    ap.add_argument("--batch-only", action="store_true",
                    help="only the example-level DP-SGD batch encoding rows")
    ap.add_argument("--digits-run", action="store_true",
                    help="also time whole distributed DP-SGD runs on digits with each "
                    "encoder (3 runs each, 1 with --quick, after one untimed run; a few "
                    "seconds per run)")
    args = ap.parse_args(argv)
    dims = [10**5] if args.quick else [10**5, 10**6]
    repeat = 3 if args.quick else 15
    load_before = os.getloadavg()
    cases = [(650, b) for b in (1, 16, 64, 256)] + [(10**5, 16)]
    b_rows = _batch_rows(cases, 5 if args.quick else 40)  # best of more: short calls
    print("## Example-level DP-SGD: a client's batch, one row at a time (before) and "
          "batched\n")
    print(table(b_rows))
    d_rows = _digits_rows(1 if args.quick else 3) if args.digits_run else []
    if d_rows:
        print("\n## One distributed DP-SGD run on digits (privacy benchmark, fixed seeds)\n")
        print(table(d_rows))
    if args.batch_only:
        load = [round(v, 2) for v in os.getloadavg()]
        print(f"\nload average (1, 5, 15 min): {[round(v, 2) for v in load_before]} at the "
              f"start, {load} at the end, on {os.cpu_count()} cores")
        path = write_json("distributed_dp", {
            "dpsgd_batch": b_rows, "dpsgd_digits_run": d_rows,
            "load_average_start": list(load_before), "load_average_end": load,
            "cpus": os.cpu_count()}, args.out)
        print(f"\nwrote {path}")
        return 0
    bit_list = [8, 12, 16, 20] if args.quick else list(range(8, 21))
    s_rows = _sampler_rows(dims, repeat)
    print("## Samplers, variance 1e4 (exact discrete vs secure float Gaussian)\n")
    print(table(s_rows))
    c_rows = _client_rows(dims, repeat)
    print("\n## A client's distributed-DP work against its PRG masking\n")
    print(table(c_rows))
    w_rows = _wrap_rows(bit_list, d=1000 if args.quick else 4000, n=20,
                        rounds=2 if args.quick else 3)
    print("\n## Wrap-around against bits (20 clients, epsilon 1 over 10 rounds, delta 1e-5)\n")
    cols = ["bits", "selected", "gamma", "bound per coord", "measured wrap",
            "error std / central std", "wrap at 20-bit gamma"]
    print(table(w_rows, cols))
    load = [round(v, 2) for v in os.getloadavg()]
    print(f"\nload average (1, 5, 15 min): {[round(v, 2) for v in load_before]} at the "
          f"start, {load} at the end, on {os.cpu_count()} cores")
    path = write_json("distributed_dp", {
        "samplers": s_rows, "client": c_rows, "wrap": w_rows,
        "dpsgd_batch": b_rows, "dpsgd_digits_run": d_rows,
        "load_average_start": list(load_before), "load_average_end": load,
        "cpus": os.cpu_count()}, args.out)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(__import__("sys").argv[1:]))
