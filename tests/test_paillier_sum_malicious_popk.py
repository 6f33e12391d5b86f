"""Malicious mode against a colluding client: proofs of plaintext knowledge.

Paillier ciphertexts are malleable. Without proofs, ONE client colluding with
the aggregator can sign, as its own "input", the product of the inverses of
the other honest clients' ciphertexts (times an encryption of zeros): every
decryptor check passes and the decrypted "sum of all clients" is the
victim's input. It can also sign a re-randomised copy of the victim's
ciphertext. Each client now proves it knows the plaintext and randomness of
every ciphertext it signs (``secagg.paillier.popk``, bound to the config
digest and its id), and every decryptor verifies every proof before
multiplying; the aggregator checks them on arrival too.

Also here: a bytes subclass whose ``__bytes__`` changes between calls must
not slip a repeated ciphertext past the decryptor's duplicate check.

Small safe-prime keys (256 bits) under the test-only flag keep this fast.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gmpy2
import numpy as np
import pytest

from protocols import paillier_sum as ps
from protocols.core import SERVER
from protocols.testing.network import observable_state
from secagg import paillier
from secagg.errors import IntegrityError, ParameterError, ProtocolError, SecAggError
from secagg.paillier import popk
from secagg.paillier import threshold as tp

INSECURE = {"insecure_allow_small_key_for_tests": True}
N, D = 5, 6
VICTIM = 4


@pytest.fixture(scope="module")
def tkp() -> tuple[Any, Any]:
    return tp.generate_keypair(256, **INSECURE)


class Round:
    """A malicious-mode session driven by hand up to the decryption request,
    with every client in the sum (``min_clients = N``)."""

    def __init__(self, tkp: Any, *, t: int = 2) -> None:
        self.s = ps.PAILLIER_SUM.make_session(
            range(N), D, trust="threshold", keypair=tkp, seed=3, min_clients=N,
            decrypt_threshold=t, committee=[0, 1, 2], mode="malicious", **INSECURE)
        self.cfg = self.s.config
        self.codec = ps.PaillierSumCodec(self.cfg, **INSECURE)
        rng = np.random.default_rng(1)
        self.inputs = {u: rng.uniform(-1, 1, D) for u in range(N)}
        for u, c in self.s.clients.items():
            c.set_input(self.s.encoder.encode(self.inputs[u]))
        self.pk = tkp[0]
        self.agg = self.s.coordinator
        self.enc: dict[int, ps.EncryptedInput] = {}
        for e in self.s.others[ps.DEALER].start():
            if e.receiver == SERVER:
                self.agg.handle(e.message)
            else:
                (out,) = self.s.clients[e.receiver].handle(e.message)
                self.enc[e.receiver] = out.message
        self.layout = self.agg.layout
        self.key = self.agg._tkey

    def vector(self, u: int) -> paillier.EncryptedVector:
        return paillier.EncryptedVector.from_bytes(self.enc[u].payload, self.pk, **INSECURE)

    def zeros(self) -> paillier.EncryptedVector:
        return paillier.encrypt(self.pk, self.layout, np.zeros(D), **INSECURE)

    def signed_by(self, u: int, vec: paillier.EncryptedVector,
                  proofs: bytes | None = None) -> ps.EncryptedInput:
        """``vec`` signed by client ``u``'s own registry key as its input,
        with ``proofs`` (none when None)."""
        payload = vec.to_bytes()
        key = self.s.clients[u]._signing_key
        if proofs is None:  # also the shape of an input before proofs existed
            return ps.EncryptedInput(u, payload, key.sign(
                ps.input_signing_payload(self.cfg, u, payload)))
        return ps.EncryptedInput(u, payload, key.sign(
            ps.input_signing_payload(self.cfg, u, payload, proofs)), proofs)

    def request(self, replace: dict[int, ps.EncryptedInput]) -> ps.SignedInputs:
        return ps.SignedInputs(tuple(replace.get(u, self.enc[u]) for u in range(N)))

    def victim_quantized(self) -> np.ndarray:
        return ps.PaillierQuantizer(1.0, 16).encode(self.inputs[VICTIM])


def negation_vector(r: Round, colluder: int) -> paillier.EncryptedVector:
    """The colluder's forged "input": the inverses of every honest
    non-victim ciphertext, times E(0)^(N-1) to put the offsets back. The sum
    of all N inputs then decrypts to the victim's input."""
    n2 = r.pk.nsquare
    others = [u for u in range(N) if u not in (VICTIM, colluder)]
    vecs = {u: r.vector(u) for u in others}
    cts = []
    for k, z in enumerate(r.zeros().ciphertexts):
        c = gmpy2.mpz(1)
        for u in others:
            c = c * gmpy2.invert(vecs[u].ciphertexts[k], n2) % n2
        cts.append(int(c * gmpy2.powmod(z, N - 1, n2) % n2))
    return paillier.EncryptedVector(r.pk, r.layout, cts, 1, **INSECURE)


