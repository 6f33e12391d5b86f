"""Hypothesis strategies for aggregation protocols.

Needs hypothesis: ``pip install hypothesis`` (or, from the checkout,
``pip install -e '.[testing]'``).

* inputs: :func:`input_vectors`, :func:`client_inputs` (dimensions, dtypes,
  values around and at the edges of the encoder's range, including values past
  the clipping bound), :func:`invalid_inputs`;
* parameters: :func:`secagg_parameters` (n, threshold, graph degree, modulus
  bits, encoder), :func:`paillier_parameters` (key sizes, value bits, clip,
  minimum clients);
* dropouts: :func:`dropout_schedules` names, for every round, which clients
  vanish, either keeping every round at or above the threshold or falling
  below it somewhere;
* whole cases: :func:`scenarios`;
* the wire: :func:`faults`, :func:`fault_scripts`;
* adversaries: :func:`server_adversaries`, :func:`misbehaving_clients`.

Every strategy shrinks towards small, readable cases: fewer clients, one
dimension, float64 zeros, no dropouts, the first round.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from hypothesis import assume
from hypothesis import strategies as st

from protocols.secagg import SecurityTarget
from protocols.secagg.tails import malicious_bounds
from secagg.errors import ParameterError

from .adversaries import (
    BothSharesServer,
    OutOfRangeClient,
    SplitViewServer,
    WrongLengthClient,
    WrongRoundClient,
)
from .network import BitFlip, Delay, Drop, Duplicate, Fault, FaultScript, Reorder, Replay, Slot
from .params import frac_bits_limit, paillier_params, secagg_params
from .spec import DropoutSchedule, Outcome, Params, ProtocolSpec, Scenario

__all__ = [
    "FAULT_KINDS",
    "FLOAT_DTYPES",
    "client_ids",
    "client_inputs",
    "dropout_schedules",
    "edge_values",
    "fault_scripts",
    "faults",
    "input_vectors",
    "invalid_inputs",
    "misbehaving_clients",
    "paillier_parameters",
    "scenarios",
    "secagg_parameters",
    "server_adversaries",
]

#: Input dtypes the encoders accept, in shrinking order.
FLOAT_DTYPES: tuple[type[np.floating[Any]], ...] = (np.float64, np.float32, np.float16)
#: Names of the network faults :func:`faults` draws.
FAULT_KINDS = ("bitflip", "duplicate", "replay", "delay", "reorder", "drop")
SECAGG_ROUNDS = ("advertise", "share_keys", "masked_input", "consistency", "unmask")


# -- inputs ------------------------------------------------------------------------------
def edge_values(clip: float, scale: float | None = None) -> list[float]:
    """Values at the edges of an encoder's range: zero (both signs), the
    clipping bound and the float just inside it, values past it (clipped by
    the encoder), the smallest subnormal, and, given the fixed-point
    ``scale``, one quantum and the rounding ties around zero and the bound."""
    return [v for v in (_edge(name, clip, scale) for name in EDGES) if v is not None]


#: Symbolic edge values (resolved against the clip and scale of the drawn
#: parameters, so inputs can be drawn before them), simplest first.
EDGES = ("zero", "-zero", "clip", "-clip", "inside", "-inside", "past", "-past", "twice",
         "-twice", "tiny", "half_q", "-half_q", "q", "-q", "1.5q", "-1.5q", "clip-half_q",
         "-clip+half_q")


def _edge(name: str, clip: float, scale: float | None) -> float | None:
    sign = -1.0 if name.startswith("-") and name != "-zero" else 1.0
    base = name.lstrip("-")
    if name == "-zero":
        return -0.0
    fixed = {"zero": 0.0, "clip": clip, "inside": float(np.nextafter(clip, 0.0)),
             "past": float(np.nextafter(clip, math.inf)), "twice": 2.0 * clip,
             "tiny": 5e-324}
    if base in fixed:
        return sign * fixed[base]
    if not scale:
        return None
    q = 1.0 / scale
    quanta = {"half_q": 0.5 * q, "q": q, "1.5q": 1.5 * q}
    if base in quanta:
        return sign * quanta[base]
    if base == "clip-half_q":
        return clip - 0.5 * q
    return -clip + 0.5 * q  # "-clip+half_q"


#: Resolution of drawn values: ``m / _GRID`` of the range, ``_GRID`` a prime so
#: values are not dyadic and the encoders' rounding is exercised.
_GRID = 999_983


def _value(code: int, clip: float, scale: float | None, wide: float) -> float:
    """Decode one drawn element: small codes are the edge values (simplest
    first), larger ones ``±m / _GRID * wide * clip`` with growing ``m``."""
    if code < len(EDGES):
        v = _edge(EDGES[code], clip, scale)
        return 0.0 if v is None or abs(v) > wide * clip else v
    j = code - len(EDGES) + 1
    m = (j + 1) // 2
    return (1.0 if j % 2 else -1.0) * m / _GRID * wide * clip


@dataclass(frozen=True)
class _Raw:
    """A vector before the parameters are known: a dtype and one code per
    element (see :func:`_value`). One integer per element keeps shrinking
    effective (hypothesis deletes and sorts such spans well)."""

    dtype: type[np.floating[Any]]
    codes: tuple[int, ...]

    def resolve(self, clip: float, scale: float | None, wide: float = 2.0,
                dimension: int | None = None) -> npt.NDArray[np.floating[Any]]:
        """The vector; with ``dimension``, of the last ``dimension`` codes only
        (so a smaller dimension keeps what shrinking moved to the end)."""
        codes = self.codes if dimension is None else self.codes[len(self.codes) - dimension:]
        arr: npt.NDArray[np.floating[Any]] = np.asarray(
            [_value(c, clip, scale, wide) for c in codes], dtype=self.dtype)
        return arr


@functools.lru_cache(maxsize=256)
def _raw_vector(dimension: int, dtypes: tuple[type[np.floating[Any]], ...]
                ) -> st.SearchStrategy[_Raw]:
    codes = st.lists(st.integers(0, len(EDGES) + 2 * _GRID), min_size=dimension,
                     max_size=dimension).map(tuple)
    return st.builds(_Raw, st.sampled_from(dtypes), codes)


def input_vectors(dimension: int, *, clip: float = 1.0, scale: float | None = None,
                  dtypes: Sequence[type[np.floating[Any]]] = FLOAT_DTYPES,
                  past_clip: bool = True) -> st.SearchStrategy[npt.NDArray[np.floating[Any]]]:
    """One client's 1-D float vector of ``dimension`` values: edge values
    (:func:`edge_values`) mixed with floats in ``[-2 clip, 2 clip]`` (``[-clip,
    clip]`` without ``past_clip``), in one of ``dtypes``."""
    return _cached_vector(dimension, clip, scale, tuple(dtypes), past_clip)


@functools.lru_cache(maxsize=256)
def _cached_vector(dimension: int, clip: float, scale: float | None,
                   dtypes: tuple[type[np.floating[Any]], ...], past_clip: bool
                   ) -> st.SearchStrategy[npt.NDArray[np.floating[Any]]]:
    wide = 2.0 if past_clip else 1.0
    return _raw_vector(dimension, dtypes).map(lambda r: r.resolve(clip, scale, wide))


@functools.lru_cache(maxsize=256)
def client_ids(n: int, *, sparse: bool = False) -> st.SearchStrategy[tuple[int, ...]]:
    """``n`` client ids: ``1..n``, or (``sparse``) any distinct ids in ``[1, 2^32 - 1]``."""
    if not sparse:
        return st.just(tuple(range(1, n + 1)))
    return st.sets(st.integers(1, 2**32 - 1), min_size=n, max_size=n).map(
        lambda s: tuple(sorted(s)))


def client_inputs(clients: Sequence[int], dimension: int, **kw: Any
                  ) -> st.SearchStrategy[dict[int, npt.NDArray[np.floating[Any]]]]:
    """An input vector per client (keyword arguments as :func:`input_vectors`)."""
    return _inputs(tuple(clients), input_vectors(dimension, **kw))


@st.composite
def _inputs(draw: st.DrawFn, clients: tuple[int, ...],
            vector: st.SearchStrategy[npt.NDArray[np.floating[Any]]]
            ) -> dict[int, npt.NDArray[np.floating[Any]]]:
    return {u: draw(vector) for u in clients}


@st.composite
def _invalid(draw: st.DrawFn, clients: tuple[int, ...], dimension: int, clip: float
             ) -> dict[int, npt.NDArray[Any]]:
    good = draw(client_inputs(clients, dimension, clip=clip))
    bad = draw(st.sampled_from(clients))
    # a longer vector is only wrong next to others (alone it is another dimension)
    how = draw(st.sampled_from(["nan", "inf", "-inf", "2-D", "complex", "object"]
                               + (["longer"] if len(clients) > 1 else [])))
    x = np.array(good[bad], dtype=np.float64)
    if how in ("nan", "inf", "-inf"):
        x[draw(st.integers(0, dimension - 1))] = float(how)
    elif how == "longer":
        x = np.append(x, 0.0)
    elif how == "2-D":
        x = x.reshape(1, -1)
    elif how == "complex":
        x = x.astype(np.complex128)
    else:
        x = x.astype(object)
    return {**good, bad: x}


def invalid_inputs(clients: Sequence[int], dimension: int, *, clip: float = 1.0
                   ) -> st.SearchStrategy[dict[int, npt.NDArray[Any]]]:
    """Inputs where one client's vector is invalid: a NaN or an infinity, the
    wrong length, two dimensions, or a non-float dtype."""
    return _invalid(tuple(clients), dimension, clip)


# -- parameters ------------------------------------------------------------------------
def _frac_bits_limit(bits: int, clip: float, n: int) -> int:
    """Largest fractional bits with headroom for ``n`` summands of ``|x| <= clip``
    (as :func:`~protocols.testing.specs.secagg_params` computes it)."""
    return frac_bits_limit(bits, clip, n)


@functools.lru_cache(maxsize=64)
def _malicious_rings(n: int, corrupt: int) -> list[tuple[int, int]]:
    """The (degree, threshold) pairs of a Harary ring on ``n`` clients that meet
    the default :class:`~protocols.secagg.SecurityTarget`'s security bits
    against ``corrupt`` corrupt clients: those a malicious-mode client accepts."""
    bits = SecurityTarget().security_bits
    return [(k, t) for k in range(2, n - 1, 2) for t in range(2, k + 2)
            if malicious_bounds(n, k, t, corrupt, bits)[0] >= bits]


@st.composite
def _secagg_params(draw: st.DrawFn, n: int, shapes: tuple[str, ...], mode: str,
                   modulus_bits: tuple[int, ...], clips: tuple[float, ...],
                   corrupt_fraction: float) -> Params:
    shape = draw(st.sampled_from(shapes))
    degree: int | None = None
    corrupt = math.floor(corrupt_fraction * n)
    if mode == "malicious" and shape == "harary":
        # only the rings an honest client accepts (protocols.secagg.partition)
        rings = _malicious_rings(n, corrupt)
        shape = shape if rings else "complete"
    if shape == "complete":
        # malicious mode: the threshold must exceed the corrupt clients
        t = draw(st.integers(max(2, corrupt + 1) if mode == "malicious" else 2, n))
    elif mode == "malicious":
        degree, t = draw(st.sampled_from(rings))
    else:
        degree = draw(st.sampled_from(list(range(2, n - 1, 2))))
        t = draw(st.integers(2, degree + 1))
    bits = draw(st.sampled_from(modulus_bits))
    clip = draw(st.sampled_from(clips))
    top = _frac_bits_limit(bits, clip, n)
    frac = draw(st.integers(min(8, top), top))
    return secagg_params(n, t, degree=degree, mode=mode,  # type: ignore[arg-type]
                         modulus_bits=bits, clip=clip, frac_bits=frac,
                         corrupt_fraction=corrupt_fraction)


def secagg_parameters(
    n: int, *, mode: Literal["semi-honest", "malicious"] = "semi-honest",
    graph: Literal["complete", "harary", "any"] = "any",
    modulus_bits: Sequence[int] = (32, 64), clips: Sequence[float] = (1.0, 4.0),
    corrupt_fraction: float = 0.05,
) -> st.SearchStrategy[Params]:
    """Valid parameters of the pairwise-mask protocol for ``n`` clients.

    Threshold ``t`` in ``[2, n]`` on the complete graph; on a Harary graph
    (needs ``n >= 4``) an even degree ``k`` in ``[2, n - 2]`` and ``t`` in
    ``[2, k + 1]``; modulus 2^32 or 2^64 with a :class:`FixedPointEncoder`
    whose headroom fits ``n`` summands. ``needs`` is ``t`` at every round
    (and the consistency quorum at the quorum rounds in malicious mode);
    on a Harary graph ``tolerated = k + 1 - t`` (any ``k + 1 - t`` dropouts
    leave every neighbourhood its threshold; more may or may not). In
    malicious mode only what an honest client accepts is drawn: ``t >
    floor(corrupt_fraction n)`` on the complete graph, and on a Harary graph
    the ``(k, t)`` that meet the default
    :class:`~protocols.secagg.SecurityTarget`'s security bits (the complete
    graph if none does).
    """
    if n < 2:
        raise ParameterError(f"the pairwise-mask protocol needs n >= 2, got {n}")
    shapes = {"complete": ("complete",), "harary": ("harary",),
              "any": ("complete", "harary")}[graph]
    shapes = tuple(s for s in shapes if s == "complete" or n >= 4)
    if not shapes:
        raise ParameterError(f"a Harary graph needs n >= 4, got {n}")
    return _cached_secagg_params(n, shapes, mode, tuple(modulus_bits), tuple(clips),
                                 corrupt_fraction)


_cached_secagg_params = functools.lru_cache(maxsize=256)(_secagg_params)


@st.composite
def _paillier_params(draw: st.DrawFn, n: int, keypairs: tuple[tuple[Any, Any], ...],
                     layout: str, insecure: bool, value_bits: tuple[int, ...],
                     clips: tuple[float, ...]) -> Params:
    return paillier_params(
        n, draw(st.sampled_from(keypairs)), trust=layout,  # type: ignore[arg-type]
        value_bits=draw(st.sampled_from(value_bits)), clip=draw(st.sampled_from(clips)),
        min_clients=draw(st.integers(1, n)), insecure_allow_small_key_for_tests=insecure)


def paillier_parameters(
    n: int, keypairs: Sequence[tuple[Any, Any]], *,
    trust: Literal["key-holder", "cross-silo"] | None = None,
    insecure_allow_small_key_for_tests: bool = False,
    value_bits: Sequence[int] = (16, 8, 24), clips: Sequence[float] = (1.0, 4.0),
    layout: Literal["key-holder", "cross-silo"] | None = None,
) -> st.SearchStrategy[Params]:
    """Valid parameters of Paillier summation for ``n`` clients: one of the
    given key pairs (key generation is slow, so keys are passed in; their
    sizes are the key sizes drawn), value bits, clip, and ``min_clients`` in
    ``[1, n]``. Pass ``insecure_allow_small_key_for_tests=True`` with keys below
    2048 bits (tests only)."""
    if not keypairs:
        raise ParameterError("paillier_parameters needs at least one key pair")
    if layout is not None:
        warnings.warn("paillier_parameters(layout=...) is deprecated; use trust=",
                      DeprecationWarning, stacklevel=2)
    layout = trust or layout or "key-holder"
    return _paillier_params(n, tuple(keypairs), layout, insecure_allow_small_key_for_tests,
                            tuple(value_bits), tuple(clips))


# -- dropouts ------------------------------------------------------------------------
@st.composite
def _fated_schedule(draw: st.DrawFn, names: tuple[str, ...], clients: tuple[int, ...],
                    fates: tuple[int, ...], p: Params, outcome: str) -> DropoutSchedule:
    """The schedule that follows each client's fate (0: stays, ``i``: vanishes
    at round ``i - 1``) as far as ``outcome`` allows."""
    fate = dict(zip(clients, fates, strict=True))
    present = set(clients)
    vanish: dict[str, frozenset[int]] = {}
    if outcome == "aborts":
        can = [r for r in names if p.need(r) >= 1]
        if not can:
            raise ParameterError("no round has a threshold: this protocol never aborts")
        target = draw(st.sampled_from(can))
        for i, r in enumerate(names[: names.index(target) + 1]):
            gone = {u for u in present if fate[u] == i + 1}
            if r == target:
                short = len(present) - len(gone) - p.need(r) + 1
                rest = sorted(present - gone, reverse=True)
                gone |= set(rest[: max(0, short)])
            present -= gone
            vanish[r] = frozenset(gone)
    else:
        # clients in id order, each vanishing at its fated round if the
        # outcome allows: every round keeps its need, at most `tolerated` go
        budget = math.inf if outcome == "any" or p.tolerated is None else p.tolerated
        alive = [len(clients)] * len(names)
        chosen: dict[str, set[int]] = {r: set() for r in names}
        used = 0
        for u in clients:
            i = fate[u] - 1
            if i < 0:
                continue
            if outcome == "completes" and (used >= budget or any(
                    alive[j] - 1 < p.need(names[j]) for j in range(i, len(names)))):
                continue
            for j in range(i, len(names)):
                alive[j] -= 1
            used += 1
            chosen[names[i]].add(u)
        vanish = {r: frozenset(v) for r, v in chosen.items()}
    return DropoutSchedule(names, {r: v for r, v in vanish.items() if v})


@functools.lru_cache(maxsize=256)
def _fates(n: int, rounds: int) -> st.SearchStrategy[tuple[int, ...]]:
    return st.lists(st.sampled_from(range(rounds + 1)), min_size=n, max_size=n).map(tuple)


def dropout_schedules(rounds: Sequence[str], clients: Sequence[int], params: Params | None = None,
                      *, outcome: Literal["completes", "aborts", "any"] = "any"
                      ) -> st.SearchStrategy[DropoutSchedule]:
    """Which clients vanish at each round.

    Each client draws a fate (stays, or vanishes at some round); the schedule
    follows the fates as far as ``outcome`` allows. ``"completes"``: every
    round keeps at least ``params.need(round)`` clients (and no more than
    ``params.tolerated`` vanish in all); ``"aborts"``: a drawn round falls
    below its need (the highest ids are made to vanish if the fates do not
    suffice); ``"any"``: the fates as drawn. Shrinks towards no dropouts.
    """
    names, ids = tuple(rounds), tuple(clients)
    p = params or Params(needs=0)
    return _fates(len(ids), len(names)).flatmap(
        lambda f: _fated_schedule(names, ids, f, p, outcome))


# -- whole scenarios ----------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def _spans(dimension: int, rounds: int, count: int) -> st.SearchStrategy[list[tuple[_Raw, int]]]:
    """``count`` clients as (raw input, fate) pairs."""
    span = st.tuples(_raw_vector(dimension, FLOAT_DTYPES), st.sampled_from(range(rounds + 1)))
    return st.lists(span, min_size=count, max_size=count)


@st.composite
def _scenario(draw: st.DrawFn, spec: ProtocolSpec, outcome: str, sparse_ids: bool,
              dropouts: bool) -> Scenario:
    n = draw(st.integers(spec.min_clients, spec.max_clients))
    d = draw(st.integers(1, spec.max_dimension))
    # Every case draws max_clients clients of max_dimension values and keeps
    # the last n clients and the last d values of each: shrinking n or d then
    # leaves every other draw where it was (hypothesis sorts simple clients
    # and values first, so what matters sits at the end).
    spans = draw(_spans(spec.max_dimension, len(spec.rounds) if dropouts else 0,
                        spec.max_clients))[spec.max_clients - n:]
    ids = draw(client_ids(n, sparse=sparse_ids))
    params = draw(spec.parameters(n)) if spec.parameters else spec.default_params(n)
    scale = getattr(params.quantizer, "scale", None)
    inputs = {u: raw.resolve(params.clip, scale, dimension=d)
              for u, (raw, _) in zip(ids, spans, strict=True)}
    want = "any" if outcome == "either" else outcome
    sched = draw(_fated_schedule(spec.rounds, ids, tuple(f for _, f in spans), params, want))
    seed = draw(st.integers(0, 2**32 - 1))
    sc = Scenario(inputs, params, sched, seed)
    if outcome != "any":
        assume(spec.outcome(sc) == outcome)
    return sc


def scenarios(spec: ProtocolSpec, *, outcome: Outcome | Literal["any"] = "completes",
              sparse_ids: bool = False, dropouts: bool = True
              ) -> st.SearchStrategy[Scenario]:
    """Whole cases for ``spec``: ``n`` in ``[spec.min_clients,
    spec.max_clients]`` clients, each an input and a fate, parameters, a
    dimension up to ``spec.max_dimension``, a dropout schedule with the
    requested ``outcome`` under the spec's threshold rule (``"either"``: only
    schedules the rule cannot decide), and a seed. ``dropouts=False`` draws
    no dropouts. Inputs are drawn relative to the clip (and resolved once
    the parameters are known) and clients as a list, so counterexamples
    shrink to few clients whatever the parameters."""
    return _scenario(spec, outcome, sparse_ids, dropouts)


# -- the wire --------------------------------------------------------------------------
def _spread(i: int) -> int:
    """A bijection of ``[0, 2^20)`` that sends small draws all over a message."""
    return (i * 0x9E3B5) % (1 << 20)


def faults(kinds: Sequence[str] = FAULT_KINDS) -> st.SearchStrategy[Fault]:
    """One network fault of the named kinds (see :data:`FAULT_KINDS`)."""
    unknown = set(kinds) - set(FAULT_KINDS)
    if unknown or not kinds:
        raise ParameterError(f"fault kinds must be among {FAULT_KINDS}, got {sorted(kinds)}")
    table: dict[str, st.SearchStrategy[Fault]] = {
        "bitflip": st.builds(BitFlip, bit=st.one_of(
            st.integers(0, 2**20 - 1).map(_spread), st.integers(0, 8 * 64)),
            from_start=st.booleans()),
        "duplicate": st.just(Duplicate()),
        "replay": st.builds(Replay, back=st.integers(0, 6)),
        "delay": st.just(Delay()),
        "drop": st.just(Drop()),
        "reorder": st.builds(Reorder, skip=st.integers(1, 6)),
    }
    return st.one_of(*(table[k] for k in FAULT_KINDS if k in kinds))


def fault_scripts(kinds: Sequence[str] = FAULT_KINDS, *,
                  per_round: int | Mapping[str, int] = 8, rounds: Sequence[str] = SECAGG_ROUNDS,
                  max_faults: int = 3, min_faults: int = 0) -> st.SearchStrategy[FaultScript]:
    """Between ``min_faults`` and ``max_faults`` faults, each on one message
    slot ``(round, k)``: one of the first ``per_round`` messages of each of
    ``rounds``, or, with a mapping ``{round: count}`` (for instance counted
    on a fault-free run), of exactly those. The round and ``k`` are drawn
    separately, so a slot keeps its meaning when the number of clients
    shrinks. Shrinks towards fewer faults on earlier messages."""
    counts = (tuple(per_round.items()) if isinstance(per_round, Mapping)
              else tuple((r, per_round) for r in rounds))
    return _fault_scripts(tuple(kinds), tuple((r, c) for r, c in counts if c > 0),
                          max_faults, min_faults)


@st.composite
def _slot(draw: st.DrawFn, counts: tuple[tuple[str, int], ...]) -> Slot:
    r, count = draw(st.sampled_from(counts))
    return r, draw(st.integers(0, count - 1))


@functools.lru_cache(maxsize=256)
def _fault_scripts(kinds: tuple[str, ...], counts: tuple[tuple[str, int], ...],
                   max_faults: int, min_faults: int) -> st.SearchStrategy[FaultScript]:
    if not counts:
        return st.just(FaultScript())
    return st.dictionaries(_slot(counts), faults(kinds), min_size=min_faults,
                           max_size=max_faults).map(FaultScript)


# -- adversaries ---------------------------------------------------------------------
def server_adversaries(scenario: Scenario, *,
                       kinds: Sequence[str] = ("split_view", "both_shares")
                       ) -> st.SearchStrategy[Any]:
    """A malicious server for the pairwise-mask protocol: ``"both_shares"``
    asks honest clients for both shares of one client (in one request, or in
    a second request); ``"split_view"`` shows a group of clients a survivor
    set without ``victim``."""
    return _server_adversaries(scenario.clients, tuple(kinds))


@functools.lru_cache(maxsize=256)
def _server_adversaries(clients: tuple[int, ...], kinds: tuple[str, ...]
                        ) -> st.SearchStrategy[Any]:
    unknown = set(kinds) - {"both_shares", "split_view"}
    if unknown or not kinds:
        raise ParameterError(f"unknown server adversaries {sorted(unknown)}")
    victims = st.sampled_from(list(clients))
    options: list[st.SearchStrategy[Any]] = []
    for kind in kinds:  # in the order given: the first kind is the one shrinking prefers
        if kind == "both_shares":
            options.append(st.builds(
                BothSharesServer, victim=st.one_of(st.none(), victims),
                targets=st.one_of(st.none(), st.frozensets(victims, min_size=1)),
                how=st.sampled_from(["same_request", "second_request"])))
        else:
            options.append(_split_view(clients))
    return st.one_of(*options)


@functools.lru_cache(maxsize=1024)
def _others(clients: tuple[int, ...], victim: int) -> st.SearchStrategy[frozenset[int]]:
    return st.frozensets(st.sampled_from([u for u in clients if u != victim]), min_size=1)


@st.composite
def _split_view(draw: st.DrawFn, clients: tuple[int, ...]) -> SplitViewServer:
    victim = draw(st.sampled_from(clients))
    group = draw(_others(clients, victim))
    return SplitViewServer(victim, group, draw(st.sampled_from(["all", "view"])))


def misbehaving_clients(scenario: Scenario, *, out_of_range: bool = False
                        ) -> st.SearchStrategy[Any]:
    """A client that sends a vector of the wrong length or a message for the
    wrong round (and, with ``out_of_range``, one whose input is past the
    clipping range: protocols without range proofs cannot refuse it)."""
    return _misbehaving(scenario.clients, scenario.dimension, out_of_range)


@functools.lru_cache(maxsize=256)
def _misbehaving(clients: tuple[int, ...], dimension: int, out_of_range: bool
                 ) -> st.SearchStrategy[Any]:
    ids = st.sampled_from(list(clients))
    options: list[st.SearchStrategy[Any]] = [
        st.builds(WrongLengthClient, client=ids,
                  delta=st.sampled_from([-1, 1, -dimension])),
        st.builds(WrongRoundClient, client=ids, when=st.sampled_from(["stale", "early"])),
    ]
    if out_of_range:
        options.append(st.builds(OutOfRangeClient, client=ids,
                                 factor=st.sampled_from([2.0, 1e6])))
    return st.one_of(*options)
