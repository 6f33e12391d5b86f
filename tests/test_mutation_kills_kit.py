"""The testing kit's checks compare every part of a result (the included set
and the exact integer sum, not only the float sum) and accept only the
library's refusals of a tampered message (each test fails with that part of
the check dropped). Settings are fixed, derandomized and without an
example database, so the outcome does not depend on other tests."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from hypothesis import settings

from protocols.results import AggregationResult
from protocols.secagg import Message, SecAggClient, ShareForward, simulate
from protocols.testing import (
    PropertyFailure,
    check_sum_property,
    check_tamper_property,
    profiles,
    secagg_spec,
)
from secagg.errors import IntegrityError, ParameterError

HUNT = settings(profiles.quick, max_examples=60, derandomize=True, database=None)


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


class MisfilingClient(SecAggClient):
    """Planted bug: refuses a tampered share forward, state unchanged, but
    files it as a parameter error instead of an integrity failure."""

    def _on_forward(self, msg: ShareForward) -> list[Message]:
        try:
            return super()._on_forward(msg)
        except IntegrityError as exc:
            raise ParameterError(f"bad share forward: {exc}") from None


def test_a_tampered_message_refused_with_the_wrong_error_is_caught() -> None:
    spec = secagg_spec(client_class=MisfilingClient)
    with pytest.raises(PropertyFailure) as info:
        check_tamper_property(spec, kinds=("bitflip",), settings=HUNT)
    verdict = _verdict(info.value)
    assert "bitflip" in verdict and "refused with ParameterError" in verdict
