"""The PRG domains a protocol uses must stay apart: the self mask and the
pairwise masks of one configuration never share a label or a counter block,
so one seed can never produce both (the PRG keeps distinct labels' streams
on disjoint AES inputs)."""

import numpy as np

from protocols.secagg import SecAggConfig, binding
from secagg import prg


def test_self_and_pairwise_mask_labels_never_collapse():
    cfg = SecAggConfig.create(range(1, 6), dimension=4, threshold=3)
    self_label, pair_label = binding.mask_label(cfg, "self"), binding.mask_label(cfg, "pair")
    assert self_label != pair_label
    assert prg.counter_block(self_label) != prg.counter_block(pair_label)
    seed = bytes(range(32))
    a = prg.expand(seed, 2048, np.uint64, self_label)
    b = prg.expand(seed, 2048, np.uint64, pair_label)
    assert not np.isin(a, b).any()  # neither stream runs into the other
