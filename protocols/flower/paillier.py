"""Paillier summation over Flower: the threshold layout, its key dealt out of band.

The ServerApp is the aggregator and must never hold key material beyond
public keys, so of the three trust layouts of :mod:`protocols.paillier_sum`
only ``"threshold"`` runs here, and only on a key dealt **before** the run
by a trusted dealer outside the server (:func:`deal_to_files`, or
``LocalDeployment(n, paillier_committee=k)``):

* every node and the server get the **public material** file
  (:class:`~protocols.paillier_sum.ThresholdPublic`: public key, t,
  verification keys, the committee's node ids), named in each node's config
  as ``secagg-paillier-public`` and given to the ServerApp (``public=`` a
  path or the parsed material; the FedAvg app reads the run config's
  ``paillier-public``);
* each committee node gets **its key share** in a file only it reads
  (mode 0600), named in its node config as ``secagg-paillier-share``. The
  share never travels through the server, and it is never in the party's
  saved state (``context.state``): the node reads it again from its file
  for the decryption round.

A session takes two round trips: **encrypt** (the server relays the public
setup with the global model; each node trains, checks the relayed setup
against its own file, and answers with its encrypted update) and
**decrypt** (the encrypted sum goes to the committee; each member answers
with a partial decryption and its proof). The server verifies every proof,
counts a wrong answer as that decryptor's dropout (naming it), and combines
any t valid answers into the exact sum; fewer than t abort the session with
nothing output. A committee node offline when the session starts is a
dropout too.

Server side: :func:`flower_session` is how :func:`~protocols.flower.run_session`
builds a ``"paillier"`` session (it refuses the other layouts, and a
threshold session without pre-dealt public material, before anything is
sent). Node side: :func:`node_options` gives
:func:`~protocols.flower.secure_aggregation_mod` everything it needs
(``secure_train(app, train, **node_options())``): the accepted protocols,
the Paillier party factory, and a policy that refuses a session whose key
digest, committee or threshold differ from the node's public material file.

**The key decides the mode.** The dealer states in the public material
whether the key runs semi-honest or malicious-mode sessions
(``deal_to_files(..., mode="malicious")``; ``LocalDeployment`` deals for
malicious mode with ``identity=True``). Every node, on the committee or
not, refuses a session of the other mode on that key, whatever its own
``secagg-require-malicious`` says: a semi-honest committee decrypts
whatever the server sends, so a malicious-mode input could otherwise be
decrypted alone in a semi-honest session on the same key. The server's
:func:`flower_session` refuses the mismatch before anything is sent.

**Malicious ServerApp** (``run_session(..., mode="malicious",
registry=<registry file or mapping>)`` on a key dealt for it): the nodes
use the identity of SecAgg's malicious mode (:mod:`protocols.flower.identity`):
the registry file (``secagg-registry``) and the node's Ed25519 key
(``secagg-signing-key``), both out of band. Each node refuses a session
whose registry differs from its file for any client id in it (the server's
copy is checked, never trusted), signs its encrypted update, and a committee
node decrypts only the product it computes itself from every included
input, after checking each signature, that the ids are distinct members of
the session and that there are at least ``min_clients`` of them; it answers
once per session. A decryption request for a session the node holds no
party for is refused (a SuperNode that restarted fails closed). A node
refuses to start a malicious session whose configuration digest it already
started under the same key, in any run and across restarts: the digests are
kept in a **journal file** in the folder named by ``secagg-paillier-journal``
(:mod:`protocols.flower.journal`; one file per node id and key, fsynced
before the node answers), so the ServerApp cannot rerun a configuration to
have another subset of the same signed inputs decrypted. A node without
that config key refuses malicious-mode sessions (fail closed).

Security assumption: the dealer is trusted (SECURITY.md); the files reach
the nodes out of band (their operators copy them), never through the
server; the server relays the public setup unauthenticated, so nodes trust
only their own copy. In the default semi-honest mode the ServerApp is
honest-but-curious: the committee decrypts whatever ciphertext the server
sends as the sum, so a malicious ServerApp can have any single ciphertext
it holds decrypted, also one from an earlier session of the same dealing
(the ``min_clients`` floor guards against misconfiguration only). Deal the
key for ``mode="malicious"`` where the ServerApp may deviate; what it still
leaves open (colluding nodes, a journal its operator deletes or rolls back)
is in SECURITY.md.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from flwr.app import Context

from secagg.errors import IntegrityError, ParameterError, ProtocolError
from secagg.paillier import DEFAULT_KEY_BITS
from secagg.sign import VerifyKey

from ..core import ClientParty, ProtocolDescriptor, Session, check_client_ids
from ..paillier_sum import (
    PAILLIER_SUM,
    PaillierQuantizer,
    PaillierSumClient,
    PaillierSumCodec,
    PaillierSumConfig,
    ThresholdPublic,
    deal_committee,
    read_key_share,
    read_public,
    write_key_share,
    write_public,
)
from .identity import node_identity, read_registry
from .journal import read_journal, write_journal

__all__ = [
    "JOURNAL_CONFIG_KEY",
    "MIN_CLIENTS_CONFIG_KEY",
    "PUBLIC_CONFIG_KEY",
    "SHARE_CONFIG_KEY",
    "check_relayed_quantizer",
    "deal_to_files",
    "fedavg_params",
    "flower_session",
    "node_options",
    "paillier_client",
    "paillier_descriptor",
    "paillier_node",
]

#: node config key: path of the public material file (every node)
PUBLIC_CONFIG_KEY = "secagg-paillier-public"
#: node config key: path of this node's key share file (committee nodes only)
SHARE_CONFIG_KEY = "secagg-paillier-share"
#: node config key: the fewest inputs a sum this node helps decrypt may hold (default 2)
MIN_CLIENTS_CONFIG_KEY = "secagg-paillier-min-clients"
#: node config key: folder of this node's journal of malicious-mode sessions (every
#: node that takes part in them; see :mod:`protocols.flower.journal`)
JOURNAL_CONFIG_KEY = "secagg-paillier-journal"
#: the server's default ``min_clients`` and the nodes' default floor: a decrypted
#: "sum" of one input is that input
DEFAULT_MIN_CLIENTS = 2

_THRESHOLD_HINT = ("use trust='threshold' with a key dealt out of band: "
                   "protocols.flower.paillier.deal_to_files (or LocalDeployment(n, "
                   "paillier_committee=k)) and run_session(..., public=<public material>)")
#: why each other layout cannot run over Flower
REFUSED_LAYOUTS = {
    "key-holder": (
        "trust='key-holder' cannot run over Flower: its key holder is an auxiliary party "
        "(session.others['key_holder']) that holds the private key and decrypts; Flower "
        "routes messages between the ServerApp and node ids only, and a key holder inside "
        "the ServerApp would let the aggregator decrypt every single input; "),
    "cross-silo": (
        "trust='cross-silo' cannot run over Flower: every client holds the whole private "
        "key (one curious node decrypts every other node's input), the session builder on "
        "the ServerApp would need that key too, and the sum is decrypted on the nodes only, "
        "so the ServerApp gets no result to step the model with; "),
}
#: session parameters the ServerApp never takes (key material or dealing)
_SERVER_REFUSES = ("keypair", "key_bits", "key_shares", "decryptors", "decrypt_threshold",
                   "committee", "signing_keys")


def _insecure_codec(config: PaillierSumConfig, **options: Any) -> PaillierSumCodec:
    return PaillierSumCodec(config, insecure_allow_small_key_for_tests=True)


def paillier_descriptor(*, insecure_allow_small_key_for_tests: bool = False
                        ) -> ProtocolDescriptor:
    """:data:`~protocols.paillier_sum.PAILLIER_SUM`, or (test-only flag) a copy
    whose codec accepts keys below 2048 bits on both ends of the transport."""
    if not insecure_allow_small_key_for_tests:
        return PAILLIER_SUM
    return dataclasses.replace(PAILLIER_SUM, make_codec=_insecure_codec)


# ---------------------------------------------------------------------- dealing


def deal_to_files(
    folder: Path | str,
    committee: Iterable[int],
    threshold: int,
    *,
    key_bits: int = DEFAULT_KEY_BITS,
    keypair: tuple[Any, Any] | None = None,
    mode: str = "semi-honest",
    insecure_allow_small_key_for_tests: bool = False,
) -> tuple[Path, dict[int, Path]]:
    """The trusted dealer, out of band: deal a ``threshold``-of-``len(committee)``
    key for the committee's node ids and write ``paillier-public.bin`` (for the
    server and every node) and ``paillier-share-<node id>.bin`` (mode 0600, for
    that node only) into ``folder``. ``mode`` (``"semi-honest"`` or
    ``"malicious"``) is the only session mode the key will run, stated in the
    public file: every node refuses a session of the other mode on it.
    Returns ``(public path, {node id: share path})``. Hand each share file to
    its node out of band, then delete it here; the dealer's process should
    exit afterwards (it saw the whole key)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    public, shares = deal_committee(
        committee, threshold, key_bits=key_bits, keypair=keypair, mode=mode,
        insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests)
    public_path = out / "paillier-public.bin"
    write_public(public_path, public)
    paths = {}
    for cid in public.committee:
        paths[cid] = out / f"paillier-share-{cid}.bin"
        write_key_share(paths[cid], cid, shares.pop(cid))
    return public_path, paths


