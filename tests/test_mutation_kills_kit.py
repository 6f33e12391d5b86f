"""The testing kit's sum check compares every part of a result: the included
set and the exact integer sum, not only the float sum (each test fails with
that comparison dropped). Settings are fixed, derandomized and without an
example database, so the outcome does not depend on other tests."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from hypothesis import settings

from protocols.results import AggregationResult
from protocols.secagg import simulate
from protocols.testing import PropertyFailure, check_sum_property, profiles, secagg_spec

HUNT = settings(profiles.quick, max_examples=40, derandomize=True, database=None)


def _verdict(fail: PropertyFailure) -> str:
    return fail.detail.split("\n  deliveries:")[0]


def _one_included_forgotten(inputs: Any, **kw: Any) -> AggregationResult:
    res = simulate(inputs, **kw)
    included = frozenset(sorted(res.included)[1:])  # sum and dropped set stay right
    return dataclasses.replace(res, included=included)


def test_a_result_naming_the_wrong_included_set_is_caught() -> None:
    spec = dataclasses.replace(secagg_spec(), simulate=_one_included_forgotten)
    with pytest.raises(PropertyFailure) as info:
        check_sum_property(spec, settings=HUNT)
    assert _verdict(info.value).startswith("included ")


def _raw_sum_off_by_one(inputs: Any, **kw: Any) -> AggregationResult:
    res = simulate(inputs, **kw)
    assert res.raw_sum is not None
    raw = np.array(res.raw_sum, copy=True)
    raw[0] += 1  # one unit of the encoding: the float sum stays within its bound
    return dataclasses.replace(res, raw_sum=raw)


def test_a_raw_sum_off_by_one_unit_is_caught() -> None:
    spec = dataclasses.replace(secagg_spec(), simulate=_raw_sum_off_by_one)
    with pytest.raises(PropertyFailure) as info:
        check_sum_property(spec, settings=HUNT)
    assert _verdict(info.value).startswith("raw sum ")
