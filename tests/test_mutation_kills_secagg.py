"""Bindings and checks of the pairwise-mask protocol that a one-line bug could
weaken unnoticed, each tested against public behaviour (real parties, the
real codec): every test here fails with its check weakened."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from protocols.secagg import (
    KeyBroadcast,
    Message,
    SecAggClient,
    SecAggConfig,
    SecAggServer,
    decode,
    encode,
)
from secagg import kex
from secagg.errors import IntegrityError, ProtocolError
from secagg.sign import SigningKey


def _messages(envelopes: list[Any]) -> list[Message]:
    return [e.message for e in envelopes]


def _malicious(n: int, t: int) -> tuple[SecAggConfig, dict[int, SigningKey]]:
    keys = {u: SigningKey.generate() for u in range(1, n + 1)}
    cfg = SecAggConfig.create(keys, 3, threshold=t, degree="complete", mode="malicious",
                              corrupt_fraction=0.0, session_id=5,
                              registry={u: k.verify_key() for u, k in keys.items()})
    return cfg, keys


def _key_broadcasts(cfg: SecAggConfig, keys: dict[int, SigningKey]
                    ) -> tuple[dict[int, SecAggClient], dict[int, KeyBroadcast]]:
    rng = np.random.default_rng(3)
    clients = {u: SecAggClient(cfg, u, signing_key=keys[u],
                               input=rng.integers(0, 2**32, cfg.dimension, dtype=np.uint32))
               for u in cfg.client_ids}
    server = SecAggServer(cfg)
    out: list[Message] = []
    for c in clients.values():
        for m in _messages(c.start()):
            out += _messages(server.handle(decode(encode(m, cfg), cfg)))
    assert all(isinstance(m, KeyBroadcast) for m in out) and len(out) == cfg.n
    return clients, {m.receiver: m for m in out}  # type: ignore[misc]


@pytest.mark.parametrize("field", ["c_public", "s_public"])
def test_an_advertised_key_swapped_under_its_signature_is_refused(field: str) -> None:
    """The advertisement signature covers both public keys: a server that shows
    a neighbour's mask key (or channel key) replaced by one it chose, with the
    neighbour's signature kept, is caught (it would learn the pairwise seed)."""
    cfg, keys = _malicious(4, 3)
    clients, kb = _key_broadcasts(cfg, keys)
    mine = kb[1]
    fake = kex.PrivateKey.generate().public_key().to_bytes()
    swapped = tuple(dataclasses.replace(e, **{field: fake}) if e.client == 2 else e
                    for e in mine.keys)
    forged = KeyBroadcast(receiver=1, keys=swapped)
    with pytest.raises(IntegrityError):
        clients[1].handle(decode(encode(forged, cfg), cfg))
    assert clients[1].state == "advertised"
    clients[1].handle(decode(encode(mine, cfg), cfg))
    assert clients[1].state == "shared"


def _to_consistency(n: int, t: int, absent: frozenset[int] = frozenset()) -> tuple[
        SecAggConfig, dict[int, SigningKey], dict[int, SecAggClient], dict[int, Message],
        dict[int, Message]]:
    """A malicious-mode run up to the consistency requests; the clients in
    ``absent`` send no masked input (they drop after sharing keys). Returns
    the config, identity keys, clients, consistency requests and adverts."""
    cfg, keys = _malicious(n, t)
    server = SecAggServer(cfg)
    wire = lambda m: decode(encode(m, cfg), cfg)  # noqa: E731
    clients = {u: SecAggClient(cfg, u, signing_key=keys[u],
                               input=np.zeros(cfg.dimension, dtype=np.uint32))
               for u in cfg.client_ids}
    adverts = {u: _messages(c.start())[0] for u, c in clients.items()}
    msgs: list[Message] = []
    for m in adverts.values():
        msgs += _messages(server.handle(wire(m)))
    for _ in range(2):  # share_keys, then masked_input
        replies = [r for m in msgs for r in _messages(clients[m.receiver].handle(wire(m)))]
        if server.round == "masked_input":
            replies = [r for r in replies if r.sender not in absent]
        msgs = []
        for r in replies:
            msgs += _messages(server.handle(wire(r)))
        if not msgs:
            msgs = _messages(server.close_round())
    assert server.round == "consistency"
    return cfg, keys, clients, {m.receiver: m for m in msgs}, adverts


