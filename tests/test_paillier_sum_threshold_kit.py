"""Paillier summation's ``"threshold"`` layout against every property of the
testing kit (``protocols.testing``), as the other two layouts are in
``tests/test_testing_kit.py``: the sum, abort and dropout rules, input
validation, and tampering (bit flips, duplicates, replays, late and forged
messages, misbehaving clients) on the kit's byte-level network.

The committee is every client (so the kit's count rule is exact: the
``"decrypt"`` round needs ``decrypt_threshold`` clients present); a fresh
t-of-n key is dealt for every scenario from one 256-bit safe-prime key pair
(test-only flag).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st

from protocols import paillier_sum as ps
from protocols.testing import (
    Params,
    ProtocolSpec,
    check_abort_property,
    check_dropout_property,
    check_input_validation,
    check_sum_property,
    check_tamper_property,
    profiles,
    strategies,
)
from protocols.testing.network import Adversary
from protocols.testing.spec import Scenario
from protocols.testing.wirings import DescriptorWiring, WiringProfile, _fields
from secagg import paillier
from secagg.paillier import threshold as tp

INSECURE = {"insecure_allow_small_key_for_tests": True}
PAILLIER = profiles.capped(settings.default, max(10, settings.default.max_examples // 3))

#: By design an attacker may change these unnoticed: the transport
#: authenticates senders, and Paillier ciphertexts are malleable (SECURITY.md).
_UNPROTECTED = {
    "EncryptedInput": frozenset({"sender", "payload.ciphertexts"}),
    "EncryptedSum": frozenset({"payload.ciphertexts"}),
}


class ThresholdWiring(DescriptorWiring):
    """The threshold layout on the kit's network (addresses: client ids,
    ``"server"`` and ``"dealer"``)."""

    def __init__(self, scenario: Scenario, adversary: Adversary | None = None) -> None:
        opts = dict(scenario.params.options)
        self.public_key = opts["keypair"][0]

        def fields(msg: Any, wiring: DescriptorWiring) -> dict[str, Any]:
            out = _fields(msg, wiring)
            payload = out.pop("payload", None)
            if payload is not None and isinstance(msg, (ps.EncryptedInput, ps.EncryptedSum)):
                vec = paillier.EncryptedVector.from_bytes(payload, self.public_key, **INSECURE)
                out["payload.layout"] = vec.layout
                out["payload.summands"] = vec.summands
                out["payload.ciphertexts"] = vec.ciphertexts
            elif payload is not None:
                out["payload"] = payload
            return out

        super().__init__(ps.PAILLIER_SUM, scenario, adversary,
                         profile=WiringProfile(unprotected=_UNPROTECTED, fields=fields))


def threshold_spec(tkp: tuple[Any, Any], *, max_clients: int = 5) -> ProtocolSpec:
    """The threshold layout with every client in the committee; draws the
    decryption threshold t and ``min_clients``."""

    def parameters(n: int) -> st.SearchStrategy[Params]:
        def make(t: int, m: int, value_bits: int) -> Params:
            return Params(
                options={"trust": "threshold", "keypair": tkp, "decrypt_threshold": t,
                         "min_clients": m, "value_bits": value_bits, **INSECURE},
                needs={"encrypt": m, "decrypt": t}, clip=1.0,
                quantizer=ps.PaillierQuantizer(1.0, value_bits),
                label=f"{t}-of-{n} committee, min_clients={m}, value_bits={value_bits}")
        return st.builds(make, st.integers(1, n), st.integers(1, n), st.sampled_from([16, 8]))

    return ProtocolSpec(
        name="Paillier summation (threshold)", simulate=ps.simulate, rounds=ps.ROUNDS,
        input_round="encrypt", parameters=parameters, min_clients=1,
        max_clients=max_clients, max_dimension=4, wiring=ThresholdWiring)


@pytest.fixture(scope="module")
def spec() -> ProtocolSpec:
    return threshold_spec(tp.generate_keypair(256, **INSECURE))


def test_threshold_simulator_properties(spec: ProtocolSpec) -> None:
    check_sum_property(spec, settings=PAILLIER)
    check_abort_property(spec, settings=PAILLIER)
    check_dropout_property(spec, settings=PAILLIER)
    check_input_validation(spec, settings=PAILLIER)


def test_threshold_tampering_and_misbehaving_clients(spec: ProtocolSpec) -> None:
    check_tamper_property(spec, settings=PAILLIER)
    check_tamper_property(spec, adversaries=strategies.misbehaving_clients, max_faults=1,
                          settings=PAILLIER)
