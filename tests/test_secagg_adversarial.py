"""A malicious server, a tampering network and a misbehaving client.

Each attack must end in the documented error, with no partial output and no
share leaving an honest client."""

from __future__ import annotations

import dataclasses
import struct
from typing import Any

import numpy as np
import pytest
from secagg_parties import MessageParty, WiredParties

from protocols.secagg import (
    AdvertiseKeys,
    ConsistencyRequest,
    ConsistencySignature,
    KeyBroadcast,
    MaskedInput,
    Message,
    SealedShare,
    SecAggClient,
    SecAggConfig,
    SecAggServer,
    ShareForward,
    ShareKeys,
    UnmaskRequest,
    UnmaskResponse,
    binding,
    decode,
    encode,
)
from protocols.secagg.messages import SHARE_PLAINTEXT_BYTES
from secagg import aead
from secagg.errors import AbortError, IntegrityError, ProtocolError, SecAggError
from secagg.sign import SigningKey

_Messages = MessageParty  # the parties' verbs, as message objects


class Net(WiredParties):
    """Real parties wired through the codec; tests intercept and forge messages."""

    def __init__(self, n: int = 6, *, mode: str = "semi-honest", degree: int | None = None,
                 threshold: int = 3, d: int = 6, session_id: int = 1) -> None:
        ids = range(1, n + 1)
        self.keys = {u: SigningKey.generate() for u in ids} if mode == "malicious" else {}
        self.cfg = SecAggConfig.create(
            ids, d, threshold=threshold, degree=degree, mode=mode,  # type: ignore[arg-type]
            session_id=session_id, graph_seed=bytes(32), corrupt_fraction=0.0,
            registry={u: k.verify_key() for u, k in self.keys.items()} or None)
        rng = np.random.default_rng(session_id)
        self.xs = {u: rng.integers(0, 2**32, d, dtype=np.uint32) for u in ids}
        self.clients: dict[int, Any] = {
            u: _Messages(SecAggClient(self.cfg, u, signing_key=self.keys.get(u),
                                      input=self.xs[u])) for u in ids}
        self.server: Any = _Messages(SecAggServer(self.cfg))


    def held_share_bytes(self, u: int) -> list[bytes]:
        return [s.to_bytes() for pair in self.clients[u]._held.values() for s in pair]


def _for(msgs: list[Message], u: int) -> Message:
    return next(m for m in msgs if m.receiver == u)


def _refused(net: Net, u: int, msg: Message, exc: type[SecAggError],
             match: str | None = None) -> None:
    """Client ``u`` raises ``exc``, sends nothing, stays in its state, and the
    error text carries none of its shares."""
    c = net.clients[u]
    before = (c.state, dict(c._held))
    shares = net.held_share_bytes(u)
    with pytest.raises(exc, match=match) as info:
        c.handle(msg)
    assert (c.state, dict(c._held)) == before
    text = str(info.value)
    for s in shares:
        assert s.hex() not in text and str(int.from_bytes(s[5:], "big")) not in text


# -- a server that asks for both shares ------------------------------------------------
def test_request_for_both_shares_of_one_client_is_refused() -> None:
    net = Net(6, threshold=3)
    reqs = net.step(net.step(net.start()), skip=(6,))  # client 6 vanishes before masking
    assert net.server.round == "unmask"
    req = _for(reqs, 1)
    assert isinstance(req, UnmaskRequest) and req.dropped == (6,)
    for survivors, dropped, why in [
        ((1, 2, 3, 4, 5), (2, 6), "both shares"),
        ((1, 2, 3, 4, 5, 6), (6,), "both shares"),
        ((2, 3, 4, 5), (1, 6), "survivor"),  # its own mask key
        ((1, 2, 3, 4, 5), (6, 7), "non-neighbours|not a client"),
    ]:
        forged = dataclasses.replace(req, survivors=survivors, dropped=dropped)
        _refused(net, 1, forged, ProtocolError, why)
    assert net.server.result is None
    # the genuine request is answered once; asking again, for the other kind, is refused
    (resp,) = net.clients[1].handle(req)
    assert isinstance(resp, UnmaskResponse)
    assert [(r.owner, r.kind) for r in resp.shares] == [(1, "b"), (2, "b"), (3, "b"),
                                                        (4, "b"), (5, "b"), (6, "s")]
    again = dataclasses.replace(req, survivors=(1,), dropped=(2, 3, 4, 5))
    with pytest.raises(ProtocolError, match="closed"):
        net.clients[1].handle(again)


