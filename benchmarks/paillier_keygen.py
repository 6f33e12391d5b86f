"""Suite ``paillier_keygen``: our trusted-dealer threshold Paillier key
generation against TNO's dealer-free one, side by side.

For each modulus size and committee size n in {3, 5} with TNO's rule
n >= 2t + 1 (t = (n - 1) // 2 corrupted parties tolerated):

* **ours** (:mod:`secagg.paillier.threshold`): one dealer draws two safe
  primes (``generate_keypair``), then deals a (t + 1)-of-n key with
  verification keys (``deal``): any t + 1 shares decrypt, t learn nothing,
  the same privacy threshold as TNO's. Dealer wall time and CPU time.
* **tno** (``tno.mpc.protocols.distributed_keygen``, Veugen, Attema and Spini,
  ePrint 2019/1136; semi-honest): n parties, one process each, talk over
  HTTP on 127.0.0.1 (``tno.mpc.communication.Pool``) and generate the key
  with no dealer: shared random p, q (= 3 mod 4, not safe primes), a sieve of
  N = pq by the primes up to 2000, a distributed biprimality test (40 rounds),
  then a Shamir sharing of the secret key over the integers. Wall time of
  the whole protocol (all parties start together), CPU time of each party,
  bytes each party sent and the number of candidate rounds (TNO's default
  batch: 100 (p, q) pairs per round) and biprimality tests it needed.

Key generation time is a geometric-like random variable (the number of
candidates until a prime, or a biprime, is found), so each setting runs
``--repeat`` times and reports the median and the range. A TNO run that does
not finish within ``--tno-timeout`` seconds is stopped and reported as
unfinished with how far it got.

Decryption rows (``--decrypt-values``, 10^3 by default): one decryption of an
aggregated vector of that many values, once per setting. Ours: a packed
vector; t + 1 decryptors each compute one partial with its proof, a combiner
verifies them and combines. TNO: one ciphertext per value (no packing); all
parties must take part (its secret key is a degree-2t sharing, combined from
the fixed parties 1..2t + 1, i.e. everyone when n = 2t + 1), each computes a
partial, sends it to all and combines everything itself; no proofs.

TNO runs in its own environment (it is not a dependency of this project)::

    python3 -m venv ../tnoenv
    ../tnoenv/bin/pip install tno.mpc.protocols.distributed-keygen \\
        'tno.mpc.encryption_schemes.utils[gmpy]<0.16'
    python -m benchmarks paillier_keygen --tno-python ../tnoenv/bin/python

(``utils<0.16``: its 0.16 needs ``tno.mpc.communication`` 5, which the key
generation package does not accept.) Without TNO only our rows are measured.

    python -m benchmarks paillier_keygen [--bits 2048 1024] [--parties 3 5]
        [--repeat 5] [--tno-repeat 3] [--tno-python PY] [--tno-timeout S]
        [--decrypt-values 1000] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import select
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from secagg import paillier as P
from secagg.paillier import threshold as T

from ._common import table, write_json

#: The worker run once per TNO party (standard library and TNO only).
PARTY_SCRIPT = Path(__file__).with_name("_tno_party.py")
TNO_PACKAGE = "tno.mpc.protocols.distributed_keygen"
INSTALL_HINT = (
    "python3 -m venv ../tnoenv && ../tnoenv/bin/pip install "
    "tno.mpc.protocols.distributed-keygen 'tno.mpc.encryption_schemes.utils[gmpy]<0.16', "
    "then pass --tno-python ../tnoenv/bin/python"
)
VALUE_BITS = 16
CAPACITY = 1000
#: Smallest modulus the suite accepts (below 2048 bits only for tests and the
#: side-by-side comparison; our library refuses such keys outside tests).
MIN_BENCH_BITS = 512


def corruption_threshold(parties: int) -> int:
    """TNO's largest corruption threshold t for n parties (n >= 2t + 1)."""
    return (parties - 1) // 2


def expected_rounds(bits: int, batch_size: int = 100) -> float:
    """TNO's mean number of candidate rounds for a ``bits``-bit modulus: a
    random odd ``bits / 2``-bit number is prime with probability about
    ``2 / ln(2^(bits / 2))`` and both p and q must be, so about
    ``(bits ln 2 / 4)^2`` (p, q) pairs, ``batch_size`` per round. The count
    is geometric: its standard deviation is about its mean."""
    return (bits * math.log(2) / 4) ** 2 / batch_size