# ------------------------------------------------------------------- server side


def _public(value: Any, insecure: bool) -> ThresholdPublic:
    if isinstance(value, ThresholdPublic):
        return value
    if isinstance(value, (str, Path)):
        return read_public(value, insecure_allow_small_key_for_tests=insecure)
    raise ParameterError(f"public must be a ThresholdPublic or the path of its file, got "
                         f"{type(value).__name__}")


def check_layout(trust: Any) -> None:
    """Refuse every Paillier layout but ``"threshold"``, saying why."""
    if trust != "threshold":
        why = REFUSED_LAYOUTS.get(str(trust), f"trust={trust!r} is not a Flower layout; ")
        raise ParameterError(why + _THRESHOLD_HINT)


def flower_session(descriptor: ProtocolDescriptor, node_ids: Iterable[int], dimension: int,
                   session: Session | None, params: Mapping[str, Any]) -> Session:
    """How the Flower driver builds (or checks) a ``"paillier"`` session on the server.

    ``params``: ``public`` (a :class:`~protocols.paillier_sum.ThresholdPublic`
    or its file's path; required), ``trust`` (``"threshold"``, the default
    here; any other layout is refused with the reason), and the encoding
    parameters of :data:`~protocols.paillier_sum.PAILLIER_SUM` (``clip``,
    ``value_bits``, ``min_clients``, ...). ``round`` is refused: each session
    draws a fresh 63-bit round number (:mod:`secrets`), so no two sessions
    share a configuration digest or a decryption context. Key material and
    dealing parameters (``keypair``, ``key_shares``, ``committee``, ...) are
    refused: the ServerApp holds public material only. The session's clients
    are ``node_ids`` and every committee member (one not in ``node_ids`` is
    never messaged: a dropout); ``min_clients`` defaults to 2 (the nodes
    refuse less by default). A ``session`` built elsewhere must be of the
    threshold layout on pre-dealt material (no dealer party).
    """
    if session is not None:
        if params:
            raise ParameterError(f"give session parameters {sorted(params)} or a session, "
                                 "not both")
        config = session.config
        check_layout(getattr(config, "trust_layout", None))
        if session.others or not getattr(session.coordinator, "dealt_out_of_band", False):
            raise ParameterError(
                "this threshold session has an in-process dealer "
                f"({sorted(session.others) or 'none'}): on Flower it would run in the "
                "ServerApp and see the whole key; " + _THRESHOLD_HINT)
        return session
    p = dict(params)
    check_layout(p.pop("trust", "threshold"))
    refused = sorted(k for k in _SERVER_REFUSES if p.get(k) is not None)
    if refused:
        raise ParameterError(f"the ServerApp never holds key material or deals keys: drop "
                             f"{refused}; " + _THRESHOLD_HINT)
    for k in _SERVER_REFUSES:
        p.pop(k, None)
    if p.get("public") is None:
        raise ParameterError("a threshold Paillier session over Flower needs public= (the "
                             "public material of a key dealt out of band): dealing in the "
                             "ServerApp would hand the aggregator the private key; "
                             + _THRESHOLD_HINT)
    if p.get("round") is not None:
        raise ParameterError(f"round={p['round']!r}: each Paillier session over Flower draws a "
                             "fresh round number itself (the same parameters serve every "
                             "session of a run, and a repeated round repeats the decryption "
                             "context); drop round")
    p.pop("round", None)
    insecure = bool(p.get("insecure_allow_small_key_for_tests", False))
    public = _public(p.pop("public"), insecure)
    ids = check_client_ids(node_ids)
    clients = sorted(set(ids) | set(public.committee))
    p.setdefault("min_clients", min(DEFAULT_MIN_CLIENTS, len(clients)))
    if p.get("mode", "semi-honest") == "malicious":
        p["registry"] = _session_registry(p.get("registry"), clients)
    elif p.get("registry") is not None:
        raise ParameterError("registry= belongs to mode='malicious'")
    if p.get("mode", "semi-honest") != public.mode:
        raise ParameterError(f"mode={p.get('mode', 'semi-honest')!r}, but the key in public= "
                             f"was dealt for mode={public.mode!r} sessions only (every node "
                             "refuses another mode on it)"
                             + (": pass mode='malicious' and registry="
                                if public.mode == "malicious" else ""))
    # a fresh 63-bit round per session: its config digest, and so the context every
    # partial decryption is bound to, differ from every other session's
    return descriptor.make_session(clients, dimension, trust="threshold", public=public,
                                   round=secrets.randbits(63), **p)