def test_request_naming_non_neighbours_is_refused() -> None:
    net = Net(12, degree=4, threshold=3)
    reqs = net.step(net.step(net.start()))
    req = _for(reqs, 1)
    assert isinstance(req, UnmaskRequest)
    stranger = min(set(net.cfg.client_ids) - net.cfg.neighbours[1] - {1})
    forged = dataclasses.replace(req, survivors=tuple(sorted({*req.survivors, stranger})))
    _refused(net, 1, forged, ProtocolError, "non-neighbours")
    forged = dataclasses.replace(req, dropped=(stranger,))
    _refused(net, 1, forged, ProtocolError, "non-neighbours")
    too_few = dataclasses.replace(req, survivors=(1, min(net.cfg.neighbours[1])))
    _refused(net, 1, too_few, AbortError, "threshold")


def test_semi_honest_mode_trusts_the_server_for_survivor_consistency() -> None:
    """Documented limitation: without the consistency round, a server that lies
    to different clients about who survived is not detected. Use
    ``mode="malicious"`` when the server may deviate from the protocol."""
    net = Net(6, threshold=3)
    reqs = net.step(net.step(net.start()))
    r1 = dataclasses.replace(_for(reqs, 1), survivors=(1, 2, 3, 4, 5, 6), dropped=())
    r2 = dataclasses.replace(_for(reqs, 2), survivors=(1, 2, 3, 4, 5), dropped=(6,))
    assert net.clients[1].handle(r1) and net.clients[2].handle(r2)


# -- a server that shows different survivor sets (malicious mode) ----------------------
def test_different_survivor_sets_are_caught_in_malicious_mode() -> None:
    net = Net(10, mode="malicious", threshold=3)
    assert net.cfg.quorum == 6
    cons = net.step(net.step(net.start()))
    assert all(isinstance(m, ConsistencyRequest) for m in cons)
    full = tuple(range(1, 11))
    partial = tuple(range(2, 11))  # the lie told to group B: "client 1 dropped"
    group_a, group_b = (1, 2, 3, 4, 5), (6, 7, 8, 9, 10)
    sigs: dict[int, bytes] = {}
    for u in group_a + group_b:
        shown = full if u in group_a else partial
        req = _for(cons, u)
        assert isinstance(req, ConsistencyRequest)
        (s,) = net.clients[u].handle(dataclasses.replace(req, survivors=shown))
        assert isinstance(s, ConsistencySignature)
        sigs[u] = s.signature
    # the honest server would refuse group B's signatures: they cover another set
    with pytest.raises(IntegrityError):
        net.server.handle(ConsistencySignature(sender=6, signature=sigs[6]))
    all_sigs = tuple(sorted(sigs.items()))
    ask_s1 = UnmaskRequest(receiver=6, survivors=partial, dropped=(1,), signatures=all_sigs)
    # (a) forwarding every signature: group A's do not verify for a client of group B
    _refused(net, 6, ask_s1, IntegrityError, "signature")
    # (b) forwarding only group B's: fewer than the quorum
    only_b = tuple((u, sigs[u]) for u in group_b)
    _refused(net, 6, dataclasses.replace(ask_s1, signatures=only_b), AbortError, "quorum")
    # (c) relabelling group A's signatures as group B's does not help either
    fake = (*only_b, (1, sigs[6]))
    _refused(net, 6, dataclasses.replace(ask_s1, signatures=tuple(sorted(fake))),
             IntegrityError)
    # a request that contradicts the set the client signed is refused outright
    _refused(net, 1, dataclasses.replace(ask_s1, receiver=1, survivors=partial,
                                         signatures=all_sigs), ProtocolError)
    assert net.server.result is None