def tno_notes(results: dict[str, Any]) -> list[str]:
    """Rounds observed against the mean, and the CPU a mean run would take."""
    out = []
    for setting in results.values():
        runs = [r for r in setting.get("tno") or [] if r.get("rounds")]
        if not runs:
            continue
        bits, n = runs[0]["bits"], runs[0]["parties"]
        mean = expected_rounds(bits, runs[0].get("batch_size", 100))
        rounds = sum(r["rounds"] for r in runs)
        cpu = sum(statistics.median(r["cpu_seconds"]) for r in runs)
        out.append(
            f"tno {bits} bits n={n}: {rounds} candidate rounds in {len(runs)} run(s) "
            f"({cpu / rounds:.3g} CPU s per round per party); a mean run needs about "
            f"{mean:.0f} rounds, i.e. about {mean * cpu / rounds:.0f} CPU s per party"
        )
    return out


def _summary(xs: Sequence[float]) -> dict[str, float]:
    return {"median": float(statistics.median(xs)), "min": min(xs), "max": max(xs)}


# --------------------------------------------------------------------- ours


def measure_ours_keygen(bits: int, parties: int, threshold: int) -> dict[str, Any]:
    """One dealer key generation: safe-prime key pair, then a threshold-of-parties
    dealing. Wall and CPU seconds of each step (the dealer is one process)."""
    small = bits < P.DEFAULT_KEY_BITS
    w0, c0 = time.perf_counter(), time.process_time()
    keypair = T.generate_keypair(bits, insecure_allow_small_key_for_tests=small)
    w1, c1 = time.perf_counter(), time.process_time()
    dealt = T.deal(keypair, parties, threshold, insecure_allow_small_key_for_tests=small)
    w2, c2 = time.perf_counter(), time.process_time()
    return {
        "primes_wall_seconds": w1 - w0,
        "primes_cpu_seconds": c1 - c0,
        "deal_wall_seconds": w2 - w1,
        "deal_cpu_seconds": c2 - c1,
        "wall_seconds": w2 - w0,
        "cpu_seconds": c2 - c0,
        "modulus_bits": int(dealt.public_key.n).bit_length(),
        "dealt": dealt,
    }


def measure_ours_decrypt(dealt: T.Dealt, values: int) -> dict[str, Any]:
    """Threshold decryption of one packed sum of ``values`` values with the
    first ``threshold`` shares, in CPU seconds per role."""
    key = dealt.key
    pk = dealt.public_key
    small = key.bits < P.DEFAULT_KEY_BITS
    layout = P.PackingLayout.create(
        pk, values, value_bits=VALUE_BITS, capacity=CAPACITY,
        insecure_allow_small_key_for_tests=small,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, values)
    vec = P.encrypt(pk, layout, x, insecure_allow_small_key_for_tests=small) + P.encrypt(
        pk, layout, -x / 2, insecure_allow_small_key_for_tests=small
    )
    partial_cpu = []
    parts = []
    for share in dealt.shares[: key.threshold]:
        c0 = time.process_time()
        parts.append(T.partial_decrypt(share, vec))
        partial_cpu.append(time.process_time() - c0)
    c0 = time.process_time()
    got = T.combine(key, vec, parts)
    combine_cpu = time.process_time() - c0
    if np.abs(got - x / 2).max() > 4 / layout.scale:
        raise AssertionError("threshold decryption of the benchmark vector is wrong")
    partial = statistics.median(partial_cpu)
    return {
        "values": values,
        "ciphertexts": layout.ciphertexts,
        "parties_needed": key.threshold,
        "partial_cpu_seconds": partial,
        "combine_cpu_seconds": combine_cpu,
        "latency_seconds": partial + combine_cpu,
        "total_cpu_seconds": sum(partial_cpu) + combine_cpu,
    }


# ---------------------------------------------------------------------- tno