def _session_registry(value: Any, clients: Iterable[int]) -> dict[int, VerifyKey]:
    """The identity registry (a file path or a mapping) restricted to ``clients``."""
    if value is None:
        raise ParameterError("mode='malicious' needs registry= (the identity registry file "
                             "every node holds, see protocols.flower.identity)")
    reg = read_registry(value) if isinstance(value, (str, Path)) else dict(value)
    missing = [c for c in clients if c not in reg]
    if missing:
        raise ParameterError(f"node ids {missing[:5]} of the session have no registry entry")
    return {c: reg[c] for c in clients}


def fedavg_params(run_config: Mapping[str, Any], clip: float) -> dict[str, Any]:
    """Session parameters of a FedAvg round with ``protocol = "paillier"``: the
    public material from the run config's ``paillier-public`` (a path on the
    ServerApp's machine), ``clip`` and ``paillier-value-bits`` (2..48). The
    test-only run-config key ``insecure-allow-small-key-for-tests`` lets the
    server take a key below 2048 bits (nodes still refuse one unless their
    own ClientApp passes the flag to :func:`node_options`). ``paillier-registry``
    (a path on the ServerApp's machine: the identity registry file the nodes
    hold, see :mod:`protocols.flower.identity`) runs every session in
    ``mode="malicious"``; empty or absent: semi-honest. The mode must be the
    one the key was dealt for (ParameterError otherwise)."""
    path = str(run_config.get("paillier-public", ""))
    if not path:
        raise ParameterError("protocol 'paillier' needs the run config's paillier-public "
                             "(path of the public material file the dealer wrote)")
    bits = run_config.get("paillier-value-bits", 28)
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 48:
        raise ParameterError(f"paillier-value-bits={bits!r} is not an int in 2..48")
    insecure = bool(run_config.get("insecure-allow-small-key-for-tests", False))
    params: dict[str, Any] = {
        "public": read_public(path, insecure_allow_small_key_for_tests=insecure),
        "clip": float(clip), "value_bits": bits, "insecure_allow_small_key_for_tests": insecure}
    registry = str(run_config.get("paillier-registry", ""))
    if registry:
        params.update(mode="malicious", registry=read_registry(registry))
    if params.get("mode", "semi-honest") != params["public"].mode:
        raise ParameterError(f"the key in paillier-public={path} was dealt for "
                             f"{params['public'].mode} sessions only, and paillier-registry is "
                             f"{'set' if registry else 'empty'}: give the registry exactly "
                             "when the key is dealt for malicious mode")
    return params


