"""Each security check of the pairwise-mask protocol, pinned at its boundary.

Written against public behaviour (real parties, the real codec), so that
weakening any one check (dropping it, or moving a comparison by one) makes
a test here fail."""

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
    Message,
    RevealedShare,
    SealedShare,
    SecAggClient,
    SecAggConfig,
    SecAggServer,
    ShareForward,
    UnmaskRequest,
    UnmaskResponse,
    binding,
    decode,
    encode,
    freshness,
    partition,
)
from protocols.secagg.config import derive_malicious_parameters
from secagg import aead, kex, shamir
from secagg.errors import (
    AbortError,
    EncodingError,
    IntegrityError,
    ParameterError,
    ProtocolError,
)
from secagg.sign import SigningKey

_Messages = MessageParty  # the parties' verbs, as message objects


class Party(WiredParties):
    """Real clients and a server for one configuration."""

    def __init__(self, cfg: SecAggConfig, keys: dict[int, SigningKey]) -> None:
        self.cfg = cfg
        rng = np.random.default_rng(1)
        self.xs = {u: rng.integers(0, 2**32, cfg.dimension, dtype=np.uint32)
                   for u in cfg.client_ids}
        self.clients: dict[int, Any] = {
            u: _Messages(SecAggClient(cfg, u, signing_key=keys.get(u), input=self.xs[u]))
            for u in cfg.client_ids}
        self.server: Any = _Messages(SecAggServer(cfg))

    def replies(self, msgs: list[Message], only: set[int] | None = None) -> list[Message]:
        return [r for m in msgs if only is None or m.receiver in only
                for r in self.clients[m.receiver].handle(self.wire(m))]

    deliver = WiredParties.to_server


def _keys(n: int) -> dict[int, SigningKey]:
    return {u: SigningKey.generate() for u in range(1, n + 1)}


def _malicious_cfg(n: int, t: int, keys: dict[int, SigningKey], **kw: object) -> SecAggConfig:
    return SecAggConfig.create(keys, 3, threshold=t, degree="complete", mode="malicious",
                               corrupt_fraction=0.0, session_id=5,
                               registry={u: k.verify_key() for u, k in keys.items()},
                               **kw)  # type: ignore[arg-type]


# -- consistency signatures from clients inside the set, over another set ----------------------
def test_in_set_signature_over_another_set_is_refused() -> None:
    keys = _keys(8)
    p = Party(_malicious_cfg(8, 3, keys), keys)
    cons = p.deliver(p.replies(p.deliver(p.replies(p.deliver(
        [m for c in p.clients.values() for m in c.start()])))))
    assert all(isinstance(m, ConsistencyRequest) for m in cons)
    req1 = next(m for m in cons if m.receiver == 1)
    assert isinstance(req1, ConsistencyRequest)
    sigs = {m.sender: m.signature for m in p.replies(cons)
            if isinstance(m, ConsistencySignature)}
    q = p.cfg.quorum
    assert q == 5
    session = freshness.session_binding(p.cfg, req1.roster)
    other = binding.consistency_payload(p.cfg, (1, 2, 3, 4, 5, 6, 7), session=session)
    stale = binding.consistency_payload(p.cfg, tuple(range(1, 9)), session=bytes(32))
    full = tuple(range(1, 9))
    for forged in (keys[2].sign(other), keys[2].sign(stale), sigs[3]):
        # exactly the quorum, all signers inside the set, one signature not over it
        chosen = ((1, sigs[1]), (2, forged), (4, sigs[4]), (5, sigs[5]), (6, sigs[6]))
        req = UnmaskRequest(receiver=1, survivors=full, dropped=(), signatures=chosen)
        with pytest.raises(IntegrityError):
            p.clients[1].handle(p.wire(req))
        assert p.clients[1].state == "signed"
    good = tuple((u, sigs[u]) for u in (1, 2, 4, 5, 6))
    (resp,) = p.clients[1].handle(p.wire(UnmaskRequest(receiver=1, survivors=full,
                                                       dropped=(), signatures=good)))
    assert isinstance(resp, UnmaskResponse)


def test_quorum_minus_one_signatures_are_refused_by_a_client() -> None:
    keys = _keys(8)
    p = Party(_malicious_cfg(8, 3, keys), keys)
    cons = p.deliver(p.replies(p.deliver(p.replies(p.deliver(
        [m for c in p.clients.values() for m in c.start()])))))
    sigs = tuple((m.sender, m.signature) for m in p.replies(cons)
                 if isinstance(m, ConsistencySignature))
    full = tuple(range(1, 9))
    with pytest.raises(AbortError, match="quorum"):
        p.clients[1].handle(UnmaskRequest(receiver=1, survivors=full, dropped=(),
                                          signatures=sigs[:4]))
    (resp,) = p.clients[1].handle(UnmaskRequest(receiver=1, survivors=full, dropped=(),
                                                signatures=sigs[:5]))
    assert isinstance(resp, UnmaskResponse)


