"""Threshold Paillier summation on a key dealt out of band (no dealer party):
exact sums, t-1 decryptors give nothing, the relayed public setup is checked
against each client's own copy, the share never enters the saved state, and
the public material and share files are strict."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols import paillier_sum as ps
from protocols.core import SERVER
from protocols.paillier_sum import (
    DEALER,
    EncryptedSum,
    PaillierSumAggregator,
    PaillierSumClient,
    ThresholdPublic,
    ThresholdSetup,
)
from protocols.paillier_sum.messages import open_vector
from secagg.errors import (
    AbortError,
    EncodingError,
    IntegrityError,
    ParameterError,
    ProtocolError,
    SecAggError,
)
from secagg.paillier import EncryptedVector
from secagg.paillier import threshold as tp

INSECURE = {"insecure_allow_small_key_for_tests": True}
IDS = [4, 10, 2**64 - 1, 12345, 6]
COMMITTEE = [4, 10, 12345]
DIM = 16


@pytest.fixture(scope="module")
def keypair():
    return tp.generate_keypair(256, **INSECURE)


@pytest.fixture(scope="module")
def dealt(keypair):
    return ps.deal_committee(COMMITTEE, 2, keypair=keypair, **INSECURE)


def inputs():
    return {c: np.random.default_rng(c % 1000).uniform(-1, 1, DIM) for c in IDS}


def session(dealt, **kw):
    public, shares = dealt
    return ps.PAILLIER_SUM.make_session(IDS, DIM, trust="threshold", public=public,
                                        key_shares=shares, **INSECURE, **kw)


# ------------------------------------------------------------------- whole runs


@given(st.sets(st.sampled_from(COMMITTEE), max_size=3))
def test_any_t_decryptors_give_the_exact_sum_fewer_give_nothing(dealt, gone):
    public, shares = dealt
    x = inputs()
    if len(COMMITTEE) - len(gone) >= public.threshold:
        res = ps.simulate(x, trust="threshold", public=public, key_shares=shares,
                          dropouts={"decrypt": sorted(gone)}, **INSECURE)
        assert res.included == set(IDS)
        assert np.allclose(res.sum, sum(x.values()), atol=len(IDS) / 32767)
        assert "dealer" not in res.figures  # no dealer party runs
    else:
        with pytest.raises(AbortError, match="valid partial decryption"):
            ps.simulate(x, trust="threshold", public=public, key_shares=shares,
                        dropouts={"decrypt": sorted(gone)}, **INSECURE)


def test_the_aggregator_starts_collecting_and_relays_the_setup(dealt):
    s = session(dealt)
    agg = s.coordinator
    assert agg.round == "encrypt" and agg.dealt_out_of_band
    out = agg.start()
    assert sorted(e.receiver for e in out) == sorted(IDS)
    for e in out:
        assert isinstance(e.message, ThresholdSetup) and e.message.sender == SERVER
        assert e.message.sealed_share == b"" and e.message.dealer_key == bytes(32)
    # the relay crosses the codec; the client encrypts once it checked it
    codec = ps.PAILLIER_SUM.codec(s.config, **INSECURE)
    relayed = codec.decode(codec.encode(out[0].message))
    client = s.clients[out[0].receiver]
    client.set_input(np.zeros(DIM, dtype=np.int64))
    [reply] = client.handle(relayed)
    assert reply.receiver == SERVER
    # the aggregator takes no setup during the session
    with pytest.raises(ProtocolError, match="out of band"):
        agg.handle(ThresholdSetup(dealt[0].key, agg.layout, bytes(32)))


def test_a_coordinator_only_session_for_a_remote_server(dealt):
    public, _ = dealt
    s = ps.PAILLIER_SUM.make_session(IDS, DIM, trust="threshold", public=public, **INSECURE)
    assert s.clients == {} and s.others == {} and s.config.committee == set(COMMITTEE)
    assert s.config.threshold_key_digest == public.key.digest


# ------------------------------------------------------ a malicious client's input


def _inflated(msg, public_key):
    """A client's encrypted input raised to the power 2^40: still "one summand",
    its packed values far past the range (padding slots overflow)."""
    vec = open_vector(msg.payload, public_key, True)
    n2 = public_key.n ** 2
    cts = [pow(c, 1 << 40, n2) for c in vec.ciphertexts]
    bad = EncryptedVector(public_key, vec.layout, cts, 1, **INSECURE)
    return ps.EncryptedInput(msg.sender, bad.to_bytes())


def test_an_out_of_range_input_aborts_without_blaming_a_decryptor(dealt):
    public, _ = dealt
    s = session(dealt)
    agg = s.coordinator
    setups = {e.receiver: e.message for e in agg.start()}
    bad_client = 6  # not on the committee
    to_committee = []
    for cid in IDS:
        s.clients[cid].set_input(np.full(DIM, 5, dtype=np.int64))
        [e] = s.clients[cid].handle(setups[cid])
        msg = _inflated(e.message, public.public_key) if cid == bad_client else e.message
        to_committee += agg.handle(msg)
    assert sorted(e.receiver for e in to_committee) == COMMITTEE
    first, second, third = to_committee
    [answer] = s.clients[first.receiver].handle(first.message)
    assert agg.handle(answer.message) == []
    [answer] = s.clients[second.receiver].handle(second.message)
    with pytest.raises(ps.MalformedSumError) as info:
        agg.handle(answer.message)
    assert isinstance(info.value, AbortError)
    assert not isinstance(info.value, tp.PartialDecryptionError)  # no decryptor is blamed
    assert "decrypted sum malformed: a client input is out of range" in str(info.value)
    assert "every decryptor's proof verified" in str(info.value)
    assert agg.valid_decryptors == {first.receiver, second.receiver}
    assert agg.round is None and agg.result is None and agg.raw_result is None
    # nothing more is taken, nothing is output
    [answer] = s.clients[third.receiver].handle(third.message)
    with pytest.raises(ProtocolError, match="aborted"):
        agg.handle(answer.message)
    assert agg.result is None


# -------------------------------------------------------------- bad parameters


@pytest.mark.parametrize("extra, match", [
    ({"committee": COMMITTEE}, "committee"),
    ({"decrypt_threshold": 2}, "decrypt_threshold"),
    ({"keypair": "k"}, "keypair"),
    ({"encryption": "crt"}, "crt"),
])
def test_dealt_sessions_refuse_conflicting_parameters(dealt, extra, match):
    with pytest.raises(ParameterError, match=match):
        ps.PAILLIER_SUM.make_session(IDS, DIM, trust="threshold", public=dealt[0],
                                     **INSECURE, **extra)


def test_dealt_sessions_refuse_other_layouts_missing_members_and_shares(dealt):
    public, shares = dealt
    with pytest.raises(ParameterError, match="trust='threshold'"):
        ps.PAILLIER_SUM.make_session(IDS, DIM, trust="key-holder", public=public, **INSECURE)
    with pytest.raises(ParameterError, match="not clients"):
        ps.PAILLIER_SUM.make_session([4, 10, 6], DIM, trust="threshold", public=public,
                                     **INSECURE)
    with pytest.raises(ParameterError, match="no key share"):
        ps.PAILLIER_SUM.make_session(IDS, DIM, trust="threshold", public=public,
                                     key_shares={4: shares[4]}, **INSECURE)
    with pytest.raises(ParameterError, match="index"):
        ps.PAILLIER_SUM.make_session(IDS, DIM, trust="threshold", public=public,
                                     key_shares={**shares, 4: shares[10]}, **INSECURE)
    with pytest.raises(ParameterError, match="public material"):
        ps.PAILLIER_SUM.make_session(IDS, DIM, trust="threshold", key_shares=shares,
                                     **INSECURE)


def test_a_client_checks_its_own_material_against_the_config(dealt, keypair):
    public, shares = dealt
    config = session(dealt).config
    other, other_shares = ps.deal_committee(COMMITTEE, 2, keypair=keypair, **INSECURE)
    with pytest.raises(ParameterError, match="digest mismatch"):
        PaillierSumClient(4, config, threshold_key=other.key, key_share=other_shares[4],
                          **INSECURE)
    with pytest.raises(ParameterError, match="needs its key_share"):
        PaillierSumClient(4, config, threshold_key=public.key, **INSECURE)
    with pytest.raises(ParameterError, match="not share"):
        PaillierSumClient(4, config, threshold_key=public.key, key_share=shares[10],
                          **INSECURE)
    with pytest.raises(ParameterError, match="not a decryptor"):
        PaillierSumClient(6, config, threshold_key=public.key, key_share=shares[4],
                          **INSECURE)
    with pytest.raises(ParameterError, match="threshold_key"):
        PaillierSumClient(4, config, key_share=shares[4], **INSECURE)
    with pytest.raises(ParameterError, match="not the key the configuration names"):
        PaillierSumAggregator(config, threshold_key=other.key, **INSECURE)


def test_a_client_given_the_public_material_checks_the_committee(dealt):
    public, shares = dealt
    config = session(dealt).config
    # the whole public material: the committee and t are checked too
    c = PaillierSumClient(4, config, threshold_key=public, key_share=shares[4], **INSECURE)
    c.set_input(np.zeros(DIM, dtype=np.int64))
    relay = next(e.message for e in session(dealt).coordinator.start() if e.receiver == 4)
    [reply] = c.handle(relay)
    assert reply.receiver == SERVER
    PaillierSumClient(6, config, threshold_key=public, **INSECURE)
    # the same key named for another committee (6 instead of 12345): refused
    moved = ThresholdPublic(public.key, (4, 6, 10))
    with pytest.raises(ParameterError, match="committee"):
        PaillierSumClient(6, config, threshold_key=moved, **INSECURE)
    with pytest.raises(ParameterError, match="committee"):
        PaillierSumClient(4, config, threshold_key=moved, key_share=shares[4], **INSECURE)
    state = c.export_state()
    with pytest.raises(ParameterError, match="committee"):
        PaillierSumClient.restore(config, state, threshold_key=moved, key_share=shares[4],
                                  **INSECURE)
    back = PaillierSumClient.restore(config, state, threshold_key=public, key_share=shares[4],
                                     **INSECURE)
    assert back.round == "decrypt"


def test_a_client_refuses_a_session_in_another_mode_than_its_key_was_dealt_for(dealt):
    """A key runs one mode only: a client holding public material dealt for
    malicious sessions refuses a semi-honest configuration on that key (where
    the committee would decrypt a relabelled single input), in process too."""
    public, shares = dealt
    config = session(dealt).config
    assert config.mode == "semi-honest"
    strict = ThresholdPublic(public.key, public.committee, "malicious")
    for cid, share in ((4, shares[4]), (6, None)):
        with pytest.raises(ParameterError, match="dealt for 'malicious'"):
            PaillierSumClient(cid, config, threshold_key=strict, key_share=share, **INSECURE)
    c = PaillierSumClient(4, config, threshold_key=public, key_share=shares[4], **INSECURE)
    with pytest.raises(ParameterError, match="dealt for 'malicious'"):
        PaillierSumClient.restore(config, c.export_state(), threshold_key=strict,
                                  key_share=shares[4], **INSECURE)


# ------------------------------------------------- a relay that lies to the clients


def test_a_relayed_setup_from_the_dealer_role_or_with_a_share_is_refused(dealt):
    s = session(dealt)
    agg = s.coordinator
    setup = agg.start()[0].message
    client = s.clients[4]
    client.set_input(np.zeros(DIM, dtype=np.int64))
    before = client.export_state()
    with pytest.raises(ProtocolError, match="only the aggregator"):
        client.handle(ThresholdSetup(setup.key, setup.layout, bytes(32)))  # sender: dealer
    with pytest.raises(ProtocolError, match="key share or a dealer key"):
        client.handle(ThresholdSetup(setup.key, setup.layout, bytes(32), b"x", sender=SERVER))
    assert client.export_state() == before  # unchanged
    codec = ps.PAILLIER_SUM.codec(s.config, **INSECURE)
    with pytest.raises(EncodingError, match="relayed"):
        codec.encode(ThresholdSetup(setup.key, setup.layout, bytes(32), b"x", sender=SERVER))
    # forge the bytes: a relayed setup that carries a share is refused by the codec
    good = codec.encode(ThresholdSetup(setup.key, setup.layout, bytes(32), b"x",
                                       sender=DEALER))
    role_at = 4 + 1 + 32
    forged = good[:role_at] + bytes([0]) + good[role_at + 1:]  # role 0: the aggregator
    with pytest.raises(ProtocolError, match="relayed"):
        codec.decode(forged)


def test_a_relayed_setup_under_another_key_is_refused(dealt, keypair):
    s = session(dealt)
    other, _ = ps.deal_committee(COMMITTEE, 2, keypair=keypair, **INSECURE)
    client = s.clients[10]
    client.set_input(np.zeros(DIM, dtype=np.int64))
    layout = s.config.packing(other.public_key, **INSECURE)
    with pytest.raises(ProtocolError, match="threshold key"):
        client.handle(ThresholdSetup(other.key, layout, bytes(32), sender=SERVER))
    assert client.round == "setup"


# ------------------------------------------------------------ state and restore


def test_the_share_never_enters_the_saved_state(dealt):
    public, shares = dealt
    s = session(dealt)
    x = inputs()
    codec = ps.PAILLIER_SUM.codec(s.config, **INSECURE)
    agg = s.coordinator
    setups = {e.receiver: e.message for e in agg.start()}
    for cid in IDS:
        c = s.clients[cid]
        c.set_input(s.encoder.encode(x[cid]))
        for e in c.handle(setups[cid]):
            agg.handle(codec.decode(codec.encode(e.message)))
    assert agg.round == "decrypt"  # the last input sent the sum to the committee
    for cid in COMMITTEE:
        state = s.clients[cid].export_state()
        share = shares[cid]
        secret = share.share.to_bytes((share.share.bit_length() + 7) // 8, "big")
        assert secret not in state and share.to_bytes() not in state
        with pytest.raises(ParameterError, match="key_share"):
            PaillierSumClient.restore(s.config, state, threshold_key=public.key, **INSECURE)
        restored = PaillierSumClient.restore(s.config, state, threshold_key=public.key,
                                             key_share=share, **INSECURE)
        assert restored.round == "decrypt"
        assert restored._input is None  # the plaintext input was dropped once encrypted
        s.clients[cid] = restored
    # the restored decryptors answer the aggregator's sum
    es = EncryptedSum(agg.included, agg._sum.to_bytes())
    for cid in COMMITTEE[:2]:
        for e in s.clients[cid].handle(codec.decode(codec.encode(es))):
            agg.handle(codec.decode(codec.encode(e.message)))
    assert agg.result is not None
    assert np.allclose(s.encoder.decode(agg.result.raw_sum, len(IDS)), sum(x.values()),
                       atol=len(IDS) / 32767)


def test_the_plaintext_input_never_enters_the_saved_state(dealt):
    # the input is set but no relayed setup arrived (a transport that sends the input
    # round without it): the saved state must not hold the plaintext
    public, shares = dealt
    s = session(dealt)
    secret = np.arange(DIM, dtype=np.int64) * 1000 + 7
    for cid in (4, 6):  # a decryptor and a plain client
        c = s.clients[cid]
        c.set_input(secret)
        state = c.export_state()
        assert secret.view(np.uint64).tobytes() not in state
        assert secret.tobytes() not in state and secret.astype(">i8").tobytes() not in state
        local = {"threshold_key": public.key, "key_share": shares.get(cid), **INSECURE}
        back = PaillierSumClient.restore(s.config, state, **local)
        assert back.round == "setup" and back._input is None
        relay = next(e.message for e in s.coordinator.start() if e.receiver == cid)
        with pytest.raises(ParameterError, match="no input"):
            back.handle(relay)  # refused, and the client is unchanged
        assert back.round == "setup"
        back.set_input(secret)
        [reply] = back.handle(relay)
        assert reply.receiver == SERVER and back._input is None


def test_a_state_restored_under_other_material_is_refused(dealt, keypair):
    s = session(dealt)
    c = s.clients[4]
    c.set_input(np.zeros(DIM, dtype=np.int64))
    c.handle(next(e.message for e in s.coordinator.start() if e.receiver == 4))
    state = c.export_state()
    other, other_shares = ps.deal_committee(COMMITTEE, 2, keypair=keypair, **INSECURE)
    with pytest.raises(ParameterError):
        PaillierSumClient.restore(s.config, state, threshold_key=other.key,
                                  key_share=other_shares[4], **INSECURE)


# ------------------------------------------------------------------------ files


def test_public_material_round_trip_and_checks(dealt):
    public, _ = dealt
    assert ThresholdPublic.from_bytes(public.to_bytes(), **INSECURE) == public
    assert public.index_of(12345) == 3 and public.committee == (4, 10, 12345)
    with pytest.raises(ParameterError, match="not on the committee"):
        public.index_of(6)
    with pytest.raises(ParameterError, match="shares"):
        ThresholdPublic(public.key, (1, 2))
    with pytest.raises(ParameterError, match="distinct"):
        ThresholdPublic(public.key, (1, 1, 2))


@given(st.binary(max_size=64), st.integers(0, 400))
def test_public_material_decoder_is_strict(dealt, junk, cut):
    data = dealt[0].to_bytes()
    for candidate in (data[:cut], junk, data + junk[:1] if junk else data[:-1]):
        if candidate == data:
            continue
        with pytest.raises(SecAggError):
            ThresholdPublic.from_bytes(candidate, **INSECURE)


def test_share_files(dealt, tmp_path):
    public, shares = dealt
    path = tmp_path / "s"
    ps.write_key_share(path, 10, shares[10])
    assert ps.read_key_share(path, 10, public, **INSECURE).index == 2
    with pytest.raises(IntegrityError, match="belongs to client 10"):
        ps.read_key_share(path, 4, public, **INSECURE)
    ps.write_key_share(path, 4, shares[10])  # the wrong share under a member's name
    with pytest.raises(IntegrityError, match="index"):
        ps.read_key_share(path, 4, public, **INSECURE)
    with pytest.raises(ParameterError, match="cannot read"):
        ps.read_key_share(tmp_path / "missing", 4, public, **INSECURE)
    with pytest.raises(ParameterError, match="2048"):
        ps.deal_committee(COMMITTEE, 2, key_bits=512)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes and FIFOs")
def test_share_file_writes_are_private_and_follow_no_link(dealt, tmp_path):
    public, shares = dealt
    # an existing world-readable file: the share replaces it with mode 0600
    path = tmp_path / "share"
    path.write_bytes(b"old")
    os.chmod(path, 0o644)
    ps.write_key_share(path, 10, shares[10])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert ps.read_key_share(path, 10, public, **INSECURE).index == 2
    # a symlink at the path is replaced, its target is never written
    target = tmp_path / "elsewhere"
    target.write_bytes(b"untouched")
    os.chmod(target, 0o644)
    link = tmp_path / "link"
    os.symlink(target, link)
    ps.write_key_share(link, 10, shares[10])
    assert target.read_bytes() == b"untouched"
    assert not os.path.islink(link) and stat.S_IMODE(os.lstat(link).st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "link", "share"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes and FIFOs")
def test_share_files_readable_by_others_or_not_regular_are_refused(dealt, tmp_path):
    public, shares = dealt
    path = tmp_path / "share"
    ps.write_key_share(path, 10, shares[10])
    for mode in (0o640, 0o604, 0o620, 0o660):
        os.chmod(path, mode)
        with pytest.raises(IntegrityError, match=f"{path}.*{oct(mode)}"):
            ps.read_key_share(path, 10, public, **INSECURE)
    os.chmod(path, 0o400)
    assert ps.read_key_share(path, 10, public, **INSECURE).index == 2
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(ParameterError, match="not a regular file"):
        ps.read_key_share(fifo, 10, public, **INSECURE)  # refused, never blocks
    with pytest.raises(ParameterError, match="not a regular file"):
        ps.read_public(fifo, **INSECURE)
    with pytest.raises(ParameterError, match="not a regular file"):
        ps.read_key_share(tmp_path, 10, public, **INSECURE)


def _write_private(path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def test_files_take_canonical_encodings_only(dealt, keypair, tmp_path):
    from secagg import wire

    public, shares = dealt
    kb = public.key.to_bytes()
    r = wire.Reader(kb, b"SGTK")
    bits, n = r.u16(), r.blob()
    padded = kb[:5] + bits.to_bytes(2, "big") + (len(n) + 1).to_bytes(4, "big") + b"\0" + n \
        + kb[5 + 2 + 4 + len(n):]
    pstk = wire.write_ids(wire.Writer(b"PSTK", 1).blob(padded), COMMITTEE, width=64).getvalue()
    with pytest.raises(ProtocolError, match="canonical"):
        ThresholdPublic.from_bytes(pstk, **INSECURE)
    # a share s + n*m: the same exponent, another encoding
    _, sk = keypair
    s = shares[10]
    nm = int(public.key.public_key.n) * ((sk.p - 1) // 2) * ((sk.q - 1) // 2)
    alt = s.share + nm
    sgts = (wire.Writer(b"SGTS").blob(kb).u16(s.index)
            .blob(alt.to_bytes((alt.bit_length() + 7) // 8, "big")).getvalue())
    path = tmp_path / "share"
    _write_private(path, wire.Writer(b"PSKF", 1).u64(10).blob(sgts).getvalue())
    with pytest.raises(ProtocolError, match="range"):
        ps.read_key_share(path, 10, public, **INSECURE)


def _mutated(data: bytes, draw) -> bytes:
    kind = draw(st.sampled_from(["flip", "truncate", "extend", "splice", "zero-pad"]))
    i = draw(st.integers(0, len(data) - 1))
    if kind == "flip":
        return data[:i] + bytes([data[i] ^ (1 << draw(st.integers(0, 7)))]) + data[i + 1:]
    if kind == "truncate":
        return data[:i]
    if kind == "extend":
        return data + draw(st.binary(min_size=1, max_size=8))
    if kind == "splice":
        return data[:i] + draw(st.binary(min_size=1, max_size=8)) + data[i:]
    return data[:i] + b"\0" + data[i:]  # a zero byte inserted anywhere


@settings(max_examples=max(60, settings().max_examples),
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_share_files_raise_only_library_errors(dealt, tmp_path, data):
    public, shares = dealt
    path = tmp_path / "fuzzed-share"
    ps.write_key_share(path, 12345, shares[12345])
    good = path.read_bytes()
    bad = _mutated(good, data.draw)
    _write_private(path, bad)
    try:
        share = ps.read_key_share(path, 12345, public, **INSECURE)
    except SecAggError:
        return
    # whatever decodes is the one share, in its one encoding
    assert bad == good and share.share == shares[12345].share