def test_a_signature_over_another_survivor_set_of_the_same_size_is_refused() -> None:
    """The consistency signature covers the survivor ids, not only their number."""
    from protocols.secagg import ConsistencySignature, UnmaskRequest, binding, freshness

    cfg, keys, clients, reqs, _ = _to_consistency(9, 3, absent=frozenset({9}))
    wire = lambda m: decode(encode(m, cfg), cfg)  # noqa: E731
    sigs = {u: m.signature for u in sorted(reqs)
            for m in _messages(clients[u].handle(wire(reqs[u])))
            if isinstance(m, ConsistencySignature)}
    u3 = tuple(range(1, 9))
    assert sorted(sigs) == list(u3)
    session = freshness.session_binding(cfg, reqs[1].roster)
    swapped = (*range(1, 8), 9)  # as many survivors, one of them another client
    forged = keys[2].sign(binding.consistency_payload(cfg, swapped, session=session))
    chosen = ((1, sigs[1]), (2, forged), (3, sigs[3]), (4, sigs[4]), (5, sigs[5]))
    assert len(chosen) == cfg.quorum
    bad = UnmaskRequest(receiver=1, survivors=u3, dropped=(9,), signatures=chosen)
    with pytest.raises(IntegrityError):
        clients[1].handle(wire(bad))
    assert clients[1].state == "signed"
    good = UnmaskRequest(receiver=1, survivors=u3, dropped=(9,),
                         signatures=tuple((u, sigs[u]) for u in (1, 2, 3, 4, 5)))
    clients[1].handle(wire(good))
    assert clients[1].state == "done"


def test_a_roster_entry_with_another_mask_key_is_refused() -> None:
    """A roster entry binds both of a client's keys of this run: an entry with
    this client's channel key but another mask key is a replay."""
    from protocols.secagg import ConsistencyRequest, freshness

    cfg, _, clients, reqs, adverts = _to_consistency(5, 3)
    wire = lambda m: decode(encode(m, cfg), cfg)  # noqa: E731
    req = reqs[1]
    assert isinstance(req, ConsistencyRequest)
    other = kex.PrivateKey.generate().public_key().to_bytes()
    for who in (1, 2):  # this client's own entry, then a neighbour's
        entry = freshness.roster_entry(adverts[who].c_public, other)  # type: ignore[attr-defined]
        roster = tuple((u, entry if u == who else e) for u, e in req.roster)
        with pytest.raises(IntegrityError):
            clients[1].handle(wire(dataclasses.replace(req, roster=roster)))
        assert clients[1].state == "masked"
    clients[1].handle(wire(req))
    assert clients[1].state == "signed"


def _signed(n: int, absent: frozenset[int]) -> tuple[
        SecAggConfig, dict[int, SigningKey], dict[int, SecAggClient], dict[int, bytes], bytes]:
    """A malicious-mode run in which every client not in ``absent`` signed the
    survivor set; returns the signatures and the session binding."""
    from protocols.secagg import ConsistencySignature, freshness

    cfg, keys, clients, reqs, _ = _to_consistency(n, 3, absent=absent)
    wire = lambda m: decode(encode(m, cfg), cfg)  # noqa: E731
    sigs = {u: m.signature for u in sorted(reqs)
            for m in _messages(clients[u].handle(wire(reqs[u])))
            if isinstance(m, ConsistencySignature)}
    return cfg, keys, clients, sigs, freshness.session_binding(cfg, reqs[1].roster)


def test_a_signature_from_a_client_outside_the_survivor_set_does_not_count() -> None:
    """A (corrupt) client that sent no input signs the very set the others
    signed: its signature must not help reach the quorum, or the quorum no
    longer guarantees an honest signer shared by two requests."""
    from protocols.secagg import UnmaskRequest, binding

    cfg, keys, clients, sigs, session = _signed(9, frozenset({9}))
    wire = lambda m: decode(encode(m, cfg), cfg)  # noqa: E731
    u3 = tuple(range(1, 9))
    outsider = keys[9].sign(binding.consistency_payload(cfg, u3, session=session))
    chosen = ((1, sigs[1]), (2, sigs[2]), (3, sigs[3]), (4, sigs[4]), (9, outsider))
    assert len(chosen) == cfg.quorum
    with pytest.raises(IntegrityError):
        clients[1].handle(wire(UnmaskRequest(receiver=1, survivors=u3, dropped=(9,),
                                             signatures=chosen)))
    assert clients[1].state == "signed"


def test_an_unmask_request_naming_other_survivors_than_the_signed_set_is_refused() -> None:
    """The survivors of an unmask request are exactly the signed set's members
    among the client's neighbours: not one more (a client that sent no input)
    and not one fewer."""
    from protocols.secagg import UnmaskRequest

    cfg, _, clients, sigs, _ = _signed(9, frozenset({9}))
    wire = lambda m: decode(encode(m, cfg), cfg)  # noqa: E731
    quorum = tuple((u, sigs[u]) for u in (1, 2, 3, 4, 5))
    for survivors, dropped in (((*range(1, 9), 9), ()), (tuple(range(1, 8)), (9,))):
        bad = UnmaskRequest(receiver=1, survivors=survivors, dropped=dropped,
                            signatures=quorum)
        with pytest.raises(ProtocolError, match="signed survivor set"):
            clients[1].handle(wire(bad))
        assert clients[1].state == "signed"