# -- the configuration digest in every binding -------------------------------------------------
def _twins() -> tuple[SecAggConfig, SecAggConfig, dict[int, SigningKey]]:
    keys = _keys(6)
    a = _malicious_cfg(6, 3, keys)
    b = _malicious_cfg(6, 4, keys)  # same session id, another threshold
    assert a.session_id == b.session_id and a.digest != b.digest
    return a, b, keys


def test_two_configs_with_one_session_id_bind_differently() -> None:
    a, b, _ = _twins()
    c_pub, s_pub = bytes(range(32)), bytes(range(32, 64))
    session = bytes(32)
    assert binding.share_ad(a, 1, 2) != binding.share_ad(b, 1, 2)
    assert binding.mask_label(a, "self") != binding.mask_label(b, "self")
    assert binding.mask_label(a, "pair") != binding.mask_label(b, "pair")
    assert binding.mask_label(a, "self") != binding.mask_label(a, "pair")
    assert (binding.advertise_payload(a, 1, c_pub, s_pub)
            != binding.advertise_payload(b, 1, c_pub, s_pub))
    assert (binding.consistency_payload(a, (1, 2, 3), session=session)
            != binding.consistency_payload(b, (1, 2, 3), session=session))
    x, y = kex.PrivateKey.generate(), kex.PrivateKey.generate()
    for purpose in (binding.SHARE_ENCRYPTION, binding.PAIRWISE_MASK):
        ka = kex.agree(x, y.public_key(), binding.kex_info(a, purpose, 1, 2))
        kb = kex.agree(x, y.public_key(), binding.kex_info(b, purpose, 1, 2))
        assert ka != kb
    assert (kex.agree(x, y.public_key(), binding.kex_info(a, binding.SHARE_ENCRYPTION, 1, 2))
            != kex.agree(x, y.public_key(), binding.kex_info(a, binding.PAIRWISE_MASK, 1, 2)))
    assert freshness.session_binding(a, ()) != freshness.session_binding(b, ())


def test_material_of_one_config_is_refused_under_its_twin() -> None:
    a, b, keys = _twins()
    pa = Party(a, keys)
    # an advertisement signed under the twin configuration
    c = _Messages(SecAggClient(b, 1, signing_key=keys[1]))
    (adv_b,) = c.start()
    assert isinstance(adv_b, AdvertiseKeys)
    with pytest.raises(IntegrityError):
        pa.server.handle(adv_b)
    assert 1 in pa.server.waiting_for
    # a share sealed with the right channel key but the twin's associated data
    fwds = pa.deliver(pa.replies(pa.deliver(
        [m for cl in pa.clients.values() for m in cl.start()])))
    fwd = next(m for m in fwds if m.receiver == 2)
    assert isinstance(fwd, ShareForward)
    key = pa.clients[2]._peers[1].channel_key
    ct = dict((s.peer, s.ciphertext) for s in fwd.shares)[1]
    pt = aead.open(key, ct, binding.share_ad(a, 1, 2))
    resealed = aead.seal(key, pt, binding.share_ad(b, 1, 2))
    swapped = tuple(SealedShare(s.peer, resealed if s.peer == 1 else s.ciphertext)
                    for s in fwd.shares)
    with pytest.raises(IntegrityError):
        pa.clients[2].handle(dataclasses.replace(fwd, shares=swapped))
    assert pa.clients[2].state == "shared"
    # a consistency signature over the same set and roster, under the twin
    cons = pa.deliver(pa.replies(fwds))
    req = next(m for m in cons if m.receiver == 3)
    assert isinstance(req, ConsistencyRequest)
    sess_b = freshness.session_binding(b, req.roster)
    sig_b = keys[3].sign(binding.consistency_payload(b, req.survivors, session=sess_b))
    with pytest.raises(IntegrityError):
        pa.server.handle(ConsistencySignature(sender=3, signature=sig_b))
    # and the codec refuses the twin's bytes outright
    with pytest.raises(ProtocolError, match="digest"):
        decode(encode(req, b), a)


