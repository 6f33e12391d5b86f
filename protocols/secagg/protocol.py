"""The pairwise-mask protocol as a :class:`~protocols.core.ProtocolDescriptor`.

``SECAGG`` is Bonawitz et al.'s complete graph; ``SECAGG_PLUS`` derives a
sparse random Harary graph from ``n`` (Bell et al.), falling back to the
complete graph where no sparse one meets the targets. Both take the same
session parameters as :func:`protocols.secagg.simulate`: ``threshold``,
``neighbors`` (SecAgg+ only), ``mode``, ``encoder``, ``dropout_fraction``,
``corrupt_fraction``, and optionally ``session_id`` / ``graph_seed`` /
``signing_keys`` (client id -> Ed25519 key, malicious mode).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from secagg.encoding import FixedPointEncoder, frac_bits_for
from secagg.errors import ParameterError
from secagg.sign import SigningKey

from ..core import ProtocolDescriptor, Session, derive_seed
from .client import SecAggClient
from .config import ROUNDS, Mode, SecAggConfig
from .messages import SecAggCodec
from .partition import SecurityTarget
from .server import SecAggServer

__all__ = ["SECAGG", "SECAGG_PLUS", "default_encoder", "session_seeds"]


def default_encoder(n_clients: int, clip: float = 4.0) -> FixedPointEncoder:
    """The encoder :func:`simulate` uses unless given one.

    Values are clipped to ``[-clip, clip]`` (default 4.0, ample for model
    updates and gradients after the usual norm clipping) and encoded mod 2^32
    with one fractional bit fewer than the most that leaves headroom for
    ``n_clients`` summands (:func:`secagg.encoding.frac_bits_for`), at most
    24, so the sum of ``n_clients`` inputs never wraps. With 1,000 clients
    that is 18 fractional bits (a resolution of about 4e-6 per client).
    """
    if n_clients < 1:
        raise ParameterError(f"n_clients must be >= 1, got {n_clients}")
    frac_bits = min(24, frac_bits_for(clip, n_clients, 32) - 1)
    if frac_bits < 0:
        raise ParameterError(f"{n_clients} clients at clip {clip} do not fit 32 bits")
    return FixedPointEncoder(clip=clip, frac_bits=frac_bits, max_summands=n_clients,
                             modulus_bits=32)


def session_seeds(seed: int | None) -> tuple[int | None, bytes | None]:
    """Session id and graph seed of a seeded run (None, None: fresh OS randomness)."""
    if seed is None:
        return None, None
    session = int.from_bytes(derive_seed(seed, "session", 8), "big")
    return session, derive_seed(seed, "graph")


def _build(complete: bool) -> Any:
    def build(
        client_ids: tuple[int, ...], dimension: int, *, seed: int | None = None,
        threshold: int | None = None,
        neighbors: int | Literal["complete"] | None = None,
        mode: Mode = "semi-honest",
        encoder: FixedPointEncoder | None = None,
        dropout_fraction: float = 0.1,
        corrupt_fraction: float = 0.05,
        session_id: int | None = None,
        graph_seed: bytes | None = None,
        signing_keys: Mapping[int, SigningKey] | None = None,
    ) -> Session:
        if complete:
            if neighbors not in (None, "complete"):
                raise ParameterError("SECAGG is the complete graph; use SECAGG_PLUS for "
                                     f"neighbors={neighbors!r}")
            neighbors = "complete"
        enc = default_encoder(len(client_ids)) if encoder is None else encoder
        if not isinstance(enc, FixedPointEncoder) or not enc.power_of_two:
            raise ParameterError("encoder must be a FixedPointEncoder with a 2^32 or 2^64 "
                                 "modulus")
        if enc.max_summands < len(client_ids):
            raise ParameterError(f"encoder allows {enc.max_summands} summands, there are "
                                 f"{len(client_ids)} clients")
        s_id, g_seed = session_seeds(seed)
        signing: dict[int, SigningKey] = dict(signing_keys or {})
        if mode == "malicious" and not signing:
            signing = {u: SigningKey.generate() for u in client_ids}
        config = SecAggConfig.create(
            client_ids, dimension, threshold=threshold, degree=neighbors, mode=mode,
            dropout_fraction=dropout_fraction, corrupt_fraction=corrupt_fraction,
            modulus_bits=enc.modulus_bits,
            session_id=s_id if session_id is None else session_id,
            graph_seed=g_seed if graph_seed is None else graph_seed,
            registry={u: k.verify_key() for u, k in signing.items()} if signing else None,
        )
        # each client requires of the configuration the corrupt fraction it was built for
        target = SecurityTarget(corrupt_fraction=corrupt_fraction)
        clients: dict[int, Any] = {
            u: SecAggClient(config, u, signing_key=signing.get(u), target=target)
            for u in client_ids}
        return Session(config=config, coordinator=SecAggServer(config), clients=clients,
                       encoder=enc, rounds=config.rounds)
    return build


def _restore(config: SecAggConfig, data: bytes, *,
             signing_key: SigningKey | None = None) -> SecAggClient:
    return SecAggClient.restore(config, data, signing_key=signing_key)


def _descriptor(name: str, complete: bool) -> ProtocolDescriptor:
    return ProtocolDescriptor(
        name=name, rounds=ROUNDS, input_round="masked_input", build=_build(complete),
        make_codec=SecAggCodec, dump_config=SecAggConfig.to_bytes,
        load_config=SecAggConfig.from_bytes, restore=_restore)


#: Bonawitz et al. (CCS 2017): every client masks with every other.
SECAGG = _descriptor("secagg", complete=True)
#: Bell et al. (CCS 2020): a random Harary graph of derived (or given) degree.
SECAGG_PLUS = _descriptor("secagg+", complete=False)
