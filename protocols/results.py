"""Result types shared by every aggregation protocol's ``simulate``.

``protocols.secagg.simulate`` and ``protocols.paillier_sum.simulate`` both
return an :class:`AggregationResult`, so a driver can swap one for the other.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt


@dataclass
class PartyFigures:
    """Cost figures of one party in one protocol run.

    ``compute_seconds``, ``bytes_sent`` and ``bytes_received`` are keyed by
    round name (for example ``"advertise"``, ``"masked_input"``). Bytes are
    the lengths of the encoded messages, as they would cross the network.
    """

    compute_seconds: dict[str, float] = field(default_factory=dict)
    bytes_sent: dict[str, int] = field(default_factory=dict)
    bytes_received: dict[str, int] = field(default_factory=dict)

    def add_compute(self, round_name: str, seconds: float) -> None:
        self.compute_seconds[round_name] = self.compute_seconds.get(round_name, 0.0) + seconds

    def add_sent(self, round_name: str, n: int) -> None:
        self.bytes_sent[round_name] = self.bytes_sent.get(round_name, 0) + n

    def add_received(self, round_name: str, n: int) -> None:
        self.bytes_received[round_name] = self.bytes_received.get(round_name, 0) + n

    @property
    def total_compute(self) -> float:
        return sum(self.compute_seconds.values())

    @property
    def total_sent(self) -> int:
        return sum(self.bytes_sent.values())

    @property
    def total_received(self) -> int:
        return sum(self.bytes_received.values())


@dataclass
class AggregationResult:
    """The outcome of one aggregation round.

    Attributes:
        sum: decoded float64 sum of the included clients' vectors.
        included: ids of the clients whose inputs are in ``sum``.
        dropped: ids of the clients that started but are not in ``sum``.
        raw_sum: the exact sum in the integer domain (before decoding),
            as the protocol's integer dtype, or ``None`` if not applicable.
        figures: per-party cost, keyed by client id or ``"server"`` (and
            ``"key_holder"`` where there is one).
    """

    sum: npt.NDArray[np.float64]
    included: frozenset[int]
    dropped: frozenset[int]
    raw_sum: npt.NDArray[np.generic] | None = None
    figures: dict[Hashable, PartyFigures] = field(default_factory=dict)