def _corrupt_share_forward(index_shift: int, holder_shift: int) -> tuple[
        SecAggClient, Message]:
    """Client 1 (honest) and client 2, played here by hand: 2 seals for 1,
    under their genuine channel key, its shares with the share index moved
    by ``index_shift`` and the holder index in the plaintext by ``holder_shift``.
    Returns client 1 (keys exchanged) and the share forward carrying them."""
    import struct

    from protocols.secagg import (
        AdvertiseKeys,
        KeyEntry,
        SealedShare,
        ShareForward,
        binding,
    )
    from secagg import aead, prg, shamir

    cfg = SecAggConfig.create((1, 2, 3), 3, threshold=2, degree="complete", session_id=9)
    wire = lambda m: decode(encode(m, cfg), cfg)  # noqa: E731
    one = SecAggClient(cfg, 1, input=np.zeros(cfg.dimension, dtype=np.uint32))
    (adv1,) = _messages(one.start())
    assert isinstance(adv1, AdvertiseKeys)
    c2, s2 = kex.PrivateKey.generate(), kex.PrivateKey.generate()
    entries = (KeyEntry(1, adv1.c_public, adv1.s_public, b""),
               KeyEntry(2, c2.public_key().to_bytes(), s2.public_key().to_bytes(), b""))
    one.handle(wire(KeyBroadcast(receiver=1, keys=entries)))
    b_shares, s_shares = shamir.split_many([prg.fresh_seed(), s2.to_bytes()],
                                           len(cfg.holders(2)), cfg.threshold)
    idx = cfg.share_index(2, 1)
    pick = (idx - 1 + index_shift) % len(b_shares)
    pt = (struct.pack(">II", cfg.index_of(2), cfg.index_of(1) + holder_shift)
          + b_shares[pick].to_bytes() + s_shares[pick].to_bytes())
    key = kex.agree(c2, kex.PublicKey.from_bytes(adv1.c_public),
                    binding.kex_info(cfg, binding.SHARE_ENCRYPTION, 2, 1))
    sealed = aead.seal(key, pt, binding.share_ad(cfg, 2, 1))
    return one, wire(ShareForward(receiver=1, shares=(SealedShare(2, sealed),)))


def test_a_sealed_share_with_another_holders_index_is_refused() -> None:
    """A corrupt neighbour that seals a share meant for another holder (a
    valid share, wrong index) is caught when the share arrives, not later
    at the server, which would then refuse the honest holder's answer."""
    one, fwd = _corrupt_share_forward(index_shift=1, holder_shift=0)
    with pytest.raises(ProtocolError, match="index"):
        one.handle(fwd)
    assert one.state == "shared"


def test_a_sealed_share_naming_another_holder_is_refused() -> None:
    one, fwd = _corrupt_share_forward(index_shift=0, holder_shift=1)
    with pytest.raises(IntegrityError, match="indices"):
        one.handle(fwd)
    assert one.state == "shared"


def test_a_sealed_share_made_by_hand_correctly_is_accepted() -> None:
    one, fwd = _corrupt_share_forward(index_shift=0, holder_shift=0)
    one.handle(fwd)
    assert one.state == "masked"


@pytest.mark.parametrize("copied", ["own", "neighbour"])
def test_a_neighbour_showing_a_copied_mask_key_is_left_out(copied: str) -> None:
    """A mask key that another entry also shows (this client's own, or
    another neighbour's) is one the server should have refused: the client
    leaves that neighbour out and shares nothing with it."""
    from protocols.secagg import AdvertiseKeys, KeyEntry, ShareKeys

    cfg = SecAggConfig.create((1, 2, 3, 4), 3, threshold=2, degree="complete", session_id=9)
    wire = lambda m: decode(encode(m, cfg), cfg)  # noqa: E731
    one = SecAggClient(cfg, 1, input=np.zeros(cfg.dimension, dtype=np.uint32))
    (adv1,) = _messages(one.start())
    assert isinstance(adv1, AdvertiseKeys)
    pub = {u: (kex.PrivateKey.generate().public_key().to_bytes(),
               kex.PrivateKey.generate().public_key().to_bytes()) for u in (2, 3, 4)}
    s_copy = adv1.s_public if copied == "own" else pub[3][1]
    entries = (KeyEntry(1, adv1.c_public, adv1.s_public, b""),
               KeyEntry(2, pub[2][0], s_copy, b""),
               KeyEntry(3, *pub[3], b""),
               KeyEntry(4, *pub[4], b""))
    (out,) = _messages(one.handle(wire(KeyBroadcast(receiver=1, keys=entries))))
    assert isinstance(out, ShareKeys)
    left_out = {2, 3} if copied == "neighbour" else {2}
    assert {s.peer for s in out.shares} == {2, 3, 4} - left_out


