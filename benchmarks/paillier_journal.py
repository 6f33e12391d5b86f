"""What a node's durable journal of malicious-mode Paillier sessions costs per session.

Side by side, for journals already holding ``--entries`` session digests:

* journal: what a node's policy does at the start of each malicious-mode
  session (:mod:`protocols.flower.journal`): read and check the file, look
  the new digest up, write the whole file again to a temporary file,
  ``fsync``, rename, ``fsync`` the folder;
* in memory: the same look-up and append on a list (what a per-run
  ``context.state`` record costs, without any durability).

Reported: the best wall time of each (``--repeat`` runs) and their ratio,
and the file size. The journal time is dominated by the two ``fsync``
calls, so it depends on the file system the folder is on (``--folder``,
default a fresh temporary folder). Run with
``python -m benchmarks.paillier_journal [--entries 0 1000 100000]``.
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
from pathlib import Path
from typing import Any

from protocols.flower.journal import journal_file, read_journal, write_journal

from ._common import best_of, table, write_json

_KEY = bytes(32)


def _row(folder: Path, entries: int, repeat: int) -> dict[str, Any]:
    node = entries  # one journal per size, side by side in the folder
    base = [secrets.token_bytes(32) for _ in range(entries)]
    write_journal(folder, node, _KEY, base)

    def journal_step() -> None:
        spent = read_journal(folder, node, _KEY)
        digest = secrets.token_bytes(32)
        if digest in spent:  # pragma: no cover - 2^-256
            raise AssertionError("digest repeated")
        write_journal(folder, node, _KEY, [*spent[:entries], digest])

    memory = list(base)

    def memory_step() -> None:
        digest = secrets.token_bytes(32)
        if digest in memory:  # pragma: no cover - 2^-256
            raise AssertionError("digest repeated")
        memory.append(digest)
        memory.pop()

    t_journal = best_of(journal_step, repeat)
    t_memory = best_of(memory_step, repeat)
    return {"entries": entries,
            "file_bytes": journal_file(folder, node, _KEY).stat().st_size,
            "journal_ms": t_journal * 1e3, "memory_ms": t_memory * 1e3,
            "ratio": t_journal / max(t_memory, 1e-9)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.paillier_journal",
                                description=__doc__.splitlines()[0])
    p.add_argument("--entries", type=int, nargs="+", default=[0, 1000, 10000, 100000])
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--folder", help="folder for the journals (default: a fresh temporary one)")
    p.add_argument("--out", help="JSON output path (default bench-results/paillier_journal.json)")
    args = p.parse_args(argv)
    if args.repeat < 1 or any(not 0 <= e <= 1 << 20 for e in args.entries):
        p.error("--repeat must be >= 1 and --entries in 0..2^20")
    with tempfile.TemporaryDirectory(dir=args.folder) as tmp:
        folder = Path(tmp) / "journal"
        rows = [_row(folder, e, args.repeat) for e in args.entries]
    print(table(rows))
    write_json("paillier_journal", {"rows": rows}, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