def tno_version(python: str) -> str | None:
    """TNO's version in interpreter ``python``, or None if it is not importable there."""
    code = (
        "import importlib.metadata as m, tno.mpc.protocols.distributed_keygen;"
        f"print(m.version({TNO_PACKAGE!r}))"
    )
    try:
        r = subprocess.run(
            [python, "-c", code], capture_output=True, text=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0:
        return None
    return r.stdout.strip() or None


def find_tno_python(requested: str | None) -> tuple[str | None, str | None]:
    """(interpreter, version) for the TNO runs: ``requested``, else this one."""
    for python in [requested] if requested else [sys.executable]:
        v = tno_version(python)
        if v:
            return python, v
    return None, None


def _free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _stop(procs: Sequence[subprocess.Popen[str]]) -> None:
    """Stop every party we started, by pid (first politely)."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


def _read_line(p: subprocess.Popen[str], deadline: float) -> str:
    """One stdout line of party ``p``, waiting at most until ``deadline``."""
    assert p.stdout is not None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"party pid {p.pid} said nothing in time")
        ready, _, _ = select.select([p.stdout], [], [], min(left, 5.0))
        if ready:
            return p.stdout.readline()


def run_tno(
    python: str,
    bits: int,
    parties: int,
    *,
    decrypt_values: int = 0,
    timeout: float = 1800.0,
) -> dict[str, Any]:
    """One TNO key generation with ``parties`` processes on loopback.

    Every party listens on 127.0.0.1 at a free port, says READY, and all are
    told GO together. Returns the parties' own reports (wall and CPU seconds,
    counters, bytes sent) and ``finished``; a run past ``timeout`` seconds is
    stopped by the parties themselves (or killed by pid shortly after)."""
    t = corruption_threshold(parties)
    ports = _free_ports(parties)
    procs: list[subprocess.Popen[str]] = []
    try:
        for me in range(parties):
            cmd = [
                python, str(PARTY_SCRIPT), "--me", str(me), "--ports", *map(str, ports),
                "--bits", str(bits), "--corruption", str(t),
                "--decrypt-values", str(decrypt_values), "--timeout", str(timeout),
            ]  # fmt: skip
            pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE}
            procs.append(subprocess.Popen(cmd, **pipes, stderr=subprocess.DEVNULL, text=True))
        start_by = time.monotonic() + 120
        for p in procs:
            line = _read_line(p, start_by)
            if line.strip() != "READY":
                raise RuntimeError(f"party pid {p.pid} did not start: {line!r}")
        w0 = time.perf_counter()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("GO\n")
            p.stdin.flush()
        # the parties stop themselves at the timeout; a decryption may follow keygen
        end_by = time.monotonic() + 2 * timeout + 120
        reports = []
        for p in procs:
            line = ""
            while not line.startswith("RESULT "):
                line = _read_line(p, end_by)
                if not line:
                    raise RuntimeError(f"party pid {p.pid} exited without a result")
            reports.append(json.loads(line[len("RESULT ") :]))
        wall = time.perf_counter() - w0
    finally:
        _stop(procs)
    return summarize_tno(reports, wall_seconds=wall, bits=bits, parties=parties)


def summarize_tno(
    reports: Sequence[dict[str, Any]], *, wall_seconds: float, bits: int, parties: int
) -> dict[str, Any]:
    """One run's record from the parties' reports (see ``_tno_party.py``)."""
    finished = all(r.get("finished", False) for r in reports)
    first = reports[0]
    out: dict[str, Any] = {
        "bits": bits,
        "parties": parties,
        "t": corruption_threshold(parties),
        "finished": finished,
        "wall_seconds": max(r["keygen_wall_seconds"] for r in reports),
        "run_wall_seconds": wall_seconds,
        "cpu_seconds": [r["keygen_cpu_seconds"] for r in reports],
        "rounds": first.get("rounds", first.get("rounds_so_far", 0)),
        "batch_size": first.get("batch_size", 100),
        "biprime_tests": first.get("biprime_tests_so_far", 0),
        "modulus_bits": first.get("modulus_bits"),
        "bytes_sent": [r.get("keygen_bytes_sent", 0) for r in reports],
        "version": first.get("tno_version"),
    }
    if finished and "decrypt_wall_seconds" in first:
        out["decrypt"] = {
            "wall_seconds": max(r["decrypt_wall_seconds"] for r in reports),
            "cpu_seconds": [r["decrypt_cpu_seconds"] for r in reports],
        }
    return out


def failed_run(bits: int, parties: int, error: str) -> dict[str, Any]:
    """The record of a TNO run that broke down (reported, not hidden)."""
    return {
        "bits": bits, "parties": parties, "t": corruption_threshold(parties),
        "finished": False, "error": error, "wall_seconds": float("nan"),
        "cpu_seconds": [float("nan")], "rounds": 0, "bytes_sent": [0],
    }  # fmt: skip


# ------------------------------------------------------------------ reports


def keygen_rows(
    bits: int,
    parties: int,
    ours: Sequence[dict[str, Any]],
    tno: Sequence[dict[str, Any]] | None,
) -> list[dict[str, Any]]:
    """Table rows for one (bits, n): ours, and TNO's if it ran."""
    t = corruption_threshold(parties)
    wall = _summary([r["wall_seconds"] for r in ours])
    rows: list[dict[str, Any]] = [
        {
            "bits": bits,
            "n": parties,
            "key generation": f"ours: dealer, safe primes + deal {t + 1}-of-{parties}",
            "runs": len(ours),
            "median s": wall["median"],
            "min s": wall["min"],
            "max s": wall["max"],
            "CPU s/party": statistics.median(r["cpu_seconds"] for r in ours),
            "deal s": statistics.median(r["deal_wall_seconds"] for r in ours),
            "rounds x100": "",
            "MB sent/party": "",
        }
    ]
    if tno is None:
        return rows
    done = [r for r in tno if r["finished"]]
    cut = [r for r in tno if not r["finished"]]
    label = f"tno: dealer-free, n={parties}, t={t}"
    if done:
        w = _summary([r["wall_seconds"] for r in done])
        rows.append(
            {
                "bits": bits,
                "n": parties,
                "key generation": label,
                "runs": len(done),
                "median s": w["median"],
                "min s": w["min"],
                "max s": w["max"],
                "CPU s/party": statistics.median(c for r in done for c in r["cpu_seconds"]),
                "deal s": "",
                "rounds x100": statistics.median(r["rounds"] for r in done),
                "MB sent/party": statistics.median(b for r in done for b in r["bytes_sent"]) / 1e6,
            }
        )
    for r in cut:
        rows.append(
            {
                "bits": bits,
                "n": parties,
                "key generation": label + " (stopped, unfinished)",
                "runs": 1,
                "median s": f"> {r['wall_seconds']:.0f}",
                "min s": "",
                "max s": "",
                "CPU s/party": statistics.median(r["cpu_seconds"]),
                "deal s": "",
                "rounds x100": f"> {r['rounds']}",
                "MB sent/party": "",
            }
        )
    return rows


