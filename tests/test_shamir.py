import itertools
import os
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secagg import shamir
from secagg.errors import AbortError, EncodingError, ParameterError, ProtocolError


@st.composite
def n_t_subset(draw):
    n = draw(st.integers(1, 25))
    t = draw(st.integers(1, n))
    k = draw(st.integers(t, n))
    idx = draw(st.permutations(range(n)))[:k]
    return n, t, idx


@given(st.binary(min_size=32, max_size=32), n_t_subset())
def test_any_t_shares_in_any_order_reconstruct(secret, nts):
    n, t, idx = nts
    shares = shamir.split(secret, n, t)
    assert [s.index for s in shares] == list(range(1, n + 1))
    assert shamir.combine([shares[i] for i in idx]) == secret


@given(st.binary(min_size=32, max_size=32), st.integers(2, 12), st.data())
def test_fewer_than_t_shares_abort(secret, t, data):
    shares = shamir.split(secret, t + 2, t)
    k = data.draw(st.integers(1, t - 1))
    with pytest.raises(AbortError):
        shamir.combine(shares[:k])


def test_t_minus_one_shares_are_consistent_with_every_secret():
    # Perfect secrecy, checked constructively for t = 2: one share is consistent
    # with any secret (there is a line through (0, s') and the share), and the share
    # values of two different secrets are identically (uniformly) distributed.
    p = shamir.PRIME
    share = shamir.split(os.urandom(32), 5, 2)[0]
    for other in (bytes(32), b"\xff" * 32):
        s2 = int.from_bytes(other, "big")
        slope = (share.value - s2) * pow(share.index, -1, p) % p
        fake = [shamir.Share(share.index, 2, share.value), shamir.Share(2, 2, (s2 + 2 * slope) % p)]
        assert shamir.combine(fake) == other


def test_small_field_distribution_of_one_share():
    # The top byte of a share is uniform whatever the secret (t = 2, many draws).
    from scipy import stats

    values = [shamir.split(bytes(32), 3, 2)[0].value for _ in range(2000)]
    tops = [v >> 250 for v in values if v < 2**256]
    counts = [tops.count(v) for v in range(64)]
    assert stats.chisquare(counts).pvalue > 1e-4


def test_share_encoding_round_trip_and_strictness():
    shares = shamir.split(os.urandom(32), 5, 3)
    for s in shares:
        b = s.to_bytes()
        assert len(b) == shamir.SHARE_BYTES
        assert shamir.Share.from_bytes(b) == s
        assert str(s.value) not in repr(s)
    b = shares[0].to_bytes()
    bad_inputs = [
        b[:-1],
        b + b"\0",
        b"\x02" + b[1:],  # version
        b[:3] + b"\x00\x00" + b[5:],  # index 0
        b[:1] + b"\x00\x00" + b[3:],  # threshold 0
        b[:5] + (shamir.PRIME).to_bytes(33, "big"),  # value >= p
        "not bytes",
    ]
    for bad in bad_inputs:
        with pytest.raises(ProtocolError):
            shamir.Share.from_bytes(bad)


def test_combine_refuses_bad_sets():
    s1 = shamir.split(os.urandom(32), 5, 3)
    s2 = shamir.split(os.urandom(32), 5, 2)
    with pytest.raises(ParameterError, match="duplicate"):
        shamir.combine([s1[0], s1[0], s1[1]])
    with pytest.raises(ParameterError, match="mixed thresholds"):
        shamir.combine([s1[0], s1[1], s2[2]])
    with pytest.raises(AbortError):
        shamir.combine([])
    with pytest.raises(ParameterError):
        shamir.Share(0, 2, 5)
    with pytest.raises(ParameterError):
        shamir.Share(70000, 2, 5)
    with pytest.raises(ParameterError):
        shamir.split(os.urandom(32), 3, 4)
    with pytest.raises(ParameterError):
        shamir.split(b"short", 3, 2)


def test_inconsistent_shares_detected_when_value_leaves_secret_range():
    shares = shamir.split(bytes(32), 3, 3)
    # Shift one share: the reconstructed value is (almost surely) >= 2^256 or wrong.
    tampered = [shares[0], shares[1], shamir.Share(3, 3, (shares[2].value + 1) % shamir.PRIME)]
    try:
        out = shamir.combine(tampered)
    except EncodingError:
        return
    assert out != bytes(32)


def test_combine_many_matches_combine():
    secrets = [os.urandom(32) for _ in range(6)]
    sets = shamir.split_many(secrets, 9, 4)
    holders = [2, 5, 7, 9]
    chosen = [[s[h - 1] for h in holders] for s in sets]
    assert shamir.combine_many(chosen) == secrets
    assert [shamir.combine(c) for c in chosen] == secrets


def test_lagrange_coefficients_sum_to_one():
    # sum_i lambda_i = 1 (interpolating the constant polynomial 1)
    for idx in itertools.combinations(range(1, 8), 4):
        assert sum(shamir.lagrange_coefficients(idx)) % shamir.PRIME == 1


def test_thousand_parties_round_trip():
    secrets = [os.urandom(32), os.urandom(32)]
    sets = shamir.split_many(secrets, 1000, 667)
    holders = sorted(random.Random(1).sample(range(1, 1001), 700))
    rec = shamir.combine_many([[s[h - 1] for h in holders] for s in sets])
    assert rec == secrets
