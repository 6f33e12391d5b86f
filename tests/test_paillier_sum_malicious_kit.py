"""Paillier summation's ``"threshold"`` layout in ``mode="malicious"``
against the testing kit's properties (sum, abort, dropout, input validation,
tampering on the byte-level network), as the semi-honest mode is in
``tests/test_paillier_sum_threshold_kit.py``.

Every client is on the committee; t is drawn with ``2t > n`` and
``min_clients >= 2`` (what the mode requires). In this mode a client's
signature covers its ciphertext bytes and its id, so a flipped ciphertext or
sender is refused (the client counts as dropped) rather than tolerated.
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
)
from protocols.testing.network import Adversary
from protocols.testing.spec import Scenario
from protocols.testing.wirings import DescriptorWiring, WiringProfile, _fields
from secagg import paillier
from secagg.paillier import threshold as tp

INSECURE = {"insecure_allow_small_key_for_tests": True}
PAILLIER = profiles.capped(settings.default, max(10, settings.default.max_examples // 3))


class MaliciousWiring(DescriptorWiring):
    """The malicious mode on the kit's network; nothing is left unprotected."""

    def __init__(self, scenario: Scenario, adversary: Adversary | None = None) -> None:
        opts = dict(scenario.params.options)
        self.public_key = opts["keypair"][0]

        def fields(msg: Any, wiring: DescriptorWiring) -> dict[str, Any]:
            out = _fields(msg, wiring)
            payload = out.pop("payload", None)
            if payload is not None and isinstance(msg, ps.EncryptedInput):
                vec = paillier.EncryptedVector.from_bytes(payload, self.public_key, **INSECURE)
                out["payload.layout"] = vec.layout
                out["payload.summands"] = vec.summands
                out["payload.ciphertexts"] = vec.ciphertexts
            elif payload is not None:
                out["payload"] = payload
            return out

        super().__init__(ps.PAILLIER_SUM, scenario, adversary,
                         profile=WiringProfile(unprotected={}, fields=fields))


def _simulate(inputs: Any, *, mode: str = "semi-honest", **kw: Any) -> Any:
    return ps.simulate(inputs, security=mode, **kw)  # type: ignore[arg-type]


def malicious_spec(tkp: tuple[Any, Any], *, max_clients: int = 5) -> ProtocolSpec:
    def parameters(n: int) -> st.SearchStrategy[Params]:
        def make(t: int, m: int, value_bits: int) -> Params:
            return Params(
                options={"trust": "threshold", "mode": "malicious", "keypair": tkp,
                         "decrypt_threshold": t, "min_clients": m, "value_bits": value_bits,
                         **INSECURE},
                needs={"encrypt": m, "decrypt": t}, clip=1.0,
                quantizer=ps.PaillierQuantizer(1.0, value_bits),
                label=f"malicious, {t}-of-{n} committee, min_clients={m}")
        return st.builds(make, st.integers(n // 2 + 1, n), st.integers(2, n),
                         st.sampled_from([16, 8]))

    return ProtocolSpec(
        name="Paillier summation (threshold, malicious)", simulate=_simulate,
        rounds=ps.ROUNDS, input_round="encrypt", parameters=parameters, min_clients=2,
        max_clients=max_clients, max_dimension=4, wiring=MaliciousWiring)


@pytest.fixture(scope="module")
def spec() -> ProtocolSpec:
    return malicious_spec(tp.generate_keypair(256, **INSECURE))


def test_malicious_simulator_properties(spec: ProtocolSpec) -> None:
    check_sum_property(spec, settings=PAILLIER)
    check_abort_property(spec, settings=PAILLIER)
    check_dropout_property(spec, settings=PAILLIER)
    check_input_validation(spec, settings=PAILLIER)


def test_malicious_tampering(spec: ProtocolSpec) -> None:
    check_tamper_property(spec, settings=PAILLIER)
