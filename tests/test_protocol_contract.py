"""The party contract (protocols.core) as SecAgg and SecAgg+ implement it:
arbitrary client ids, the id map bound into the digest, the configuration and
client-state codecs, and a transport that only knows the descriptor."""

from __future__ import annotations

import contextlib
import secrets

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import core
from protocols.core import SERVER, ClientParty, Coordinator, Envelope, ProtocolDescriptor
from protocols.secagg import SECAGG, SECAGG_PLUS, SecAggConfig, simulate
from secagg.errors import ParameterError, ProtocolError, SecAggError
from secagg.sign import SigningKey


def _inputs(ids: list[int], d: int = 6) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(len(ids))
    return {u: rng.uniform(-1, 1, d) for u in ids}


def _exact_raw(enc: object, inputs: dict[int, np.ndarray], who: frozenset[int]) -> np.ndarray:
    acc = np.zeros(len(next(iter(inputs.values()))), dtype=enc.dtype)  # type: ignore[attr-defined]
    for u in who:
        acc += enc.encode(inputs[u])  # type: ignore[attr-defined]
    return acc


@pytest.mark.parametrize("neighbors", ["complete", None])
@pytest.mark.parametrize("kind", ["from-zero", "random-64-bit"])
def test_simulate_with_ids_from_zero_and_64_bit_ids_is_exact(kind: str, neighbors: object
                                                             ) -> None:
    n = 12
    ids = (list(range(n)) if kind == "from-zero"
           else sorted({secrets.randbits(64) for _ in range(n)} | {2**64 - 1}))
    inputs = _inputs(ids)
    drop = [ids[0], ids[-1]]
    res = simulate(inputs, neighbors=neighbors, threshold=4,  # type: ignore[arg-type]
                   dropouts={"masked_input": drop}, seed=9)
    want = frozenset(ids) - set(drop)
    assert res.included == want
    enc = SECAGG.make_session(ids, 6).encoder
    np.testing.assert_array_equal(res.raw_sum, _exact_raw(enc, inputs, want))  # type: ignore[arg-type]


def test_malicious_mode_with_64_bit_ids() -> None:
    ids = sorted(secrets.randbits(64) for _ in range(7))
    inputs = _inputs(ids)
    res = simulate(inputs, mode="malicious", neighbors="complete",
                   dropouts={"unmask": [ids[3]]})
    assert res.included == frozenset(ids)
    assert np.allclose(res.sum, sum(inputs.values()), atol=1e-4)


def test_the_id_map_is_bound_into_the_digest() -> None:
    a = SecAggConfig(client_ids=(0, 1, 2), dimension=3, threshold=2)
    b = SecAggConfig(client_ids=(0, 1, 7), dimension=3, threshold=2)
    assert a.index_of(2) == b.index_of(7) == 3
    assert a.digest != b.digest
    sa, sb = SECAGG.make_session((0, 1, 2), 3, seed=1), SECAGG.make_session((0, 1, 7), 3, seed=1)
    (env,) = sa.clients[0].start()
    data = SECAGG.codec(sa.config).encode(env.message)
    with pytest.raises(ProtocolError, match="digest"):
        SECAGG.codec(sb.config).decode(data)
    with pytest.raises(ParameterError):
        a.index_of(7)


def test_descriptors_and_parties_match_the_contract() -> None:
    for d in (SECAGG, SECAGG_PLUS):
        assert isinstance(d, ProtocolDescriptor)
        assert d.input_round in d.rounds
        s = d.make_session([5, 9, 13], 4, seed=3)
        assert isinstance(s.coordinator, Coordinator)
        assert all(isinstance(c, ClientParty) for c in s.clients.values())
        assert isinstance(d.codec(s.config), core.Codec)
        assert s.coordinator.round == "advertise" and s.coordinator.result is None
        assert s.coordinator.start() == []
        assert [c.address for c in s.clients.values()] == [5, 9, 13]
        env = s.clients[5].start()
        assert env == [Envelope(SERVER, env[0].message)] and env[0].sender == 5
        assert s.clients[5].round == "share_keys"
    assert SECAGG.make_session([1, 2, 3], 2).rounds == (
        "advertise", "share_keys", "masked_input", "unmask")
    with pytest.raises(ParameterError, match="complete graph"):
        SECAGG.make_session([1, 2, 3, 4, 5], 2, neighbors=2)
    for bad in ([-1, 2], [1, 2**64], [1, 1], [1.5, 2]):
        with pytest.raises(ParameterError):
            SECAGG.make_session(bad, 2)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["semi-honest", "malicious"])
def test_config_round_trips_through_bytes(mode: str) -> None:
    s = SECAGG_PLUS.make_session([3, 2**40, 2**63 + 5, 8, 11, 12], 9, mode=mode, seed=4,
                                 neighbors=2, threshold=2)
    data = SECAGG_PLUS.config_to_bytes(s.config)
    back = SECAGG_PLUS.config_from_bytes(data)
    assert back == s.config and back.to_bytes() == data
    assert back.neighbours == s.config.neighbours
    for cut in range(0, len(data), 7):
        with pytest.raises(SecAggError):
            SECAGG_PLUS.config_from_bytes(data[:cut])
    with pytest.raises(SecAggError):
        SECAGG_PLUS.config_from_bytes(data + b"\0")


