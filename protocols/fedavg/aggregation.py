"""Aggregation back-ends for the FedAvg driver, one shape for all.

Each back-end maps ``{client id: float vector}`` plus the set of clients
that drop out to an :class:`~protocols.results.AggregationResult` whose
``sum`` is the float64 sum over the included clients:

* ``plain``: the sum in the clear (no protection; the reference).
* ``secagg`` / ``secagg+``: :func:`protocols.secagg.simulate`, complete
  graph or sparse random graph; dropouts happen before the masked input.
* ``paillier``: :func:`protocols.paillier_sum.simulate`.

Vectors are clipped to ``±clip`` per coordinate by the encoder (counted in
``clipped``), and fixed-point precision is the largest that leaves headroom
for ``max_summands`` in a 32-bit modulus (secagg) or the packing's slots
(paillier).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from secagg import FixedPointEncoder
from secagg.errors import ParameterError

from ..results import AggregationResult, PartyFigures

__all__ = ["Aggregator", "frac_bits_for"]


def frac_bits_for(clip: float, max_summands: int, modulus_bits: int = 32) -> int:
    """Largest fractional bit count with ``max_summands * clip * 2^f < 2^(k-1)``."""
    f = 0
    while f < 62 and max_summands * (np.rint(clip * 2.0 ** (f + 1)) + 1) < 2.0 ** (
        modulus_bits - 1
    ):
        f += 1
    if max_summands * np.rint(clip * 2.0**f) >= 2.0 ** (modulus_bits - 1):
        raise ParameterError(
            f"{max_summands} summands of |x| <= {clip} do not fit a {modulus_bits}-bit modulus"
        )
    return f


@dataclass
class Aggregator:
    """Sum client vectors with the chosen protection.

    Args:
        kind: ``plain``, ``secagg``, ``secagg+`` or ``paillier``.
        clip: per-coordinate bound of each summand (model units).
        max_summands: the most clients that can be summed in one round.
        paillier_key_bits: key size for ``paillier`` (2048 or 3072).
        seed: makes the protocol's public randomness (graph) reproducible;
            secrets always come from the OS.
    """

    kind: str
    clip: float
    max_summands: int
    paillier_key_bits: int = 2048
    seed: int = 0
    encoder: FixedPointEncoder = field(init=False)
    _paillier_keys: object = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.kind not in ("plain", "secagg", "secagg+", "paillier"):
            raise ParameterError(
                f"aggregation {self.kind!r} is not one of plain, secagg, secagg+, paillier"
            )
        bits = frac_bits_for(self.clip, self.max_summands, 32)
        # Paillier slots: sign + integer part + the same fractional resolution.
        self.paillier_value_bits = bits + max(0, int(np.ceil(np.log2(self.clip)))) + 1
        self.encoder = FixedPointEncoder(
            self.clip, bits, max_summands=self.max_summands, modulus_bits=32
        )

    @property
    def quantization_error(self) -> float:
        """Bound on the per-coordinate error of a sum of ``max_summands`` vectors."""
        return 0.0 if self.kind == "plain" else self.encoder.error_bound(self.max_summands)

    def __call__(
        self,
        inputs: Mapping[int, npt.NDArray[np.floating]],
        dropped: frozenset[int],
        round_idx: int,
    ) -> AggregationResult:
        if self.kind == "plain":
            return self._plain(inputs, dropped)
        if self.kind in ("secagg", "secagg+"):
            from protocols.secagg import simulate

            return simulate(
                dict(inputs),
                neighbors=None if self.kind == "secagg+" else "complete",
                dropouts={"masked_input": sorted(dropped)} if dropped else None,
                seed=self.seed * 1_000_003 + round_idx,
                encoder=self.encoder,
            )
        from protocols.paillier_sum import simulate as paillier_simulate
        from secagg import paillier

        if self._paillier_keys is None:  # one key pair per run: generation takes seconds
            self._paillier_keys = paillier.generate_keypair(self.paillier_key_bits)
        return paillier_simulate(
            dict(inputs),
            key_bits=self.paillier_key_bits,
            keypair=self._paillier_keys,  # type: ignore[arg-type]
            dropouts={"encrypt": sorted(dropped)} if dropped else None,
            seed=self.seed * 1_000_003 + round_idx,
            clip=self.clip,
            value_bits=self.paillier_value_bits,
            max_summands=self.max_summands,
            round=round_idx,
        )

    def _plain(
        self, inputs: Mapping[int, npt.NDArray[np.floating]], dropped: frozenset[int]
    ) -> AggregationResult:
        included = frozenset(inputs) - dropped
        figures: dict[object, PartyFigures] = {}
        t0 = time.perf_counter()
        total = np.zeros(len(next(iter(inputs.values()))), dtype=np.float64)
        for cid in sorted(included):
            np.add(total, np.clip(inputs[cid], -self.clip, self.clip), out=total)
            f = PartyFigures()
            f.add_sent("update", inputs[cid].nbytes)
            figures[cid] = f
        server = PartyFigures()
        server.add_compute("sum", time.perf_counter() - t0)
        figures["server"] = server
        return AggregationResult(
            sum=total,
            included=included,
            dropped=frozenset(inputs) & dropped,
            raw_sum=None,
            figures=figures,  # type: ignore[arg-type]
        )
