"""The fuzzing harness (protocols.testing.fuzz) on threshold Paillier in
malicious mode: mutated bytes, fields and message objects at every point of
a real session (signed inputs, the SignedInputs request, partial
decryptions) raise only library errors, and every refusal leaves the party
unchanged; as the built-in targets are in tests/test_fuzz.py."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from protocols.core import Session
from protocols.paillier_sum import PAILLIER_SUM
from protocols.testing import fuzz
from protocols.testing.fuzz import FuzzTarget, capture, fuzz_target
from secagg.paillier import threshold
from secagg.sign import SigningKey

IDS = (3, 10, 17, 42)


def _secrets(keys: dict[int, SigningKey], session: Session, u: int) -> dict[str, Any]:
    return {"insecure_allow_small_key_for_tests": True, "signing_key": keys[u],
            **fuzz._decryptor_secret(session, u)}


@pytest.fixture(scope="module")
def cap() -> fuzz.Capture:
    keys = {u: SigningKey.generate() for u in IDS}
    pair = threshold.generate_keypair(256, insecure_allow_small_key_for_tests=True)
    target = FuzzTarget(
        "paillier/threshold/malicious", PAILLIER_SUM,
        {"trust": "threshold", "keypair": pair, "mode": "malicious", "signing_keys": keys,
         "decrypt_threshold": 2, "committee": [3, 17, 42],
         "insecure_allow_small_key_for_tests": True},
        client_ids=IDS, dropouts={"decrypt": frozenset({42})},
        session_secrets=functools.partial(_secrets, keys))
    return capture(target)


def test_the_capture_holds_signed_inputs(cap: fuzz.Capture) -> None:
    kinds = {type(m).__name__ for m in cap.messages}
    assert {"EncryptedInput", "SignedInputs", "DecryptionShare"} <= kinds
    assert "EncryptedSum" not in kinds


def test_fuzz_malicious_paillier_on_the_wire(cap: fuzz.Capture) -> None:
    report = fuzz_target(cap, max_examples=100, paths=("bytes", "bytes", "field", "valid"))
    assert report.outcomes.get("refused by party", 0) > 0
    assert report.outcomes.get("accepted", 0) > 0


@pytest.mark.filterwarnings("ignore:Generating overly large repr")
def test_fuzz_malicious_paillier_object_path(cap: fuzz.Capture) -> None:
    report = fuzz_target(cap, max_examples=150, paths=("object",), decoders=False)
    assert report.outcomes.get("refused by party", 0) > 0