def test_consistency_request_checks() -> None:
    net = Net(8, mode="malicious", threshold=3)
    net.step(net.step(net.start()))
    _refused(net, 1, ConsistencyRequest(receiver=1, survivors=(2, 3, 4, 5, 6, 7, 8)),
             ProtocolError, "omits")
    _refused(net, 1, ConsistencyRequest(receiver=1, survivors=(1, 2)), AbortError)
    _refused(net, 1, ConsistencyRequest(receiver=1, survivors=(1, 2, 3, 4)), AbortError,
             "quorum")


def test_malicious_round_completes_when_the_server_is_honest() -> None:
    net = Net(8, mode="malicious", threshold=3)
    msgs = net.step(net.step(net.step(net.start()), skip=(8,)))
    assert all(isinstance(m, UnmaskRequest) for m in msgs)
    net.step(msgs)
    assert net.server.result is not None
    want = sum((net.xs[u] for u in range(1, 8)), np.zeros(6, np.uint32))
    np.testing.assert_array_equal(net.server.result.raw_sum, want)


# -- tampered, replayed and misaddressed share ciphertexts --------------------------------
def _forward_for(net: Net, u: int) -> tuple[ShareForward, list[Message]]:
    fwds = net.step(net.start())
    fwd = _for(fwds, u)
    assert isinstance(fwd, ShareForward)
    return fwd, fwds


def _swap(fwd: ShareForward, peer: int, ct: bytes, as_peer: int | None = None) -> ShareForward:
    entries = {s.peer: s.ciphertext for s in fwd.shares}
    entries[peer] = ct
    if as_peer is not None:
        entries[as_peer] = entries.pop(peer)
    return dataclasses.replace(fwd, shares=tuple(SealedShare(p, c)
                                                 for p, c in sorted(entries.items())))


def test_tampered_share_ciphertext() -> None:
    net = Net(6)
    fwd, _ = _forward_for(net, 2)
    ct = bytearray(dict((s.peer, s.ciphertext) for s in fwd.shares)[1])
    for pos in (0, 20, len(ct) - 1):  # nonce, body, tag
        bad = bytearray(ct)
        bad[pos] ^= 1
        _refused(net, 2, _swap(fwd, 1, bytes(bad)), IntegrityError, "AEAD")
    # nothing changed: the genuine message is still accepted
    (y,) = net.clients[2].handle(fwd)
    assert isinstance(y, MaskedInput)


def test_replayed_and_misaddressed_share_ciphertexts() -> None:
    net = Net(6)
    fwd2, fwds = _forward_for(net, 2)
    fwd3 = _for(fwds, 3)
    assert isinstance(fwd3, ShareForward)
    ct_1_to_2 = dict((s.peer, s.ciphertext) for s in fwd2.shares)[1]
    ct_1_to_3 = dict((s.peer, s.ciphertext) for s in fwd3.shares)[1]
    ct_4_to_2 = dict((s.peer, s.ciphertext) for s in fwd2.shares)[4]
    # misaddressed: 1's ciphertext for 3 delivered to 2
    _refused(net, 2, _swap(fwd2, 1, ct_1_to_3), IntegrityError)
    # re-labelled sender: 4's ciphertext for 2 presented as coming from 1
    _refused(net, 2, _swap(fwd2, 1, ct_4_to_2), IntegrityError)
    # replayed from another session between the same ids
    other = Net(6, session_id=2)
    o_fwd2, _ = _forward_for(other, 2)
    _refused(net, 2, _swap(fwd2, 1, dict((s.peer, s.ciphertext)
                                         for s in o_fwd2.shares)[1]), IntegrityError)
    # the right key but the wrong associated data (sender 3), or a plaintext
    # that names other parties: both refused
    key = net.clients[2]._peers[1].channel_key
    pt = aead.open(key, ct_1_to_2, binding.share_ad(net.cfg, 1, 2))
    wrong_ad = aead.seal(key, pt, binding.share_ad(net.cfg, 3, 2))
    _refused(net, 2, _swap(fwd2, 1, wrong_ad), IntegrityError)
    other_cfg = Net(6, session_id=9).cfg
    _refused(net, 2, _swap(fwd2, 1, aead.seal(key, pt, binding.share_ad(other_cfg, 1, 2))),
             IntegrityError)
    renamed = struct.pack(">II", 3, 2) + pt[8:]
    assert len(renamed) == SHARE_PLAINTEXT_BYTES
    _refused(net, 2, _swap(fwd2, 1, aead.seal(key, renamed, binding.share_ad(net.cfg, 1, 2))),
             IntegrityError, "names")
    # a forward from a client whose keys were never shown
    extra = (*fwd2.shares, SealedShare(99, ct_1_to_2))
    _refused(net, 2, dataclasses.replace(fwd2, shares=extra), ProtocolError)
    # a message addressed to someone else
    _refused(net, 2, fwd3, ProtocolError, "delivered to client 2")
    (y,) = net.clients[2].handle(fwd2)
    assert isinstance(y, MaskedInput)


