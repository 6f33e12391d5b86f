"""A property-based testing kit for aggregation protocols: ours and yours.

Describe a sum protocol by its simulator, round names and threshold rule
(:class:`ProtocolSpec`), then check it against ready-made properties::

    from protocols.testing import ProtocolSpec, check_sum_property, profiles
    spec = ProtocolSpec("mine", simulate, rounds=("submit", "reveal"), threshold=2)
    check_sum_property(spec, settings=profiles.quick)

What is here:

* specs and cases (no hypothesis needed): :class:`ProtocolSpec`,
  :class:`Params`, :class:`Scenario`, :class:`DropoutSchedule`; ready-made
  specs :func:`secagg_spec` and :func:`paillier_spec`, and hand-picked
  parameters :func:`secagg_params` and :func:`paillier_params`;
* an in-process network for sans-I/O parties with injectable faults
  (:class:`Network`, :class:`FaultScript`, :class:`Drop`, :class:`Delay`,
  :class:`Duplicate`, :class:`Reorder`, :class:`Replay`, :class:`BitFlip`)
  and wirings of our protocols (:class:`SecAggWiring`, :class:`PaillierWiring`);
* adversaries as party wrappers (:class:`BothSharesServer`,
  :class:`SplitViewServer`, :class:`WrongLengthClient`,
  :class:`WrongRoundClient`, :class:`OutOfRangeClient`);
* one-run verdicts (``assert_*``, raising :class:`PropertyFailure`);
* hypothesis strategies (``protocols.testing.strategies``), properties
  (``check_*``) and settings (``protocols.testing.profiles``).

The strategies, properties and profiles need hypothesis: install the
``dev`` extra (``pip install 'secagg[testing]'``) or ``pip install hypothesis``.
They are imported on first use, so the rest works without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .adversaries import (
    BothSharesServer,
    OutOfRangeClient,
    SplitViewServer,
    WrongLengthClient,
    WrongRoundClient,
)
from .checks import (
    PropertyFailure,
    assert_aborts,
    assert_no_double_reveal,
    assert_outcome,
    assert_rejects_input,
    assert_run_outcome,
    assert_sum_matches,
    assert_tampering_contained,
    expected_sum,
    network_simulator,
    run_scenario,
)
from .network import (
    Adversary,
    BitFlip,
    Delay,
    Delivery,
    Drop,
    Duplicate,
    Envelope,
    Fault,
    FaultScript,
    Network,
    NetworkRun,
    Packet,
    PartyWrapper,
    Reorder,
    Replay,
    Slot,
    Wiring,
    observable_state,
)
from .spec import DropoutSchedule, Outcome, Params, ProtocolSpec, Quantizer, Scenario, Simulator
from .specs import paillier_params, paillier_spec, secagg_params, secagg_spec
from .wirings import PackedQuantizer, PaillierWiring, SecAggWiring

if TYPE_CHECKING:
    from . import profiles, strategies
    from .properties import (
        check_abort_property,
        check_all,
        check_dropout_property,
        check_input_validation,
        check_no_double_reveal,
        check_sum_property,
        check_tamper_property,
    )

_LAZY = {
    "check_abort_property": "properties",
    "check_all": "properties",
    "check_dropout_property": "properties",
    "check_input_validation": "properties",
    "check_no_double_reveal": "properties",
    "check_sum_property": "properties",
    "check_tamper_property": "properties",
    "profiles": None,
    "strategies": None,
}


def __getattr__(name: str) -> Any:
    """Import the hypothesis-based names on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = _LAZY[name] or name
    try:
        mod = importlib.import_module(f"{__name__}.{module}")
    except ModuleNotFoundError as exc:
        if exc.name != "hypothesis":
            raise
        raise ImportError(
            f"protocols.testing.{name} needs hypothesis: pip install 'secagg[testing]' "
            f"(or pip install hypothesis)") from exc
    return mod if _LAZY[name] is None else getattr(mod, name)


__all__ = [
    "Adversary",
    "BitFlip",
    "BothSharesServer",
    "Delay",
    "Delivery",
    "Drop",
    "DropoutSchedule",
    "Duplicate",
    "Envelope",
    "Fault",
    "FaultScript",
    "Network",
    "NetworkRun",
    "OutOfRangeClient",
    "Outcome",
    "PackedQuantizer",
    "Packet",
    "PaillierWiring",
    "Params",
    "PartyWrapper",
    "PropertyFailure",
    "ProtocolSpec",
    "Quantizer",
    "Reorder",
    "Replay",
    "Scenario",
    "SecAggWiring",
    "Simulator",
    "Slot",
    "SplitViewServer",
    "Wiring",
    "WrongLengthClient",
    "WrongRoundClient",
    "assert_aborts",
    "assert_no_double_reveal",
    "assert_outcome",
    "assert_rejects_input",
    "assert_run_outcome",
    "assert_sum_matches",
    "assert_tampering_contained",
    "check_abort_property",
    "check_all",
    "check_dropout_property",
    "check_input_validation",
    "check_no_double_reveal",
    "check_sum_property",
    "check_tamper_property",
    "expected_sum",
    "network_simulator",
    "observable_state",
    "paillier_params",
    "paillier_spec",
    "profiles",
    "run_scenario",
    "secagg_params",
    "secagg_spec",
    "strategies",
]
