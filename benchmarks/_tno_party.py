"""One party of ``tno.mpc.protocols.distributed_keygen`` on loopback (helper of
``benchmarks/paillier_keygen.py``; needs only the standard library and tno).

Run as a script by the benchmark, one process per party, possibly with a
different interpreter (the one where tno is installed): it listens on
127.0.0.1 at its own port, prints ``READY`` once the server accepts
connections, waits for a ``GO`` line on stdin (so every party starts the
protocol at the same moment), runs tno's dealer-free key generation and
optionally one threshold decryption of a vector sum, then prints one line
``RESULT {json}`` and exits. Every wait is bounded by ``--timeout`` seconds.

    python _tno_party.py --me 0 --ports 40001 40002 40003 --bits 2048 \
        --corruption 1 [--decrypt-values 1000] [--timeout 3600]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import socket
import sys
import time
import warnings
from importlib.metadata import version
from typing import Any

#: tno's log lines (module ``distributed_keygen``) that count the candidates it tried.
_SIEVED = re.compile(r"Checked (\d+) primes for small prime divisors in (\d+) rounds")
_BIPRIME = re.compile(r"Checked (\d+) candidates for biprimality")


class _Counts(logging.Handler):
    """Collects tno's candidate counters from its log records (the final
    counts at INFO; failed biprimality tests one by one at DEBUG, so a run
    stopped by the time limit still says how far it got)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.values: dict[str, int] = {"biprime_tests_so_far": 0}

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if msg.startswith("Biprime test"):
            self.values["biprime_tests_so_far"] += 1
        if m := _SIEVED.search(msg):
            self.values["sieve_rejected"] = int(m.group(1))
            self.values["rounds"] = int(m.group(2))
        elif m := _BIPRIME.search(msg):
            self.values["biprime_rejected"] = int(m.group(1))


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _cpu() -> float:
    return time.process_time()


async def _decrypt(scheme: Any, pool: Any, me: int, values: int) -> dict[str, Any]:
    """Party 0 encrypts two vectors, adds them and sends the sum to everyone;
    then all parties decrypt it together (tno needs every party)."""
    want = [3 * i + 1 for i in range(values)]  # a_i = i, b_i = 2i + 1
    if me == 0:
        cts = [scheme.encrypt(i) + scheme.encrypt(2 * i + 1) for i in range(values)]
        await pool.broadcast(cts, msg_id="vector-sum")
    else:
        cts = await pool.recv("party0", msg_id="vector-sum")
    t0, c0 = time.perf_counter(), _cpu()
    got = await scheme.decrypt_sequence(cts)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    if [int(v) for v in got] != want:
        raise AssertionError("tno decryption of the vector sum is wrong")
    return {"decrypt_wall_seconds": wall, "decrypt_cpu_seconds": cpu}


async def _barrier(pool: Any) -> None:
    await pool.broadcast("done", msg_id="done")
    await pool.recv_all(msg_id="done")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--me", type=int, required=True)
    ap.add_argument("--ports", type=int, nargs="+", required=True)
    ap.add_argument("--bits", type=int, required=True)
    ap.add_argument("--corruption", type=int, required=True)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--decrypt-values", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=3600.0)
    args = ap.parse_args()

    warnings.simplefilter("ignore")
    from aiohttp import ClientTimeout
    from tno.mpc.communication import Pool
    from tno.mpc.protocols.distributed_keygen import DistributedPaillier

    counts = _Counts()
    # count the candidate rounds (batches of p, q pairs) as they start
    generate_pq = DistributedPaillier._generate_pq.__func__  # type: ignore[attr-defined]

    async def counting_generate_pq(cls: Any, *a: Any, **kw: Any) -> Any:
        counts.values["rounds_so_far"] = counts.values.get("rounds_so_far", 0) + 1
        return await generate_pq(cls, *a, **kw)

    DistributedPaillier._generate_pq = classmethod(counting_generate_pq)  # type: ignore[assignment]
    log = logging.getLogger("tno.mpc.protocols.distributed_keygen")
    log.setLevel(logging.DEBUG)
    log.addHandler(counts)
    log.propagate = False

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    pool = Pool(timeout=ClientTimeout(total=args.timeout), max_retries=int(args.timeout))
    pool.add_http_server(args.ports[args.me], addr="127.0.0.1")
    for j, port in enumerate(args.ports):
        if j != args.me:
            pool.add_http_client(f"party{j}", "127.0.0.1", port)
    deadline = time.monotonic() + 30.0
    while not _listening(args.ports[args.me]):
        if time.monotonic() > deadline:
            raise TimeoutError(f"port {args.ports[args.me]} did not open within 30 s")
        loop.run_until_complete(asyncio.sleep(0.05))
    print("READY", flush=True)
    if sys.stdin.readline().strip() != "GO":
        return 2

    result: dict[str, Any] = {
        "me": args.me,
        "tno_version": version("tno.mpc.protocols.distributed_keygen"),
    }
    t0, c0 = time.perf_counter(), _cpu()
    try:
        scheme = loop.run_until_complete(
            asyncio.wait_for(
                DistributedPaillier.from_security_parameter(
                    pool,
                    corruption_threshold=args.corruption,
                    key_length=args.bits,
                    batch_size=args.batch_size,
                    distributed=True,
                ),
                args.timeout,
            )
        )
    except asyncio.TimeoutError:
        result.update(counts.values)
        result["finished"] = False
        result["keygen_wall_seconds"] = time.perf_counter() - t0
        result["keygen_cpu_seconds"] = _cpu() - c0
        print("RESULT " + json.dumps(result), flush=True)
        return 3
    result["finished"] = True
    result["keygen_wall_seconds"] = time.perf_counter() - t0
    result["keygen_cpu_seconds"] = _cpu() - c0
    result["modulus_bits"] = int(scheme.public_key.n).bit_length()
    result["index"] = scheme.index
    result["batch_size"] = args.batch_size
    result.update(counts.values)
    result["keygen_bytes_sent"] = sum(h.total_bytes_sent for h in pool.pool_handlers.values())
    if args.decrypt_values:
        result.update(
            loop.run_until_complete(
                asyncio.wait_for(_decrypt(scheme, pool, args.me, args.decrypt_values), args.timeout)
            )
        )
    # a closing barrier, so that no party shuts down while another still sends to it
    loop.run_until_complete(asyncio.wait_for(_barrier(pool), args.timeout))
    loop.run_until_complete(pool.shutdown())
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
