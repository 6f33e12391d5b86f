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

Integer inputs (distributed DP): :meth:`SecureSum.integer_sum` sums
vectors that are already integers mod ``2^32`` (``uint32``) exactly, with no
fixed-point step: ``raw_sum`` is their sum mod ``2^32``, which any
``2^bits`` with ``bits <= 32`` divides. ``secagg`` and ``secagg+`` run the
same protocol as for floats; :meth:`SecureSum.threshold` is the fewest
survivors it admits (fewer: the round aborts), which the distributed
mechanism calibrates its noise against. ``plain`` and ``paillier`` refuse
integer inputs (``plain`` would show the server every vector, so no
client's noise share would be hidden).

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
from secagg.encoding import frac_bits_for
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


class _IntegerDomain(FixedPointEncoder):
    """The identity "encoding" of vectors already in the integer domain:
    ``uint32`` values mod ``2^32`` pass through unchanged, and the decoded
    sum is the raw modular sum (as float64, for the result's ``sum``)."""

    def __init__(self, max_summands: int) -> None:
        super().__init__(1.0, 0, max_summands=max_summands, modulus_bits=32)

    def encode(self, x: npt.NDArray[Any]) -> npt.NDArray[np.unsignedinteger]:
        a = np.asarray(x)
        if a.dtype != np.uint32 or a.ndim != 1:
            raise ParameterError(
                f"integer inputs must be 1-D uint32 vectors, got {a.dtype} of shape {a.shape}")
        return a

    def decode(
        self, v: npt.NDArray[np.unsignedinteger], n_summands: int | None = None
    ) -> npt.NDArray[np.float64]:
        return np.asarray(v, dtype=np.float64)


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
        self._require(inputs, dropped, self.min_clients, "")
        return self._run(inputs, dropped, round_idx)

    def _require(self, inputs: Mapping[int, Any], dropped: frozenset[int], need: int,
                 why: str) -> None:
        """Abort before any protocol work when fewer than ``need`` clients remain."""
        alive = len(frozenset(inputs) - dropped)
        if alive < need:
            raise AbortError(
                f"only {alive} clients reached the {self.name} sum; at least {need} are "
                f"needed{why}")

    def _run(
        self,
        inputs: Mapping[int, npt.NDArray[np.floating]],
        dropped: frozenset[int],
        round_idx: int,
    ) -> AggregationResult:
        raise NotImplementedError

    def threshold(self, n: int) -> int:
        """The fewest survivors among ``n`` summands whose integer sum this
        back-end releases (its Shamir threshold); fewer: the round aborts.

        Raises:
            ParameterError: the back-end does not sum integer inputs securely.
        """
        raise ParameterError(
            f"aggregation {self.name!r} does not carry integer inputs securely; "
            "use secagg or secagg+")

    def integer_sum(
        self,
        inputs: Mapping[int, npt.NDArray[np.uint32]],
        dropped: frozenset[int],
        round_idx: int,
    ) -> AggregationResult:
        """Sum ``uint32`` vectors mod ``2^32`` exactly over the clients not in
        ``dropped`` (``raw_sum``; client ids from 0, as in :meth:`__call__`).

        Raises:
            AbortError: fewer than :meth:`threshold` survivors, or the protocol aborted.
            ParameterError: the back-end takes no integer inputs, or a vector
                is not ``uint32``.
        """
        t = self.threshold(len(inputs))
        self._require(inputs, dropped, max(t, self.min_clients), " (threshold)")
        return self._run_integer(inputs, dropped, round_idx)

    def _run_integer(
        self,
        inputs: Mapping[int, npt.NDArray[np.uint32]],
        dropped: frozenset[int],
        round_idx: int,
    ) -> AggregationResult:
        raise ParameterError(f"aggregation {self.name!r} takes no integer inputs")


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
        return self._simulate(inputs, dropped, round_idx, self.encoder)

    def _simulate(
        self, inputs: Mapping[int, Any], dropped: frozenset[int], round_idx: int,
        encoder: FixedPointEncoder,
    ) -> AggregationResult:
        from protocols.secagg import simulate

        return simulate(
            dict(inputs),
            neighbors=self.neighbors,  # type: ignore[arg-type]
            dropouts={"masked_input": sorted(dropped)} if dropped else None,
            seed=self.seed * 1_000_003 + round_idx,
            encoder=encoder,
        )

    def threshold(self, n: int) -> int:
        from protocols.secagg.config import derive_parameters

        if n < 2:
            raise ParameterError(f"{self.name} needs at least 2 clients, got {n}")
        degree = n - 1 if self.neighbors == "complete" else None
        return derive_parameters(n, degree=degree)[1]

    def _run_integer(
        self,
        inputs: Mapping[int, npt.NDArray[np.uint32]],
        dropped: frozenset[int],
        round_idx: int,
    ) -> AggregationResult:
        return self._simulate(inputs, dropped, round_idx, _IntegerDomain(len(inputs)))


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
