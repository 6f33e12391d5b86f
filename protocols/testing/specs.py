"""Ready-made :class:`~protocols.testing.spec.ProtocolSpec` objects for the
library's own protocols: the pairwise-mask protocol (Bonawitz et al.'s
complete graph, SecAgg+'s Harary graphs, both security modes) and Paillier
summation (both trust layouts).

Each spec draws valid parameters (threshold, graph degree, modulus bits,
encoder; key sizes, value bits, minimum clients) and carries a wiring, so
every property applies. Passing party classes (for example subclasses with a
planted bug) swaps the simulator for one that runs those classes on the test
network.

:func:`descriptor_spec` does the same for any protocol built on the party
contract (:mod:`protocols.core`): the generic simulator
(:func:`protocols.simulator.run`) and the generic wiring
(:class:`~protocols.testing.wirings.DescriptorWiring`) come with the
descriptor, so every property and adversary of the kit applies.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from protocols import paillier_sum as ps
from protocols import secagg as sa
from protocols.core import ProtocolDescriptor
from protocols.simulator import run as simulator_run
from secagg.errors import ParameterError

from .checks import network_simulator
from .network import Adversary, Wiring
from .params import _trust, paillier_params, secagg_params
from .spec import Params, ProtocolSpec, Quantizer, Scenario
from .wirings import (
    DescriptorWiring,
    PaillierWiring,
    SecAggWiring,
    WiringProfile,
)

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = ["descriptor_spec", "paillier_params", "paillier_spec", "secagg_params",
           "secagg_spec"]


def secagg_spec(
    *, mode: Literal["semi-honest", "malicious"] = "semi-honest",
    graph: Literal["complete", "harary", "any"] = "complete",
    min_clients: int | None = None, max_clients: int = 6, max_dimension: int = 4,
    modulus_bits: Sequence[int] = (32, 64),
    client_class: type[sa.SecAggClient] | None = None,
    server_class: type[sa.SecAggServer] | None = None,
) -> ProtocolSpec:
    """The pairwise-mask protocol. ``graph="complete"`` is Bonawitz et al.'s
    SecAgg; ``"harary"`` is SecAgg+ (``n >= 4``); ``"any"`` draws both.
    With ``client_class`` or ``server_class`` the spec runs those classes
    on the test network instead of :func:`protocols.secagg.simulate`."""
    lo = min_clients if min_clients is not None else (4 if graph == "harary" else 2)
    if graph == "harary" and lo < 4:
        raise ParameterError("SecAgg+ on a Harary graph needs at least 4 clients")
    rounds = sa.rounds_for(mode)
    name = {"complete": "SecAgg", "harary": "SecAgg+", "any": "SecAgg/SecAgg+"}[graph]
    name = f"{name} ({mode})"

    def parameters(n: int) -> SearchStrategy[Params]:
        from .strategies import secagg_parameters

        return secagg_parameters(n, mode=mode, graph=graph, modulus_bits=modulus_bits)

    classes: dict[str, Any] = {}
    if client_class is not None:
        classes["client_class"] = client_class
    if server_class is not None:
        classes["server_class"] = server_class

    def wiring(scenario: Scenario, adversary: Adversary | None) -> Wiring:
        return SecAggWiring(scenario, adversary, **classes)

    simulate: Any = sa.simulate
    if classes:
        simulate = network_simulator(wiring, rounds)
        name += f" with {', '.join(c.__name__ for c in classes.values())}"
    return ProtocolSpec(
        name=name, simulate=simulate, rounds=rounds, input_round="masked_input",
        parameters=parameters, min_clients=lo, max_clients=max_clients,
        max_dimension=max_dimension, wiring=wiring,
    )


def paillier_spec(
    keypairs: Sequence[tuple[Any, Any]], *,
    trust: Literal["key-holder", "cross-silo"] | None = None,
    insecure_allow_small_key_for_tests: bool = False,
    min_clients: int = 1, max_clients: int = 5, max_dimension: int = 4,
    aggregator_class: type[ps.PaillierSumAggregator] | None = None,
    layout: Literal["key-holder", "cross-silo"] | None = None,
) -> ProtocolSpec:
    """Paillier summation over the given ``phe`` key pairs (generate them once:
    key generation is slow). Keys below 2048 bits need
    ``insecure_allow_small_key_for_tests=True`` and are for tests only.
    ``trust`` is the trust layout (``layout=`` its deprecated name). With
    ``aggregator_class`` the spec runs it on the test network."""
    layout = _trust(trust, layout, "paillier_spec")  # type: ignore[assignment]

    def parameters(n: int) -> SearchStrategy[Params]:
        from .strategies import paillier_parameters

        return paillier_parameters(
            n, keypairs, trust=layout,
            insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests)

    def wiring(scenario: Scenario, adversary: Adversary | None) -> Wiring:
        if aggregator_class is None:
            return PaillierWiring(scenario, adversary)
        return PaillierWiring(scenario, adversary, aggregator_class=aggregator_class)

    simulate: Any = ps.simulate
    name = f"Paillier summation ({layout})"
    if aggregator_class is not None:
        simulate = network_simulator(wiring, ps.ROUNDS)
        name += f" with {aggregator_class.__name__}"
    return ProtocolSpec(
        name=name, simulate=simulate, rounds=ps.ROUNDS, input_round="encrypt",
        parameters=parameters, min_clients=min_clients, max_clients=max_clients,
        max_dimension=max_dimension, wiring=wiring,
    )


def descriptor_spec(
    descriptor: ProtocolDescriptor, *,
    quantizer: Callable[[int], Quantizer] | Literal["session"] | None = "session",
    parameters: Callable[[int], SearchStrategy[Params]] | None = None,
    threshold: int = 2, profile: WiringProfile | None = None,
    options: dict[str, Any] | None = None, name: str | None = None,
    min_clients: int = 2, max_clients: int = 6, max_dimension: int = 4,
    clip: float | None = None, float_tolerance: float = 1e-9,
) -> ProtocolSpec:
    """A spec for any protocol built on the party contract.

    ``quantizer`` (``n -> Quantizer``) makes the sum properties exact; the
    default ``"session"`` uses the encoder of a session the descriptor builds
    for ``n`` clients (with ``options``); None compares floats within
    ``float_tolerance``. ``clip`` (the input range drawn and clipped to)
    defaults to the quantizer's ``clip``. ``parameters`` draws
    :class:`Params` (default: the fixed ``threshold`` count rule with
    ``options`` for ``make_session``); ``profile`` tells the wiring what the
    contract does not say (unprotected fields, revealed shares).
    """
    fixed = dict(options or {})
    if quantizer == "session":
        def quantizer(n: int) -> Quantizer:
            return descriptor.make_session(range(n), 1, **fixed).encoder
    if clip is None:
        clip = float(getattr(quantizer(min_clients), "clip", 1.0)) if callable(quantizer) else 1.0

    def wiring(scenario: Scenario, adversary: Adversary | None) -> Wiring:
        return DescriptorWiring(descriptor, scenario, adversary, profile=profile,
                                options=fixed)

    simulate: Any = functools.partial(simulator_run, descriptor, **fixed)
    return ProtocolSpec(
        name=name or descriptor.name, simulate=simulate, rounds=descriptor.rounds,
        threshold=threshold, input_round=descriptor.input_round, parameters=parameters,
        min_clients=min_clients, max_clients=max_clients, max_dimension=max_dimension,
        clip=clip, quantizer=quantizer if callable(quantizer) else None,
        float_tolerance=float_tolerance, wiring=wiring,
    )
