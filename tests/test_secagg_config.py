"""SecAggConfig, parameter derivation and the public neighbour graph."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.secagg import SecAggConfig, consistency_quorum, derive_parameters, guarantees
from protocols.secagg.graph import harary_neighbourhoods, ring_order
from secagg.errors import ParameterError
from secagg.sign import SigningKey

SEED = bytes(range(32))


# -- derivation -------------------------------------------------------------------
@pytest.mark.parametrize("n", [100, 300, 1000, 10_000])
def test_derived_secagg_plus_meets_its_targets(n: int) -> None:
    k, t = derive_parameters(n, dropout_fraction=0.1, corrupt_fraction=0.05)
    assert k is not None and k % 2 == 0 and k < n - 1
    assert 2 <= t <= k
    sec, cor = guarantees(n, k, t, dropout_fraction=0.1, corrupt_fraction=0.05)
    assert sec >= 40 and cor >= 20
    # k is the smallest even degree that works: k - 2 admits no threshold
    assert all(
        min(guarantees(n, k - 2, tt, dropout_fraction=0.1, corrupt_fraction=0.05)[0] - 40,
            guarantees(n, k - 2, tt, dropout_fraction=0.1, corrupt_fraction=0.05)[1] - 20) < 0
        for tt in range(2, k - 1)
    )


def test_degree_grows_logarithmically() -> None:
    ks = [derive_parameters(n)[0] for n in (1000, 10_000, 100_000)]
    assert all(k is not None for k in ks)
    assert ks[0] < ks[1] < ks[2] < 2 * ks[0]  # 100x the clients, far less than 2x the degree


def test_small_rounds_use_the_complete_graph_with_a_majority_threshold() -> None:
    assert derive_parameters(10) == (None, 6)
    assert derive_parameters(50) == (None, 26)
    assert derive_parameters(3) == (None, 2)
    # the majority is clamped into [c + 1, n - m]
    assert derive_parameters(10, dropout_fraction=0.45, corrupt_fraction=0.0) == (None, 6)
    assert derive_parameters(10, dropout_fraction=0.0, corrupt_fraction=0.7) == (None, 8)
    with pytest.raises(ParameterError):
        derive_parameters(10, dropout_fraction=0.5, corrupt_fraction=0.5)


def test_overrides() -> None:
    k, t = derive_parameters(100, degree=14)
    assert k == 14 and 2 <= t <= 14
    assert derive_parameters(20, degree=19)[0] is None  # >= n - 1: complete
    cfg = SecAggConfig.create(range(1, 101), 4, degree=14, threshold=9)
    assert (cfg.degree, cfg.threshold) == (14, 9)
    cfg = SecAggConfig.create(range(1, 11), 4, degree="complete", threshold=3)
    assert cfg.is_complete and cfg.threshold == 3
    with pytest.raises(ParameterError):
        derive_parameters(100, degree=13)
    with pytest.raises(ParameterError):
        SecAggConfig.create(range(1, 101), 4, degree=14, threshold=16)  # > k + 1 holders
    with pytest.raises(ParameterError):
        SecAggConfig.create(range(1, 11), 4, threshold=1)


def test_quorum() -> None:
    assert consistency_quorum(100, 0.05) == 53
    assert consistency_quorum(10, 0.0) == 6
    # any two quorums intersect in more than c clients
    for n in range(2, 60):
        c = math.floor(0.2 * n)
        q = consistency_quorum(n, 0.2)
        assert 2 * q - n > c


def test_complete_graph_guarantees_are_exact() -> None:
    assert guarantees(10, None, 6, dropout_fraction=0.1, corrupt_fraction=0.1) == (
        math.inf, math.inf)
    assert guarantees(10, None, 1, dropout_fraction=0.1, corrupt_fraction=0.1)[0] == 0.0
    assert guarantees(10, None, 10, dropout_fraction=0.1, corrupt_fraction=0.1)[1] == 0.0


# -- graph -------------------------------------------------------------------------
@given(n=st.integers(4, 200), data=st.data())
def test_harary_graph_is_k_regular_symmetric_and_public(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(1, (n - 2) // 2)) * 2
    seed = data.draw(st.binary(min_size=32, max_size=32))
    ids = list(range(10, 10 + 3 * n, 3))
    nb = harary_neighbourhoods(ids, k, seed)
    assert set(nb) == set(ids)
    for u, vs in nb.items():
        assert len(vs) == k and u not in vs
        assert all(u in nb[v] for v in vs)
    assert nb == harary_neighbourhoods(ids, k, seed)  # anyone can recompute it


def test_ring_order_depends_on_the_seed() -> None:
    ids = list(range(1, 51))
    a, b = ring_order(ids, SEED), ring_order(ids, bytes(32))
    assert sorted(a) == ids and sorted(b) == ids and a != b


def test_share_indices_are_ranks_in_the_closed_neighbourhood() -> None:
    cfg = SecAggConfig.create(range(1, 31), 4, degree=6, graph_seed=SEED, session_id=1)
    for u in cfg.client_ids:
        hs = cfg.holders(u)
        assert hs == tuple(sorted(cfg.neighbours[u] | {u}))
        assert [cfg.share_index(u, h) for h in hs] == list(range(1, len(hs) + 1))
    full = SecAggConfig.create(range(1, 11), 4, session_id=1)
    assert full.holders(3) == full.client_ids
    assert full.share_index(3, 10) == 10


# -- validation and digest ------------------------------------------------------------
def test_config_validation() -> None:
    with pytest.raises(ParameterError):
        SecAggConfig(client_ids=(1,), dimension=3, threshold=2)
    with pytest.raises(ParameterError):
        SecAggConfig(client_ids=(2, 1, 3), dimension=3, threshold=2)
    with pytest.raises(ParameterError):
        SecAggConfig(client_ids=(-1, 1, 3), dimension=3, threshold=2)
    with pytest.raises(ParameterError):
        SecAggConfig(client_ids=(1, 3, 2**64), dimension=3, threshold=2)
    SecAggConfig(client_ids=(0, 1, 2**64 - 1), dimension=3, threshold=2)  # any u64 id
    with pytest.raises(ParameterError):
        SecAggConfig(client_ids=(1, 2, 3), dimension=0, threshold=2)
    with pytest.raises(ParameterError):
        SecAggConfig(client_ids=(1, 2, 3), dimension=3, threshold=2, modulus_bits=16)
    with pytest.raises(ParameterError):
        SecAggConfig(client_ids=(1, 2, 3), dimension=3, threshold=2, mode="paranoid")  # type: ignore[arg-type]
    with pytest.raises(ParameterError):
        SecAggConfig(client_ids=tuple(range(1, 11)), dimension=3, threshold=2, degree=3)
    with pytest.raises(ParameterError):  # malicious mode without a registry
        SecAggConfig.create(range(1, 6), 3, mode="malicious")
    keys = {u: SigningKey.generate().verify_key() for u in range(1, 6)}
    with pytest.raises(ParameterError):  # registry missing a client
        SecAggConfig.create(range(1, 7), 3, mode="malicious", registry=keys)
    with pytest.raises(ParameterError):
        SecAggConfig.create(range(1, 6), 3, mode="malicious",
                            registry={**keys, 5: keys[1]})
    with pytest.raises(ParameterError):  # registry in semi-honest mode
        SecAggConfig(client_ids=(1, 2, 3), dimension=3, threshold=2, registry=keys)
    cfg = SecAggConfig.create(range(1, 6), 3, mode="malicious", registry=keys)
    assert cfg.quorum == 3


def test_digest_binds_every_field() -> None:
    base = dict(client_ids=tuple(range(1, 11)), dimension=5, threshold=4, degree=4,
                session_id=9, graph_seed=SEED)
    ref = SecAggConfig(**base)  # type: ignore[arg-type]
    assert ref == SecAggConfig(**base) and hash(ref) == hash(SecAggConfig(**base))  # type: ignore[arg-type]
    for change in (dict(client_ids=(*tuple(range(1, 10)), 11)), dict(dimension=6),
                   dict(threshold=5), dict(degree=6), dict(session_id=10),
                   dict(graph_seed=bytes(32)), dict(modulus_bits=64), dict(degree=None)):
        assert SecAggConfig(**{**base, **change}).digest != ref.digest  # type: ignore[arg-type]