# -- the threshold recorded in a share -------------------------------------------------------
def test_a_share_with_another_threshold_is_refused_by_client_and_server() -> None:
    """A corrupt client seals, under its genuine channel key, shares that
    carry another threshold: the receiver refuses them; and the server
    refuses an unmask response whose share carries another threshold."""
    keys = _keys(6)
    p = Party(_malicious_cfg(6, 3, keys), keys)
    fwds = p.deliver(p.replies(p.deliver([m for c in p.clients.values() for m in c.start()])))
    fwd = next(m for m in fwds if m.receiver == 2)
    assert isinstance(fwd, ShareForward)
    key = p.clients[2]._peers[1].channel_key
    ct = dict((s.peer, s.ciphertext) for s in fwd.shares)[1]
    pt = aead.open(key, ct, binding.share_ad(p.cfg, 1, 2))
    b = shamir.Share.from_bytes(pt[8:8 + shamir.SHARE_BYTES])
    s = shamir.Share.from_bytes(pt[8 + shamir.SHARE_BYTES:])
    for bad_t in (2, 4):
        for which in ("b", "s"):
            nb = shamir.Share(b.index, bad_t, b.value) if which == "b" else b
            ns = shamir.Share(s.index, bad_t, s.value) if which == "s" else s
            forged = aead.seal(key, struct.pack(">II", 1, 2) + nb.to_bytes() + ns.to_bytes(),
                               binding.share_ad(p.cfg, 1, 2))
            shares = tuple(SealedShare(x.peer, forged if x.peer == 1 else x.ciphertext)
                           for x in fwd.shares)
            with pytest.raises(ProtocolError, match="threshold"):
                p.clients[2].handle(dataclasses.replace(fwd, shares=shares))
            assert p.clients[2].state == "shared"
    cons = p.deliver(p.replies(fwds))
    reqs = p.deliver(p.replies(cons))
    resp = p.replies([m for m in reqs if m.receiver == 4])[0]
    assert isinstance(resp, UnmaskResponse)
    r0 = resp.shares[0]
    wrong = RevealedShare(r0.owner, r0.kind,
                          shamir.Share(r0.share.index, 4, r0.share.value))
    with pytest.raises(ProtocolError, match="threshold"):
        p.server.handle(dataclasses.replace(resp, shares=(wrong, *resp.shares[1:])))
    assert 4 in p.server.waiting_for
    p.server.handle(resp)


# -- the server alone: thresholds and quorum at their exact boundary --------------------------
@pytest.mark.parametrize("rnd", ["advertise", "share_keys", "masked_input", "unmask"])
def test_server_aborts_at_t_minus_one_members_not_at_t(rnd: str) -> None:
    n, t = 7, 4
    for members, aborts in ((t - 1, True), (t, False)):
        cfg = SecAggConfig.create(range(1, n + 1), 3, threshold=t, degree="complete",
                                  session_id=5)
        p = Party(cfg, {})
        msgs: list[Message] = [m for c in p.clients.values() for m in c.start()]
        order = ["advertise", "share_keys", "masked_input", "unmask"]
        for r in order:
            live = set(range(1, members + 1)) if r == rnd else None
            if r == rnd:
                msgs = [m for m in msgs if m.sender in live]  # type: ignore[operator]
            if r == rnd and aborts:
                for m in msgs:
                    p.server.handle(p.wire(m))
                with pytest.raises(AbortError):
                    p.server.close_round()
                assert p.server.state == "aborted" and p.server.result is None
                break
            out = p.deliver(msgs)
            if r == "unmask":
                assert p.server.result is not None
                break
            msgs = p.replies(out, only=live or set(p.clients))
            if r == rnd:
                # the dropped clients are gone for good
                msgs = [m for m in msgs if m.sender in (live or set(p.clients))]
        if not aborts:
            assert p.server.result is not None


@pytest.mark.parametrize("rnd", ["masked_input", "consistency"])
def test_server_aborts_at_quorum_minus_one_not_at_quorum(rnd: str) -> None:
    n, t = 8, 3
    for members, aborts in ((4, True), (5, False)):
        keys = _keys(n)
        cfg = _malicious_cfg(n, t, keys)
        assert cfg.quorum == 5
        p = Party(cfg, keys)
        msgs: list[Message] = [m for c in p.clients.values() for m in c.start()]
        kept = set(range(1, members + 1))
        for r in ("advertise", "share_keys", "masked_input", "consistency", "unmask"):
            if r == rnd:
                msgs = [m for m in msgs if m.sender in kept]
                if aborts:
                    for m in msgs:
                        p.server.handle(p.wire(m))
                    with pytest.raises(AbortError):
                        p.server.close_round()
                    assert p.server.state == "aborted" and p.server.result is None
                    break
            out = p.deliver(msgs)
            if r == "unmask":
                break
            msgs = p.replies(out)
        if not aborts:
            assert p.server.result is not None
            assert isinstance(p.server.result.raw_sum, np.ndarray)


