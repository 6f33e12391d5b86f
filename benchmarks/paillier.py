"""Suite ``paillier``: packed Paillier against naive ``phe``, side by side.

For each key size: values per second for encrypt, aggregate (adding one
encrypted vector to another) and decrypt, and bytes per value, for naive
``phe`` (one ``EncryptedNumber`` per float) and for each packed encryption
mode: online ``r^n``, pool (offline precomputation, then a cheap online
phase), CRT (the encrypting party holds the private key) and the DJN
short-exponent variant (opt-in; non-standard assumption).

Method: every measurement is a short probe (10 naive values, or a few packed
ciphertexts), and all probes of a key size run round-robin, several rounds,
keeping each probe's best time. Single-process probes are timed in this
process's CPU time, so other load on the machine does not skew the ratios;
naive and packed code also see the same conditions. The ``xN procs`` rows
encrypt and decrypt a larger vector with ``workers=N`` and are timed on the
wall clock (they only help when N cores are free). ``ceiling`` is slots
per ciphertext divided by the time of one ``r^n mod n^2`` (measured in the
same rounds): the best any public-key-only encryption can do.

    python -m benchmarks paillier [--quick] [--out FILE] [--bits 2048 3072]
"""

from __future__ import annotations

import argparse
import functools
import os
import secrets
import time
from collections.abc import Callable
from typing import Any

import gmpy2
import numpy as np

from secagg import paillier as P
from secagg.paillier import _obfuscators

from ._common import best_of, table, write_json

VALUE_BITS = 16
CAPACITY = 1000
#: A second, cross-silo sized layout: fewer summands, narrower slots, more of them.
SMALL_CAPACITY = 100
NAIVE_BATCH = 10
PROBE_CIPHERTEXTS = 4
MODES = (
    ("online", "packed online r^n"),
    ("pool", "packed pool (online phase)"),
    ("crt", "packed CRT (key holder)"),
    ("djn", "packed DJN short exp. (opt-in)"),
)

TARGETS = {
    "online_vs_naive": 75.0,
    "crt_vs_naive": 250.0,
    "decrypt_vs_naive": 80.0,
    "bytes_per_value": 8.0,
    "ceiling_ratio": 1.2,
}


class Probes:
    """Named short jobs run round-robin; keeps each one's best CPU seconds per value."""

    def __init__(self) -> None:
        self._jobs: dict[str, tuple[Callable[[], object], int]] = {}
        self.best: dict[str, float] = {}

    def add(self, name: str, fn: Callable[[], object], values: int) -> None:
        self._jobs[name] = (fn, values)
        self.best[name] = float("inf")

    def run(self, rounds: int) -> None:
        for _ in range(rounds):
            for name, (fn, values) in self._jobs.items():
                t0 = time.process_time()
                fn()
                self.best[name] = min(self.best[name], (time.process_time() - t0) / values)

    def rate(self, name: str) -> float:
        return 1.0 / self.best[name]