# --------------------------------------------------------------------- node side


def _node_public(context: Context, insecure: bool) -> ThresholdPublic:
    path = context.node_config.get(PUBLIC_CONFIG_KEY)
    if not path:
        raise ProtocolError(f"a Paillier session, but no {PUBLIC_CONFIG_KEY} in the node "
                            "config (this node has no public material to check it against)")
    return read_public(str(path), insecure_allow_small_key_for_tests=insecure)


def paillier_node(*, insecure_allow_small_key_for_tests: bool = False) -> tuple[
        Callable[[ProtocolDescriptor, Any, Context], None],
        Callable[[ProtocolDescriptor, Any, Context], Mapping[str, Any]]]:
    """``(policy, local_secrets)`` for Paillier sessions (other protocols pass).

    ``policy`` refuses a session that is not of the threshold layout,
    whose threshold key digest, committee or threshold differ from the
    node's public material file (:class:`~secagg.errors.IntegrityError`), or
    whose ``min_clients`` is below the node config's
    ``secagg-paillier-min-clients`` (default 2: a decrypted sum of one input
    is that input).
    ``local_secrets`` reads that file and, on a committee node, its key share
    (checked: this node's id, the committee key, its index, its verification
    key).

    ``policy`` also refuses a session whose mode is not the one the key was
    dealt for (the public material's ``mode``), whatever the node's
    ``secagg-require-malicious``.

    Malicious mode uses the identity of :func:`~protocols.flower.identity.node_identity`:
    ``policy`` refuses a session whose registry differs from the node's
    ``secagg-registry`` file for any client id, and one whose configuration
    digest this node already started under the key, in any run (its journal
    in the folder ``secagg-paillier-journal``, written durably before the
    node answers; no such config key: refused); ``local_secrets`` adds the
    node's ``signing_key`` from ``secagg-signing-key``.
    ``secagg-require-malicious=1`` refuses semi-honest sessions.
    """
    insecure = insecure_allow_small_key_for_tests
    id_policy, id_secrets = node_identity()

    def policy(descriptor: ProtocolDescriptor, config: Any, context: Context) -> None:
        if descriptor.name != PAILLIER_SUM.name:
            return
        if not isinstance(config, PaillierSumConfig) or config.trust_layout != "threshold":
            raise ProtocolError("this node takes part in threshold Paillier sessions only, "
                                f"not {getattr(config, 'trust_layout', None)!r}")
        id_policy(descriptor, config, context)  # the registry against this node's file
        mine = _node_public(context, insecure)
        if config.threshold_key_digest != mine.key.digest:
            raise IntegrityError("the session's threshold key differs from this node's "
                                 "public material file")
        if config.decryptor_ids != mine.committee:
            raise IntegrityError(f"the session's committee {list(config.decryptor_ids)} "
                                 f"differs from this node's file {list(mine.committee)}")
        if config.decrypt_threshold != mine.threshold:
            raise IntegrityError(f"the session's threshold {config.decrypt_threshold} differs "
                                 f"from this node's file ({mine.threshold})")
        floor = context.node_config.get(MIN_CLIENTS_CONFIG_KEY, DEFAULT_MIN_CLIENTS)
        if isinstance(floor, bool) or not isinstance(floor, int) or floor < 1:
            raise ProtocolError(f"node config {MIN_CLIENTS_CONFIG_KEY}={floor!r} is not an "
                                "int >= 1")
        if config.min_clients < floor:
            raise ProtocolError(f"the session decrypts sums of as few as min_clients="
                                f"{config.min_clients} inputs; this node requires at least "
                                f"{floor} ({MIN_CLIENTS_CONFIG_KEY})")
        if config.mode != mine.mode:
            raise IntegrityError(f"a {config.mode} session on a key dealt for {mine.mode} "
                                 "sessions only (this node's public material file): refused")
        if config.mode == "malicious":
            _spend(context, mine.key.digest, config.digest)

    def local_secrets(descriptor: ProtocolDescriptor, config: Any,
                      context: Context) -> Mapping[str, Any]:
        if descriptor.name != PAILLIER_SUM.name:
            return {}
        mine = _node_public(context, insecure)
        me = int(context.node_id)
        share = None
        if me in mine.committee:
            path = context.node_config.get(SHARE_CONFIG_KEY)
            if not path:
                raise ProtocolError(f"this node is on the decryption committee but has no "
                                    f"{SHARE_CONFIG_KEY} in its node config")
            share = read_key_share(str(path), me, mine,
                                   insecure_allow_small_key_for_tests=insecure)
        # the whole public material: the party checks the committee and t itself too
        return {"threshold_key": mine, "key_share": share,
                "insecure_allow_small_key_for_tests": insecure,
                **id_secrets(descriptor, config, context)}

    return policy, local_secrets