def rerandomised_victim(r: Round) -> paillier.EncryptedVector:
    copy = paillier.aggregate([r.vector(VICTIM), r.zeros()])
    return paillier.EncryptedVector(r.pk, copy.layout, copy.ciphertexts, 1, **INSECURE)


def _decryptor_refuses(r: Round, u: int, msg: Any, exc: type[SecAggError] = IntegrityError,
                       match: str | None = None) -> None:
    """Decryptor ``u`` refuses ``msg`` as an object and (if it encodes) off the
    wire, answers nothing and stays unchanged."""
    party = r.s.clients[u]
    before = party.export_state(), observable_state(party)
    with pytest.raises(exc, match=match):
        party.handle(msg)
    try:
        data = r.codec.encode(msg)
    except SecAggError:
        data = None
    if data is not None:
        with pytest.raises(exc, match=match):
            party.handle(r.codec.decode(data))
    assert (party.export_state(), observable_state(party)) == before
    assert party.state == "sent"


def _proof_variants(r: Round, colluder: int,
                    vec: paillier.EncryptedVector) -> dict[str, ps.EncryptedInput]:
    """The colluder's forged vector signed with: no proofs, its own honest
    input's proofs, the victim's proofs, and proofs it made for the right
    count of ciphertexts of its own encryption of zeros."""
    out = {"none": r.signed_by(colluder, vec)}
    if hasattr(r.enc[colluder], "proofs"):  # absent before proofs existed
        own = r.enc[colluder].proofs
        zeros_with_proofs = popk.encrypt_with_batchable_proofs(
            r.pk, r.layout, np.zeros(D), context=ps.proof_context(r.cfg, colluder),
            **INSECURE)[1]
        out.update({
            "empty": r.signed_by(colluder, vec, b""),
            "own": r.signed_by(colluder, vec, own),
            "victim's": r.signed_by(colluder, vec, r.enc[VICTIM].proofs),
            "for zeros": r.signed_by(colluder, vec, zeros_with_proofs.to_bytes()),
        })
    return out


# -- the negation attack ------------------------------------------------------------------
def test_without_the_proof_check_the_negation_attack_decrypts_the_victim(tkp: Any,
                                                                         monkeypatch) -> None:
    """What the proofs stop: with the decryptor's proof check disabled, a
    single colluding client's forged input makes the sum of all N clients
    decrypt to the victim's input."""
    from protocols.paillier_sum import parties
    monkeypatch.setattr(parties, "_check_proofs", lambda *a, **k: None, raising=False)
    r = Round(tkp)
    evil = r.signed_by(3, negation_vector(r, 3))
    request = r.codec.decode(r.codec.encode(r.request({3: evil})))
    product, _ = parties._signed_product(r.cfg, r.layout, r.pk, request, True)
    partials = []
    for d in (0, 1):
        (out,) = r.s.clients[d].handle(request)
        partials.append(tp.PartialDecryption.from_bytes(out.message.payload, r.key))
    raw = tp.combine_integers(r.key, product, partials,
                              context=ps.parties.decryption_context(r.cfg))
    np.testing.assert_array_equal(raw, r.victim_quantized())


def test_a_colluding_client_cannot_sign_the_negation_of_the_others(tkp: Any) -> None:
    r = Round(tkp)
    colluder = 3
    for name, evil in _proof_variants(r, colluder, negation_vector(r, colluder)).items():
        for d in (0, 1, 2):
            _decryptor_refuses(r, d, r.request({colluder: evil}), IntegrityError,
                               f"client {colluder}'s proof")
        # the aggregator refuses it on arrival too, unchanged
        before = observable_state(r.agg)
        with pytest.raises(IntegrityError, match=f"client {colluder}'s proof"):
            r.agg.handle(evil)
        assert observable_state(r.agg) == before, name
    # the honest request still decrypts to the true sum
    for u in range(N):
        out = r.agg.handle(r.enc[u])
    request = r.codec.decode(r.codec.encode(out[0].message))
    for d in (0, 1):
        (out,) = r.s.clients[d].handle(request)
        r.agg.handle(r.codec.decode(r.codec.encode(out.message)))
    q = ps.PaillierQuantizer(1.0, 16)
    np.testing.assert_array_equal(r.agg.result.raw_sum,
                                  sum(q.encode(r.inputs[u]) for u in range(N)))


