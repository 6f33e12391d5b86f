"""Example-level distributed DP-SGD: each client adds a share of one central
DP-SGD step's noise, in the integer domain, before the secure sum.

One step (one FedAvg round): every client Poisson-samples each of its
examples with probability ``sample_rate``, clips each sampled example's
gradient to L2 ``l2_clip``, rotates it (randomized Hadamard, public seed),
scales it by ``1 / gamma`` and rounds it to integers with conditional
randomized rounding (the rounded vector's L2 norm is at most
``params.l2_sensitivity``, enforced exactly), sums the rounded vectors of its
batch, adds ONE discrete Gaussian (or Skellam) share of variance
``noise_variance`` and reduces mod ``2^bits``. The secure sum of the clients'
vectors is the sum of every sampled example's rounded gradient plus
``survivors`` noise shares: a central DP-SGD step over the union of the
data with the noise of the distributed discrete Gaussian.

Privacy unit: one example; adjacency: add/remove one example (its rounded
vector is absent from the sum). Each step is the distributed mechanism with
the L2 (and L1) sensitivity of ONE rounded example vector, Poisson-subsampled
at ``sample_rate``, composed over ``steps`` steps by
:func:`dp.distributed_accounting.epsilon_of_rounds`. Trust: against the
server (it sees only the sum), provided it learns neither which examples
were sampled nor the batch sizes: a client sends nothing but its noised
vector, and the server divides by the PUBLIC expected batch size
``sample_rate * total_examples`` (Opacus's convention), never by a count.
One local step per round only: several local steps per round are not
covered by this analysis.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np
import numpy.typing as npt

from secagg.errors import EncodingError, ParameterError

from . import discrete
from .distributed import (
    MAX_ROUNDING_ATTEMPTS,
    DistributedDPParams,
    _calibrate_variance,
    _log_wrap,
    _signs,
    hadamard,
    select_parameters,
)
from .distributed_accounting import DistributedPrivacyGuarantee, epsilon_of_rounds

__all__ = [
    "DPSGDAccountant",
    "encode_batch",
    "example_guarantee",
    "select_dpsgd_parameters",
]

FloatArray = npt.NDArray[np.float64]


def _wrap_prob(p: DistributedDPParams, max_batch: int) -> float:
    """Per-coordinate wrap bound of one step's sum: at most ``max_batch``
    rounded example vectors (sub-Gaussian after the rotation) plus the noise
    of ``num_clients`` shares."""
    d = p.padded_dimension
    signal_proxy = (max_batch * p.l2_clip * p.scale) ** 2 / d
    threshold = 2.0 ** (p.bits - 1) - max_batch  # rounding moves each example by < 1
    log_p = _log_wrap(p.mechanism, signal_proxy, p.num_clients, p.noise_variance, threshold)
    return min(1.0, math.exp(log_p))


def select_dpsgd_parameters(
    *,
    target_epsilon: float,
    delta: float,
    num_clients: int,
    min_survivors: int,
    total_examples: int,
    sample_rate: float,
    steps: int,
    dimension: int,
    l2_clip: float,
    bits: int = 32,
    mechanism: str = "dgauss",
    max_wrap_probability: float = 1e-6,
) -> DistributedDPParams:
    """Public parameters of an example-level distributed DP-SGD run.

    ``l2_clip`` is the per-EXAMPLE clip; ``sample_rate`` the Poisson rate of
    each example per step; ``steps`` the number of steps (rounds);
    ``total_examples`` bounds the batch of one step (for the wrap bound: the
    sum of every example's rounded vector must fit the modulus). The noise is
    calibrated for ``min_survivors`` honest shares (the secure sum's
    threshold); ``gamma`` is the finest step whose per-coordinate wrap
    probability is at most ``max_wrap_probability``.

    Raises:
        ParameterError: naming the value to change when no quantization fits
            ``bits`` or the target is out of reach.
    """
    if not (isinstance(total_examples, int) and total_examples >= 1):
        raise ParameterError(f"total_examples={total_examples!r} must be an int >= 1")
    # a first plan at the client-level signal fixes the noise in float units
    p = select_parameters(
        target_epsilon=target_epsilon, delta=delta, num_clients=num_clients,
        min_survivors=min_survivors, bits=bits, dimension=dimension, l2_clip=l2_clip,
        rounds=steps, sample_rate=sample_rate, mechanism=mechanism,
        max_wrap_probability=max_wrap_probability,
    )
    noise_f2 = num_clients * p.noise_variance * p.gamma**2  # summed noise, float units^2
    d = p.padded_dimension
    signal_f2 = (total_examples * l2_clip) ** 2 / d
    room = 2.0 ** (bits - 1) - total_examples
    if room <= 0:
        raise ParameterError(
            f"bits={bits} cannot hold the rounding of {total_examples} examples; "
            f"increase bits to at least {math.ceil(math.log2(total_examples)) + 2}")
    z = math.sqrt(2.0 * math.log(2.0 / max_wrap_probability))
    gamma = z * math.sqrt(signal_f2 + noise_f2) / room * 1.01
    for _ in range(60):
        base = dataclasses.replace(p, gamma=gamma, noise_variance=1.0)
        hint = noise_f2 / num_clients / gamma**2
        var, eps = _calibrate_variance(base, float(target_epsilon), hint)
        q = dataclasses.replace(base, noise_variance=var, epsilon=eps)
        w = _wrap_prob(q, total_examples)
        if w <= max_wrap_probability:
            return dataclasses.replace(q, wrap_probability=w)
        gamma *= 1.1
    raise ParameterError(  # pragma: no cover - the first gamma is within a few % of the bound
        f"bits={bits} is too few for {total_examples} examples at l2_clip={l2_clip}; "
        "increase bits")


def encode_batch(
    params: DistributedDPParams,
    grads: npt.ArrayLike,
    seed: bytes,
    rng: discrete.DiscreteRandom | None = None,
) -> npt.NDArray[np.uint32]:
    """One client's contribution to a step: ``grads`` (B x dimension, one row
    per sampled example, B may be 0) are clipped to ``l2_clip`` each, rotated,
    scaled and conditionally rounded each; the rounded rows are summed, one
    noise share is added and the result reduced mod ``2^bits`` (``uint32``).

    Raises:
        ParameterError: wrong shape, non-finite values or ``bits > 32``.
        EncodingError: conditional rounding failed ``MAX_ROUNDING_ATTEMPTS``
            times for a row (probability below ``beta^1000``).
    """
    if params.bits > 32:
        raise ParameterError(f"bits={params.bits} exceeds the uint32 secure sum (32)")
    g = np.asarray(grads, dtype=np.float64)
    if g.ndim != 2 or g.shape[1] != params.dimension:
        raise ParameterError(f"grads has shape {g.shape}, expected (B, {params.dimension})")
    if not np.isfinite(g).all():
        raise ParameterError("grads has NaN or Inf values")
    src = discrete.DiscreteRandom() if rng is None else rng
    d_pad = params.padded_dimension
    total = np.zeros(d_pad, dtype=np.int64)
    signs = _signs(seed, d_pad)
    bound = Fraction(params.l2_sensitivity) ** 2
    limit = math.floor(bound)  # an integer squared norm z2 <= bound iff z2 <= floor(bound)
    for row in g:
        norm = math.sqrt(float(row @ row))
        x = np.zeros(d_pad, dtype=np.float64)
        x[: params.dimension] = row
        if norm > params.l2_clip:
            x *= params.l2_clip / norm
        y = hadamard(x * signs)
        y *= params.scale
        floor = np.floor(y)
        frac = y - floor
        base = floor.astype(np.int64)
        for _ in range(MAX_ROUNDING_ATTEMPTS):
            u = (src.words(d_pad) >> np.uint64(11)).astype(np.float64) * 2.0**-53
            zr = base + (u < frac)
            if int(np.square(zr).sum()) <= limit:
                break
        else:  # pragma: no cover - probability below beta^1000
            raise EncodingError(
                f"conditional rounding failed {MAX_ROUNDING_ATTEMPTS} times (beta={params.beta})")
        total += zr
    if params.mechanism == "dgauss":
        total += discrete.discrete_gaussian(params.noise_variance, d_pad, src)
    else:
        total += discrete.skellam(params.noise_variance, d_pad, src)
    mask = np.uint64((1 << params.bits) - 1)
    return (total.view(np.uint64) & mask).astype(np.uint32)


def example_guarantee(g: DistributedPrivacyGuarantee) -> DistributedPrivacyGuarantee:
    """Relabel a distributed guarantee for the example unit (same numbers)."""
    trust = g.trust.replace("which clients were sampled",
                            "which examples were sampled or how many")
    return dataclasses.replace(g, unit="example", adjacency="add/remove one",
                               trust=trust)


class DPSGDAccountant:
    """Step-by-step privacy of distributed DP-SGD from the survivors actually
    summed in each step (never the planned count); example level."""

    def __init__(self, params: DistributedDPParams) -> None:
        self.params = params
        self._steps: list[int] = []

    @property
    def steps(self) -> int:
        return len(self._steps)

    def record_step(self, survivors: int) -> DistributedPrivacyGuarantee:
        """Record one step that summed ``survivors`` clients' vectors."""
        self.params.round_for(survivors)  # validates the count
        self._steps.append(survivors)
        return self.guarantee()

    def guarantee(self, delta: float | None = None) -> DistributedPrivacyGuarantee:
        """(ε, δ) of the steps so far, example level, against the server."""
        d = self.params.delta if delta is None else delta
        rounds = [self.params.round_for(s) for s in self._steps]
        return example_guarantee(epsilon_of_rounds(rounds, d, trust=self.params.trust))

    def planned(self) -> DistributedPrivacyGuarantee:
        """Every planned step at ``min_survivors``."""
        r = self.params.round_for(self.params.min_survivors)
        return example_guarantee(
            epsilon_of_rounds([r] * self.params.rounds, self.params.delta,
                              trust=self.params.trust))