# -- forged key advertisements --------------------------------------------------------------
def test_forged_key_advertisement_at_the_server() -> None:
    net = Net(5, mode="malicious", threshold=3)
    (adv,) = net.clients[1].start()
    assert isinstance(adv, AdvertiseKeys)
    # a key swap, or an advertisement re-labelled as another client's
    for forged in (dataclasses.replace(adv, c_public=adv.s_public, s_public=adv.c_public),
                   dataclasses.replace(adv, sender=2)):
        with pytest.raises(IntegrityError):
            net.server.handle(forged)
    assert 1 in net.server.waiting_for
    net.server.handle(adv)
    assert 1 not in net.server.waiting_for


def test_forged_key_broadcast_at_the_client() -> None:
    net = Net(6, mode="malicious", threshold=3)
    kb = _for(net.start(), 1)
    assert isinstance(kb, KeyBroadcast)
    attacker_key = b"\x09" * 32
    entries = list(kb.keys)
    entries[1] = dataclasses.replace(entries[1], c_public=attacker_key)
    _refused(net, 1, dataclasses.replace(kb, keys=tuple(entries)), IntegrityError)
    mine = list(kb.keys)
    mine[0] = dataclasses.replace(mine[0], s_public=attacker_key)
    _refused(net, 1, dataclasses.replace(kb, keys=tuple(mine)), ProtocolError, "own keys")
    dup = list(kb.keys)
    dup[2] = dataclasses.replace(dup[2], c_public=dup[1].c_public)  # not what 3 signed
    _refused(net, 1, dataclasses.replace(kb, keys=tuple(dup)), IntegrityError)
    _refused(net, 1, dataclasses.replace(kb, keys=kb.keys[:2]), AbortError)
    (out,) = net.clients[1].handle(kb)
    assert isinstance(out, ShareKeys)


def test_low_order_public_key_is_excluded() -> None:
    net = Net(5, threshold=3)
    kb = _for(net.start(), 1)
    assert isinstance(kb, KeyBroadcast)
    entries = list(kb.keys)
    entries[1] = dataclasses.replace(entries[1], c_public=bytes(32))
    (out,) = net.clients[1].handle(dataclasses.replace(kb, keys=tuple(entries)))
    assert isinstance(out, ShareKeys)  # the neighbour is left out, the client goes on
    assert {s.peer for s in out.shares} == {3, 4, 5}


# -- a client that misbehaves ------------------------------------------------------------
def test_wrong_length_vector_and_wrong_round_from_a_client() -> None:
    net = Net(5, threshold=3)
    fwds = net.step(net.start())
    masked = net.to_clients(fwds)
    good = masked[0]
    assert isinstance(good, MaskedInput)
    data = encode(good, net.cfg)
    head = len(data) - 4 * 6 - 9
    short = data[:head + 1] + struct.pack(">Q", 5) + data[head + 9 : -4]
    with pytest.raises(ProtocolError, match="length"):
        decode(short, net.cfg)
    with pytest.raises(ProtocolError):
        net.server.handle(MaskedInput(sender=good.sender, vector=good.vector[:5]))
    with pytest.raises(ProtocolError):
        net.server.handle(MaskedInput(sender=good.sender, vector=good.vector.astype(np.uint64)))
    with pytest.raises(ProtocolError, match="closed"):  # a share message, one round late
        net.server.handle(ShareKeys(sender=1, shares=()))
    with pytest.raises(ProtocolError):  # no consistency round in semi-honest mode
        net.server.handle(ConsistencySignature(sender=1, signature=bytes(64)))
    with pytest.raises(ProtocolError):  # a message from the future
        net.server.handle(UnmaskResponse(sender=1, shares=()))
    assert good.sender in net.server.waiting_for  # nothing was recorded
    reqs = net.to_server(masked)
    net.step(reqs)
    assert net.server.result is not None
    np.testing.assert_array_equal(net.server.result.raw_sum,
                                  sum((net.xs[u] for u in net.xs), np.zeros(6, np.uint32)))