def test_a_colluding_committee_member_cannot_sign_the_negation(tkp: Any) -> None:
    """The colluder is decryptor 2 of a 3-of-3 committee: it answers anything,
    but the two honest decryptors refuse, so nothing is decrypted."""
    r = Round(tkp, t=3)
    colluder = 2
    for evil in _proof_variants(r, colluder, negation_vector(r, colluder)).values():
        for d in (0, 1):
            _decryptor_refuses(r, d, r.request({colluder: evil}), IntegrityError,
                               f"client {colluder}'s proof")


def test_a_colluder_cannot_sign_a_rerandomised_copy_of_the_victim(tkp: Any) -> None:
    r = Round(tkp)
    colluder = 3
    for evil in _proof_variants(r, colluder, rerandomised_victim(r)).values():
        _decryptor_refuses(r, 0, r.request({colluder: evil}), IntegrityError,
                           f"client {colluder}'s proof")
        with pytest.raises(IntegrityError):
            r.agg.handle(evil)


def test_proofs_are_bound_to_the_client_and_the_configuration(tkp: Any) -> None:
    """The victim's exact input re-signed by the colluder is one ciphertext
    twice; the colluder's own input under another configuration's proofs
    (a fresh round) is refused by the proof check."""
    r = Round(tkp)
    moved = r.signed_by(3, r.vector(VICTIM), r.enc[VICTIM].proofs)
    _decryptor_refuses(r, 0, r.request({3: moved}), ProtocolError, "one ciphertext twice")
    others = Round(tkp)  # another configuration (fresh round): its proofs do not carry over
    assert others.cfg.digest != r.cfg.digest
    foreign = r.signed_by(3, others.vector(3), others.enc[3].proofs)
    _decryptor_refuses(r, 0, r.request({3: foreign}), IntegrityError, "client 3's proof")


# -- the object path: exact bytes only ----------------------------------------------------
class Shifty(bytes):
    """bytes whose ``bytes(...)`` is something else on the first call only."""

    calls = 0

    def __bytes__(self) -> bytes:
        type(self).calls += 1
        return bytes(memoryview(self)) + (b"\0" if type(self).calls == 1 else b"")


def test_a_bytes_subclass_cannot_slip_a_copy_past_the_duplicate_check(tkp: Any) -> None:
    """A colluder signs the victim's exact ciphertext; the payload object is a
    bytes subclass that reads differently the first time (the duplicate
    check) than afterwards (signature and parsing). Refused: the decryptor
    takes exact bytes only."""
    r = Round(tkp)
    colluder = 3
    copied = r.signed_by(colluder, r.vector(VICTIM))
    Shifty.calls = 0
    sneaky = dataclasses.replace(copied, payload=Shifty(copied.payload))
    party = r.s.clients[0]
    before = party.export_state(), observable_state(party)
    with pytest.raises(ProtocolError, match="exact bytes"):
        party.handle(r.request({colluder: sneaky}))
    assert (party.export_state(), observable_state(party)) == before
    # subclasses of the other fields and of the sender are refused the same way
    for field, value in (("signature", Shifty(copied.signature)),
                         ("sender", type("Id", (int,), {})(colluder))):
        odd = dataclasses.replace(r.enc[colluder], **{field: value})
        with pytest.raises(ProtocolError, match="exact"):
            party.handle(r.request({colluder: odd}))
    if hasattr(copied, "proofs"):
        odd = dataclasses.replace(r.enc[colluder], proofs=Shifty(r.enc[colluder].proofs))
        with pytest.raises(ProtocolError, match="exact bytes"):
            party.handle(r.request({colluder: odd}))
    assert (party.export_state(), observable_state(party)) == before


def test_a_request_subclass_cannot_change_what_the_decryptor_records(tkp: Any) -> None:
    """A SignedInputs subclass whose inputs read differently the third time
    (after the checks) would make the decryptor record another included set:
    the decryptor takes exactly a SignedInputs, and records the ids it checked."""
    r = Round(tkp)
    honest = r.request({})
    reads = {"n": 0}

    class Shifting(ps.SignedInputs):
        @property  # type: ignore[misc]
        def inputs(self) -> tuple[Any, ...]:
            reads["n"] += 1
            full = object.__getattribute__(self, "__dict__")["inputs"]
            return full if reads["n"] <= 2 else tuple(i for i in full if i.sender == VICTIM)

    odd = Shifting.__new__(Shifting)
    object.__setattr__(odd, "__dict__", dict(honest.__dict__))
    party = r.s.clients[0]
    before = party.export_state(), observable_state(party)
    with pytest.raises(ProtocolError, match="must be a SignedInputs"):
        party.handle(odd)
    assert (party.export_state(), observable_state(party)) == before
    [reply] = party.handle(honest)
    assert reply.receiver == SERVER
    assert party.included == frozenset(i.sender for i in honest.inputs)