@given(st.binary(max_size=200))
@settings(max_examples=50, deadline=None)
def test_config_decoder_only_raises_library_errors(data: bytes) -> None:
    with contextlib.suppress(SecAggError):
        SECAGG.config_from_bytes(b"SACF\x02" + data)


def _drive(descriptor: ProtocolDescriptor, inputs: dict[int, np.ndarray], *,
           restart: bool, **params: object) -> tuple[object, object]:
    """A transport that knows only the descriptor; with ``restart`` every
    client is saved and restored before each message it handles."""
    ids = sorted(inputs)
    local = params.pop("local", None) or (lambda u: {})
    s = descriptor.make_session(ids, len(inputs[ids[0]]), seed=2, **params)  # type: ignore[arg-type]
    codec = descriptor.codec(s.config, **s.codec_options)
    cfg_bytes = descriptor.config_to_bytes(s.config)
    for u in ids:
        s.clients[u].set_input(s.encoder.encode(inputs[u]))
    queue = list(s.coordinator.start())
    for role in sorted(s.others):
        queue += s.others[role].start()
    for u in ids:
        queue += s.clients[u].start()
    coord = s.coordinator
    while True:
        while queue:
            env = queue.pop(0)
            data = codec.encode(env.message)
            u = env.receiver
            if isinstance(u, int) and restart:
                cfg = descriptor.config_from_bytes(cfg_bytes)
                state = s.clients[u].export_state()
                s.clients[u] = descriptor.restore_client(cfg, state, **local(u))
            queue += s.party(u).handle(codec.decode(data))
        if coord.round is None:
            break
        queue += coord.close_round()
    return s.outcome(), s


@pytest.mark.parametrize("mode", ["semi-honest", "malicious"])
def test_clients_saved_and_restored_between_messages_finish_the_round(mode: str) -> None:
    ids = [0, 17, 2**33, 2**64 - 2, 99]
    inputs = _inputs(ids)
    keys = {u: SigningKey.generate() for u in ids} if mode == "malicious" else {}
    res, s = _drive(SECAGG, inputs, restart=True, mode=mode, signing_keys=keys or None,
                    local=lambda u: {"signing_key": keys.get(u)})
    assert res is not None
    np.testing.assert_array_equal(res.raw_sum,  # type: ignore[attr-defined]
                                  _exact_raw(s.encoder, inputs, frozenset(ids)))  # type: ignore[attr-defined]


def test_restore_refuses_a_state_from_another_configuration() -> None:
    s1 = SECAGG.make_session([1, 2, 3], 4, seed=1)
    s2 = SECAGG.make_session([1, 2, 3], 4, seed=2)
    s1.clients[1].set_input(np.zeros(4, np.uint32))
    s1.clients[1].start()
    state = s1.clients[1].export_state()
    with pytest.raises(ParameterError, match="another configuration"):
        SECAGG.restore_client(s2.config, state)
    back = SECAGG.restore_client(s1.config, state)
    assert back.round == "share_keys" and back.export_state() == state
    for cut in range(len(state)):
        with pytest.raises(SecAggError):
            SECAGG.restore_client(s1.config, state[:cut])
    with pytest.raises(SecAggError):
        SECAGG.restore_client(s1.config, state + b"\0")


def test_derive_seed_is_the_one_seed_helper() -> None:
    assert core.derive_seed(5, "graph") != core.derive_seed(5, "session")
    assert core.derive_seed(5, "graph") == core.derive_seed(5, "graph")
    assert len(core.derive_seed(5, "session", 8)) == 8
    for bad in (-1, 2**64, True, 1.0):
        with pytest.raises(ParameterError):
            core.derive_seed(bad, "x")  # type: ignore[arg-type]


@pytest.mark.parametrize("trust", ["key-holder", "cross-silo"])
def test_paillier_clients_saved_and_restored_between_messages(trust: str) -> None:
    from protocols.paillier_sum import PAILLIER_SUM
    from secagg import paillier

    kp = paillier.generate_keypair(512, insecure_allow_small_key_for_tests=True)
    ids = [0, 2**64 - 1, 12]
    inputs = _inputs(ids)
    cross = trust == "cross-silo"
    local = {"keypair": kp} if cross else {"expected_public_key": kp[0]}
    res, s = _drive(PAILLIER_SUM, inputs, restart=True, keypair=kp, trust=trust,
                    insecure_allow_small_key_for_tests=True,
                    local=lambda u: {**local, "insecure_allow_small_key_for_tests": True})
    assert res is not None and res.included == frozenset(ids)  # type: ignore[attr-defined]
    want = sum(s.encoder.encode(inputs[u]) for u in ids)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(res.raw_sum, want)  # type: ignore[attr-defined]
    assert PAILLIER_SUM.config_from_bytes(PAILLIER_SUM.config_to_bytes(s.config)) == s.config


def test_one_source_for_the_round_list() -> None:
    from protocols.secagg import ROUNDS, rounds_for

    assert rounds_for("malicious") == ROUNDS == SECAGG.rounds
    assert rounds_for("semi-honest") == tuple(r for r in ROUNDS if r != "consistency")
    s = SECAGG.make_session([1, 2, 3], 2, mode="malicious")
    assert s.rounds == s.config.rounds == rounds_for("malicious")
    assert s.coordinator.round == ROUNDS[0]
    with pytest.raises(ParameterError):
        rounds_for("paranoid")  # type: ignore[arg-type]