def decrypt_rows(
    bits: int, parties: int, ours: dict[str, Any], tno: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """One decryption of a ``values``-value vector sum: ours against TNO's."""
    t = corruption_threshold(parties)
    rows: list[dict[str, Any]] = [
        {
            "bits": bits,
            "n": parties,
            "decryption": f"ours: any {t + 1} of {parties}, packed, with proofs",
            "values": ours["values"],
            "ciphertexts": ours["ciphertexts"],
            "parties needed": ours["parties_needed"],
            "latency s": ours["latency_seconds"],
            "CPU s/party": ours["partial_cpu_seconds"],
            "total CPU s": ours["total_cpu_seconds"],
        }
    ]
    if tno is not None:
        cpu = tno["cpu_seconds"]
        rows.append(
            {
                "bits": bits,
                "n": parties,
                "decryption": "tno: all parties, one ciphertext per value, no proofs",
                "values": ours["values"],
                "ciphertexts": ours["values"],
                "parties needed": parties,
                "latency s": tno["wall_seconds"],
                "CPU s/party": statistics.median(cpu),
                "total CPU s": sum(cpu),
            }
        )
    return rows


# --------------------------------------------------------------------- main


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="secagg bench paillier_keygen", description=(__doc__ or "").split("\n")[0]
    )
    ap.add_argument(
        "--bits",
        type=int,
        nargs="+",
        default=[2048, 1024],
        help="modulus sizes (default 2048 1024; >= 512)",
    )
    ap.add_argument(
        "--parties",
        type=int,
        nargs="+",
        default=[3, 5],
        help="committee sizes n (default 3 5; t = (n - 1) // 2)",
    )
    ap.add_argument("--repeat", type=int, default=5, help="our key generations per setting")
    ap.add_argument("--tno-repeat", type=int, default=3, help="TNO key generations per setting")
    ap.add_argument(
        "--tno-bits",
        type=int,
        nargs="+",
        default=None,
        help="modulus sizes for TNO (default: --bits)",
    )
    ap.add_argument(
        "--tno-python", default=None, help="interpreter with TNO installed (default: this one)"
    )
    ap.add_argument("--no-tno", action="store_true", help="measure only ours")
    ap.add_argument(
        "--tno-timeout",
        type=float,
        default=1800.0,
        help="stop a TNO run after this many seconds (default 1800)",
    )
    ap.add_argument(
        "--decrypt-values",
        type=int,
        default=1000,
        help="values in the decrypted vector sum (0: no decryption rows)",
    )
    ap.add_argument(
        "--out", default=None, help="JSON output (default bench-results/paillier_keygen.json)"
    )
    args = ap.parse_args(argv)  # fmt: skip
    for b in args.bits + (args.tno_bits or []):
        if b < MIN_BENCH_BITS or b % 2:
            ap.error(f"--bits {b}: need an even size >= {MIN_BENCH_BITS}")
    for n in args.parties:
        if not 3 <= n <= T.MAX_PARTIES:
            ap.error(f"--parties {n}: TNO needs n >= 2t + 1 with t >= 1, so n >= 3")
    python, version = (None, None) if args.no_tno else find_tno_python(args.tno_python)
    if python is None and not args.no_tno:
        print(f"tno not found, measuring ours only. To compare: {INSTALL_HINT}")
    tno_bits = set(args.tno_bits or args.bits)
    t_start = time.perf_counter()
    results: dict[str, Any] = {}
    k_rows: list[dict[str, Any]] = []
    d_rows: list[dict[str, Any]] = []
    for bits in args.bits:
        for n in args.parties:
            t = corruption_threshold(n)
            ours = [measure_ours_keygen(bits, n, t + 1) for _ in range(args.repeat)]
            ours_dec = (
                measure_ours_decrypt(ours[-1]["dealt"], args.decrypt_values)
                if args.decrypt_values
                else None
            )
            tno: list[dict[str, Any]] | None = None
            if python is not None and bits in tno_bits:
                tno = []
                for i in range(args.tno_repeat):
                    dv = args.decrypt_values if i == 0 else 0
                    try:
                        run = run_tno(python, bits, n, decrypt_values=dv, timeout=args.tno_timeout)
                    except (RuntimeError, TimeoutError, ValueError) as exc:
                        print(f"tno {bits} bits n={n} run {i + 1} failed: {exc}")
                        run = failed_run(bits, n, str(exc))
                    tno.append(run)
                    state = "done" if run["finished"] else "stopped"
                    print(
                        f"tno {bits} bits n={n} run {i + 1}: {state} in "
                        f"{run['wall_seconds']:.1f} s, {run['rounds']} rounds",
                        flush=True,
                    )
            for r in ours:
                r.pop("dealt")
            k_rows += keygen_rows(bits, n, ours, tno)
            tno_dec = next((r["decrypt"] for r in tno or [] if "decrypt" in r), None)
            if ours_dec is not None:
                d_rows += decrypt_rows(bits, n, ours_dec, tno_dec)
            results[f"{bits},{n}"] = {
                "ours": ours, "ours_decrypt": ours_dec, "tno": tno,
            }  # fmt: skip
    load = os.getloadavg()
    payload: dict[str, Any] = {
        "keygen_rows": k_rows,
        "decrypt_rows": d_rows,
        "results": results,
        "tno_version": version,
        "tno_timeout": args.tno_timeout,
        "decrypt_values": args.decrypt_values,
        "cpus": os.cpu_count(),
        "load_average": load,
        "seconds": time.perf_counter() - t_start,
        "tno_notes": tno_notes(results),
    }
    print("Key generation (wall seconds; ours: one dealer process; tno: n processes on "
          "127.0.0.1, from the common start to the last party's key):")  # fmt: skip
    print(table(k_rows))
    if d_rows:
        print()
        print(f"One decryption of a {args.decrypt_values}-value vector sum (seconds):")
        print(table(d_rows))
    print()
    for line in tno_notes(results):
        print(line)
    if version:
        print(f"tno.mpc.protocols.distributed_keygen {version} ({python})")
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    if load[0] > 0.5 * (os.cpu_count() or 1):
        print("note: a busy machine; wall times include waiting for the CPU")
    if any(b < P.DEFAULT_KEY_BITS for b in args.bits):
        print(f"note: moduli below {P.DEFAULT_KEY_BITS} bits are for comparison only "
              "(our library refuses them outside tests)")  # fmt: skip
    path = write_json("paillier_keygen", payload, args.out)
    print(f"wrote {path} in {payload['seconds']:.1f} s")
    return 0
