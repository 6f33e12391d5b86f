"""Hand-picked parameters of the library's own protocols (no hypothesis needed).

:func:`secagg_params` and :func:`paillier_params` build one
:class:`~protocols.testing.spec.Params`; the strategies of
:mod:`protocols.testing.strategies` draw them, and the specs of
:mod:`protocols.testing.specs` use them.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

from protocols import secagg as sa
from secagg.encoding import FixedPointEncoder, frac_bits_for
from secagg.errors import ParameterError

from .spec import Params
from .wirings import PackedQuantizer

__all__ = ["paillier_params", "secagg_params"]


def _trust(trust: str | None, layout: str | None, where: str) -> str:
    if layout is not None:
        warnings.warn(f"{where}(layout=...) is deprecated; use trust=", DeprecationWarning,
                      stacklevel=3)
        if trust is not None and trust != layout:
            raise ParameterError(f"trust={trust!r} and layout={layout!r} disagree")
        return layout
    return trust or "key-holder"


def frac_bits_limit(modulus_bits: int, clip: float, n: int) -> int:
    """The kit's fractional bits for ``n`` summands of ``|x| <= clip``: two
    below the most that leaves headroom (:func:`secagg.encoding.frac_bits_for`),
    at most 50."""
    return min(frac_bits_for(clip, n, modulus_bits) - 2, 50)


def secagg_params(
    n: int, threshold: int, *, degree: int | None = None,
    mode: Literal["semi-honest", "malicious"] = "semi-honest", modulus_bits: int = 32,
    clip: float = 1.0, frac_bits: int | None = None, corrupt_fraction: float = 0.05,
) -> Params:
    """Parameters of the pairwise-mask protocol for ``n`` clients, by hand.

    ``degree`` None is the complete graph (SecAgg), an even int a Harary
    graph (SecAgg+). The encoder has headroom for ``n`` summands;
    ``frac_bits`` defaults to the most that fits. See
    :func:`protocols.testing.strategies.secagg_parameters` for what the
    threshold rule makes of them.
    """
    top = frac_bits_limit(modulus_bits, clip, n)
    frac = top if frac_bits is None else frac_bits
    enc = FixedPointEncoder(clip, frac_bits=frac, max_summands=n, modulus_bits=modulus_bits)
    rounds = sa.rounds_for(mode)
    needs = dict.fromkeys(rounds, threshold)
    if mode == "malicious":
        q = sa.consistency_quorum(n, corrupt_fraction)
        needs["masked_input"] = needs["consistency"] = max(threshold, q)
    graph = "complete" if degree is None else f"harary k={degree}"
    return Params(
        options={"threshold": threshold, "neighbors": "complete" if degree is None else degree,
                 "mode": mode, "encoder": enc, "corrupt_fraction": corrupt_fraction},
        needs=needs, tolerated=None if degree is None else degree + 1 - threshold,
        clip=clip, quantizer=enc,
        label=f"t={threshold}, {graph}, {mode}, 2^{modulus_bits}, clip={clip}, frac_bits={frac}",
    )


def paillier_params(
    n: int, keypair: tuple[Any, Any], *,
    trust: Literal["key-holder", "cross-silo"] | None = None,
    clip: float = 1.0, value_bits: int = 16, min_clients: int = 1,
    insecure_allow_small_key_for_tests: bool = False,
    layout: Literal["key-holder", "cross-silo"] | None = None,
) -> Params:
    """Parameters of Paillier summation for ``n`` clients, by hand
    (``trust`` is the trust layout; ``layout=`` its deprecated name)."""
    layout = _trust(trust, layout, "paillier_params")  # type: ignore[assignment]
    pk, sk = keypair
    q = PackedQuantizer(pk, clip=clip, value_bits=value_bits, capacity=n,
                        insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests)
    needs = {"encrypt": min_clients, **({"decrypt": 1} if layout == "cross-silo" else {})}
    return Params(
        options={"keypair": (pk, sk), "trust": layout, "clip": clip, "value_bits": value_bits,
                 "min_clients": min_clients,
                 "insecure_allow_small_key_for_tests": insecure_allow_small_key_for_tests},
        needs=needs, clip=clip, quantizer=q,
        label=(f"{pk.n.bit_length()}-bit key, {layout}, value_bits={value_bits}, clip={clip}, "
               f"min_clients={min_clients}"),
    )
