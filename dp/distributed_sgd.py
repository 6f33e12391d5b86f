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
from typing import Final

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


#: encode_batch works on blocks of rows of at most this many values (128 KiB
#: per temporary, so that a block's passes stay in cache); a longer row is a
#: block of its own
_BLOCK_VALUES: Final = 1 << 14


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

    The rows are processed in blocks (clip, sign flip, rotation and scaling
    as matrix operations; :func:`_round_rows` for the rounding), with the
    same float operations per row and the same draws from ``rng`` in the same
    order as encoding one row at a time: under a fixed ``rng`` seed the
    output does not depend on the blocking.

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
    # every row's L2 norm by one stacked call: the dot products run back to
    # back (a multi-threaded BLAS that rests between calls stalls here)
    norms = np.sqrt(np.matmul(g[:, None, :], g[:, :, None]).reshape(g.shape[0]))
    step = max(1, _BLOCK_VALUES // d_pad)
    # one set of block temporaries for the whole batch: fresh ones per block
    # cost more in page faults than the passes over them at d = 10^5
    work = np.empty((3, min(step, g.shape[0]), d_pad), dtype=np.int64)
    for lo in range(0, g.shape[0], step):
        rows = g[lo : lo + step]
        y = _rotate_rows(params, rows, norms[lo : lo + step], signs, work[0, : len(rows)])
        _round_rows(y, limit, params.beta, src, total, work[1:, : len(rows)])
    if params.mechanism == "dgauss":
        total += discrete.discrete_gaussian(params.noise_variance, d_pad, src)
    else:
        total += discrete.skellam(params.noise_variance, d_pad, src)
    mask = np.uint64((1 << params.bits) - 1)
    return (total.view(np.uint64) & mask).astype(np.uint32)


def _rotate_rows(params: DistributedDPParams, rows: FloatArray, norms: FloatArray,
                 signs: FloatArray, scratch: npt.NDArray[np.int64]) -> FloatArray:
    """Each row (R x dimension, finite; ``norms`` their L2 norms) clipped to
    L2 ``l2_clip``, padded, sign-flipped, rotated and scaled by ``1 /
    gamma``: R x padded_dimension (``scratch``, R x padded_dimension, holds
    the padded rows).

    Bit-identical row by row to the one-row computation ``norm =
    sqrt(row @ row)``; ``x *= l2_clip / norm`` if ``norm > l2_clip``;
    ``hadamard(x * signs) * scale``, given the norms as the same BLAS dot
    products (stacked): a factor of 1.0 leaves an unclipped row unchanged,
    and :func:`hadamard` of a matrix equals it row by row."""
    r = rows.shape[0]
    clipped = norms > params.l2_clip
    x = scratch.view(np.float64)
    x[:, : params.dimension] = rows
    x[:, params.dimension :] = 0.0
    if clipped.any():
        factor = np.ones(r, dtype=np.float64)
        np.divide(params.l2_clip, norms, out=factor, where=clipped)
        x *= factor[:, None]
    x *= signs
    y = hadamard(x)
    y *= params.scale
    return y


def _round_rows(
    y: FloatArray, limit: int, beta: float, src: discrete.DiscreteRandom,
    total: npt.NDArray[np.int64], scratch: npt.NDArray[np.int64],
) -> None:
    """Conditional randomized rounding of each row of ``y`` (R x D, scaled
    and rotated), rows in order; adds the rounded rows to ``total`` and
    overwrites ``y`` and ``scratch`` (2 x R x D).

    A row's attempt takes one ``src.words(D)`` draw, rounds coordinate ``i``
    up iff ``u_i / 2^53 < frac_i`` (``u`` the top 53 bits of word ``i``,
    ``frac = y - floor(y)``) and passes iff the rounded row's squared norm
    is at most ``limit`` (exact in int64). Row 0's attempts take the first
    draws, then row 1's, and so on: one draw per attempt, as in rounding one
    row at a time (each draw is its own keystream label, so draws cannot be
    merged). The floors and thresholds are computed for all rows at once.
    With several rows, so is which rows pass whatever the draw (their
    squared norm is within ``limit`` even with every coordinate rounded
    the way that adds more: unclipped rows, typically): those take one draw
    each, in their turn, and are rounded together at the end; the others
    are tested attempt by attempt.

    Raises:
        EncodingError: a row failed ``MAX_ROUNDING_ATTEMPTS`` times
            (probability below ``beta^1000``; ``beta`` is named in the error).
    """
    r_all, d = y.shape
    base_f = scratch[0].view(np.float64)
    np.floor(y, out=base_f)
    y -= base_f  # frac in [0, 1]: 1.0 when a tiny negative y rounds up in float
    y *= 2.0**53
    # for a word w and an integer t <= 2^53: (w >> 11) / 2^53 < frac iff
    # (w >> 11) < ceil(frac 2^53) = t iff w < t 2^11, which fits in uint64
    # unless t = 2^53 (frac = 1.0): that coordinate always rounds up, so it
    # moves into the base with threshold 0 (never up again)
    np.ceil(y, out=y)
    if r_all and y.max() == 2.0**53:
        whole = y == 2.0**53
        base_f += whole
        y[whole] = 0.0
    threshold = scratch[1]
    np.copyto(threshold, y, casting="unsafe")
    threshold <<= 11
    shifted = threshold.view(np.uint64)
    # y is spent: its memory takes the integer floors, and the float floors'
    # memory becomes int64 scratch
    base = y.view(np.int64)
    np.copyto(base, base_f, casting="unsafe")
    spare = scratch[0]
    ups = base.sum(axis=0)  # the rounded rows' sum, less the ups still to come
    if r_all > 1:
        # the larger of |b| and |b + 1| per coordinate, squared and summed:
        # exact in int64 (norms stay below 2^61, see dp.distributed.encode)
        np.negative(base, out=spare)
        np.maximum(spare, base + 1, out=spare)
        sure = np.einsum("ij,ij->i", spare, spare) <= limit
    else:
        sure = np.zeros(r_all, dtype=np.bool_)
    kept: list[npt.NDArray[np.uint64]] = []  # the one draw of each sure row, in order
    up = np.empty(d, dtype=np.bool_)
    z = spare[0]
    for row in range(r_all):
        if sure[row]:
            kept.append(src.words(d))
            continue
        for _ in range(MAX_ROUNDING_ATTEMPTS):
            np.less(src.words(d), shifted[row], out=up)
            np.add(base[row], up, out=z)
            if int(np.dot(z, z)) <= limit:  # exact: below 2^61
                ups += up
                break
        else:
            raise EncodingError(
                f"conditional rounding failed {MAX_ROUNDING_ATTEMPTS} times (beta={beta})")
    if kept:
        ups += (np.stack(kept) < shifted[sure]).view(np.uint8).sum(axis=0, dtype=np.int64)
    total += ups


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