def test_key_broadcast_entries_are_the_live_neighbourhood() -> None:
    """Sanity of the harness above: the server shows each client its live
    closed neighbourhood, own keys included."""
    cfg = SecAggConfig.create(range(1, 5), 3, threshold=3, degree="complete", session_id=5)
    p = Party(cfg, {})
    kbs = p.deliver([m for c in p.clients.values() for m in c.start()])
    for m in kbs:
        assert isinstance(m, KeyBroadcast)
        assert [e.client for e in m.keys] == [1, 2, 3, 4]


# -- the roster of the consistency round (freshness anchor) ----------------------------------
def test_roster_checks() -> None:
    """The roster must carry this client's keys of this run (its freshness
    anchor, even if every other entry were replayed by corrupt clients that
    reuse keys), its neighbours' keys as shown, and every survivor."""
    keys = _keys(6)
    p = Party(_malicious_cfg(6, 3, keys), keys)
    cons = p.deliver(p.replies(p.deliver(p.replies(p.deliver(
        [m for c in p.clients.values() for m in c.start()])))))
    req = next(m for m in cons if m.receiver == 1)
    assert isinstance(req, ConsistencyRequest)
    roster = dict(req.roster)
    c1 = p.clients[1]
    for cid, why in ((1, "client 1's keys"), (2, "neighbour 2")):
        forged = tuple(sorted({**roster, cid: bytes(32)}.items()))
        with pytest.raises(IntegrityError, match=why):
            c1.handle(dataclasses.replace(req, roster=forged))
        assert c1.state == "masked"
    without_6 = tuple((c, e) for c, e in req.roster if c != 6)
    with pytest.raises(ProtocolError, match="not on the roster"):
        c1.handle(dataclasses.replace(req, roster=without_6))
    (sig,) = c1.handle(req)
    assert isinstance(sig, ConsistencySignature)


@pytest.mark.parametrize("rnd", ["advertise", "share_keys", "masked_input"])
def test_server_checks_every_neighbourhood_at_its_exact_threshold(rnd: str) -> None:
    """SecAgg+ (n = 10, k = 4, t = 3): more than t clients remain, but one
    client keeps exactly t - 1 members of its closed neighbourhood: abort;
    with exactly t: the round goes on."""
    from protocols.secagg.graph import ring_order

    for dropped_pos, aborts in (((9, 1, 2), True), ((1, 2), False)):
        cfg = SecAggConfig.create(range(1, 11), 3, threshold=3, degree=4, session_id=5,
                                  graph_seed=bytes(range(32)))
        ring = ring_order(cfg.client_ids, cfg.graph_seed)
        gone = {ring[i] for i in dropped_pos}
        p = Party(cfg, {})
        msgs: list[Message] = [m for c in p.clients.values() for m in c.start()]
        for r in ("advertise", "share_keys", "masked_input"):
            if r == rnd:
                msgs = [m for m in msgs if m.sender not in gone]
                for m in msgs:
                    p.server.handle(p.wire(m))
                if aborts:
                    with pytest.raises(AbortError, match=f"client {ring[0]} has 2"):
                        p.server.close_round()
                    assert p.server.state == "aborted"
                else:
                    p.server.close_round()
                    assert p.server.state != "aborted"
                break
            msgs = p.replies(p.deliver(msgs))


def test_roster_codec_refuses_unordered_unknown_and_short_entries() -> None:
    keys = _keys(4)
    cfg = _malicious_cfg(4, 3, keys)
    e = bytes(range(32))
    good = ConsistencyRequest(receiver=1, survivors=(1, 2, 3), roster=((1, e), (2, e), (3, e)))
    assert decode(encode(good, cfg), cfg) == good
    for roster in (((2, e), (1, e)), ((1, e), (1, e))):
        with pytest.raises(ProtocolError, match="increasing"):
            decode(encode(dataclasses.replace(good, roster=roster), cfg), cfg)
    # a stranger cannot be encoded; on the wire an index past n is refused
    with pytest.raises(EncodingError, match="9 is not a client"):
        encode(dataclasses.replace(good, roster=((1, e), (9, e))), cfg)
    data = encode(dataclasses.replace(good, roster=((1, e), (4, e))), cfg)
    at = data.index(struct.pack(">I", 4) + e)  # the second roster entry's index
    with pytest.raises(ProtocolError, match="index 9"):
        decode(data[:at] + struct.pack(">I", 9) + data[at + 4:], cfg)
    with pytest.raises(EncodingError, match="32 bytes"):
        encode(dataclasses.replace(good, roster=((1, e[:31]),)), cfg)


