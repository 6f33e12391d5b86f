"""Suite ``primitives``: the secagg building blocks against their baselines.

For d in {10^4, 10^5, 10^6} (``--quick``: 10^4, 10^5):

* PRG mask expansion (``secagg.prg.expand``, uint32) against the raw AES-256-CTR
  keystream of ``cryptography`` for the same byte count (the physical floor),
  and against ``numpy.random`` (PCG64 ``Generator.integers`` and the legacy
  ``RandomState.randint``), which are not cryptographic.
* Encoding and decoding (``FixedPointEncoder``) against a plain numpy copy of
  the same float32 array.
* Shamir split / combine of two 32-byte secrets for n in {10, 100, 1000}
  holders with threshold t = floor(2n/3) + 1.

All timings are the best of several runs, side by side in one process; the
ratios are the result, not the absolute times.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from secagg import FixedPointEncoder, prg, shamir

from ._common import best_of, table, write_json


def _prg_rows(dims: list[int], repeat: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    seed = prg.fresh_seed()
    for d in dims:
        nbytes = 4 * d
        zeros = bytes(nbytes)
        block = prg.counter_block()

        def raw() -> bytes:
            enc = Cipher(algorithms.AES(seed), modes.CTR(block)).encryptor()
            return enc.update(zeros)

        gen = np.random.default_rng(1)
        legacy = np.random.RandomState(1)
        t_ours = best_of(lambda: prg.expand(seed, d, np.uint32), repeat)
        t_raw = best_of(raw, repeat)
        t_pcg = best_of(lambda: gen.integers(0, 2**32, d, dtype=np.uint32), repeat)
        t_rs = best_of(lambda: legacy.randint(0, 2**32, d, dtype=np.uint32), repeat)
        rows.append(
            {
                "d": d,
                "prg_ms": t_ours * 1e3,
                "raw_aes_ctr_ms": t_raw * 1e3,
                "vs_raw": t_ours / t_raw,
                "numpy_pcg64_ms": t_pcg * 1e3,
                "numpy_randomstate_ms": t_rs * 1e3,
                "speedup_vs_pcg64": t_pcg / t_ours,
                "GB_per_s": nbytes / t_ours / 1e9,
            }
        )
    return rows


def _encoding_rows(dims: list[int], repeat: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    enc = FixedPointEncoder(clip=1.0, frac_bits=16, max_summands=1000, modulus_bits=32)
    rng = np.random.default_rng(0)
    for d in dims:
        x = rng.uniform(-1, 1, d).astype(np.float32)
        e = enc.encode(x)
        t_copy = best_of(lambda: x.copy(), repeat)
        t_enc = best_of(lambda: enc.encode(x), repeat)
        t_dec = best_of(lambda: enc.decode(e, 1), repeat)
        rows.append(
            {
                "d": d,
                "copy_ms": t_copy * 1e3,
                "encode_ms": t_enc * 1e3,
                "decode_ms": t_dec * 1e3,
                "encode_vs_copy": t_enc / t_copy,
                "decode_vs_copy": t_dec / t_copy,
            }
        )
    return rows


def _shamir_rows(ns: list[int], repeat: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    secrets = [os.urandom(32), os.urandom(32)]
    for n in ns:
        t = 2 * n // 3 + 1
        sets = shamir.split_many(secrets, n, t)
        holders = list(range(n - t, n))  # a holder set other than the first t

        def combine() -> list[bytes]:
            shamir._lagrange_cached.cache_clear()  # count the coefficients every time
            return shamir.combine_many([[s[h] for h in holders] for s in sets])

        assert combine() == secrets
        rows.append(
            {
                "n": n,
                "t": t,
                "split_2_secrets_ms": best_of(lambda: shamir.split_many(secrets, n, t), repeat)
                * 1e3,
                "combine_2_secrets_ms": best_of(combine, repeat) * 1e3,
            }
        )
    return rows


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="secagg bench primitives", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    ap.add_argument("--out", help="JSON output path (default bench-results/primitives.json)")
    args = ap.parse_args(argv)
    dims = [10**4, 10**5] if args.quick else [10**4, 10**5, 10**6]
    ns = [10, 100] if args.quick else [10, 100, 1000]
    repeat = 5 if args.quick else 15
    prg_rows = _prg_rows(dims, repeat)
    enc_rows = _encoding_rows(dims, repeat)
    sh_rows = _shamir_rows(ns, 2 if args.quick else 3)
    print("## PRG mask expansion (uint32), AES-256-CTR\n")
    print(table(prg_rows))
    print("\n## Fixed-point encode / decode (float32 -> uint32)\n")
    print(table(enc_rows))
    print("\n## Shamir sharing of two 32-byte secrets, t = floor(2n/3) + 1\n")
    print(table(sh_rows))
    path = write_json(
        "primitives", {"prg": prg_rows, "encoding": enc_rows, "shamir": sh_rows}, args.out
    )
    print(f"\nwrote {path}")
    return 0
