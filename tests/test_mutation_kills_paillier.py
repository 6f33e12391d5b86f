"""Checks of the Paillier sum's decrypting parties that a one-line bug could
weaken unnoticed (each test fails with its check weakened)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from protocols import paillier_sum as S
from secagg import paillier as P
from secagg.errors import ProtocolError

INSECURE = {"insecure_allow_small_key_for_tests": True}
DIM = 8


@pytest.fixture(scope="module")
def kp():
    return P.generate_keypair(512, **INSECURE)


def _key_holder(kp, **cfg_kw):
    cfg = S.PaillierSumConfig(round=0, clients=frozenset({1, 2, 3}), dimension=DIM, **cfg_kw)
    kh = S.PaillierSumKeyHolder(cfg, *kp, **INSECURE)
    kh.start()
    return cfg, kh


def _sum_of(pk, layout, count):
    vec = P.encrypt(pk, layout, np.zeros(DIM), **INSECURE)
    total = vec
    for _ in range(count - 1):
        total = total + P.encrypt(pk, layout, np.zeros(DIM), **INSECURE)
    return total


def test_a_sum_of_more_summands_than_named_clients_is_refused(kp):
    cfg, kh = _key_holder(kp)
    three = _sum_of(kp[0], cfg.packing(kp[0], **INSECURE), 3)
    # three inputs summed, two clients named: one client's input counted twice
    with pytest.raises(ProtocolError, match="summands"):
        kh.handle(S.EncryptedSum(frozenset({1, 2}), three.to_bytes()))
    assert kh.state == "announced"
    (d,) = kh.handle(S.EncryptedSum(frozenset({1, 2, 3}), three.to_bytes()))
    np.testing.assert_array_equal(d.message.raw_sum, np.zeros(DIM, dtype=np.int64))


def test_a_sum_under_another_packing_layout_is_refused(kp):
    cfg, kh = _key_holder(kp)
    other = dataclasses.replace(cfg, value_bits=cfg.value_bits + 4)
    lay = other.packing(kp[0], **INSECURE)
    assert lay != cfg.packing(kp[0], **INSECURE)
    two = _sum_of(kp[0], lay, 2)
    with pytest.raises(ProtocolError, match="layout"):
        kh.handle(S.EncryptedSum(frozenset({1, 2}), two.to_bytes()))
    assert kh.state == "announced"