def _spend(context: Context, key_digest: bytes, digest: bytes) -> None:
    """Record, durably, that this node starts the session of ``digest`` under
    the key of ``key_digest``; refuse a repeat.

    A decryptor answers once per party, but a party ends with its session: a
    ServerApp that reran a configuration (in this run, in a new run, or after
    the SuperNode restarted: each gives a fresh ``context.state``) would meet
    a fresh party, which would decrypt another subset of the same signed
    inputs. The digests live in the node's journal file
    (:mod:`protocols.flower.journal`, folder ``secagg-paillier-journal``),
    written and fsynced before the node answers; without that key in the node
    config a malicious-mode session is refused (fail closed)."""
    folder = context.node_config.get(JOURNAL_CONFIG_KEY)
    if not folder or not isinstance(folder, str):
        raise ProtocolError(f"a malicious-mode Paillier session, but no {JOURNAL_CONFIG_KEY} "
                            "in the node config: without a durable journal this node could "
                            "not refuse a rerun of the session's configuration in a later "
                            "run or after a restart, so it refuses the session")
    if not Path(folder).is_absolute():
        raise ParameterError(f"{JOURNAL_CONFIG_KEY}={folder!r} must be an absolute path (a "
                             "relative one would follow the node's working directory)")
    me = int(context.node_id)
    spent = read_journal(folder, me, key_digest)
    if digest in spent:
        raise IntegrityError("this node already took part in a malicious-mode Paillier session "
                             f"with this configuration (digest {digest.hex()[:16]}...); a rerun "
                             "is refused")
    write_journal(folder, me, key_digest, [*spent, digest])