def test_client_refuses_messages_of_the_wrong_round() -> None:
    net = Net(5, threshold=3)
    kbs = net.start()
    c = net.clients[1]
    with pytest.raises(ProtocolError, match="not accepted"):
        c.handle(UnmaskRequest(receiver=1, survivors=(1, 2, 3), dropped=()))
    with pytest.raises(ProtocolError, match="not accepted"):
        c.handle(ShareForward(receiver=1, shares=()))
    with pytest.raises(ProtocolError, match="does not accept"):
        c.handle(AdvertiseKeys(sender=2, receiver=1, c_public=bytes(32), s_public=bytes(32)))
    c.handle(_for(kbs, 1))
    with pytest.raises(ProtocolError, match="closed"):
        c.handle(_for(kbs, 1))


def test_unmask_response_that_does_not_match_the_request() -> None:
    net = Net(5, threshold=3)
    reqs = net.step(net.step(net.start()))
    resp = net.clients[1].handle(_for(reqs, 1))[0]
    assert isinstance(resp, UnmaskResponse)
    with pytest.raises(ProtocolError, match="asked for"):
        net.server.handle(dataclasses.replace(resp, shares=resp.shares[:-1]))
    wrong_kind = (dataclasses.replace(resp.shares[0], kind="s"), *resp.shares[1:])
    with pytest.raises(ProtocolError, match="asked for"):
        net.server.handle(dataclasses.replace(resp, shares=wrong_kind))
    moved = dataclasses.replace(resp.shares[1].share, index=resp.shares[1].share.index % 5 + 1)
    wrong_idx = (resp.shares[0], dataclasses.replace(resp.shares[1], share=moved),
                 *resp.shares[2:])
    with pytest.raises(ProtocolError, match="index"):
        net.server.handle(dataclasses.replace(resp, shares=wrong_idx))
    net.server.handle(resp)  # the genuine one is still welcome
    assert 1 not in net.server.waiting_for


def test_a_lying_share_holder() -> None:
    """A client that lies about an s-share is caught (the rebuilt mask key must
    match its advertised public key); one that lies about a b-share corrupts
    the sum undetectably: SecAgg protects privacy, not integrity, against
    malicious clients (see the threat model)."""
    from secagg.shamir import PRIME

    def run(kind: str) -> Net:
        net = Net(6, threshold=3)
        reqs = net.step(net.step(net.start()), skip=(6,))
        replies = net.to_clients(reqs)
        liar = next(r for r in replies if r.sender == 1)
        assert isinstance(liar, UnmaskResponse)
        forged = tuple(
            dataclasses.replace(s, share=dataclasses.replace(
                s.share, value=(s.share.value + 1) % PRIME)) if s.kind == kind else s
            for s in liar.shares)
        replies = [dataclasses.replace(liar, shares=forged) if r is liar else r
                   for r in replies]
        for r in replies[:-1]:
            net.server.handle(net.wire(r))
        if kind == "s":
            with pytest.raises(IntegrityError):
                net.server.handle(net.wire(replies[-1]))
            assert net.server.result is None and net.server.round == "unmask"
        else:
            net.server.handle(net.wire(replies[-1]))
        return net

    run("s")
    net = run("b")
    assert net.server.result is not None
    honest = sum((net.xs[u] for u in range(1, 6)), np.zeros(6, np.uint32))
    assert not np.array_equal(net.server.result.raw_sum, honest)
