"""The ``paillier_keygen`` suite: our side runs at its smallest size, the TNO
side's bookkeeping and report formatting work on injected party reports."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from benchmarks import __main__ as bench_main
from benchmarks import _tno_party as party
from benchmarks import paillier_keygen as bench


def _report(me: int, *, finished: bool = True, rounds: int = 7) -> dict[str, object]:
    r: dict[str, object] = {
        "me": me, "tno_version": "4.3.0", "finished": finished,
        "keygen_wall_seconds": 10.0 + me, "keygen_cpu_seconds": 2.0 + me,
        "batch_size": 100, "biprime_tests_so_far": 12, "rounds_so_far": rounds,
        "keygen_bytes_sent": 1_000_000,
    }  # fmt: skip
    if finished:
        r.update(
            rounds=rounds, modulus_bits=1027, decrypt_wall_seconds=3.0, decrypt_cpu_seconds=1.5
        )
    return r


def test_ours_only_smallest_configuration(tmp_path: Path) -> None:
    out = tmp_path / "keygen.json"
    argv = ["--bits", "512", "--parties", "3", "--repeat", "1", "--no-tno",
            "--decrypt-values", "20", "--out", str(out)]  # fmt: skip
    assert bench.main(argv) == 0
    payload = json.loads(out.read_text())
    assert payload["suite"] == "paillier_keygen" and payload["tno_version"] is None
    [row] = payload["keygen_rows"]
    assert row["key generation"] == "ours: dealer, safe primes + deal 2-of-3"
    assert row["bits"] == 512 and row["runs"] == 1 and row["median s"] > 0
    [ours] = payload["results"]["512,3"]["ours"]
    assert ours["modulus_bits"] == 512 and ours["deal_wall_seconds"] > 0
    [dec] = payload["decrypt_rows"]
    assert dec["parties needed"] == 2 and dec["values"] == 20 and dec["latency s"] > 0
    assert payload["results"]["512,3"]["tno"] is None


def test_without_tno_it_says_how_to_install_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--bits", "512", "--parties", "3", "--repeat", "1", "--decrypt-values", "0",
            "--tno-python", str(tmp_path / "no-such-python"), "--out", str(tmp_path)]  # fmt: skip
    assert bench.main(argv) == 0
    text = capsys.readouterr().out
    assert "tno not found" in text and "pip install tno.mpc.protocols.distributed-keygen" in text
    payload = json.loads((tmp_path / "paillier_keygen.json").read_text())
    assert [r["key generation"][:4] for r in payload["keygen_rows"]] == ["ours"]
    assert payload["decrypt_rows"] == []


def test_tno_threshold_rule() -> None:
    assert [bench.corruption_threshold(n) for n in (3, 4, 5, 7)] == [1, 1, 2, 3]


def test_tno_rows_from_injected_reports() -> None:
    done = bench.summarize_tno([_report(i) for i in range(3)], wall_seconds=13.0,
                               bits=1024, parties=3)  # fmt: skip
    assert done["finished"] and done["wall_seconds"] == 12.0 and done["rounds"] == 7
    assert done["cpu_seconds"] == [2.0, 3.0, 4.0] and done["decrypt"]["wall_seconds"] == 3.0
    cut = bench.summarize_tno([_report(i, finished=False, rounds=40) for i in range(3)],
                              wall_seconds=99.0, bits=1024, parties=3)  # fmt: skip
    assert not cut["finished"] and cut["rounds"] == 40 and "decrypt" not in cut
    ours = [{"wall_seconds": w, "cpu_seconds": w, "deal_wall_seconds": 0.1} for w in (1, 3, 2)]
    rows = bench.keygen_rows(1024, 3, ours, [done, cut, bench.failed_run(1024, 3, "boom")])
    assert [r["key generation"] for r in rows] == [
        "ours: dealer, safe primes + deal 2-of-3",
        "tno: dealer-free, n=3, t=1",
        "tno: dealer-free, n=3, t=1 (stopped, unfinished)",
        "tno: dealer-free, n=3, t=1 (stopped, unfinished)",
    ]
    assert (rows[0]["median s"], rows[0]["min s"], rows[0]["max s"]) == (2, 1, 3)
    assert rows[1]["median s"] == 12.0 and rows[1]["CPU s/party"] == 3.0
    assert rows[1]["MB sent/party"] == 1.0 and rows[1]["rounds x100"] == 7
    assert rows[2]["median s"] == "> 12" and rows[2]["rounds x100"] == "> 40"
    dec = bench.decrypt_rows(
        1024, 3,
        {"values": 1000, "ciphertexts": 17, "parties_needed": 2, "latency_seconds": 0.5,
         "partial_cpu_seconds": 0.3, "total_cpu_seconds": 0.9},
        done["decrypt"],
    )  # fmt: skip
    assert [r["parties needed"] for r in dec] == [2, 3]
    assert dec[1]["ciphertexts"] == 1000 and dec[1]["total CPU s"] == 4.5


def test_expected_rounds_and_notes() -> None:
    # (1024 ln 2 / 4)^2 / 100 pairs per round: about 1259 rounds for 2048 bits
    assert round(bench.expected_rounds(2048)) == 1259
    assert round(bench.expected_rounds(1024)) == 315
    run = bench.summarize_tno([_report(i) for i in range(3)], wall_seconds=13.0,
                              bits=1024, parties=3)  # fmt: skip
    [note] = bench.tno_notes({"1024,3": {"tno": [run, bench.failed_run(1024, 3, "x")]}})
    assert note.startswith("tno 1024 bits n=3: 7 candidate rounds in 1 run(s) (0.429 CPU s")
    assert note.endswith("about 315 rounds, i.e. about 135 CPU s per party")


def test_party_counts_parse_tno_log_lines() -> None:
    counts = party._Counts()

    def emit(level: int, msg: str) -> None:
        counts.handle(logging.LogRecord("tno", level, __file__, 1, msg, None, None))

    emit(logging.DEBUG, "Biprime test failed! Took 1 attempts")
    emit(logging.DEBUG, "Biprime test succeeded! Took 40 attempts")
    emit(logging.INFO, "Checked 11436 primes for small prime divisors in 117 rounds")
    emit(logging.INFO, "Checked 263 candidates for biprimality")
    assert counts.values == {"biprime_tests_so_far": 2, "sieve_rejected": 11436, "rounds": 117,
                             "biprime_rejected": 263}  # fmt: skip


def test_dispatcher_accepts_the_hyphenated_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        bench_main.main(["paillier-keygen", "--help"])
    assert exc.value.code == 0 and "paillier_keygen" in capsys.readouterr().out
