"""A single masked input looks uniform, whatever the input: chi-square tests on
its bytes and on each bit position."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from protocols.secagg import MaskedInput, SecAggClient, SecAggConfig, SecAggServer

#: Each test fails by chance with probability below this.
ALPHA = 1e-6


def _masked_input(x: np.ndarray, *, modulus_bits: int = 32, degree: int | None = None,
                  n: int = 3) -> np.ndarray:
    """The masked input y_1 that client 1 sends for input ``x``."""
    cfg = SecAggConfig.create(range(1, n + 1), len(x), threshold=2, degree=degree,
                              modulus_bits=modulus_bits)
    zero = np.zeros(len(x), cfg.dtype)
    clients = {u: SecAggClient(cfg, u, input=x if u == 1 else zero) for u in cfg.client_ids}
    server = SecAggServer(cfg)
    msgs = [m for c in clients.values() for m in (e.message for e in c.start())]
    for _ in range(2):  # advertise -> share_keys -> masked_input
        nxt = []
        for m in msgs:
            nxt += [e.message for e in server.handle(m)]
        msgs = [r for m in nxt for r in (e.message for e in clients[m.receiver].handle(m))]
    (y,) = [m for m in msgs if m.sender == 1]
    assert isinstance(y, MaskedInput)
    return y.vector


def _byte_p_value(v: np.ndarray) -> float:
    counts = np.bincount(v.view(np.uint8), minlength=256)
    return float(stats.chisquare(counts).pvalue)


def _bit_p_value(v: np.ndarray) -> float:
    bits = np.unpackbits(v.view(np.uint8)).reshape(-1, v.dtype.itemsize * 8)
    ones = bits.sum(axis=0)
    counts = np.stack([ones, bits.shape[0] - ones])
    return float(stats.chisquare(counts, axis=0).pvalue.min() * counts.shape[1])  # Bonferroni


@pytest.mark.parametrize("name", ["zeros", "constant", "ramp"])
def test_masked_input_bytes_are_uniform(name: str) -> None:
    d = 1 << 16
    x = {"zeros": np.zeros(d, np.uint32),
         "constant": np.full(d, 0x7FFF_FFFF, np.uint32),
         "ramp": np.arange(d, dtype=np.uint32)}[name]
    y = _masked_input(x)
    assert _byte_p_value(x) < ALPHA  # the test can tell structure from noise
    assert _byte_p_value(y) > ALPHA
    assert _bit_p_value(y) > ALPHA


def test_uniform_for_64_bit_masks_and_sparse_graphs() -> None:
    d = 1 << 15
    y64 = _masked_input(np.zeros(d, np.uint64), modulus_bits=64)
    assert _byte_p_value(y64) > ALPHA and _bit_p_value(y64) > ALPHA
    y = _masked_input(np.zeros(d, np.uint32), n=12, degree=4)
    assert _byte_p_value(y) > ALPHA and _bit_p_value(y) > ALPHA


def test_masks_are_fresh_each_round() -> None:
    x = np.zeros(4096, np.uint32)
    a, b = _masked_input(x), _masked_input(x)
    assert not np.array_equal(a, b)
    assert np.count_nonzero(a == b) < 5  # about 4096 / 2^32 expected