def _measure_key(
    bits: int, *, rounds: int, workers: int, quick: bool, rng: np.random.Generator
) -> dict[str, Any]:
    t0 = time.perf_counter()
    pk, sk = P.generate_keypair(bits)
    keygen = time.perf_counter() - t0
    full_cts = 6 if quick else 40
    slots = P.PackingLayout.create(pk, 1, value_bits=VALUE_BITS, capacity=CAPACITY).slots

    def layout_of(d: int) -> P.PackingLayout:
        return P.PackingLayout.create(pk, d, clip=1.0, value_bits=VALUE_BITS, capacity=CAPACITY)

    probes = Probes()
    # naive phe: one EncryptedNumber per float
    xs = [float(v) for v in rng.uniform(-1, 1, NAIVE_BATCH)]
    enc_a = [pk.encrypt(v) for v in xs]
    enc_b = [pk.encrypt(-v) for v in xs]
    probes.add("naive encrypt", lambda: [pk.encrypt(v) for v in xs], NAIVE_BATCH)
    pairs = list(zip(enc_a, enc_b, strict=True)) * 10  # additions are cheap: 100 per probe
    probes.add("naive aggregate", lambda: [a + b for a, b in pairs], len(pairs))
    probes.add("naive decrypt", lambda: [sk.decrypt(e) for e in enc_a], NAIVE_BATCH)
    # the exponentiation-bound ceiling
    n = gmpy2.mpz(pk.n)
    n2 = n * n
    rs = [gmpy2.mpz(secrets.randbelow(int(n) - 1) + 1) for _ in range(PROBE_CIPHERTEXTS)]
    for i in range(3):  # cheap and central to the ceiling: sample it more often
        probes.add(f"r^n#{i}", lambda: [gmpy2.powmod(r, n, n2) for r in rs], PROBE_CIPHERTEXTS)
    # packed: a probe vector of a few ciphertexts
    d = slots * PROBE_CIPHERTEXTS
    layout = layout_of(d)
    x = rng.uniform(-1, 1, d)
    djn_t0 = time.perf_counter()
    djn = P.DJNTable(pk)
    djn_setup = time.perf_counter() - djn_t0
    pool = P.ObfuscatorPool.precompute(pk, PROBE_CIPHERTEXTS * (rounds + 1))
    kws: dict[str, dict[str, Any]] = {
        "online": {},
        "pool": {"pool": pool},
        "crt": {"private_key": sk},
        "djn": {"djn": djn},
    }
    for mode, _label in MODES:
        kw = kws[mode]
        probes.add(f"{mode} encrypt", functools.partial(P.encrypt, pk, layout, x, **kw), d)
    offline = P.ObfuscatorPool(pk)
    probes.add("pool offline", lambda: offline.refill(PROBE_CIPHERTEXTS), d)
    a = P.encrypt(pk, layout, x)
    b = P.encrypt(pk, layout, -x, private_key=sk)
    big = layout_of(slots * full_cts)
    xb = rng.uniform(-1, 1, big.dimension)
    big_a = P.encrypt(pk, big, xb, private_key=sk)
    big_b = P.encrypt(pk, big, -xb, private_key=sk)
    probes.add("packed aggregate", lambda: big_a + big_b, big.dimension)
    probes.add("packed decrypt", lambda: P.decrypt(sk, a), d)
    # the same probes on the narrower-slot layout
    small_slots = P.PackingLayout.create(
        pk, 1, value_bits=VALUE_BITS, capacity=SMALL_CAPACITY
    ).slots
    small = P.PackingLayout.create(
        pk, small_slots * PROBE_CIPHERTEXTS, value_bits=VALUE_BITS, capacity=SMALL_CAPACITY
    )
    xs_small = rng.uniform(-1, 1, small.dimension)
    a_small = P.encrypt(pk, small, xs_small)
    big_small = P.PackingLayout.create(
        pk, small.slots * full_cts, value_bits=VALUE_BITS, capacity=SMALL_CAPACITY
    )
    xbs = rng.uniform(-1, 1, big_small.dimension)
    bs_a = P.encrypt(pk, big_small, xbs, private_key=sk)
    bs_b = P.encrypt(pk, big_small, -xbs, private_key=sk)
    probes.add("small encrypt", functools.partial(P.encrypt, pk, small, xs_small), small.dimension)
    probes.add("small aggregate", lambda: bs_a + bs_b, big_small.dimension)
    probes.add("small decrypt", lambda: P.decrypt(sk, a_small), small.dimension)
    probes.run(rounds)
    if np.abs(P.decrypt(sk, a + b)).max() > 2 / layout.scale:
        raise AssertionError("wrong decryption in the benchmark")

    rn_best = min(probes.best[f"r^n#{i}"] for i in range(3))
    # bytes per value on the larger vector (as it crosses the network)
    nbytes = len(big_a.to_bytes())
    result: dict[str, Any] = {
        "keygen_seconds": keygen,
        "djn_table_seconds": djn_setup,
        "slots": slots,
        "slot_bits": layout.slot_bits,
        "rn_seconds": rn_best,
        "ceiling_values_per_second": slots / rn_best,
        "naive": {
            "encrypt": probes.rate("naive encrypt"),
            "aggregate": probes.rate("naive aggregate"),
            "decrypt": probes.rate("naive decrypt"),
            "bytes_per_value": float((2 * bits + 7) // 8),
        },
        "packed": {
            mode: {
                "encrypt": probes.rate(f"{mode} encrypt"),
                "aggregate": probes.rate("packed aggregate"),
                "decrypt": probes.rate("packed decrypt"),
                "bytes_per_value": nbytes / big.dimension,
            }
            for mode, _ in MODES
        },
        "pool_offline": probes.rate("pool offline"),
        "small_layout": {
            "capacity": SMALL_CAPACITY,
            "slots": small.slots,
            "slot_bits": small.slot_bits,
            "encrypt": probes.rate("small encrypt"),
            "aggregate": probes.rate("small aggregate"),
            "decrypt": probes.rate("small decrypt"),
            "bytes_per_value": len(bs_a.to_bytes()) / big_small.dimension,
        },
    }
    if workers > 1 and not quick:
        wide = layout_of(slots * _obfuscators.PARALLEL_MIN_PER_WORKER * workers)
        xw = rng.uniform(-1, 1, wide.dimension)
        par: dict[str, Any] = {}
        for mode in ("online", "crt"):
            kw = {"private_key": sk} if mode == "crt" else {}
            t_enc = best_of(functools.partial(P.encrypt, pk, wide, xw, workers=workers, **kw), 2)
            v = P.encrypt(pk, wide, xw, private_key=sk)
            t_dec = best_of(functools.partial(P.decrypt, sk, v, workers=workers), 2)
            par[mode] = {
                "encrypt": wide.dimension / t_enc,
                "decrypt": wide.dimension / t_dec,
                "values": wide.dimension,
            }
        result["parallel"] = {"workers": workers, **par}
    return result


def _rows(bits: int, r: dict[str, Any]) -> list[dict[str, Any]]:
    naive = r["naive"]
    ceiling = r["ceiling_values_per_second"]
    rows: list[dict[str, Any]] = [
        {
            "bits": bits,
            "scheme": "naive phe",
            "encrypt/s": naive["encrypt"],
            "enc x": 1.0,
            "aggregate/s": naive["aggregate"],
            "agg x": 1.0,
            "decrypt/s": naive["decrypt"],
            "dec x": 1.0,
            "bytes/value": naive["bytes_per_value"],
            "ceiling/enc": "",
        }
    ]
    for mode, label in MODES:
        p = r["packed"][mode]
        rows.append(
            {
                "bits": bits,
                "scheme": label,
                "encrypt/s": p["encrypt"],
                "enc x": p["encrypt"] / naive["encrypt"],
                "aggregate/s": p["aggregate"],
                "agg x": p["aggregate"] / naive["aggregate"],
                "decrypt/s": p["decrypt"],
                "dec x": p["decrypt"] / naive["decrypt"],
                "bytes/value": p["bytes_per_value"],
                "ceiling/enc": ceiling / p["encrypt"] if mode == "online" else "",
            }
        )
        if mode == "pool":
            off = r["pool_offline"]
            rows.append(
                {
                    "bits": bits,
                    "scheme": "packed pool (offline phase)",
                    "encrypt/s": off,
                    "enc x": off / naive["encrypt"],
                    "aggregate/s": "",
                    "agg x": "",
                    "decrypt/s": "",
                    "dec x": "",
                    "bytes/value": "",
                    "ceiling/enc": ceiling / off,
                }
            )
    sm = r["small_layout"]
    rows.append(
        {
            "bits": bits,
            "scheme": f"packed online, capacity {sm['capacity']} ({sm['slots']} slots)",
            "encrypt/s": sm["encrypt"],
            "enc x": sm["encrypt"] / naive["encrypt"],
            "aggregate/s": sm["aggregate"],
            "agg x": sm["aggregate"] / naive["aggregate"],
            "decrypt/s": sm["decrypt"],
            "dec x": sm["decrypt"] / naive["decrypt"],
            "bytes/value": sm["bytes_per_value"],
            "ceiling/enc": "",
        }
    )
    par = r.get("parallel")
    if par:
        for mode, label in (("online", "online"), ("crt", "CRT")):
            q = par[mode]
            rows.append(
                {
                    "bits": bits,
                    "scheme": f"packed {label} x{par['workers']} procs",
                    "encrypt/s": q["encrypt"],
                    "enc x": q["encrypt"] / naive["encrypt"],
                    "aggregate/s": "",
                    "agg x": "",
                    "decrypt/s": q["decrypt"],
                    "dec x": q["decrypt"] / naive["decrypt"],
                    "bytes/value": "",
                    "ceiling/enc": "",
                }
            )
    return rows


def _targets(results: dict[str, Any]) -> list[str]:
    r = results.get("2048")
    if r is None:
        return []
    naive, packed = r["naive"], r["packed"]
    checks = [
        ("online encrypt vs naive", packed["online"]["encrypt"] / naive["encrypt"], ">=",
         TARGETS["online_vs_naive"]),
        ("CRT encrypt vs naive", packed["crt"]["encrypt"] / naive["encrypt"], ">=",
         TARGETS["crt_vs_naive"]),
        ("decrypt vs naive", packed["online"]["decrypt"] / naive["decrypt"], ">=",
         TARGETS["decrypt_vs_naive"]),
        ("bytes per value", packed["online"]["bytes_per_value"], "<", TARGETS["bytes_per_value"]),
        ("ceiling / online rate", r["ceiling_values_per_second"] / packed["online"]["encrypt"],
         "<=", TARGETS["ceiling_ratio"]),
    ]  # fmt: skip
    out = []
    for name, got, op, want in checks:
        ok = got >= want if op == ">=" else (got < want if op == "<" else got <= want)
        out.append(f"{'ok  ' if ok else 'MISS'} {name}: {got:.3g} (target {op} {want:g})")
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="secagg bench paillier", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds, 2048 bits only")
    ap.add_argument(
        "--bits", type=int, nargs="+", default=None, help="key sizes (default 2048 3072)"
    )
    ap.add_argument(
        "--rounds", type=int, default=None, help="probe rounds (default 5 quick, 12 full)"
    )
    ap.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="processes for the multi-process rows (full mode)",
    )
    ap.add_argument("--out", default=None, help="JSON output (default bench-results/paillier.json)")
    args = ap.parse_args(argv)
    bits_list = args.bits or ([2048] if args.quick else [2048, 3072])
    rounds = args.rounds or (5 if args.quick else 12)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    results = {
        str(b): _measure_key(b, rounds=rounds, workers=args.workers, quick=args.quick, rng=rng)
        for b in bits_list
    }
    rows = [row for b in bits_list for row in _rows(b, results[str(b)])]
    payload: dict[str, Any] = {
        "rows": rows,
        "results": results,
        "quick": args.quick,
        "rounds": rounds,
        "value_bits": VALUE_BITS,
        "capacity": CAPACITY,
        "small_capacity": SMALL_CAPACITY,
        "seconds": time.perf_counter() - t0,
        "load_average": os.getloadavg(),
    }
    print(table(rows))
    print()
    for b in bits_list:
        info = results[str(b)]
        print(
            f"{b} bits: {info['slots']} slots of {info['slot_bits']} bits per ciphertext "
            f"(value_bits={VALUE_BITS}, capacity={CAPACITY}); one r^n mod n^2 = "
            f"{info['rn_seconds'] * 1e3:.2f} ms; ceiling {info['ceiling_values_per_second']:.4g} "
            f"values/s"
        )
    for line in _targets(results):
        print(line)
    load = payload["load_average"][0]
    if load > 0.5 * (os.cpu_count() or 1):
        print(f"note: load average {load:.2f} during the run; rates on a busy machine are noisy")
    path = write_json("paillier", payload, args.out)
    print(f"wrote {path} in {payload['seconds']:.1f} s")
    return 0