def test_left_out_neighbours_do_not_count_towards_the_threshold() -> None:
    """With two of four neighbours left out (they show one mask key), two
    usable members remain, below the threshold 3: the client aborts."""
    from protocols.secagg import AdvertiseKeys, KeyEntry
    from secagg.errors import AbortError

    cfg = SecAggConfig.create((1, 2, 3, 4), 3, threshold=3, degree="complete", session_id=9)
    wire = lambda m: decode(encode(m, cfg), cfg)  # noqa: E731
    one = SecAggClient(cfg, 1, input=np.zeros(cfg.dimension, dtype=np.uint32))
    (adv1,) = _messages(one.start())
    assert isinstance(adv1, AdvertiseKeys)
    pub = {u: kex.PrivateKey.generate().public_key().to_bytes() for u in (2, 3, 4, 5)}
    entries = (KeyEntry(1, adv1.c_public, adv1.s_public, b""),
               KeyEntry(2, pub[2], pub[5], b""),
               KeyEntry(3, pub[3], pub[5], b""),
               KeyEntry(4, pub[4], kex.PrivateKey.generate().public_key().to_bytes(), b""))
    with pytest.raises(AbortError, match="usable"):
        one.handle(wire(KeyBroadcast(receiver=1, keys=entries)))
    assert one.state == "advertised"


def test_the_server_refuses_an_advertisement_showing_one_key_twice() -> None:
    """One key as both channel and mask key would make every honest neighbour
    leave the client out; the server drops it at the advertise round."""
    from protocols.secagg import AdvertiseKeys

    cfg = SecAggConfig.create((1, 2, 3), 3, threshold=2, degree="complete", session_id=9)
    server = SecAggServer(cfg)
    key = kex.PrivateKey.generate().public_key().to_bytes()
    with pytest.raises(ProtocolError, match="same key twice"):
        server.handle(decode(encode(AdvertiseKeys(sender=1, c_public=key, s_public=key,
                                                  signature=b""), cfg), cfg))
    assert 1 in server.waiting_for
    other = kex.PrivateKey.generate().public_key().to_bytes()
    server.handle(decode(encode(AdvertiseKeys(sender=1, c_public=key, s_public=other,
                                              signature=b""), cfg), cfg))
    assert 1 not in server.waiting_for


def test_the_server_aborts_when_a_dropped_clients_share_holders_are_below_t() -> None:
    """SecAgg+ ring: every survivor keeps t answering members of its closed
    neighbourhood, but the dropped client v has only t-1 answering
    neighbours, so its mask key cannot be rebuilt: the server aborts (no
    output) instead of failing inside the reconstruction."""
    from itertools import combinations

    from secagg.errors import AbortError

    t, v = 3, 8
    for seed in range(64):
        cfg = SecAggConfig.create(tuple(range(1, 9)), 3, threshold=t, degree=4,
                                  session_id=9, graph_seed=bytes([seed + 1]) * 32)
        nb = cfg.neighbours
        u3 = [u for u in cfg.client_ids if u != v]
        answering = next(
            (set(r) for k in range(t, len(u3) + 1) for r in combinations(u3, k)
             if len(nb[v] & set(r)) == t - 1
             and all(len((nb[u] | {u}) & set(r)) >= t for u in u3)), None)
        if answering is not None:
            break
    assert answering is not None
    wire = lambda m: decode(encode(m, cfg), cfg)  # noqa: E731
    clients = {u: SecAggClient(cfg, u, input=np.zeros(cfg.dimension, dtype=np.uint32))
               for u in cfg.client_ids}
    server = SecAggServer(cfg)
    msgs: list[Message] = []
    for c in clients.values():
        for m in _messages(c.start()):
            msgs += _messages(server.handle(wire(m)))
    for rnd in ("share_keys", "masked_input"):
        assert server.round == rnd
        nxt: list[Message] = []
        for m in msgs:
            for r in _messages(clients[m.receiver].handle(wire(m))):
                if rnd == "masked_input" and r.sender == v:
                    continue  # v drops after sharing its keys
                nxt += _messages(server.handle(wire(r)))
        msgs = _messages(server.close_round()) if server.round == rnd else nxt
    assert server.round == "unmask"
    for m in msgs:
        if m.receiver in answering:
            for r in _messages(clients[m.receiver].handle(wire(m))):
                server.handle(wire(r))
    with pytest.raises(AbortError, match=f"dropped client {v}"):
        server.close_round()
    assert server.result is None
