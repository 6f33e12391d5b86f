"""The secure-sum back-ends of the FedAvg pipeline: the one module that calls
the protocols.

Each back-end maps ``{client id: float vector}`` plus the set of clients
that drop out to an :class:`~protocols.results.AggregationResult` whose
``sum`` is the float64 sum over the included clients:

* ``plain``: the sum in the clear (no protection; the reference).
* ``secagg`` / ``secagg+``: :func:`protocols.secagg.simulate`, complete
  graph or sparse random graph; dropouts happen before the masked input.
* ``paillier``: :func:`protocols.paillier_sum.simulate`.

Every back-end, ``plain`` included, bounds each coordinate of each summand
to ``±clip`` (the pipeline clips and counts before the vector gets here).
Fixed-point precision is the largest that leaves headroom for
``max_summands`` in a 32-bit modulus (secagg) or the packing's slots
(paillier); :attr:`SecureSum.resolution` is the exact step of that grid, so
integer counts sent as multiples of it are summed exactly.

Trust: the server learns the sum over ``included`` (and who is included),
nothing about a single vector (``plain`` excepted).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from secagg import FixedPointEncoder
from secagg.errors import AbortError, ParameterError

from ..results import AggregationResult, PartyFigures

__all__ = [
    "SECURE_SUMS",
    "Aggregator",
    "PaillierSum",
    "PlainSum",
    "SecAggSum",
    "SecureSum",
    "frac_bits_for",
    "make_secure_sum",
]


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


class SecureSum:
    """Sum client vectors with one protection; the common shape of the back-ends.

    Args:
        clip: per-coordinate bound of each summand (model units, > 0).
        max_summands: the most clients that can be summed in one round.
        paillier_key_bits: key size for ``paillier`` (2048 or 3072).
        seed: makes the protocol's public randomness (graph, delivery
            order) reproducible; secrets always come from the OS.
    """

    name: ClassVar[str] = "plain"
    #: fewest clients whose inputs may be summed (fewer: the round aborts)
    min_clients: ClassVar[int] = 1

    def __init__(
        self, *, clip: float, max_summands: int, paillier_key_bits: int = 2048, seed: int = 0
    ) -> None:
        self.clip = float(clip)
        self.max_summands = int(max_summands)
        self.paillier_key_bits = paillier_key_bits
        self.seed = seed
        bits = frac_bits_for(self.clip, self.max_summands, 32)
        self.frac_bits = bits
        self.encoder = FixedPointEncoder(
            self.clip, bits, max_summands=self.max_summands, modulus_bits=32
        )

    @property
    def resolution(self) -> float:
        """The exact step of the fixed-point grid (a multiple ``c * resolution``
        with ``|c * resolution| <= clip`` is encoded and summed without error)."""
        return 1.0 / self.encoder.scale

    @property
    def quantization_error(self) -> float:
        """Bound on the per-coordinate error of a sum of ``max_summands`` vectors."""
        return self.encoder.error_bound(self.max_summands)

    def __call__(
        self,
        inputs: Mapping[int, npt.NDArray[np.floating]],
        dropped: frozenset[int],
        round_idx: int,
    ) -> AggregationResult:
        """Sum ``inputs`` (client id >= 0 -> vector) over the clients not in ``dropped``.

        Raises:
            AbortError: fewer than :attr:`min_clients` clients would be summed,
                or the protocol aborted.
        """
        alive = len(frozenset(inputs) - dropped)
        if alive < self.min_clients:
            raise AbortError(
                f"only {alive} clients reached the {self.name} sum; "
                f"at least {self.min_clients} are needed"
            )
        # the protocols number clients from 1: shift here, and back in the result
        res = self._run({c + 1: v for c, v in inputs.items()},
                        frozenset(c + 1 for c in dropped), round_idx)
        res.included = frozenset(c - 1 for c in res.included)
        res.dropped = frozenset(c - 1 for c in res.dropped)
        res.figures = {(k - 1 if isinstance(k, int) else k): f for k, f in res.figures.items()}
        return res

    def _run(
        self,
        inputs: Mapping[int, npt.NDArray[np.floating]],
        dropped: frozenset[int],
        round_idx: int,
    ) -> AggregationResult:
        raise NotImplementedError


class PlainSum(SecureSum):
    """The sum in the clear, each coordinate clipped to ``±clip`` (no protection)."""

    name = "plain"

    @property
    def quantization_error(self) -> float:
        return 0.0

    def _run(
        self,
        inputs: Mapping[int, npt.NDArray[np.floating]],
        dropped: frozenset[int],
        round_idx: int,
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


class SecAggSum(SecureSum):
    """Bonawitz et al.'s secure aggregation over the complete graph."""

    name = "secagg"
    min_clients = 3
    neighbors: ClassVar[str | None] = "complete"

    def _run(
        self,
        inputs: Mapping[int, npt.NDArray[np.floating]],
        dropped: frozenset[int],
        round_idx: int,
    ) -> AggregationResult:
        from protocols.secagg import simulate

        return simulate(
            dict(inputs),
            neighbors=self.neighbors,  # type: ignore[arg-type]
            dropouts={"masked_input": sorted(dropped)} if dropped else None,
            seed=self.seed * 1_000_003 + round_idx,
            encoder=self.encoder,
        )