# -- the client ---------------------------------------------------------------------------
def test_malicious_mode_refuses_encryption_paths_that_drop_r(tkp: Any) -> None:
    r = Round(tkp)
    key = r.s.clients[3]._signing_key
    pool = paillier.ObfuscatorPool.precompute(r.pk, 2, **INSECURE)
    for enc, kw in (("pool", {"pool": pool}), ("djn", {})):
        with pytest.raises(ParameterError, match="use encryption='online'"):
            ps.PaillierSumClient(3, r.cfg, expected_public_key=r.pk, signing_key=key,
                                 encryption=enc, **kw, **INSECURE)


def test_honest_inputs_carry_proofs_that_verify_and_are_signed(tkp: Any) -> None:
    r = Round(tkp)
    for u in range(N):
        msg = r.enc[u]
        vec = r.vector(u)
        assert msg.proofs[:5] == b"SGPB\x01"  # the committed form, batchable
        proofs = popk.BatchableProofVector.from_bytes(msg.proofs, r.pk,
                                                      count=len(vec.ciphertexts), **INSECURE)
        popk.verify_batch([(vec, proofs, ps.proof_context(r.cfg, u))])
        with pytest.raises(IntegrityError):
            popk.verify_batch([(vec, proofs, ps.proof_context(r.cfg, (u + 1) % N))])
        # a proof blob changed after signing breaks the signature
        flipped = msg.proofs[:-1] + bytes([msg.proofs[-1] ^ 1])
        _decryptor_refuses(r, 0, r.request({u: dataclasses.replace(msg, proofs=flipped)}),
                           IntegrityError, f"client {u}'s input is not signed")


# -- one batch per request ----------------------------------------------------------------
def test_one_bad_proof_among_many_valid_ones_is_named(tkp: Any) -> None:
    """A decryptor verifies every input's proofs in one batch; one client's
    input carrying a single tampered proof (one ciphertext of one client,
    re-signed by that client) among all the others' valid proofs fails the
    batch, and the decryptor names that client, answers nothing and stays
    unchanged. Each client in turn, so the name is not a fixed position."""
    r = Round(tkp)
    n2 = r.pk.nsquare
    for u in range(N):
        vec = r.vector(u)
        pv = popk.BatchableProofVector.from_bytes(r.enc[u].proofs, r.pk, **INSECURE)
        j = u % len(pv.proofs)
        p = pv.proofs[j]
        quads = [(0, q.a, q.z, q.w) for q in pv.proofs]
        quads[j] = (0, p.a * (1 + r.pk.n) % n2, p.z, p.w)  # a shifted by E(1): fails
        bad = popk.BatchableProofVector._of(r.pk.n, pv.key_fingerprint, quads).to_bytes()
        evil = r.signed_by(u, vec, bad)
        for d in (0, 1, 2):
            _decryptor_refuses(r, d, r.request({u: evil}), IntegrityError,
                               f"client {u}'s proof of plaintext knowledge is refused: "
                               f"item 0: the proof of plaintext knowledge of ciphertext {j}")
        before = observable_state(r.agg)
        with pytest.raises(IntegrityError, match=f"client {u}'s proof"):
            r.agg.handle(evil)
        assert observable_state(r.agg) == before


def test_the_decryptor_verifies_all_proofs_in_one_batch(tkp: Any, monkeypatch) -> None:
    """An honest request costs the decryptor exactly one verify_batch call
    over every included input (and no one-by-one verify_vector)."""
    from protocols.paillier_sum import parties
    calls: list[int] = []
    real = popk.verify_batch

    def counting(items: Any) -> None:
        calls.append(len(items))
        real(items)

    monkeypatch.setattr(parties.popk, "verify_batch", counting)
    monkeypatch.setattr(parties.popk, "verify_vector",
                        lambda *a, **k: pytest.fail("one-by-one verification"))
    r = Round(tkp)
    (reply,) = r.s.clients[0].handle(r.request({}))
    assert reply.receiver == SERVER
    assert calls == [N]


def test_compact_form_proofs_are_refused(tkp: Any) -> None:
    """The compact form (SGPR, version 4 inputs) is not accepted in place of
    the committed form, even correctly signed with valid proofs in it."""
    r = Round(tkp)
    colluder = 3
    vec, compact = popk.encrypt_with_proofs(
        r.pk, r.layout, r.inputs[colluder], context=ps.proof_context(r.cfg, colluder),
        **INSECURE)
    evil = r.signed_by(colluder, vec, compact.to_bytes())
    _decryptor_refuses(r, 0, r.request({colluder: evil}), IntegrityError,
                       f"client {colluder}'s proof of plaintext knowledge is refused: bad magic")
    with pytest.raises(IntegrityError, match=f"client {colluder}'s proof"):
        r.agg.handle(evil)