# -- the malicious-mode derivation -------------------------------------------------------------
def _exact_tail(pop: int, marked: int, draws: int, at_least: int) -> float:
    from fractions import Fraction
    from math import comb

    return float(sum((Fraction(comb(marked, x) * comb(pop - marked, draws - x),
                               comb(pop, draws))
                      for x in range(max(at_least, 0), min(marked, draws) + 1)), Fraction(0)))


@pytest.mark.parametrize(("n", "delta", "gamma"), [(20, 0.1, 0.05), (60, 0.1, 0.05),
                                                   (200, 0.15, 0.05), (300, 0.2, 0.1)])
def test_malicious_derivation_meets_both_targets_and_is_minimal(
        n: int, delta: float, gamma: float) -> None:
    k, t = derive_malicious_parameters(n, dropout_fraction=delta, corrupt_fraction=gamma)
    assert k is not None
    c, m, h = int(gamma * n), int(delta * n), k // 2
    cfg = SecAggConfig(client_ids=tuple(range(1, n + 1)), dimension=1, threshold=t, degree=k,
                       graph_seed=bytes(range(32)))
    bits, bound = partition.malicious_security(cfg, partition.SecurityTarget(gamma, 40.0))
    # security, recomputed independently with exact rationals
    p_sec = n * _exact_tail(n - 1, c, k, t) + n * _exact_tail(n, c, h, bound + 1)
    assert bits >= 40 and p_sec <= 2.0**-40
    # liveness with m random dropouts: t holders everywhere, no thin window
    p_live = n * _exact_tail(n - 1, m, k, k + 1 - t) + n * _exact_tail(n, m, h, h - bound)
    assert p_live <= 2.0**-20
    # and no smaller even degree admits a threshold
    if k > 2:
        with pytest.raises(ParameterError):
            derive_malicious_parameters(n, dropout_fraction=delta, corrupt_fraction=gamma,
                                        degree=k - 2)


def test_malicious_create_derives_what_every_client_accepts() -> None:
    keys = _keys(20)
    cfg = SecAggConfig.create(keys, 3, mode="malicious",
                              registry={u: k.verify_key() for u, k in keys.items()})
    assert (cfg.degree, cfg.threshold, cfg.quorum) == (8, 4, 11)
    for u in cfg.client_ids:
        SecAggClient(cfg, u, signing_key=keys[u])
    with pytest.raises(ParameterError, match="raise the degree"):
        SecAggConfig.create(keys, 3, mode="malicious", degree=2,
                            registry={u: k.verify_key() for u, k in keys.items()})


def test_random_dropouts_pass_the_partition_check() -> None:
    """Liveness, by sampling: n = 200 with the derived ring and 10% random
    dropouts (plus the corrupt clients' worst case ignored): never refused."""
    keys = {u: SigningKey.generate().verify_key() for u in range(1, 201)}
    cfg = SecAggConfig.create(keys, 2, mode="malicious", registry=keys)
    _, bound = partition.malicious_security(cfg, partition.SecurityTarget())
    rng = np.random.default_rng(11)
    for _ in range(200):
        drop = set(rng.choice(cfg.client_ids, 20, replace=False).tolist())
        partition.check_survivors(cfg, frozenset(cfg.client_ids) - drop, bound)


def test_every_test_security_md_names_for_secagg_exists() -> None:
    """Each claim of SECURITY.md's pairwise-mask section names the test that
    backs it; every such name must be a test of the named file."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    text = (root / "SECURITY.md").read_text()
    section = text[text.index("## Pairwise-mask"):text.index("## Packed Paillier")]
    section = re.sub(r"\s+", " ", section)
    short = {"attacks": "test_secagg_attacks.py", "checks": "test_secagg_checks.py",
             "adversarial": "test_secagg_adversarial.py", "codec": "test_secagg_codec.py"}
    refs = re.findall(r"`([\w.]+)::\s*(test_\w+)`", section)
    assert len(refs) >= 30
    for file, name in refs:
        src = (root / "tests" / short.get(file, file)).read_text()
        assert f"def {name}(" in src, f"SECURITY.md names {file}::{name}, which does not exist"
