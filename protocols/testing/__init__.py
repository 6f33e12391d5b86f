"""A property-based testing kit for aggregation protocols: ours and yours.

A protocol built on the party contract (:mod:`protocols.core`) gets a spec
from its descriptor alone, with the generic simulator and wiring, so every
property and adversary applies::

    from protocols.testing import check_all, descriptor_spec, profiles
    report = check_all(descriptor_spec(MY_PROTOCOL), settings=profiles.quick)

Any other sum protocol is described by its simulator, round names and
threshold rule (:class:`ProtocolSpec`); give it the protocol's integer
encoding as ``quantizer=`` so sums compare exactly::

    spec = ProtocolSpec("mine", simulate, rounds=("submit", "reveal"), threshold=2,
                        quantizer=lambda n: my_encoder(n))

What is here:

* specs and cases (no hypothesis needed): :class:`ProtocolSpec`,
  :class:`Params`, :class:`Scenario`, :class:`DropoutSchedule`; ready-made
  specs :func:`descriptor_spec` (any contract protocol), :func:`secagg_spec`
  and :func:`paillier_spec`, and hand-picked parameters
  :func:`secagg_params` and :func:`paillier_params`;
* an in-process network for sans-I/O parties with injectable faults
  (:class:`Network`, :class:`FaultScript`, :class:`Drop`, :class:`Delay`,
  :class:`Duplicate`, :class:`Reorder`, :class:`Replay`, :class:`BitFlip`)
  and wirings (:class:`DescriptorWiring` for any descriptor, with a
  :class:`WiringProfile`; :class:`SecAggWiring`, :class:`PaillierWiring`);
* adversaries as party wrappers (:class:`BothSharesServer`,
  :class:`SplitViewServer`, :class:`WrongLengthClient`,
  :class:`WrongRoundClient`, :class:`OutOfRangeClient`);
* one-run verdicts (``assert_*``, raising :class:`PropertyFailure`);
* hypothesis strategies (``protocols.testing.strategies``), properties
  (``check_*``) and settings (``protocols.testing.profiles``);
* a fuzzer for every decoder and party of any protocol
  (``protocols.testing.fuzz``).

The strategies, properties and profiles need hypothesis
(``pip install hypothesis``, or the checkout's ``dev`` extra:
``pip install -e '.[dev]'``).
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
from .specs import descriptor_spec, paillier_params, paillier_spec, secagg_params, secagg_spec
from .wirings import (
    DescriptorWiring,
    PackedQuantizer,
    PaillierWiring,
    SecAggWiring,
    WiringProfile,
)

if TYPE_CHECKING:
    from . import fuzz, profiles, strategies
    from .properties import (
        CheckReport,
        check_abort_property,
        check_all,
        check_dropout_property,
        check_input_validation,
        check_no_double_reveal,
        check_sum_property,
        check_tamper_property,
    )

_LAZY = {
    "CheckReport": "properties",
    "check_abort_property": "properties",
    "check_all": "properties",
    "check_dropout_property": "properties",
    "check_input_validation": "properties",
    "check_no_double_reveal": "properties",
    "check_sum_property": "properties",
    "check_tamper_property": "properties",
    "fuzz": None,
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
            f"protocols.testing.{name} needs hypothesis: pip install hypothesis "
            f"(or, from the checkout, pip install -e '.[dev]')") from exc
    return mod if _LAZY[name] is None else getattr(mod, name)


__all__ = [
    "Adversary",
    "BitFlip",
    "BothSharesServer",
    "CheckReport",
    "Delay",
    "Delivery",
    "DescriptorWiring",
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
    "WiringProfile",
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
    "descriptor_spec",
    "expected_sum",
    "fuzz",
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