def check_relayed_quantizer(config: Any, encoder: Any) -> None:
    """Refuse a relayed encoder that is not the Paillier session's own quantizer.

    The server sends the encoder beside the configuration; a Paillier
    configuration already names ``clip`` and ``value_bits``, so the node must
    encode its update with exactly that quantizer (another clip or scale would
    make it send its update at a precision or range the configuration does not
    state). Other protocols' configurations pass. Raises
    :class:`~secagg.errors.ProtocolError` naming both values."""
    if not isinstance(config, PaillierSumConfig):
        return
    mine = config.quantizer
    if not isinstance(encoder, PaillierQuantizer):
        raise ProtocolError(f"a Paillier session relayed a {type(encoder).__name__}, not its "
                            f"{mine!r}")
    got = (encoder.clip, encoder.value_bits, encoder.scale)
    want = (mine.clip, mine.value_bits, mine.scale)
    if got != want:
        raise ProtocolError(f"the relayed quantizer (clip, value bits, scale) {got} differs "
                            f"from the session configuration's {want}")


def paillier_client(config: Any, client_id: int, **local_secrets: Any) -> ClientParty:
    """A fresh Paillier party for this node (``local_secrets`` from
    :func:`paillier_node`: its public material and, on the committee, its share)."""
    if local_secrets.get("threshold_key") is None:
        raise ProtocolError("a Paillier party needs the node's own public material "
                            f"({PUBLIC_CONFIG_KEY})")
    party: ClientParty = PaillierSumClient(client_id, config, **local_secrets)
    return party


def node_options(*, insecure_allow_small_key_for_tests: bool = False) -> dict[str, Any]:
    """Keyword arguments for :func:`~protocols.flower.secure_aggregation_mod` /
    :func:`~protocols.flower.secure_train`: SecAgg, SecAgg+ (with the identity
    registry of :func:`~protocols.flower.identity.node_identity`) and threshold
    Paillier (:func:`paillier_node`, which uses the same identity in
    malicious mode)."""
    from ..secagg import SECAGG, SECAGG_PLUS
    from .identity import node_identity

    id_policy, id_secrets = node_identity()
    p_policy, p_secrets = paillier_node(
        insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests)

    def policy(descriptor: ProtocolDescriptor, config: Any, context: Context) -> None:
        pick = p_policy if descriptor.name == PAILLIER_SUM.name else id_policy
        pick(descriptor, config, context)

    def local_secrets(descriptor: ProtocolDescriptor, config: Any,
                      context: Context) -> Mapping[str, Any]:
        pick = p_secrets if descriptor.name == PAILLIER_SUM.name else id_secrets
        return pick(descriptor, config, context)

    descriptor = paillier_descriptor(
        insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests)
    return {"protocols": (SECAGG, SECAGG_PLUS, descriptor),
            "factories": {PAILLIER_SUM.name: paillier_client},
            "policy": policy, "local_secrets": local_secrets}
