"""Proofs of plaintext knowledge (``secagg.paillier.popk``): known answers
under fixed randomness, algebraic properties, and the strict codec.

The fixed key is built from two fixed primes (test only). Known answers are
checked two ways: against a pinned digest, and against a second, pure-int
implementation of the protocol written from its specification here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import gmpy2
import numpy as np
import phe
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secagg import paillier
from secagg.errors import IntegrityError, ParameterError, ProtocolError, SecAggError
from secagg.paillier import _obfuscators, popk

INSECURE = {"insecure_allow_small_key_for_tests": True}
P = int(gmpy2.next_prime(2**160 + 7))
Q = int(gmpy2.next_prime(2**160 + 2**80 + 3))
N = P * Q
PK = phe.PaillierPublicKey(N)
SK = phe.PaillierPrivateKey(PK, P, Q)
W2 = ((N * N).bit_length() + 7) // 8
HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


def det_stream(label: bytes) -> Callable[[int], int]:
    """A deterministic ``randbelow`` (tests only): SHAKE-256 of a counter."""
    counter = iter(range(1 << 30))

    def randbelow(bound: int) -> int:
        i = next(counter)
        raw = hashlib.shake_256(label + i.to_bytes(4, "big")).digest(bound.bit_length() // 8 + 16)
        return int.from_bytes(raw, "big") % bound

    return randbelow


def fixed_vector(ms: list[int], rs: list[int], dimension: int = 4) -> paillier.EncryptedVector:
    """A vector with the given openings, under a layout of ``len(ms)`` ciphertexts."""
    layout = paillier.PackingLayout.create(PK, dimension=dimension, clip=1.0, value_bits=8,
                                           capacity=4, **INSECURE)
    assert layout.ciphertexts == len(ms)
    n2 = N * N
    cts = [(1 + m * N) * pow(r, N, n2) % n2 for m, r in zip(ms, rs, strict=True)]
    return paillier.EncryptedVector(PK, layout, cts, 1, **INSECURE)


def layout(dimension: int) -> paillier.PackingLayout:
    return paillier.PackingLayout.create(PK, dimension=dimension, clip=1.0, value_bits=8,
                                         capacity=4, **INSECURE)


def one_ciphertext_dimension() -> int:
    lay = layout(1)
    return lay.slots


# -- known answers ------------------------------------------------------------------------
KAT_MS = [12345678901234567890, 0]
KAT_RS = [987654321987654321, 2**150 + 1]
KAT_CONTEXT = b"kat-context"


@pytest.fixture
def kat(monkeypatch: pytest.MonkeyPatch) -> tuple[paillier.EncryptedVector, popk.ProofVector]:
    vec = fixed_vector(KAT_MS, KAT_RS, dimension=one_ciphertext_dimension() + 1)
    monkeypatch.setattr(popk, "_randbelow", det_stream(b"popk-kat"))
    return vec, popk.prove_vector(vec, KAT_MS, KAT_RS, context=KAT_CONTEXT)


def _spec_proofs(vec: paillier.EncryptedVector, ms: list[int], rs: list[int],
                 context: bytes, randbelow: Callable[[int], int]) -> list[tuple[int, int, int]]:
    """The protocol from its specification, on plain ints (second implementation)."""
    n, n2 = N, N * N
    wn, wn2 = (n.bit_length() + 7) // 8, (n2.bit_length() + 7) // 8
    cts = vec.ciphertexts
    dom = b"secagg.paillier.popk.v1\x00"
    head = hashlib.sha256(dom + b"head\x00" + len(context).to_bytes(4, "big") + context
                          + n.to_bytes(wn, "big") + len(cts).to_bytes(4, "big")
                          + b"".join(c.to_bytes(wn2, "big") for c in cts)).digest()
    xs = [randbelow(n) for _ in cts]
    ss = []
    for _ in cts:
        while True:
            s = randbelow(n - 1) + 1
            if gmpy2.gcd(s, n) == 1:
                ss.append(s)
                break
    out = []
    for j, (c, m, r, x, s) in enumerate(zip(cts, ms, rs, xs, ss, strict=True)):
        a = pow(1 + n, x, n2) * pow(s, n, n2) % n2
        e = int.from_bytes(hashlib.sha256(
            dom + b"challenge\x00" + head + j.to_bytes(4, "big") + c.to_bytes(wn2, "big")
            + a.to_bytes(wn2, "big")).digest()[:16], "big")
        out.append((e, (x + e * m) % n, s * pow(r, e, n) % n))
        # the verification equation, on plain ints
        assert pow(1 + n, out[-1][1], n2) * pow(out[-1][2], n, n2) % n2 == a * pow(c, e, n2) % n2
    return out


def test_known_answer_matches_the_specification_and_the_pinned_digest(kat: Any) -> None:
    vec, proofs = kat
    spec = _spec_proofs(vec, KAT_MS, KAT_RS, KAT_CONTEXT, det_stream(b"popk-kat"))
    assert [(p.e, p.z, p.w) for p in proofs.proofs] == spec
    popk.verify_vector(vec, proofs, context=KAT_CONTEXT)
    data = proofs.to_bytes()
    assert data[:5] == b"SGPR\x01" and len(data) == 5 + 32 + 4 + 2 + 2 * (16 + 2 * 41)
    assert hashlib.sha256(data).hexdigest() == KAT_DIGEST


KAT_DIGEST = "fa3e995b6cf05b8659206681e4f9202dcb1095544c1c3c4b1f77ca25c53be789"


def test_known_answer_changes_with_every_input(kat: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    vec, proofs = kat
    monkeypatch.setattr(popk, "_randbelow", det_stream(b"popk-kat"))
    other = popk.prove_vector(vec, KAT_MS, KAT_RS, context=KAT_CONTEXT + b"!")
    assert all(a.e != b.e for a, b in zip(proofs.proofs, other.proofs, strict=True))
    monkeypatch.setattr(popk, "_randbelow", det_stream(b"popk-kat-2"))
    fresh = popk.prove_vector(vec, KAT_MS, KAT_RS, context=KAT_CONTEXT)
    assert fresh.proofs != proofs.proofs
    popk.verify_vector(vec, fresh, context=KAT_CONTEXT)


def test_the_prover_refuses_openings_that_do_not_match(kat: Any) -> None:
    vec, _ = kat
    with pytest.raises(ParameterError, match="opening 0 does not match"):
        popk.prove_vector(vec, [KAT_MS[0] + 1, KAT_MS[1]], KAT_RS, context=b"")
    with pytest.raises(ParameterError, match="opening 1 does not match"):
        popk.prove_vector(vec, KAT_MS, [KAT_RS[0], KAT_RS[1] + 1], context=b"")
    with pytest.raises(ParameterError, match="out of range"):
        popk.prove_vector(vec, [N, 0], KAT_RS, context=b"")
    with pytest.raises(ParameterError, match="out of range"):
        popk.prove_vector(vec, KAT_MS, [P, KAT_RS[1]], context=b"")  # not a unit
    with pytest.raises(ParameterError, match="1 plaintexts"):
        popk.prove_vector(vec, KAT_MS[:1], KAT_RS, context=b"")
    with pytest.raises(ParameterError, match="context must be bytes"):
        popk.prove_vector(vec, KAT_MS, KAT_RS, context="text")  # type: ignore[arg-type]


def test_encrypt_with_proofs_decrypts_like_encrypt() -> None:
    x = np.linspace(-1, 1, 40)
    lay = layout(40)
    vec, proofs = popk.encrypt_with_proofs(PK, lay, x, context=b"c", **INSECURE)
    assert len(proofs) == lay.ciphertexts == len(vec.ciphertexts)
    np.testing.assert_array_equal(paillier.decrypt_integers(SK, vec, **INSECURE),
                                  paillier.decrypt_integers(
                                      SK, paillier.encrypt(PK, lay, x, **INSECURE), **INSECURE))
    popk.verify_vector(vec, proofs, context=b"c")


def test_workers_give_proofs_that_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_obfuscators, "PARALLEL_MIN_PER_WORKER", 1)
    lay = layout(one_ciphertext_dimension() * 3)
    vec, proofs = popk.encrypt_with_proofs(PK, lay, np.zeros(lay.dimension), context=b"w",
                                           workers=2, **INSECURE)
    popk.verify_vector(vec, proofs, context=b"w", workers=2)
    bad = popk.ProofVector(PK, proofs.proofs[::-1], **INSECURE)
    with pytest.raises(IntegrityError, match="ciphertext 0"):
        popk.verify_vector(vec, bad, context=b"w", workers=2)


# -- properties ---------------------------------------------------------------------------
values = st.lists(st.floats(-1, 1, allow_nan=False), min_size=1, max_size=100)


def _honest(xs: list[float], context: bytes) -> tuple[paillier.EncryptedVector,
                                                      popk.ProofVector]:
    return popk.encrypt_with_proofs(PK, layout(len(xs)), np.array(xs), context=context,
                                    **INSECURE)


@settings(max_examples=25, deadline=None, suppress_health_check=HEALTH)
@given(xs=values, context=st.binary(max_size=40), other=st.binary(max_size=40))
def test_honest_proofs_verify_and_only_under_their_context(xs: list[float], context: bytes,
                                                           other: bytes) -> None:
    vec, proofs = _honest(xs, context)
    popk.verify_vector(vec, proofs, context=context)
    if other != context:
        with pytest.raises(IntegrityError, match="does not verify"):
            popk.verify_vector(vec, proofs, context=other)


@settings(max_examples=25, deadline=None, suppress_health_check=HEALTH)
@given(xs=values, data=st.data())
def test_tampered_proofs_fail(xs: list[float], data: st.DataObject) -> None:
    vec, proofs = _honest(xs, b"ctx")
    j = data.draw(st.integers(0, len(proofs) - 1))
    which = data.draw(st.sampled_from(["e", "z", "w"]))
    p = proofs.proofs[j]
    limit = {"e": 1 << 128, "z": N, "w": N}[which]
    delta = data.draw(st.integers(1, limit - 1))
    changed = (getattr(p, which) + delta) % limit
    if which == "w" and gmpy2.gcd(changed, N) != 1:
        changed = (changed + 1) % N or 1
    q = popk.PlaintextProof(**{**p.__dict__, which: changed})
    bad = popk.ProofVector(PK, (*proofs.proofs[:j], q, *proofs.proofs[j + 1:]), **INSECURE)
    with pytest.raises(IntegrityError):
        popk.verify_vector(vec, bad, context=b"ctx")


@settings(max_examples=20, deadline=None, suppress_health_check=HEALTH)
@given(xs=values, data=st.data())
def test_proofs_do_not_carry_to_another_ciphertext(xs: list[float], data: st.DataObject) -> None:
    """Another encryption of the same values, a re-randomised copy, the
    product of two honest vectors, the inverse of one, or the same proofs in
    another order: none verifies with the proofs it borrows."""
    vec, proofs = _honest(xs, b"ctx")
    lay = vec.layout
    n2 = N * N
    again, again_proofs = _honest(xs, b"ctx")
    zeros = paillier.encrypt(PK, lay, np.zeros(lay.dimension), **INSECURE)
    rerand = [c * z % n2 for c, z in zip(vec.ciphertexts, zeros.ciphertexts, strict=True)]
    product = [c * d % n2 for c, d in zip(vec.ciphertexts, again.ciphertexts, strict=True)]
    inverse = [int(gmpy2.invert(c, n2)) for c in vec.ciphertexts]
    j = data.draw(st.integers(0, len(proofs) - 1))
    one_changed = list(vec.ciphertexts)
    one_changed[j] = rerand[j]
    for cts, borrowed in ((again.ciphertexts, proofs), (rerand, proofs), (rerand, again_proofs),
                          (product, proofs), (product, again_proofs), (inverse, proofs),
                          (one_changed, proofs)):
        forged = paillier.EncryptedVector(PK, lay, cts, 1, **INSECURE)
        with pytest.raises(IntegrityError):
            popk.verify_vector(forged, borrowed, context=b"ctx")
    if len(proofs) > 1:
        rotated = popk.ProofVector(PK, proofs.proofs[1:] + proofs.proofs[:1], **INSECURE)
        with pytest.raises(IntegrityError):
            popk.verify_vector(vec, rotated, context=b"ctx")


def test_structural_refusals() -> None:
    vec, proofs = _honest([0.5] * 100, b"c")
    with pytest.raises(IntegrityError, match="proofs for"):
        popk.verify_vector(vec, popk.ProofVector(PK, proofs.proofs[:-1], **INSECURE), context=b"c")
    other_pk, _ = phe.generate_paillier_keypair(n_length=256)
    with pytest.raises(IntegrityError, match="another public key"):
        popk.verify_vector(vec, popk.ProofVector(other_pk, [], **INSECURE), context=b"c")
    p = proofs.proofs[0]
    bad = popk.PlaintextProof(p.e, p.z, P)  # w shares a factor with n
    with pytest.raises(IntegrityError, match="not a unit"):
        popk.verify_vector(vec, popk.ProofVector(PK, (bad, *proofs.proofs[1:]), **INSECURE),
                           context=b"c")
    for fields in ({"e": 1 << 128}, {"z": N}, {"w": N}, {"z": -1}, {"e": True}):
        with pytest.raises(ParameterError):
            popk.ProofVector(PK, [popk.PlaintextProof(**{**p.__dict__, **fields})], **INSECURE)
    with pytest.raises(ParameterError, match="not a PlaintextProof"):
        popk.ProofVector(PK, [(p.e, p.z, p.w)], **INSECURE)  # type: ignore[list-item]
    with pytest.raises(ParameterError):
        popk.verify_vector(vec, proofs.to_bytes(), context=b"c")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="2048"):
        popk.ProofVector(PK, [])  # small keys only under the test-only flag


# -- codec --------------------------------------------------------------------------------
def test_codec_round_trips_and_is_strict() -> None:
    vec, proofs = _honest([0.25] * 100, b"c")
    assert len(proofs) > 1
    data = proofs.to_bytes()
    back = popk.ProofVector.from_bytes(data, PK, count=len(proofs), **INSECURE)
    assert back == proofs and back.to_bytes() == data and hash(back) == hash(proofs)
    popk.verify_vector(vec, back, context=b"c")
    with pytest.raises(ProtocolError, match=f"{len(proofs)} proofs for {len(proofs) + 1}"):
        popk.ProofVector.from_bytes(data, PK, count=len(proofs) + 1, **INSECURE)
    other_pk, _ = phe.generate_paillier_keypair(n_length=256)
    with pytest.raises(ProtocolError, match="another public key"):
        popk.ProofVector.from_bytes(data, other_pk, **INSECURE)
    with pytest.raises(ProtocolError, match="must be bytes"):
        popk.ProofVector.from_bytes(bytearray(data), PK, **INSECURE)  # type: ignore[arg-type]
    for cut in range(1, len(data)):
        with pytest.raises(ProtocolError):
            popk.ProofVector.from_bytes(data[:cut], PK, **INSECURE)
    with pytest.raises(ProtocolError):
        popk.ProofVector.from_bytes(data + b"\0", PK, **INSECURE)
    width = 41
    z_at = 5 + 32 + 4 + 2 + 16
    with pytest.raises(ProtocolError, match="outside"):  # z = n
        popk.ProofVector.from_bytes(data[:z_at] + N.to_bytes(width, "big") + data[z_at + width:],
                                    PK, **INSECURE)
    w_at = z_at + width
    with pytest.raises(ProtocolError, match="outside"):  # w = 0
        popk.ProofVector.from_bytes(data[:w_at] + bytes(width) + data[w_at + width:], PK,
                                    **INSECURE)
    with pytest.raises(ProtocolError, match="width"):
        popk.ProofVector.from_bytes(data[:41] + (42).to_bytes(2, "big") + data[43:], PK,
                                    **INSECURE)
    with pytest.raises(ProtocolError, match="version"):
        popk.ProofVector.from_bytes(data[:4] + b"\x02" + data[5:], PK, **INSECURE)


def _mutations(data: bytes, draw: Any) -> Iterator[bytes]:
    blob = bytearray(data)
    kind = draw(st.sampled_from(["flip", "truncate", "extend", "splice"]))
    if kind == "flip":
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(blob) - 1))
            blob[i] ^= draw(st.integers(1, 255))
    elif kind == "truncate":
        blob = blob[: draw(st.integers(0, len(blob) - 1))]
    elif kind == "extend":
        blob += draw(st.binary(min_size=1, max_size=16))
    else:
        i = draw(st.integers(0, len(blob)))
        blob[i:i] = draw(st.binary(max_size=8))
    yield bytes(blob)


_FUZZ: dict[str, Any] = {}


@settings(max_examples=200, deadline=None, suppress_health_check=HEALTH)
@given(data=st.data())
def test_fuzzed_proof_bytes_raise_only_library_errors(data: st.DataObject) -> None:
    vec, proofs = _FUZZ.get("v") or _FUZZ.setdefault("v", _honest([0.1] * 100, b"f"))
    for blob in _mutations(proofs.to_bytes(), data.draw):
        try:
            got = popk.ProofVector.from_bytes(blob, PK, **INSECURE)
        except SecAggError:
            continue
        assert got.to_bytes() == blob  # whatever decodes is canonical
        try:
            popk.verify_vector(vec, got, context=b"f")
        except IntegrityError:
            continue
        assert got == proofs  # only the honest proofs verify


@settings(max_examples=100, deadline=None)
@given(blob=st.binary(max_size=300))
def test_random_bytes_after_the_magic_decode_canonically_or_not(blob: bytes) -> None:
    data = b"SGPR\x01" + paillier.fingerprint(PK) + blob
    try:
        got = popk.ProofVector.from_bytes(data, PK, **INSECURE)
    except SecAggError:
        return
    assert got.to_bytes() == data


# -- batched verification -----------------------------------------------------------------
def _batchable(xs: list[float], context: bytes) -> tuple[paillier.EncryptedVector,
                                                         popk.BatchableProofVector, bytes]:
    vec, proofs = popk.encrypt_with_batchable_proofs(PK, layout(len(xs)), np.array(xs),
                                                     context=context, **INSECURE)
    return vec, proofs, context


def _with(proofs: popk.BatchableProofVector, j: int,
          p: popk.CommittedProof) -> popk.BatchableProofVector:
    quads = [(0, q.a, q.z, q.w) for q in proofs.proofs]
    quads[j] = (0, p.a, p.z, p.w)
    return popk.BatchableProofVector._of(N, proofs.key_fingerprint, quads)


def test_batchable_proofs_verify_in_a_batch_and_alone_in_compact_form() -> None:
    vec, batch, _ = _batchable([0.3] * 60, b"ctx")
    vec2, compact = popk.encrypt_with_proofs(PK, vec.layout, np.full(60, 0.3), context=b"ctx",
                                             **INSECURE)
    assert len(batch) == len(compact) == vec.layout.ciphertexts > 1
    popk.verify_batch([(vec, batch, b"ctx")])
    popk.verify_vector(vec2, compact, context=b"ctx")
    with pytest.raises(IntegrityError):  # each form's proofs are bound to their own vector
        popk.verify_batch([(vec2, batch, b"ctx")])


@settings(max_examples=20, deadline=None, suppress_health_check=HEALTH)
@given(sizes=st.lists(st.integers(1, 90), min_size=1, max_size=4), data=st.data())
def test_a_batch_passes_iff_every_proof_does(sizes: list[int], data: st.DataObject) -> None:
    items = [_batchable([0.5] * d, b"c%d" % k) for k, d in enumerate(sizes)]
    popk.verify_batch(items)
    k = data.draw(st.integers(0, len(items) - 1))
    vec, proofs, context = items[k]
    j = data.draw(st.integers(0, len(proofs) - 1))
    p = proofs.proofs[j]
    kind = data.draw(st.sampled_from(["a", "z", "w", "context", "ciphertext", "swap"]))
    if kind == "a":
        bad = (vec, _with(proofs, j, popk.CommittedProof(p.a * (1 + N) % (N * N), p.z, p.w)),
               context)
    elif kind == "z":
        bad = (vec, _with(proofs, j, popk.CommittedProof(p.a, (p.z + 1) % N, p.w)), context)
    elif kind == "w":
        bad = (vec, _with(proofs, j, popk.CommittedProof(p.a, p.z, p.w * 2 % N)), context)
    elif kind == "context":
        bad = (vec, proofs, context + b"!")
    elif kind == "ciphertext":  # a re-randomised copy of ciphertext j
        cts = list(vec.ciphertexts)
        zero = paillier.encrypt(PK, vec.layout, np.zeros(vec.layout.dimension), **INSECURE)
        cts[j] = cts[j] * zero.ciphertexts[0] % (N * N)
        bad = (paillier.EncryptedVector(PK, vec.layout, cts, 1, **INSECURE), proofs, context)
    else:  # another item's proofs
        other = items[(k + 1) % len(items)]
        if len(items) == 1 or len(other[1]) != len(proofs):
            return
        bad = (vec, other[1], context)
    forged = [*items[:k], bad, *items[k + 1:]]
    with pytest.raises(IntegrityError, match=f"item {k}"):
        popk.verify_batch(forged)


def test_the_batch_squares_away_a_sign_only() -> None:
    """A prover that knows (m, r) can make its equation hold up to -1 (an
    element of order 2): the single check refuses it, the squared batch
    accepts it -- the plaintext is still known to the prover. Anything else
    (here a factor 1 + n) fails both."""
    m, r = 7, 3
    n2 = N * N
    vec = fixed_vector([m, 1], [r, 5], dimension=one_ciphertext_dimension() + 1)
    head = popk._head(N, vec._ciphertexts, b"s")
    x, s = 11, 13
    a = (n2 - pow(1 + N, x, n2) * pow(s, N, n2) % n2) % n2  # -(1+n)^x s^n
    e = popk._challenge(head, 0, gmpy2.mpz(vec.ciphertexts[0]), gmpy2.mpz(a), W2)
    signed = popk.CommittedProof(a, (x + e * m) % N, s * pow(r, e, N) % N)
    _, honest, _ = _batchable([0.0] * (one_ciphertext_dimension() + 1), b"s")
    proofs = popk.BatchableProofVector._of(
        N, honest.key_fingerprint, [(0, signed.a, signed.z, signed.w),
                                    (0, *_honest_second(vec, head))])
    popk.verify_batch([(vec, proofs, b"s")])  # accepted up to the sign
    lhs = (1 + signed.z * N) * pow(signed.w, N, n2) % n2
    assert lhs == (n2 - a * pow(vec.ciphertexts[0], e, n2) % n2) % n2  # exactly minus


def _honest_second(vec: paillier.EncryptedVector, head: bytes) -> tuple[int, int, int]:
    """An honest committed proof for ciphertext 1 (m = 1, r = 5) of ``vec``."""
    n2 = N * N
    x, s = 17, 19
    a = pow(1 + N, x, n2) * pow(s, N, n2) % n2
    e = popk._challenge(head, 1, gmpy2.mpz(vec.ciphertexts[1]), gmpy2.mpz(a), W2)
    return a, (x + e * 1) % N, s * pow(5, e, N) % N


def test_batch_structural_refusals_and_codec() -> None:
    item = _batchable([0.2] * 100, b"b")
    vec, proofs, _ = item
    popk.verify_batch([])
    with pytest.raises(ParameterError, match="not a \\(vector, proofs, context\\)"):
        popk.verify_batch([(vec, proofs)])  # type: ignore[list-item]
    with pytest.raises(ParameterError, match="BatchableProofVector"):
        popk.verify_batch([(vec, popk.ProofVector(PK, [], **INSECURE), b"b")])  # type: ignore[list-item]
    other_pk, _ = phe.generate_paillier_keypair(n_length=256)
    other = popk.encrypt_with_batchable_proofs(
        other_pk, paillier.PackingLayout.create(other_pk, dimension=3, clip=1.0, value_bits=8,
                                                capacity=4, **INSECURE),
        np.zeros(3), context=b"o", **INSECURE)
    with pytest.raises(ParameterError, match="another public key"):
        popk.verify_batch([item, (*other, b"o")])
    with pytest.raises(TypeError):
        popk.BatchableProofVector()
    data = proofs.to_bytes()
    assert data[:5] == b"SGPB\x01"
    back = popk.BatchableProofVector.from_bytes(data, PK, count=len(proofs), **INSECURE)
    assert back == proofs and back.to_bytes() == data
    popk.verify_batch([(vec, back, b"b")])
    for cut in range(1, len(data), 7):
        with pytest.raises(ProtocolError):
            popk.BatchableProofVector.from_bytes(data[:cut], PK, **INSECURE)
    a_at = 5 + 32 + 4 + 2
    with pytest.raises(ProtocolError, match="out of range"):  # a = 0
        popk.BatchableProofVector.from_bytes(data[:a_at] + bytes(W2) + data[a_at + W2:], PK,
                                             **INSECURE)
    with pytest.raises(ProtocolError, match="proofs for"):
        popk.BatchableProofVector.from_bytes(data, PK, count=len(proofs) + 1, **INSECURE)


@settings(max_examples=150, deadline=None, suppress_health_check=HEALTH)
@given(data=st.data())
def test_fuzzed_batchable_proof_bytes_raise_only_library_errors(data: st.DataObject) -> None:
    item = _FUZZ.get("b") or _FUZZ.setdefault("b", _batchable([0.1] * 60, b"f"))
    vec, proofs, context = item
    for blob in _mutations(proofs.to_bytes(), data.draw):
        try:
            got = popk.BatchableProofVector.from_bytes(blob, PK, **INSECURE)
        except SecAggError:
            continue
        assert got.to_bytes() == blob
        try:
            popk.verify_batch([(vec, got, context)])
        except IntegrityError:
            continue
        assert got == proofs


def test_a_batch_needs_its_random_exponents_errors_that_cancel_are_caught() -> None:
    """Two proofs tampered with reciprocal factors on w (and opposite shifts on
    z) leave the product of plain equations unchanged: only independent random
    exponents per proof catch them."""
    vec, proofs, context = _batchable([0.25] * 60, b"ctx")
    assert len(proofs) >= 2
    p0, p1 = proofs.proofs[0], proofs.proofs[1]
    y = 12345
    y_inv = int(gmpy2.invert(y, N))
    quads = [(0, q.a, q.z, q.w) for q in proofs.proofs]
    quads[0] = (0, p0.a, p0.z, p0.w * y % N)
    quads[1] = (0, p1.a, p1.z, p1.w * y_inv % N)
    bad = popk.BatchableProofVector._of(N, proofs.key_fingerprint, quads)
    with pytest.raises(IntegrityError, match="ciphertext 0"):
        popk.verify_batch([(vec, bad, context)])
    quads = [(0, q.a, q.z, q.w) for q in proofs.proofs]
    quads[0] = (0, p0.a, (p0.z + 7) % N, p0.w)
    quads[1] = (0, p1.a, (p1.z - 7) % N, p1.w)
    with pytest.raises(IntegrityError, match="ciphertext 0"):
        popk.verify_batch([(vec, popk.BatchableProofVector._of(N, proofs.key_fingerprint,
                                                                quads), context)])


def test_a_batch_refuses_non_unit_commitments_and_responses() -> None:
    """A commitment or response sharing a factor with n is refused by name (only
    someone who knows the factorisation could make one)."""
    vec, proofs, context = _batchable([0.25] * 8, b"ctx")
    p = proofs.proofs[0]
    for bad_p in (popk.CommittedProof(P * 3, p.z, p.w), popk.CommittedProof(p.a, p.z, Q)):
        with pytest.raises(IntegrityError, match="non-unit"):
            popk.verify_batch([(vec, _with(proofs, 0, bad_p), context)])
