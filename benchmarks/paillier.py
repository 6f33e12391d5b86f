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

Threshold rows (``paillier.threshold``, trusted dealer): for (t, n) in
(2, 3), (3, 5), (6, 10), the decryption of one packed sum of
``--threshold-dimension`` values (10^5 by default) against single-key CRT
decryption of the same vector, all in this process's CPU time: one partial
decryption (with its proof), verifying one partial, combining t partials,
the latency when the t decryptors work in parallel (one partial, then the
combiner verifies t partials and combines) and the total CPU over all
parties. Key generation rows time safe-prime key pairs (what the dealer
needs) against ``phe``'s keys, and dealing shares from a key pair.

    python -m benchmarks paillier [--quick] [--out FILE] [--bits 2048 3072]
                                  [--threshold-dimension D] [--only-threshold]
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
from secagg.paillier import threshold as T

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

#: (threshold t, decryptors n) settings of the threshold rows.
THRESHOLD_SETTINGS = ((2, 3), (3, 5), (6, 10))

TARGETS = {
    "online_vs_naive": 75.0,
    "crt_vs_naive": 250.0,
    "decrypt_vs_naive": 80.0,
    "bytes_per_value": 8.0,
    "ceiling_ratio": 1.2,
    "threshold_t3_vs_single": 3.0,
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


def _cpu(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


def _measure_threshold(
    bits: int, *, dimension: int, keygens: int, rng: np.random.Generator
) -> dict[str, Any]:
    """Threshold decryption of one packed sum against single-key CRT decryption."""
    gen_times = []
    keypair: tuple[Any, Any] | None = None
    for _ in range(keygens):
        t, kp = _cpu(lambda: T.generate_keypair(bits))
        gen_times.append(t)
        keypair = kp
    assert keypair is not None
    phe_times = [_cpu(lambda: P.generate_keypair(bits))[0] for _ in range(keygens)]
    pk, sk = keypair
    layout = P.PackingLayout.create(pk, dimension, value_bits=VALUE_BITS, capacity=CAPACITY)
    x = rng.uniform(-1, 1, dimension)
    vec = P.encrypt(pk, layout, x, private_key=sk) + P.encrypt(pk, layout, -x / 2, private_key=sk)
    single = min(_cpu(lambda: P.decrypt_integers(sk, vec))[0] for _ in range(2))
    expect = P.decrypt_integers(sk, vec)
    settings: dict[str, Any] = {}
    for t, n in THRESHOLD_SETTINGS:
        deal_s, dealt = _cpu(functools.partial(T.deal, keypair, n, t))
        partial_times = []
        parts = []
        for share in dealt.shares[:t]:
            pt, part = _cpu(functools.partial(T.partial_decrypt, share, vec))
            partial_times.append(pt)
            parts.append(part)
        verify_s = _cpu(lambda: T.verify_partial(dealt.key, vec, parts[0]))[0]
        combine_s, got = _cpu(lambda: T.combine_integers(dealt.key, vec, parts, verify=False))
        combine_verified_s, got_v = _cpu(lambda: T.combine_integers(dealt.key, vec, parts))
        if not (np.array_equal(got, expect) and np.array_equal(got_v, expect)):
            raise AssertionError("threshold decryption differs from single-key decryption")
        partial_s = sum(partial_times) / len(partial_times)
        settings[f"{t},{n}"] = {
            "t": t,
            "n": n,
            "deal_seconds": deal_s,
            "partial_seconds": partial_s,
            "verify_seconds": verify_s,
            "combine_seconds": combine_s,
            "combine_verified_seconds": combine_verified_s,
            "latency_seconds": partial_s + combine_verified_s,
            "total_seconds": sum(partial_times) + combine_verified_s,
            "partial_bytes": len(parts[0].to_bytes()),
        }
    return {
        "dimension": dimension,
        "ciphertexts": layout.ciphertexts,
        "single_seconds": single,
        "safe_keygen_seconds": gen_times,
        "phe_keygen_seconds": phe_times,
        "settings": settings,
    }


def _threshold_rows(bits: int, r: dict[str, Any]) -> list[dict[str, Any]]:
    d = r["dimension"]
    single = r["single_seconds"]
    rows: list[dict[str, Any]] = [
        {
            "bits": bits,
            "decryption": "single key, CRT",
            "us/value": single / d * 1e6,
            "x single": 1.0,
            "one partial us/value": "",
            "verify one us/value": "",
            "combine us/value": "",
            "total CPU x single": 1.0,
            "partial bytes/value": "",
        }
    ]
    for s in r["settings"].values():
        rows.append(
            {
                "bits": bits,
                "decryption": f"threshold t={s['t']} of n={s['n']}",
                "us/value": s["latency_seconds"] / d * 1e6,
                "x single": s["latency_seconds"] / single,
                "one partial us/value": s["partial_seconds"] / d * 1e6,
                "verify one us/value": s["verify_seconds"] / d * 1e6,
                "combine us/value": s["combine_seconds"] / d * 1e6,
                "total CPU x single": s["total_seconds"] / single,
                "partial bytes/value": s["partial_bytes"] / d,
            }
        )
    return rows


def _keygen_rows(bits: int, r: dict[str, Any]) -> list[dict[str, Any]]:
    safe, plain = r["safe_keygen_seconds"], r["phe_keygen_seconds"]
    rows = [
        {"bits": bits, "key generation": "phe key pair", "median s": float(np.median(plain)),
         "max s": max(plain), "runs": len(plain)},
        {"bits": bits, "key generation": "safe-prime key pair (dealer)",
         "median s": float(np.median(safe)), "max s": max(safe), "runs": len(safe)},
    ]  # fmt: skip
    for s in r["settings"].values():
        rows.append(
            {
                "bits": bits,
                "key generation": f"deal t={s['t']} of n={s['n']} from the key pair",
                "median s": s["deal_seconds"],
                "max s": s["deal_seconds"],
                "runs": 1,
            }
        )
    return rows


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
    checks: list[tuple[str, float, str, float]] = []
    if r is not None:
        checks += _packed_checks(r)
    th = results.get("threshold", {}).get("2048")
    if th is not None:
        for s in th["settings"].values():
            if s["t"] == 3:
                checks.append(
                    ("threshold t=3 latency / single-key decryption",
                     s["latency_seconds"] / th["single_seconds"], "<=",
                     TARGETS["threshold_t3_vs_single"])
                )  # fmt: skip
    out = []
    for name, got, op, want in checks:
        ok = got >= want if op == ">=" else (got < want if op == "<" else got <= want)
        out.append(f"{'ok  ' if ok else 'MISS'} {name}: {got:.3g} (target {op} {want:g})")
    return out


def _packed_checks(r: dict[str, Any]) -> list[tuple[str, float, str, float]]:
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
    return checks


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
    ap.add_argument(
        "--threshold-dimension",
        type=int,
        default=None,
        help="values in the threshold-decrypted sum (default 100000; 2000 with --quick)",
    )
    ap.add_argument(
        "--threshold-bits",
        type=int,
        nargs="+",
        default=None,
        help="key sizes for the threshold rows (default 2048)",
    )
    ap.add_argument(
        "--keygens", type=int, default=None, help="key generations timed (default 5; 1 quick)"
    )
    ap.add_argument(
        "--only-threshold", action="store_true", help="run only the threshold and key rows"
    )
    ap.add_argument("--out", default=None, help="JSON output (default bench-results/paillier.json)")
    args = ap.parse_args(argv)
    bits_list = (
        [] if args.only_threshold else (args.bits or ([2048] if args.quick else [2048, 3072]))
    )
    rounds = args.rounds or (5 if args.quick else 12)
    th_dim = args.threshold_dimension or (2000 if args.quick else 100_000)
    th_bits = args.threshold_bits or [2048]
    keygens = args.keygens or (1 if args.quick else 5)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    results: dict[str, Any] = {
        str(b): _measure_key(b, rounds=rounds, workers=args.workers, quick=args.quick, rng=rng)
        for b in bits_list
    }
    results["threshold"] = {
        str(b): _measure_threshold(b, dimension=th_dim, keygens=keygens, rng=rng) for b in th_bits
    }
    rows = [row for b in bits_list for row in _rows(b, results[str(b)])]
    th_rows = [row for b in th_bits for row in _threshold_rows(b, results["threshold"][str(b)])]
    key_rows = [row for b in th_bits for row in _keygen_rows(b, results["threshold"][str(b)])]
    payload: dict[str, Any] = {
        "rows": rows,
        "threshold_rows": th_rows,
        "keygen_rows": key_rows,
        "threshold_dimension": th_dim,
        "results": results,
        "quick": args.quick,
        "rounds": rounds,
        "value_bits": VALUE_BITS,
        "capacity": CAPACITY,
        "small_capacity": SMALL_CAPACITY,
        "seconds": time.perf_counter() - t0,
        "load_average": os.getloadavg(),
    }
    if rows:
        print(table(rows))
        print()
    print(
        f"Threshold decryption of a {th_dim}-value packed sum (CPU time; latency = one "
        "partial + verifying t partials and combining):"
    )
    print(table(th_rows))
    print()
    print(table(key_rows))
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
