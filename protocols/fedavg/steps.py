"""The pipeline's building blocks: a client's :class:`Contribution`, the
server's :class:`RoundSum` and the :class:`Step` every pipeline step
subclasses (see :mod:`protocols.fedavg.pipeline`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Contribution", "RoundSum", "Step"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


@dataclass
class Contribution:
    """One client's contribution while its client-side steps build it.

    Attributes:
        vector: the model update (float32), transformed in place by the steps.
        num_examples: the client's example count (stays on the client).
        reals: scalar coordinates added to the secure sum, by name.
        counts: integer coordinates added to the secure sum, by name.
    """

    vector: F32
    num_examples: int
    reals: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class RoundSum:
    """What the server holds after the secure sum, changed by the server steps.

    Attributes:
        vector: the summed update (float64); the steps noise it and turn it
            into the mean update.
        reals: summed scalar coordinates, by name.
        counts: summed integer coordinates (exact), by name.
        clients: number of clients in the sum.
        aborted: the secure sum aborted (``vector`` is then zeros).
    """

    vector: F64
    reals: dict[str, float]
    counts: dict[str, int]
    clients: int
    aborted: bool = False


class Step:
    """One step of the pipeline; every hook is optional.

    Class attributes:
        name: the key of the step's measurements.
        reals: names of the scalar coordinates :meth:`client` sets.
    """

    name = "step"
    reals: tuple[str, ...] = ()

    def count_bounds(self, dim: int) -> dict[str, int]:
        """Integer coordinates :meth:`client` sets, with their largest value per client."""
        return {}

    def check_clients(self, sizes: Sequence[int]) -> None:
        """Before the run: refuse client datasets (their sizes) the step cannot take."""

    def begin_round(self, round_idx: int) -> None:
        """Server, before any client trains (privacy is charged here)."""

    def client(self, c: Contribution) -> None:
        """Client side: transform ``c`` in place."""

    def server(self, s: RoundSum) -> None:
        """Server side: transform the sum in place."""

    def measurements(self) -> dict[str, Any]:
        """This round's figures (numbers; ``None`` for one withheld)."""
        return {}
