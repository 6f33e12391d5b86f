import itertools
import os
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secagg import shamir
from secagg.errors import AbortError, EncodingError, IntegrityError, ParameterError, ProtocolError


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


# -- integrity: what combine() detects, exactly -------------------------------------


def _tamper(share, delta=1):
    return shamir.Share(share.index, share.threshold, (share.value + delta) % shamir.PRIME)


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32),
       st.integers(1, 8), st.data())
def test_t_shares_of_different_secrets_with_an_extra_share_are_refused(s1, s2, t, data):
    a, b = shamir.split(s1, t + 3, t), shamir.split(s2, t + 3, t)
    k = data.draw(st.integers(t + 1, t + 3))  # more than t shares given
    pick = data.draw(st.permutations(range(t + 3)))[:k]
    mixed = [a[i] if j % 2 == 0 else b[i] for j, i in enumerate(pick)]
    if s1 == s2:
        return  # two different polynomials of degree < t agree on at most t - 1 points
    with pytest.raises(IntegrityError, match="does not lie on the polynomial"):
        shamir.combine(mixed)
    with pytest.raises(IntegrityError):
        shamir.combine_many([[a[i] for i in pick], mixed])


@given(st.binary(min_size=32, max_size=32), st.integers(1, 10), st.data())
def test_at_least_t_genuine_shares_give_the_secret_or_an_error(secret, t, data):
    n = t + data.draw(st.integers(1, 6))
    shares = shamir.split(secret, n, t)
    bad = data.draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=n - t))
    deltas = [data.draw(st.integers(1, shamir.PRIME - 1)) for _ in bad]
    given_ = list(shares)
    for i, d in zip(sorted(bad), deltas):
        given_[i] = _tamper(shares[i], d)
    with pytest.raises(IntegrityError):
        shamir.combine(given_)
    # and the genuine ones alone still reconstruct
    assert shamir.combine([s for i, s in enumerate(shares) if i not in bad]) == secret


def test_exactly_t_shares_cannot_be_checked_as_documented():
    a = shamir.split(b"\x01" * 32, 4, 2)
    b = shamir.split(b"\x02" * 32, 4, 2)
    out = shamir.combine([a[0], b[1]])  # 32 wrong bytes, by design (module docstring)
    assert len(out) == 32 and out not in (b"\x01" * 32, b"\x02" * 32)
    assert "With exactly t shares nothing can be checked" in shamir.__doc__


@pytest.mark.parametrize("t", [1, 2, 3])
@pytest.mark.parametrize("top", [2**256, 2**256 + 5, shamir.PRIME - 1],
                         ids=["2^256", "2^256+5", "p-1"])
def test_value_in_the_gap_above_2_256_is_a_library_error(t, top):
    # shares of a polynomial whose constant term lies in [2^256, p)
    coeffs = [top] + [7 * (j + 1) for j in range(t - 1)]
    shares = [shamir.Share(x, t, sum(c * x**j for j, c in enumerate(coeffs)) % shamir.PRIME)
              for x in range(1, t + 2)]
    for s in (shares[:t], shares):
        with pytest.raises(EncodingError, match=r"\[2\^256, PRIME\)"):
            shamir.combine(s)
        with pytest.raises(EncodingError):
            shamir.combine_many([s])
    below = [shamir.Share(x, t, sum(c * x**j for j, c in enumerate([2**256 - 1, *coeffs[1:]]))
                          % shamir.PRIME) for x in range(1, t + 2)]
    assert shamir.combine(below) == b"\xff" * 32


def test_share_value_range_and_type():
    assert shamir.Share(1, 2, shamir.PRIME - 1).value == shamir.PRIME - 1
    assert shamir.Share(1, 2, 0).value == 0
    for bad in (shamir.PRIME, shamir.PRIME + 1, -1, 1.5, True, "5", None):
        with pytest.raises(ParameterError, match="share value"):
            shamir.Share(1, 2, bad)
    assert shamir.Share.from_bytes(
        shamir.Share(3, 2, shamir.PRIME - 1).to_bytes()).value == shamir.PRIME - 1


def test_duplicates_and_mixed_thresholds_beyond_the_t_lowest_are_refused():
    s = shamir.split(os.urandom(32), 5, 2)
    other = shamir.split(os.urandom(32), 5, 3)
    for bad, match in [
        ([s[0], s[1], s[4], s[4]], "duplicate share indices \\[5\\]"),
        ([s[3], s[0], s[3], s[1]], "duplicate share indices \\[4\\]"),
        ([s[0], s[1], other[4]], "mixed thresholds"),
    ]:
        with pytest.raises(ParameterError, match=match):
            shamir.combine(bad)
        with pytest.raises(ParameterError, match=match):
            shamir.combine_many([s[:2], bad])
    with pytest.raises(ParameterError, match="duplicate"):
        shamir.lagrange_coefficients([1, 2, 2])


def test_combine_many_refuses_what_combine_refuses():
    s = shamir.split(os.urandom(32), 5, 3)
    with pytest.raises(AbortError):
        shamir.combine_many([s, s[:2]])
    with pytest.raises(AbortError):
        shamir.combine_many([s, []])
    assert shamir.combine_many([]) == []


def test_argument_errors_name_the_argument():
    with pytest.raises(ParameterError, match="secret must be bytes, got str"):
        shamir.split("abc", 3, 2)
    with pytest.raises(ParameterError, match="secret must be 32 bytes, got 3"):
        shamir.split(b"abc", 3, 2)
    with pytest.raises(ParameterError, match=r"secrets\[1\] must be 32 bytes"):
        shamir.split_many([bytes(32), b"x"], 3, 2)
    with pytest.raises(ParameterError, match="use split"):
        shamir.split_many(bytes(32), 3, 2)
    with pytest.raises(ParameterError, match="one Share"):
        shamir.combine(shamir.split(bytes(32), 3, 1)[0])
    with pytest.raises(ParameterError, match="sequence of Share"):
        shamir.combine(5)
    with pytest.raises(ParameterError, match="Share objects, got int"):
        shamir.combine([1, 2])


def test_lagrange_coefficients_at_other_points_interpolate():
    # lambda_i(x) reproduce f(x) for a known polynomial, at every extra point
    p = shamir.PRIME
    f = [5, 11, 13]  # 5 + 11x + 13x^2
    xs = (2, 5, 9)
    dens = shamir._denominators(xs)
    for x in (0, 1, 3, 100, 65535):
        lam = shamir._lagrange_at(xs, x, dens)
        val = sum(c * sum(a * xi**j for j, a in enumerate(f)) for c, xi in zip(lam, xs)) % p
        assert val == sum(a * x**j for j, a in enumerate(f)) % p
    assert shamir._lagrange_at(xs, 0, dens) == shamir.lagrange_coefficients(xs)


@pytest.mark.parametrize("t", [2, 3, 5])
def test_t_minus_one_shares_do_not_determine_the_secret(t):
    # With a polynomial of degree t-1, t-1 shares interpolated as if the threshold
    # were t-1 give an unrelated value (a degree t-2 polynomial would give the secret).
    secret = os.urandom(32)
    shares = shamir.split(secret, t + 1, t)
    relabelled = [shamir.Share(s.index, t - 1, s.value) for s in shares[: t - 1]]
    try:
        out = shamir.combine(relabelled)
    except EncodingError:
        return
    assert out != secret