class SecAggPlusSum(SecAggSum):
    """SecAgg+ (Bell et al.): a sparse random graph of derived degree."""

    name = "secagg+"
    neighbors = None


class PaillierSum(SecureSum):
    """Packed Paillier summation (key-holder layout); one key pair per run."""

    name = "paillier"

    def __init__(
        self, *, clip: float, max_summands: int, paillier_key_bits: int = 2048, seed: int = 0
    ) -> None:
        super().__init__(clip=clip, max_summands=max_summands,
                         paillier_key_bits=paillier_key_bits, seed=seed)
        # slots: sign + integer part + the same fractional resolution as secagg
        self.value_bits = self.frac_bits + max(0, int(np.ceil(np.log2(self.clip)))) + 1
        self._keys: Any = None

    @property
    def resolution(self) -> float:
        return self.clip / (2 ** (self.value_bits - 1) - 1)

    def _run(
        self,
        inputs: Mapping[int, npt.NDArray[np.floating]],
        dropped: frozenset[int],
        round_idx: int,
    ) -> AggregationResult:
        from protocols.paillier_sum import simulate
        from secagg import paillier

        if self._keys is None:  # one key pair per run: generation takes seconds
            self._keys = paillier.generate_keypair(self.paillier_key_bits)
        return simulate(
            dict(inputs),
            key_bits=self.paillier_key_bits,
            keypair=self._keys,
            dropouts={"encrypt": sorted(dropped)} if dropped else None,
            seed=self.seed * 1_000_003 + round_idx,
            clip=self.clip,
            value_bits=self.value_bits,
            max_summands=self.max_summands,
            round=round_idx,
        )


#: The secure sums by the name ``FedAvgConfig.aggregation`` uses.
SECURE_SUMS: dict[str, Callable[..., SecureSum]] = {
    "plain": PlainSum,
    "secagg": SecAggSum,
    "secagg+": SecAggPlusSum,
    "paillier": PaillierSum,
}


def make_secure_sum(
    kind: str, *, clip: float, max_summands: int, paillier_key_bits: int = 2048, seed: int = 0
) -> SecureSum:
    """The back-end named ``kind`` (a key of :data:`SECURE_SUMS`)."""
    try:
        cls = SECURE_SUMS[kind]
    except KeyError:
        raise ParameterError(
            f"aggregation {kind!r} is not one of {', '.join(SECURE_SUMS)}"
        ) from None
    return cls(clip=clip, max_summands=max_summands, paillier_key_bits=paillier_key_bits,
               seed=seed)


def Aggregator(
    kind: str, clip: float, max_summands: int, paillier_key_bits: int = 2048, seed: int = 0
) -> SecureSum:
    """Deprecated spelling of :func:`make_secure_sum` (positional ``kind``, ``clip``,
    ``max_summands``); kept for one release."""
    return make_secure_sum(kind, clip=clip, max_summands=max_summands,
                           paillier_key_bits=paillier_key_bits, seed=seed)
