"""Client-level DP for FedAvg, as small composable steps.

Privacy unit: one *client* (all of its data); adjacency: add/remove one
client. One round of DP-FedAvg (McMahan et al. 2018) with optional adaptive
clipping (Andrew et al., NeurIPS 2021) is these steps, in order:

1. :func:`sample_clients` -- the server picks each client independently with
   probability ``client_rate`` (Poisson sampling, from a cryptographic source).
2. :func:`clip_update` -- each picked client clips its model update to L2
   norm ``C`` (and, with :class:`AdaptiveClipping`, reports whether it was
   below ``C`` via :meth:`AdaptiveClipping.indicator`).
3. :func:`sum_vectors` -- the clipped updates are summed (this is the step
   secure aggregation replaces: the server then sees only the sum).
4. :class:`GaussianNoise` -- the aggregator adds N(0, (z C)^2) to every
   coordinate of the sum (central DP).
5. :func:`mean_from_sum` -- divide by the *expected* number of clients
   ``client_rate * population`` (a fixed denominator, so that one client's
   influence on the mean is at most ``C / expected``).

:class:`ClientLevelDP` holds the server's state for the central-noise case:
it charges a client-level :class:`~dp.ledger.PrivacyLedger` before each
round (:meth:`~ClientLevelDP.begin_round`), and :meth:`~ClientLevelDP.release`
applies steps 4-5 and the adaptive-clipping update to a sum computed
anywhere, a secure sum above all (:meth:`~ClientLevelDP.aggregate` is the
convenience for a trusted aggregator that sums in the clear). Keeping the
steps separate lets a later variant move step 4 inside step 3 (each client
adding a share of the noise before the secure sum).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from secagg.errors import EncodingError, ParameterError

from .accounting import DEFAULT_ACCOUNTANT, PrivacyGuarantee, _check_rate
from .ledger import PrivacyLedger
from .secure_noise import CryptoRandom

__all__ = [
    "AdaptiveClipping",
    "ClientContribution",
    "ClientLevelDP",
    "ClippedUpdate",
    "GaussianNoise",
    "RoundResult",
    "clip_update",
    "mean_from_sum",
    "sample_clients",
    "sum_vectors",
]

FloatArray = npt.NDArray[np.float64]


def _as_vector(update: npt.ArrayLike, name: str = "update") -> FloatArray:
    v = np.asarray(update, dtype=np.float64)
    if v.ndim != 1:
        raise EncodingError(f"{name} must be a 1-D vector, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise EncodingError(f"{name} contains NaN or Inf")
    return v


def _check_positive(name: str, value: float) -> float:
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise ParameterError(f"{name}={value!r} must be a finite number > 0")
    return v


# ------------------------------------------------------------------ step 1


def sample_clients(
    client_ids: Sequence[Hashable], client_rate: float, rng: CryptoRandom | None = None
) -> list[Hashable]:
    """Poisson client sampling: keep each id independently with probability
    ``client_rate`` (in (0, 1]); randomness from ``rng`` (default: a fresh
    :class:`CryptoRandom`)."""
    q = _check_rate(client_rate, "client_rate")
    rng = rng or CryptoRandom()
    mask = rng.bernoulli_mask(len(client_ids), q)
    return [cid for cid, keep in zip(client_ids, mask, strict=True) if keep]


# ------------------------------------------------------------------ step 2


@dataclass(frozen=True)
class ClippedUpdate:
    """A clipped update: ``vector`` has L2 norm at most the clip norm.

    Attributes:
        vector: the clipped update (float64).
        norm: the L2 norm *before* clipping (stays on the client).
        clipped: whether the update was scaled down.
    """

    vector: FloatArray
    norm: float
    clipped: bool


def clip_update(update: npt.ArrayLike, clip_norm: float) -> ClippedUpdate:
    """Scale ``update`` to L2 norm at most ``clip_norm`` (> 0); a client-side step.

    Raises:
        EncodingError: if ``update`` is not a finite 1-D vector.
        ParameterError: if ``clip_norm`` is not a finite number > 0.
    """
    c = _check_positive("clip_norm", clip_norm)
    v = _as_vector(update)
    norm = float(np.linalg.norm(v))
    if norm <= c:
        return ClippedUpdate(v.copy(), norm, False)
    # scale, then guard against the last ulp of rounding pushing it past c
    out = v * (c / norm)
    final = float(np.linalg.norm(out))
    if final > c:
        out *= c / final * (1.0 - 1e-12)
    return ClippedUpdate(out, norm, True)


# ------------------------------------------------------------------ step 3


def sum_vectors(vectors: Iterable[npt.ArrayLike]) -> FloatArray:
    """Sum equal-length vectors in float64 (the step secure aggregation replaces)."""
    total: FloatArray | None = None
    for i, v in enumerate(vectors):
        a = _as_vector(v, f"vectors[{i}]")
        if total is None:
            total = a.copy()
        elif a.shape != total.shape:
            raise EncodingError(f"vectors[{i}] has shape {a.shape}, expected {total.shape}")
        else:
            total += a
    if total is None:
        raise ParameterError("sum_vectors needs at least one vector")
    return total


# ------------------------------------------------------------------ step 4


class GaussianNoise:
    """Adds N(0, (noise_multiplier * clip_norm)^2) to each coordinate of a sum.

    Args:
        noise_multiplier: noise std / clip norm (>= 0) used *for the update sum*
            (with adaptive clipping, :attr:`AdaptiveClipping.update_noise_multiplier`).
        rng: cryptographic source (default: a fresh :class:`CryptoRandom`).
    """

    def __init__(self, noise_multiplier: float, rng: CryptoRandom | None = None) -> None:
        z = float(noise_multiplier)
        if not (math.isfinite(z) and z >= 0):
            raise ParameterError(f"noise_multiplier={noise_multiplier!r} must be >= 0")
        self.noise_multiplier = z
        self.rng = rng or CryptoRandom()

    def std(self, clip_norm: float) -> float:
        """Noise standard deviation per coordinate for clip norm ``clip_norm``."""
        return self.noise_multiplier * _check_positive("clip_norm", clip_norm)

    def add(self, total: npt.ArrayLike, clip_norm: float) -> FloatArray:
        """``total`` plus fresh Gaussian noise (a new array)."""
        t = _as_vector(total, "total")
        return t + self.rng.gaussian(self.std(clip_norm), t.shape[0])


# ------------------------------------------------------------------ step 5


def mean_from_sum(noisy_sum: npt.ArrayLike, expected_clients: float) -> FloatArray:
    """The average update: ``noisy_sum / expected_clients`` (fixed denominator
    ``client_rate * population``, > 0)."""
    m = _check_positive("expected_clients", expected_clients)
    return _as_vector(noisy_sum, "noisy_sum") / m


# --------------------------------------------------------- adaptive clipping


class AdaptiveClipping:
    """Private quantile estimate of the update norms (Andrew et al. 2021).

    Each round, every client reports ``b_i - 1/2`` where ``b_i = 1`` if its
    update norm is at most the current clip norm ``C``; the server adds
    N(0, count_noise_std^2) to their sum, estimates the fraction below ``C`` as
    ``b = noisy_sum / expected_clients + 1/2`` and moves ``C`` geometrically
    towards the ``target_quantile``: ``C <- C * exp(-learning_rate * (b - target))``.

    The count release costs privacy too. For a total noise multiplier ``z``
    (the one to account for), the update sum must use
    ``z_update = (z^-2 - (2 count_noise_std)^-2)^(-1/2)``, which requires
    ``count_noise_std > z / 2``.

    Args:
        initial_clip: starting clip norm (> 0).
        noise_multiplier: the total noise multiplier ``z`` accounted per round.
        count_noise_std: std of the noise on the indicator sum (Andrew et al.
            suggest ``expected_clients / 20``).
        target_quantile: fraction of updates to leave unclipped, in (0, 1).
        learning_rate: geometric step size (> 0).
    """

    def __init__(
        self,
        initial_clip: float,
        noise_multiplier: float,
        count_noise_std: float,
        *,
        target_quantile: float = 0.5,
        learning_rate: float = 0.2,
    ) -> None:
        self.clip_norm = _check_positive("initial_clip", initial_clip)
        self.noise_multiplier = _check_positive("noise_multiplier", noise_multiplier)
        self.count_noise_std = _check_positive("count_noise_std", count_noise_std)
        if not (0.0 < target_quantile < 1.0):
            raise ParameterError(f"target_quantile={target_quantile!r} is outside (0, 1)")
        self.target_quantile = float(target_quantile)
        self.learning_rate = _check_positive("learning_rate", learning_rate)
        if 2.0 * self.count_noise_std <= self.noise_multiplier:
            raise ParameterError(
                f"count_noise_std={count_noise_std} must exceed noise_multiplier / 2 = "
                f"{self.noise_multiplier / 2:g} (otherwise the count alone spends the "
                "whole budget)"
            )

    @property
    def update_noise_multiplier(self) -> float:
        """Noise multiplier for the update sum, ``(z^-2 - (2 sigma_b)^-2)^(-1/2)``."""
        z, sb = self.noise_multiplier, self.count_noise_std
        return float((z**-2 - (2.0 * sb) ** -2) ** -0.5)

    def indicator(self, norm: float) -> float:
        """Client side: ``b_i - 1/2`` for an update of L2 norm ``norm``."""
        return (1.0 if norm <= self.clip_norm else 0.0) - 0.5

    def noisy_fraction(
        self, indicators: Iterable[float], expected_clients: float, rng: CryptoRandom
    ) -> float:
        """Server side: the private estimate of the fraction of updates below ``C``."""
        m = _check_positive("expected_clients", expected_clients)
        total = float(sum(indicators)) + float(rng.gaussian(self.count_noise_std, 1)[0])
        return total / m + 0.5

    def update(self, noisy_fraction: float) -> float:
        """Move the clip norm towards the target quantile; returns the new norm."""
        self.clip_norm *= math.exp(-self.learning_rate * (noisy_fraction - self.target_quantile))
        return self.clip_norm


# ------------------------------------------------------------- the pipeline


@dataclass(frozen=True)
class ClientContribution:
    """What a picked client sends: its clipped update and, with adaptive
    clipping, its ``b_i - 1/2`` indicator (0.0 otherwise)."""

    vector: FloatArray
    indicator: float = 0.0


@dataclass(frozen=True)
class RoundResult:
    """One aggregated round.

    Attributes:
        mean: the noisy average update (divide-by-expected-clients).
        clients: number of contributions summed.
        clip_norm: the clip norm used this round.
        noise_std: the noise std added to the sum.
        next_clip_norm: the clip norm for the next round.
    """

    mean: FloatArray
    clients: int
    clip_norm: float
    noise_std: float
    next_clip_norm: float


class ClientLevelDP:
    """Central client-level DP for FedAvg: clip on clients, noise on the server.

    Args:
        noise_multiplier: total noise multiplier ``z`` per round (accounted).
        client_rate: probability that each client takes part in a round.
        population: number of clients; ``client_rate * population`` is the
            fixed averaging denominator.
        delta: delta of the client-level guarantee.
        clip_norm: a fixed clip norm ``C`` (> 0), or an :class:`AdaptiveClipping`.
        epsilon_budget: stop (``PrivacyBudgetExceeded``) before a round that
            would pass it; unlimited by default.
        accountant: ``"pld"`` (default), ``"prv"`` or ``"rdp"``.
        rng: cryptographic source for sampling and noise.
    """

    def __init__(
        self,
        *,
        noise_multiplier: float,
        client_rate: float,
        population: int,
        delta: float,
        clip_norm: float | AdaptiveClipping,
        epsilon_budget: float = math.inf,
        accountant: str = DEFAULT_ACCOUNTANT,
        rng: CryptoRandom | None = None,
    ) -> None:
        self.client_rate = _check_rate(client_rate, "client_rate")
        if isinstance(population, bool) or not isinstance(population, int) or population < 1:
            raise ParameterError(f"population={population!r} must be an int >= 1")
        self.population = population
        self.rng = rng or CryptoRandom()
        if isinstance(clip_norm, AdaptiveClipping):
            if clip_norm.noise_multiplier != float(noise_multiplier):
                raise ParameterError(
                    f"AdaptiveClipping.noise_multiplier={clip_norm.noise_multiplier} differs "
                    f"from noise_multiplier={noise_multiplier}"
                )
            self.adaptive: AdaptiveClipping | None = clip_norm
            update_z = clip_norm.update_noise_multiplier
        else:
            self.adaptive = None
            self._clip = _check_positive("clip_norm", clip_norm)
            update_z = float(noise_multiplier)
        self.noise = GaussianNoise(update_z, self.rng)
        self.noise_multiplier = float(noise_multiplier)
        self.ledger = PrivacyLedger(epsilon_budget, delta, unit="client", accountant=accountant)
        self._charged = False

    @property
    def expected_clients(self) -> float:
        """The averaging denominator ``client_rate * population``."""
        return self.client_rate * self.population

    @property
    def clip_norm(self) -> float:
        """The clip norm for the current round."""
        return self.adaptive.clip_norm if self.adaptive is not None else self._clip

    def begin_round(self, round: int | None = None) -> None:
        """Charge one round to the client-level ledger before any client trains
        (the conservative order; :meth:`aggregate` charges itself otherwise).

        Raises:
            PrivacyBudgetExceeded: if the round would pass the budget.
        """
        if not self._charged:
            self.ledger.charge(self.client_rate, self.noise_multiplier, 1, round=round)
            self._charged = True

    def sample(self, client_ids: Sequence[Hashable]) -> list[Hashable]:
        """Step 1: the clients of this round."""
        return sample_clients(client_ids, self.client_rate, self.rng)

    def contribute(self, update: npt.ArrayLike) -> ClientContribution:
        """Step 2 (client side): clip ``update`` to the current clip norm."""
        c = clip_update(update, self.clip_norm)
        ind = self.adaptive.indicator(c.norm) if self.adaptive is not None else 0.0
        return ClientContribution(c.vector, ind)

    def noise_std(self) -> float:
        """Std of the Gaussian noise added to this round's update sum (model units)."""
        return self.noise.std(self.clip_norm)

    def add_noise(self, total: npt.ArrayLike) -> FloatArray:
        """Step 4 (aggregator): ``total`` plus N(0, noise_std^2) per coordinate.

        ``total`` is the sum of the clipped updates however it was computed
        (a secure sum, or :func:`sum_vectors` at a trusted aggregator).
        """
        return self.noise.add(total, self.clip_norm)

    def end_round(self, indicator_sum: float = 0.0) -> float:
        """Close the round: with adaptive clipping, move the clip norm using
        the (secure) sum of the clients' ``b_i - 1/2`` indicators, noised
        here; returns the clip norm of the next round. The next round must
        be charged again (:meth:`begin_round`)."""
        self._charged = False
        if self.adaptive is None:
            return self.clip_norm
        frac = self.adaptive.noisy_fraction([indicator_sum], self.expected_clients, self.rng)
        return self.adaptive.update(frac)

    def release(
        self,
        total: npt.ArrayLike,
        *,
        clients: int,
        indicator_sum: float = 0.0,
        round: int | None = None,
    ) -> RoundResult:
        """Steps 4-5 on a sum computed elsewhere (the secure sum): charge the
        round (unless :meth:`begin_round` did), add the noise, divide by the
        expected number of clients, update an adaptive clip norm.

        Args:
            total: sum of the ``clients`` clipped updates (zeros if none).
            clients: number of updates in ``total`` (>= 0).
            indicator_sum: sum of their :meth:`AdaptiveClipping.indicator`
                values (ignored without adaptive clipping).

        Raises:
            PrivacyBudgetExceeded: before anything is computed, if this round
                would pass the budget.
        """
        if isinstance(clients, bool) or not isinstance(clients, int) or clients < 0:
            raise ParameterError(f"clients={clients!r} must be an int >= 0")
        self.begin_round(round)
        clip = self.clip_norm
        std = self.noise_std()
        mean = mean_from_sum(self.add_noise(total), self.expected_clients)
        nxt = self.end_round(indicator_sum)
        return RoundResult(mean, clients, clip, std, nxt)

    def aggregate(
        self,
        contributions: Sequence[ClientContribution],
        *,
        dim: int | None = None,
        round: int | None = None,
    ) -> RoundResult:
        """Steps 3-5 at a trusted aggregator that sees the contributions: sum
        them in the clear (:func:`sum_vectors`), then :meth:`release`.
        Behind secure aggregation call :meth:`release` with the secure sum.

        A round in which Poisson sampling picked nobody still releases noise:
        pass ``contributions=[]`` and the vector length ``dim``.

        Raises:
            PrivacyBudgetExceeded: before anything is computed, if this round
                would pass the budget.
        """
        if not contributions and (dim is None or dim < 1):
            raise ParameterError("an empty round needs the vector length dim >= 1")
        self.begin_round(round)
        if contributions:
            total = sum_vectors(c.vector for c in contributions)
            if dim is not None and total.shape[0] != dim:
                raise EncodingError(f"contributions have length {total.shape[0]}, expected {dim}")
        else:
            assert dim is not None
            total = np.zeros(dim, dtype=np.float64)
        return self.release(
            total,
            clients=len(contributions),
            indicator_sum=float(sum(c.indicator for c in contributions)),
            round=round,
        )

    def epsilon(self, *, accountant: str | None = None) -> PrivacyGuarantee:
        """Client-level guarantee spent so far (add/remove one client)."""
        return self.ledger.spent(accountant=accountant)
