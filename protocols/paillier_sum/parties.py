"""The three parties of Paillier summation, as sans-I/O state machines.

Each party takes one typed message in ``handle`` and returns the
:class:`~protocols.core.Envelope` s it sends; it owns no socket, thread,
clock or global state. A refused message raises a specific
:class:`~secagg.errors.SecAggError` subclass and leaves the party unchanged.

* :class:`PaillierSumKeyHolder` (``"key-holder"`` layout, address
  :data:`KEY_HOLDER`): ``start()`` announces the public setup; it decrypts
  one :class:`EncryptedSum` per round and answers with a :class:`DecryptedSum`.
* :class:`PaillierSumClient`: encrypts its input once the public setup is
  known (key-holder), or announces the setup and sends its input in
  ``start()`` and decrypts the broadcast sum (cross-silo, sharing the key).
* :class:`PaillierSumAggregator` (the coordinator, address
  :data:`~protocols.core.SERVER`): adds the ciphertexts it cannot read;
  ``close_round()`` (or the last client's input) sends the sum on.
* :class:`PaillierSumDealer` (``"threshold"`` layout, address
  :data:`DEALER`): the trusted dealer; ``start()`` announces the threshold
  key and seals each decryptor's key share to it, then drops the shares.

In the ``"threshold"`` layout the committee (clients named in
``config.committee``) decrypts: each decryptor answers the aggregator's
:class:`EncryptedSum` with a :class:`DecryptionShare` (a partial decryption
with its proof, bound to the config digest); the aggregator verifies every
proof, refuses an answer that fails with :class:`FaultyDecryptorError` naming
the decryptor (it stays unchanged; the decryptor counts as dropped and a
transport goes on with the others), and combines once ``decrypt_threshold``
valid answers arrived.

``mode="malicious"`` (threshold layout; the aggregator may deviate): every
client encrypts on the online path, proves knowledge of each ciphertext's
plaintext (:mod:`secagg.paillier.popk`, bound to :func:`proof_context`) and
signs its :class:`EncryptedInput` (ciphertexts and proofs) with its Ed25519
identity key (``signing_key=``, checked against ``config.registry``); the
aggregator verifies each signature and the proofs on arrival and sends the
committee :class:`SignedInputs` (every included input with its signature
and proofs) instead of the product. A decryptor checks every input
(distinct ids of the round, distinct ciphertexts, signatures valid under
the registry for this config digest, at least ``min_clients`` of them),
then verifies all inputs' proofs of plaintext knowledge in one batch
(committed form, :func:`secagg.paillier.popk.verify_batch`), multiplies
them itself and partially
decrypts only that product, once per session. The aggregator still
computes the same product to verify the decryption proofs.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from secagg import kex, paillier, wire
from secagg.errors import (
    AbortError,
    EncodingError,
    IntegrityError,
    LocalProtocolError,
    ParameterError,
    RemoteProtocolError,
    SecAggError,
)
from secagg.paillier import (
    ClipPolicy,
    DJNTable,
    EncryptedVector,
    EncryptionMode,
    ObfuscatorPool,
    popk,
)
from secagg.paillier import threshold as tp
from secagg.sign import SigningKey

from ..core import SERVER, CoordinatorResult, Envelope
from .config import PaillierSumConfig
from .dealing import ThresholdPublic
from .messages import (
    DEALER,
    KEY_HOLDER,
    DecryptedSum,
    DecryptionShare,
    EncryptedInput,
    EncryptedSum,
    Message,
    PublicSetup,
    SignedInputs,
    ThresholdSetup,
    input_signing_payload,
    open_vector,
    proof_context,
)

__all__ = ["FaultyDecryptorError", "MalformedSumError", "PaillierSumAggregator",
           "PaillierSumClient", "PaillierSumDealer",
           "PaillierSumKeyHolder", "decryption_context", "share_seal_key"]

ProtocolError = RemoteProtocolError  # what a party raises for a peer's bad message
_ENCRYPTIONS = ("online", "pool", "crt", "djn")
_CLIENT_STATES = ("new", "sent", "done")
_STATE_MAGIC = b"PSCS"
_STATE_VERSION = 1  # key-holder and cross-silo
_STATE_VERSION_THRESHOLD = 2  # adds the threshold key and the still-sealed key share
_SEAL_INFO = b"secagg/paillier_sum/share-seal/v1"
_NO_DEALER_KEY = bytes(32)  # what a setup without a sealed share carries
_MAX_STATE_BLOB = 1 << 24


def decryption_context(config: PaillierSumConfig) -> bytes:
    """The context every partial decryption of ``config``'s round is bound to."""
    return b"secagg/paillier_sum/decrypt/v1" + config.digest


def share_seal_key(own: kex.PrivateKey, peer: kex.PublicKey,
                   config: PaillierSumConfig) -> bytes:
    """The AES-256-GCM key a key share is sealed under: X25519 between the
    dealer's one-time key and the decryptor's key, HKDF'd with the config
    digest (so a sealed share opens only for its decryptor, in this round)."""
    return kex.agree(own, peer, _SEAL_INFO + config.digest)


def _check_bound(raw: npt.NDArray[np.int64], summands: int, max_int: int) -> None:
    """Every value of an exact sum of ``summands`` inputs lies in
    ``[-summands * M, summands * M]`` (compared without ``abs``, which leaves
    ``-2^63`` negative)."""
    bound = summands * max_int
    if raw.size and (int(raw.max()) > bound or int(raw.min()) < -bound):
        raise ProtocolError(
            f"decrypted sum holds {int(raw.min())} .. {int(raw.max())}, past the largest "
            f"possible |sum| {bound} of {summands} inputs")


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated; use {new}", DeprecationWarning, stacklevel=3)


def _check_sum_request(
    config: PaillierSumConfig, layout: paillier.PackingLayout, msg: EncryptedSum,
    vec: EncryptedVector,
) -> None:
    """Checks shared by every party that decrypts an EncryptedSum."""
    extra = msg.included - config.clients
    if extra:
        raise ProtocolError(f"the sum names clients outside the round: {sorted(extra)}")
    if len(msg.included) < config.min_clients:
        raise ProtocolError(
            f"refusing to decrypt a sum of {len(msg.included)} inputs; "
            f"min_clients is {config.min_clients}"
        )
    if vec.layout != layout:
        raise ProtocolError("the sum's packing layout differs from the round's")
    if vec.summands != len(msg.included):
        raise ProtocolError(
            f"the sum holds {vec.summands} summands but names {len(msg.included)} clients"
        )


def _exact_input(i: object) -> tuple[int, bytes, bytes, bytes]:
    """``(sender, payload, signature, proofs)`` of an input whose fields are
    exactly ``int`` and ``bytes`` (no subclass: a subclass can answer each
    read differently, so a check and a use could see different bytes)."""
    if (type(i) is not EncryptedInput or type(i.sender) is not int
            or type(i.payload) is not bytes or type(i.signature) is not bytes
            or type(i.proofs) is not bytes):
        raise ProtocolError("an input must be an EncryptedInput with an exact int sender and "
                            "exact bytes payload, signature and proofs (no subclasses)")
    return i.sender, i.payload, i.signature, i.proofs


def _check_proofs(config: PaillierSumConfig,
                  items: Sequence[tuple[int, EncryptedVector, bytes]],
                  public_key: Any, insecure: bool) -> None:
    """Every ``(client, vector, proof bytes)`` item's proofs of plaintext
    knowledge (committed form, ``SGPB``) verify under that client's
    :func:`proof_context`, checked together in ONE batched verification
    (:func:`secagg.paillier.popk.verify_batch`: soundness 2^-127 for the
    dealer's safe-prime threshold keys); else :class:`IntegrityError`
    naming the first client whose proofs fail. Malformed proof bytes are
    refused while parsing, before any exponentiation; when the batch fails,
    each item is re-checked alone (one batch of its own proofs) to name
    the culprit, so only a refused request pays more than one batch."""
    batch: list[tuple[EncryptedVector, popk.BatchableProofVector, bytes]] = []
    for client, vec, proofs in items:
        try:
            pv = popk.BatchableProofVector.from_bytes(
                proofs, public_key, count=len(vec.ciphertexts),
                insecure_allow_small_key_for_tests=insecure)
        except SecAggError as exc:
            raise IntegrityError(f"client {client}'s proof of plaintext knowledge is refused: "
                                 f"{exc}") from exc
        batch.append((vec, pv, proof_context(config, client)))
    try:
        popk.verify_batch(batch)
        return
    except SecAggError as exc:
        failure = exc
    for (client, _, _), item in zip(items, batch, strict=True):
        try:
            popk.verify_batch([item])
        except SecAggError as exc:
            raise IntegrityError(f"client {client}'s proof of plaintext knowledge is refused: "
                                 f"{exc}") from exc
    raise IntegrityError(f"the proofs of plaintext knowledge of clients "
                         f"{[c for c, _, _ in items]} are refused together: {failure}")


def _signed_product(config: PaillierSumConfig, layout: paillier.PackingLayout, public_key: Any,
                    msg: SignedInputs, insecure: bool) -> tuple[EncryptedVector, frozenset[int]]:
    """Malicious mode: check every input a decryption request carries and
    return their product mod n^2, computed here (never the aggregator's),
    with the ids of the clients in it.

    Refused (:class:`~secagg.errors.RemoteProtocolError`, or
    :class:`~secagg.errors.IntegrityError` for a bad signature or proof): a
    sender other than the aggregator, a field that is not exactly ``int`` or
    ``bytes``, a repeated or unknown client id, fewer than ``min_clients``
    inputs, a repeated ciphertext, a signature that does not verify under
    ``config.registry`` for this config digest, a vector under another key or
    layout or claiming more than one summand, proofs of plaintext knowledge
    that do not verify for that client under this config digest (so no
    client can sign a product, inverse or re-randomised copy of others'
    ciphertexts as its input). The cheap checks (types, ids, count,
    signatures, layout, summands, proof parsing) run on every input first;
    then ALL inputs' proofs are verified in one batch (:func:`_check_proofs`)
    before anything is multiplied. Each field is read once; only those
    values are checked and used; the request itself must be exactly a
    :class:`SignedInputs`."""
    if type(msg) is not SignedInputs:
        raise ProtocolError(f"a decryption request must be a SignedInputs, not "
                            f"{type(msg).__name__}")
    if msg.sender != SERVER:
        raise ProtocolError(f"a decryption request from {msg.sender!r}, not the aggregator")
    if type(msg.inputs) is not tuple:
        raise ProtocolError("a decryption request holds a tuple of EncryptedInput objects only")
    inputs = [_exact_input(i) for i in msg.inputs]
    ids = [i[0] for i in inputs]
    if len(set(ids)) != len(ids):
        raise ProtocolError(f"the request names a client twice: {sorted(ids)}")
    extra = set(ids) - config.clients
    if extra:
        raise ProtocolError(f"the request names clients outside the round: "
                            f"{sorted(extra, key=repr)}")
    if len(ids) < config.min_clients:
        raise ProtocolError(f"refusing to decrypt a sum of {len(ids)} inputs; min_clients is "
                            f"{config.min_clients}")
    digests = {hashlib.sha256(payload).digest() for _, payload, _, _ in inputs}
    if len(digests) != len(inputs):
        raise ProtocolError("the request holds one ciphertext twice")
    assert config.registry is not None
    vectors = []
    checked: list[tuple[int, EncryptedVector, bytes]] = []
    for sender, payload, signature, proofs in inputs:
        try:
            config.registry[sender].verify(
                signature, input_signing_payload(config, sender, payload, proofs))
        except SecAggError as exc:
            raise IntegrityError(f"client {sender}'s input is not signed by its registry key "
                                 f"for this configuration: {exc}") from exc
        vec = open_vector(payload, public_key, insecure)
        if layout != vec.layout:
            raise ProtocolError(f"client {sender}'s vector has another packing layout")
        if vec.summands != 1:
            raise ProtocolError(f"client {sender}'s vector claims {vec.summands} summands, "
                                "expected 1")
        checked.append((sender, vec, proofs))
        vectors.append(vec)
    _check_proofs(config, checked, public_key, insecure)
    try:
        return paillier.aggregate(vectors), frozenset(ids)
    except ParameterError as exc:
        raise ProtocolError(f"cannot multiply the inputs: {exc}") from exc


def _check_setup(config: PaillierSumConfig, setup: PublicSetup,
                 insecure: bool) -> paillier.PackingLayout:
    """The layout a setup must carry; raise if it carries another."""
    return _expected_layout(config, setup.public_key, setup.layout, insecure, "public setup")


def _expected_layout(config: PaillierSumConfig, public_key: Any,
                     layout: paillier.PackingLayout, insecure: bool,
                     what: str) -> paillier.PackingLayout:
    """The round's packing layout under ``public_key`` (checked: size, form);
    raise if the announced ``layout`` is another."""
    try:
        paillier.check_public_key(public_key, insecure_allow_small_key_for_tests=insecure)
        expected = config.packing(public_key, insecure_allow_small_key_for_tests=insecure)
    except ParameterError as exc:
        raise ProtocolError(f"refusing the {what}: {exc}") from exc
    if layout != expected:
        raise ProtocolError(
            f"the announced packing layout {layout} differs from the round's {expected}"
        )
    return expected


def _check_threshold_setup(config: PaillierSumConfig, setup: ThresholdSetup,
                           insecure: bool, *, relayed: bool = False) -> paillier.PackingLayout:
    """The layout a threshold setup must carry; its key must share among the
    config's committee with the config's threshold. ``relayed``: the key was
    dealt out of band and the aggregator relays its public setup (no share)."""
    if relayed:
        if setup.sender != SERVER:
            raise ProtocolError("the key was dealt out of band: only the aggregator's "
                                "relayed public setup is expected, not one from "
                                f"{setup.sender!r}")
        if setup.sealed_share or setup.dealer_key != _NO_DEALER_KEY:
            raise ProtocolError("a relayed public setup carries a key share or a dealer key; "
                                "refusing it")
    elif setup.sender != DEALER:
        raise ProtocolError("the threshold setup must come from the dealer")
    key = setup.key
    if not isinstance(key, tp.ThresholdKey):
        raise ProtocolError(f"a threshold setup carries a ThresholdKey, not "
                            f"{type(key).__name__}")
    if key.digest != config.threshold_key_digest:
        raise ProtocolError("the announced threshold key is not the one the configuration "
                            "names (digest mismatch)")
    if key.parties != len(config.committee) or key.threshold != config.decrypt_threshold:
        raise ProtocolError(
            f"the threshold key is {key.threshold}-of-{key.parties}; the round's committee "
            f"is {config.decrypt_threshold}-of-{len(config.committee)}")
    return _expected_layout(config, key.public_key, setup.layout, insecure, "threshold setup")


def _check_local_material(client_id: int, config: PaillierSumConfig,
                          material: tp.ThresholdKey | ThresholdPublic,
                          share: tp.KeyShare | None,
                          decryptor_key: kex.PrivateKey | None) -> tp.ThresholdKey:
    """A client's own copy of out-of-band dealt material must be the one the
    configuration names (given the whole :class:`ThresholdPublic`, its
    committee and t too), and a member's share must be its own. Returns the key."""
    if config.trust_layout != "threshold":
        raise ParameterError(f"threshold_key belongs to the 'threshold' layout, not "
                             f"{config.trust_layout!r}")
    if isinstance(material, ThresholdPublic):
        if material.committee != config.decryptor_ids:
            raise ParameterError(f"the configuration's committee {list(config.decryptor_ids)} "
                                 f"differs from this client's public material "
                                 f"{list(material.committee)}")
        if material.threshold != config.decrypt_threshold:
            raise ParameterError(f"the configuration's threshold {config.decrypt_threshold} "
                                 f"differs from this client's public material "
                                 f"({material.threshold})")
        if material.mode != config.mode:
            raise ParameterError(f"the key was dealt for {material.mode!r} sessions; this "
                                 f"configuration is {config.mode!r} (a key runs one mode only, "
                                 "or a malicious-mode input could be decrypted alone)")
        key = material.key
    else:
        key = material
    if not isinstance(key, tp.ThresholdKey):
        raise ParameterError(f"threshold_key must be a ThresholdKey or a ThresholdPublic, "
                             f"got {type(key).__name__}")
    if key.digest != config.threshold_key_digest:
        raise ParameterError("the configuration names another threshold key than this "
                             "client's public material (digest mismatch)")
    if decryptor_key is not None:
        raise ParameterError("a key dealt out of band needs no decryptor_key")
    if client_id in config.committee:
        if not isinstance(share, tp.KeyShare):
            raise ParameterError(f"client {client_id} is a decryptor: it needs its key_share")
        index = config.decryptor_index(client_id)
        if share.key != key or share.index != index:
            raise ParameterError(f"client {client_id}'s key_share is not share {index} of "
                                 "the configured key")
    elif share is not None:
        raise ParameterError(f"client {client_id} is not a decryptor but holds a key share")
    return key


class FaultyDecryptorError(tp.PartialDecryptionError):
    """A decryptor's answer failed verification; ``decryptor`` is its client
    id and ``faulty`` its share index. The aggregator refused it and is
    unchanged: a transport logs it and goes on (the decryptor counts as
    dropped unless it later sends a valid answer)."""

    def __init__(self, decryptor: int, index: int, detail: str) -> None:
        self.decryptor = decryptor
        super().__init__([index], f"decryptor {decryptor}: {detail}")


class MalformedSumError(AbortError):
    """Every needed partial decryption verified, yet the decrypted sum is
    malformed (a padding slot overflowed or a value lies past the largest
    possible sum): a client sent an input out of range. No decryptor is to
    blame; the session aborted and output nothing. The aggregator cannot tell
    which client it was (in malicious mode the inputs are signed, but only
    decrypting single inputs would show which one is out of range)."""


class PaillierSumDealer:
    """The trusted dealer of the ``"threshold"`` layout (address :data:`DEALER`).

    Built with the dealt key (:func:`secagg.paillier.threshold.deal`, share
    ``i`` for ``config.decryptor_ids[i - 1]``) and every decryptor's X25519
    public key (registered in advance, authentic). ``start()`` sends each
    client and the aggregator the :class:`ThresholdSetup`; a decryptor's copy
    carries its share sealed to it (AES-256-GCM under
    :func:`share_seal_key` with a one-time dealer key). The dealer then
    drops its shares. Trust assumption: the dealer ran the key generation
    honestly and forgets the factorisation (see SECURITY.md); it receives
    nothing.
    """

    address = DEALER

    def __init__(
        self,
        config: PaillierSumConfig,
        dealt: tp.Dealt,
        decryptor_keys: Mapping[int, kex.PublicKey],
        *,
        insecure_allow_small_key_for_tests: bool = False,
    ) -> None:
        if config.trust_layout != "threshold":
            raise ParameterError("a dealer exists only in the 'threshold' layout")
        key = dealt.key
        if key.digest != config.threshold_key_digest:
            raise ParameterError("the dealt key is not the one the configuration names")
        if key.parties != len(config.committee) or key.threshold != config.decrypt_threshold:
            raise ParameterError(
                f"the dealt key is {key.threshold}-of-{key.parties}; the committee is "
                f"{config.decrypt_threshold}-of-{len(config.committee)}")
        if set(decryptor_keys) != set(config.committee):
            raise ParameterError("decryptor_keys must hold one X25519 key per committee member")
        for cid, k in decryptor_keys.items():
            if not isinstance(k, kex.PublicKey):
                raise ParameterError(f"decryptor {cid}'s key is not a kex.PublicKey")
        if [s.index for s in dealt.shares] != list(range(1, key.parties + 1)):
            raise ParameterError("the dealt shares must be indices 1..parties in order")
        self.config = config
        self.key = key
        self.layout = config.packing(
            key.public_key, insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests)
        self._shares: list[tp.KeyShare] | None = list(dealt.shares)
        self._decryptor_keys = dict(decryptor_keys)
        self.state: Literal["new", "done"] = "new"

    @property
    def round(self) -> str | None:
        return "setup" if self.state == "new" else None

    def start(self) -> list[Envelope]:
        """Announce the key to everyone, each share sealed to its decryptor."""
        if self.state != "new" or self._shares is None:
            raise LocalProtocolError("the dealer has already dealt this round")
        eph = kex.PrivateKey.generate()
        eph_pub = eph.public_key().to_bytes()
        out: list[Envelope] = []
        for cid in self.config.client_ids:
            if cid in self.config.committee:
                share = self._shares[self.config.decryptor_index(cid) - 1]
                seal_key = share_seal_key(eph, self._decryptor_keys[cid], self.config)
                sealed = tp.seal_share(share, seal_key, self.config.digest)
                msg = ThresholdSetup(self.key, self.layout, eph_pub, sealed)
            else:  # no share, so no dealer key either
                msg = ThresholdSetup(self.key, self.layout, _NO_DEALER_KEY)
            out.append(Envelope(cid, msg))
        out.append(Envelope(SERVER, ThresholdSetup(self.key, self.layout, _NO_DEALER_KEY)))
        self._shares = None  # forget them (Python cannot wipe memory; see SECURITY.md)
        self.state = "done"
        return out

    def handle(self, message: Message) -> list[Envelope]:
        """The dealer receives nothing."""
        raise ProtocolError(f"the dealer does not accept {type(message).__name__}")


class PaillierSumKeyHolder:
    """The key holder of the ``"key-holder"`` layout (address :data:`KEY_HOLDER`).

    It refuses a second sum for the round, a sum of fewer than
    ``min_clients`` inputs, and anything not under its key and layout.
    """

    address = KEY_HOLDER

    def __init__(
        self,
        config: PaillierSumConfig,
        public_key: Any,
        private_key: Any,
        *,
        workers: int | None = None,
        insecure_allow_small_key_for_tests: bool = False,
    ) -> None:
        if config.trust_layout != "key-holder":
            raise ParameterError("a key holder exists only in the 'key-holder' layout")
        paillier.check_private_key(
            private_key, insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests
        )
        if paillier.fingerprint(private_key.public_key) != paillier.fingerprint(public_key):
            raise ParameterError("the private key does not belong to the public key")
        self.config = config
        self._pk = public_key
        self._sk = private_key
        self._workers = workers
        self._insecure = insecure_allow_small_key_for_tests
        self.layout = config.packing(
            public_key, insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests
        )
        self.state: Literal["new", "announced", "done"] = "new"
        self.raw_result: npt.NDArray[np.int64] | None = None
        self.included: frozenset[int] | None = None

    @property
    def round(self) -> str | None:
        return {"new": "setup", "announced": "decrypt"}.get(self.state)

    def start(self) -> list[Envelope]:
        """Announce the public key and layout to every client and the aggregator."""
        if self.state != "new":
            raise LocalProtocolError("the key holder has already announced this round")
        setup = PublicSetup(KEY_HOLDER, self._pk, self.layout)
        self.state = "announced"
        return [Envelope(c, setup) for c in self.config.client_ids] + [Envelope(SERVER, setup)]

    def handle(self, message: Message) -> list[Envelope]:
        """Decrypt the round's one :class:`EncryptedSum` for the aggregator."""
        msg = message
        if not isinstance(msg, EncryptedSum):
            raise ProtocolError(f"the key holder does not accept {type(msg).__name__}")
        if self.state == "new":
            raise ProtocolError("an encrypted sum arrived before the setup was announced")
        if self.state == "done":
            raise ProtocolError(
                f"already decrypted one sum in round {self.config.round}; refusing another"
            )
        vec = open_vector(msg.payload, self._pk, self._insecure)
        _check_sum_request(self.config, self.layout, msg, vec)
        raw = paillier.decrypt_integers(self._sk, vec, workers=self._workers)
        self.state = "done"
        self.raw_result = raw
        self.included = msg.included
        return [Envelope(SERVER, DecryptedSum(msg.included, raw))]

    def receive(self, message: Message) -> list[Envelope]:
        """Deprecated alias of :meth:`handle` (typed messages only)."""
        _deprecated("PaillierSumKeyHolder.receive", "handle")
        return self.handle(message)


class PaillierSumClient:
    """A client: encrypts its input once the public setup is known.

    ``"key-holder"``: ``handle(PublicSetup)`` returns the encrypted input.
    ``"cross-silo"``: built with the shared ``keypair``; ``start()`` returns
    the public setup and the encrypted input, and ``handle(EncryptedSum)``
    decrypts the sum into :attr:`raw_result` / :attr:`result`.

    The input is either ``values`` (floats, quantised with ``on_clip``) or an
    integer-domain vector given to :meth:`set_input` (the config's
    :class:`~protocols.paillier_sum.PaillierQuantizer`).

    ``"threshold"``: ``handle(ThresholdSetup)`` returns the encrypted
    input; a decryptor (a client in ``config.committee``, built with its
    X25519 ``decryptor_key``) opens its sealed key share from the same
    message and answers the :class:`EncryptedSum` with a
    :class:`DecryptionShare` (one per round). A key dealt out of band comes
    as ``threshold_key=`` (the :class:`ThresholdPublic` read from the
    dealer's file, whose committee and t are then checked against the
    config too, or its bare key) and a member's ``key_share=``.

    ``encryption`` picks the encryption path: ``"online"``, ``"pool"`` (needs
    ``pool``), ``"crt"`` (cross-silo only) or ``"djn"`` (the short-exponent
    variant with its non-standard assumption; uses ``djn`` or builds a
    table). ``mode=`` is its deprecated old name.
    """

    def __init__(
        self,
        client_id: int,
        config: PaillierSumConfig,
        values: npt.ArrayLike | None = None,
        *,
        keypair: tuple[Any, Any] | None = None,
        expected_public_key: Any = None,
        encryption: EncryptionMode | None = None,
        pool: ObfuscatorPool | None = None,
        djn: DJNTable | None = None,
        workers: int | None = None,
        on_clip: ClipPolicy = "clip",
        insecure_allow_small_key_for_tests: bool = False,
        mode: EncryptionMode | None = None,
        decryptor_key: kex.PrivateKey | None = None,
        threshold_key: tp.ThresholdKey | ThresholdPublic | None = None,
        key_share: tp.KeyShare | None = None,
        signing_key: SigningKey | None = None,
    ) -> None:
        if mode is not None:
            _deprecated("PaillierSumClient(mode=...)", "encryption=")
            if encryption is not None and encryption != mode:
                raise ParameterError(f"encryption={encryption!r} and mode={mode!r} disagree")
            encryption = mode
        encryption = encryption or "online"
        if client_id not in config.clients:
            raise ParameterError(f"client {client_id!r} is not in the round's clients")
        if config.mode == "malicious":
            if not isinstance(signing_key, SigningKey):
                raise ParameterError(f"mode='malicious': client {client_id} needs its Ed25519 "
                                     "signing_key (a secagg.sign.SigningKey) to sign its input")
            assert config.registry is not None
            if signing_key.verify_key() != config.registry[client_id]:
                raise ParameterError(f"client {client_id}'s signing_key does not match its "
                                     "registry entry")
            if encryption != "online":
                raise ParameterError(
                    f"mode='malicious': client {client_id} proves knowledge of each "
                    f"ciphertext's randomness r, which encryption={encryption!r} does not keep; "
                    "use encryption='online'")
        elif signing_key is not None:
            raise ParameterError("signing_key belongs to mode='malicious'")
        self._signing_key = signing_key
        if encryption not in _ENCRYPTIONS:
            raise ParameterError(f"unknown encryption path {encryption!r}; one of {_ENCRYPTIONS}")
        cross = config.trust_layout == "cross-silo"
        if cross and keypair is None:
            raise ParameterError("cross-silo clients need the shared keypair")
        if not cross and keypair is not None:
            raise ParameterError("in the 'key-holder' layout clients never hold the private key")
        if encryption == "crt" and not cross:
            raise ParameterError("encryption 'crt' needs the private key: cross-silo layout only")
        if encryption == "pool" and pool is None:
            raise ParameterError("encryption 'pool' needs a precomputed ObfuscatorPool")
        member = client_id in config.committee
        local_key: tp.ThresholdKey | None = None
        if threshold_key is not None:
            local_key = _check_local_material(client_id, config, threshold_key, key_share,
                                              decryptor_key)
        elif key_share is not None:
            raise ParameterError("a key share dealt out of band needs its threshold_key "
                                 "(the public material) too")
        elif member and not isinstance(decryptor_key, kex.PrivateKey):
            raise ParameterError(f"client {client_id} is a decryptor: it needs its X25519 "
                                 "decryptor_key (a kex.PrivateKey) to open its key share")
        if not member and decryptor_key is not None:
            raise ParameterError(f"client {client_id} is not a decryptor of this round")
        # out-of-band dealing: the public material and this member's share, read locally
        self._local_key = local_key
        self._local_share = key_share
        self.client_id = client_id
        self._decryptor_key = decryptor_key
        self._tkey: tp.ThresholdKey | None = None
        self._share: tp.KeyShare | None = None
        self._sealed: tuple[bytes, bytes] | None = None  # (dealer key, sealed share)
        self.config = config
        self._encryption: EncryptionMode = encryption
        self._pool = pool
        self._djn = djn
        self._workers = workers
        self._on_clip: ClipPolicy = on_clip
        self._insecure = insecure_allow_small_key_for_tests
        self._pk: Any = None
        self._sk: Any = None
        self.layout: paillier.PackingLayout | None = None
        if keypair is not None:
            pk, sk = keypair
            paillier.check_private_key(sk, insecure_allow_small_key_for_tests=self._insecure)
            if paillier.fingerprint(sk.public_key) != paillier.fingerprint(pk):
                raise ParameterError("the keypair's private key does not match its public key")
            self._pk, self._sk = pk, sk
            self.layout = config.packing(pk, insecure_allow_small_key_for_tests=self._insecure)
        pinned = expected_public_key if expected_public_key is not None else self._pk
        if pinned is None and local_key is not None:
            pinned = local_key.public_key
        self._pinned_fp = paillier.fingerprint(pinned) if pinned is not None else None
        self.state: Literal["new", "sent", "done"] = "new"
        self._input: npt.NDArray[np.int64] | None = None
        self.raw_result: npt.NDArray[np.int64] | None = None
        self.result: npt.NDArray[np.float64] | None = None
        self.included: frozenset[int] | None = None
        if values is not None:
            x = np.asarray(values)
            if x.ndim != 1 or x.shape[0] != config.dimension:
                raise EncodingError(
                    f"client {client_id}: expected a 1-D vector of {config.dimension} values, "
                    f"got shape {x.shape}"
                )
            if x.dtype.kind not in "fiu":
                raise EncodingError(
                    f"client {client_id}: expected real numbers, got dtype {x.dtype}")
            self._input = config.quantizer.encode(x, on_clip=on_clip)

    # -- contract --------------------------------------------------------------------
    @property
    def address(self) -> int:
        return self.client_id

    @property
    def round(self) -> str | None:
        """``"setup"`` before the input is sent; cross-silo ``"decrypt"`` until
        the sum is decrypted; None when finished."""
        if self.state == "new":
            return "setup"
        if self.state == "sent" and (self.config.trust_layout == "cross-silo"
                                     or self.client_id in self.config.committee):
            return "decrypt"
        return None

    def set_input(self, vector: npt.NDArray[Any]) -> None:
        """The integer-domain input: int values in ``[-M, M]`` (the config's
        quantizer), before the input is sent."""
        q = self.config.quantizer
        v = np.asarray(vector)
        if v.shape != (self.config.dimension,) or v.dtype.kind not in "iu":
            raise ParameterError(
                f"input must be an integer vector of length {self.config.dimension}, "
                f"got {v.dtype} {v.shape}")
        if v.size and int(np.abs(v.astype(np.int64)).max()) > q.max_int:
            raise EncodingError(f"an input value is past the largest |v| {q.max_int}")
        if self.state != "new":
            raise LocalProtocolError("the input can no longer change: it was already sent")
        self._input = v.astype(np.int64)

    def start(self) -> list[Envelope]:
        """Cross-silo: announce the public setup and send the input; key-holder: []."""
        if self.config.trust_layout != "cross-silo":
            return []
        if self.state != "new":
            raise LocalProtocolError(f"client {self.client_id} already sent its input")
        setup = PublicSetup(self.client_id, self._pk, self._layout())
        enc = self._encrypt()
        self.state = "sent"
        return [Envelope(SERVER, setup), Envelope(SERVER, enc)]

    def handle(self, message: Message) -> list[Envelope]:
        """Take the public setup (key-holder) or the encrypted sum (cross-silo)."""
        msg = message
        layout = self.config.trust_layout
        cross = layout == "cross-silo"
        if isinstance(msg, PublicSetup) and layout == "key-holder":
            return self._on_setup(msg)
        if isinstance(msg, EncryptedSum) and cross:
            return self._on_sum(msg)
        if isinstance(msg, ThresholdSetup) and layout == "threshold":
            return self._on_threshold_setup(msg)
        if isinstance(msg, EncryptedSum) and layout == "threshold":
            return self._on_threshold_sum(msg)
        if isinstance(msg, SignedInputs) and layout == "threshold":
            return self._on_signed_inputs(msg)
        raise ProtocolError(
            f"a {self.config.trust_layout} client does not accept {type(msg).__name__}")

    def receive(self, message: Message) -> list[Envelope]:
        """Deprecated alias of :meth:`handle` (typed messages only)."""
        _deprecated("PaillierSumClient.receive", "handle")
        return self.handle(message)

    # -- steps -------------------------------------------------------------------------
    def _layout(self) -> paillier.PackingLayout:
        assert self.layout is not None
        return self.layout

    def _encrypt(self) -> EncryptedInput:
        if self._input is None:
            raise ParameterError(f"client {self.client_id} has no input: call set_input() first")
        layout = self._layout()
        kw: dict[str, Any] = {}
        if self._encryption == "pool":
            kw["pool"] = self._pool
        elif self._encryption == "crt":
            kw["private_key"] = self._sk
        elif self._encryption == "djn":
            if self._djn is None:
                self._djn = DJNTable(self._pk,
                                     insecure_allow_small_key_for_tests=self._insecure)
            kw["djn"] = self._djn
        # the integer input back in the layout's units: round(v / scale * scale) == v
        values = self._input / layout.scale
        if self._signing_key is None:
            vec = paillier.encrypt(self._pk, layout, values, workers=self._workers,
                                   insecure_allow_small_key_for_tests=self._insecure, **kw)
            return EncryptedInput(self.client_id, vec.to_bytes())
        # malicious mode: the online path, proving knowledge of every plaintext
        vec, proofs = popk.encrypt_with_batchable_proofs(
            self._pk, layout, values, context=proof_context(self.config, self.client_id),
            workers=self._workers, insecure_allow_small_key_for_tests=self._insecure)
        payload, proof_bytes = vec.to_bytes(), proofs.to_bytes()
        sig = self._signing_key.sign(
            input_signing_payload(self.config, self.client_id, payload, proof_bytes))
        return EncryptedInput(self.client_id, payload, sig, proof_bytes)

    def _on_setup(self, msg: PublicSetup) -> list[Envelope]:
        if msg.sender != KEY_HOLDER:
            raise ProtocolError("the public setup must come from the key holder")
        if self.state != "new":
            raise ProtocolError(f"client {self.client_id} already received the setup")
        if self._pinned_fp is not None and msg.key_fingerprint() != self._pinned_fp:
            raise ProtocolError("the announced public key is not the expected one")
        layout = _check_setup(self.config, msg, self._insecure)
        pk_before, layout_before = self._pk, self.layout
        self._pk, self.layout = msg.public_key, layout
        try:
            enc = self._encrypt()
        except BaseException:
            self._pk, self.layout = pk_before, layout_before
            raise
        self.state = "sent"
        return [Envelope(SERVER, enc)]

    def _take_threshold(self, key: tp.ThresholdKey, dealer_key: bytes,
                        sealed: bytes) -> tp.KeyShare | None:
        """Open this decryptor's sealed share (None for a non-member, which
        must receive none)."""
        if self.client_id not in self.config.committee:
            if sealed or dealer_key != _NO_DEALER_KEY:
                raise ProtocolError(f"client {self.client_id} is not a decryptor but was "
                                    "sent a key share or a dealer key")
            return None
        if not sealed:
            raise ProtocolError(f"decryptor {self.client_id} received no key share")
        assert self._decryptor_key is not None
        try:
            peer = kex.PublicKey.from_bytes(dealer_key)
            seal_key = share_seal_key(self._decryptor_key, peer, self.config)
            return tp.open_share(sealed, seal_key, key, self.config.decryptor_index(self.client_id),
                                 self.config.digest,
                                 insecure_allow_small_key_for_tests=self._insecure)
        except SecAggError as exc:
            raise ProtocolError(
                f"decryptor {self.client_id} cannot open its key share: {exc}") from exc

    def _on_threshold_setup(self, msg: ThresholdSetup) -> list[Envelope]:
        if self.state != "new":
            raise ProtocolError(f"client {self.client_id} already received the setup")
        if self._pinned_fp is not None and msg.key_fingerprint() != self._pinned_fp:
            raise ProtocolError("the announced public key is not the expected one")
        relayed = self._local_key is not None
        layout = _check_threshold_setup(self.config, msg, self._insecure, relayed=relayed)
        if relayed:
            if msg.key != self._local_key:
                raise ProtocolError("the relayed threshold key differs from this client's "
                                    "own copy of the public material")
            share = self._local_share
        else:
            share = self._take_threshold(msg.key, msg.dealer_key, msg.sealed_share)
        pk_before, layout_before = self._pk, self.layout
        self._pk, self.layout = msg.key.public_key, layout
        try:
            enc = self._encrypt()
        except BaseException:
            self._pk, self.layout = pk_before, layout_before
            raise
        self._tkey, self._share = msg.key, share
        if share is not None and msg.sealed_share:
            self._sealed = (bytes(msg.dealer_key), bytes(msg.sealed_share))
        self._input = None  # sent: the plaintext is not kept (nor in the saved state)
        self.state = "sent"
        return [Envelope(SERVER, enc)]

    def _check_decryptor(self) -> tp.KeyShare:
        """This client may answer a decryption request now; its share."""
        if self.client_id not in self.config.committee:
            raise ProtocolError(f"client {self.client_id} is not a decryptor of this round")
        if self.state == "new":
            raise ProtocolError("a decryption request arrived before the threshold setup")
        if self.state == "done":
            raise ProtocolError(
                f"decryptor {self.client_id} already answered one decryption request in round "
                f"{self.config.round}; refusing another")
        assert self._share is not None
        return self._share

    def _on_signed_inputs(self, msg: SignedInputs) -> list[Envelope]:
        if self.config.mode != "malicious":
            raise ProtocolError("signed inputs belong to mode='malicious'")
        share = self._check_decryptor()
        product, included = _signed_product(self.config, self._layout(), self._pk, msg,
                                            self._insecure)
        partial = tp.partial_decrypt(share, product, context=decryption_context(self.config),
                                     workers=self._workers)
        self.included = included  # the checked ids, not a second read of the request
        self.state = "done"
        return [Envelope(SERVER, DecryptionShare(self.client_id, partial.to_bytes()))]

    def _on_threshold_sum(self, msg: EncryptedSum) -> list[Envelope]:
        if self.config.mode == "malicious":
            raise ProtocolError("mode='malicious': a decryptor decrypts only the product it "
                                "computes from signed inputs, never the aggregator's sum")
        if self.client_id not in self.config.committee:
            raise ProtocolError(f"client {self.client_id} is not a decryptor of this round")
        if self.state == "new":
            raise ProtocolError("an encrypted sum arrived before the threshold setup")
        if self.state == "done":
            raise ProtocolError(
                f"decryptor {self.client_id} already answered one sum in round "
                f"{self.config.round}; refusing another")
        assert self._share is not None
        vec = open_vector(msg.payload, self._pk, self._insecure)
        _check_sum_request(self.config, self._layout(), msg, vec)
        partial = tp.partial_decrypt(self._share, vec, context=decryption_context(self.config),
                                     workers=self._workers)
        self.included = msg.included
        self.state = "done"
        return [Envelope(SERVER, DecryptionShare(self.client_id, partial.to_bytes()))]

    def _on_sum(self, msg: EncryptedSum) -> list[Envelope]:
        if self.state == "done":
            raise ProtocolError(f"client {self.client_id} already decrypted the sum")
        layout = self._layout()
        vec = open_vector(msg.payload, self._pk, self._insecure)
        _check_sum_request(self.config, layout, msg, vec)
        raw = paillier.decrypt_integers(self._sk, vec, workers=self._workers)
        self.raw_result = raw
        self.result = raw.astype(np.float64) / layout.scale
        self.included = msg.included
        self.state = "done"
        return []

    # -- saving and restoring ------------------------------------------------------------
    def export_state(self) -> bytes:
        """The client's state as versioned binary (``PSCS`` v1), bound to the
        config digest. Holds the plaintext input until it is sent (seal the
        state before it leaves memory), except for a client whose threshold
        key was dealt out of band (``threshold_key=``): its input is never
        saved (restored before sending, it needs :meth:`set_input` again).
        Keys, pools and tables are not included: pass them to
        :meth:`restore` again. Threshold layout: the public threshold key and,
        for a decryptor whose share the in-process dealer sent, that share
        still sealed to its X25519 key; a share dealt out of band
        (``key_share=``) is never in the state (restore reads it again)."""
        threshold = self.config.trust_layout == "threshold"
        w = wire.Writer(_STATE_MAGIC, _STATE_VERSION_THRESHOLD if threshold
                        else _STATE_VERSION).raw(self.config.digest)
        w.u32(self.config.index_of(self.client_id)).u8(_CLIENT_STATES.index(self.state))
        # a key dealt out of band (the transport path): the plaintext input is never
        # saved, even before it is sent; a client restored then needs set_input() again
        kept_input = None if self._local_key is not None else self._input
        for v in (kept_input, self.raw_result):
            if v is None:
                w.u8(0)
            else:
                w.u8(1).vector(np.ascontiguousarray(v, dtype=np.int64).view(np.uint64))
        included = self.included
        if included is None:
            w.u8(0)
        else:
            wire.write_ids(w.u8(1), (self.config.index_of(i) for i in included))
        if threshold:  # the threshold key (public) and the share, still sealed
            if self._tkey is None:
                w.u8(0)
            else:
                w.u8(1).blob(self._tkey.to_bytes())
                dealer_key, sealed = self._sealed or (bytes(32), b"")
                w.raw(dealer_key).blob(sealed)
        return w.getvalue()

    @classmethod
    def restore(cls, config: PaillierSumConfig, data: bytes, **local: Any) -> PaillierSumClient:
        """The client :meth:`export_state` saved, under ``config``; ``local``
        are the constructor's keyword arguments (keypair, expected_public_key,
        encryption, pool, ``decryptor_key``, ...). Refuses a state saved under
        another config. A decryptor's share is saved sealed and opened again
        here with its ``decryptor_key``."""
        threshold = config.trust_layout == "threshold"
        r = wire.Reader(data, _STATE_MAGIC,
                        (_STATE_VERSION_THRESHOLD,) if threshold else (_STATE_VERSION,))
        if r.raw(32) != config.digest:
            raise ParameterError("the saved client state belongs to another configuration "
                                 "(digest mismatch): refusing to restore it")
        n = len(config.client_ids)
        ix, code = r.u32(), r.u8()
        if not 1 <= ix <= n or code >= len(_CLIENT_STATES):
            raise ProtocolError(f"bad client index {ix} or state code {code}")
        vecs: list[npt.NDArray[np.int64] | None] = []
        for _ in range(2):
            flag = r.u8()
            if flag not in (0, 1):
                raise ProtocolError(f"bad flag {flag}")
            vecs.append(r.vector(config.dimension, np.dtype(np.uint64)).view(np.int64)
                        if flag else None)
        included = None
        flag = r.u8()
        if flag not in (0, 1):
            raise ProtocolError(f"bad flag {flag}")
        if flag:
            ixs = wire.read_ids(r, max_count=n)
            if ixs and not (ixs[0] >= 1 and ixs[-1] <= n):
                raise ProtocolError("client index outside the round in the saved state")
            included = frozenset(config.client_ids[i - 1] for i in ixs)
        saved_key: tuple[bytes, bytes, bytes] | None = None
        if threshold:
            flag = r.u8()
            if flag not in (0, 1):
                raise ProtocolError(f"bad flag {flag}")
            if flag:
                saved_key = (r.blob(max_len=_MAX_STATE_BLOB), r.raw(32),
                             r.blob(max_len=_MAX_STATE_BLOB))
        r.done()
        client = cls(config.client_ids[ix - 1], config, **local)
        if saved_key is not None:
            tkey = tp.ThresholdKey.from_bytes(
                saved_key[0], insecure_allow_small_key_for_tests=client._insecure)
            setup = ThresholdSetup(tkey, config.packing(
                tkey.public_key, insecure_allow_small_key_for_tests=client._insecure),
                saved_key[1], saved_key[2],
                sender=SERVER if client._local_key is not None else DEALER)
            if client._pinned_fp is not None and setup.key_fingerprint() != client._pinned_fp:
                raise ProtocolError("the saved threshold key is not the expected one")
            if client._local_key is not None:  # dealt out of band: the share is local
                if tkey != client._local_key:
                    raise ProtocolError("the saved threshold key differs from this client's "
                                        "public material")
                client.layout = _check_threshold_setup(config, setup, client._insecure,
                                                       relayed=True)
                client._share = client._local_share
            else:
                client.layout = _check_threshold_setup(config, setup, client._insecure)
                client._share = client._take_threshold(tkey, saved_key[1], saved_key[2])
            client._tkey, client._pk = tkey, tkey.public_key
            if client._share is not None:
                client._sealed = (saved_key[1], saved_key[2])
        client.state = _CLIENT_STATES[code]  # type: ignore[assignment]
        client._input, client.raw_result = vecs
        if client.raw_result is not None and client.layout is not None:
            client.result = client.raw_result.astype(np.float64) / client.layout.scale
        if included is not None:
            client.included = included
        return client


class PaillierSumAggregator:
    """The aggregator (the coordinator, address :data:`~protocols.core.SERVER`).

    Rounds: ``"setup"`` until the public setup arrives, ``"encrypt"`` while
    inputs arrive, ``"decrypt"`` while the key holder decrypts (key-holder
    layout), then None. :meth:`close_round` (the deadline) sums whatever
    arrived (it also closes by itself once every client has sent).
    ``"key-holder"``: the sum goes to the key holder and the
    :class:`DecryptedSum` it returns becomes :attr:`result`.
    ``"cross-silo"``: the sum goes to every client; the aggregator never
    learns it (:attr:`result` stays None).
    ``"threshold"``: the sum goes to every decryptor; each
    :class:`DecryptionShare` is parsed and its proof verified on arrival. An
    answer that fails (wrong exponentiation, another round's context, another
    share's index, malformed bytes) raises :class:`FaultyDecryptorError`
    naming the decryptor and its share, and leaves the aggregator unchanged:
    that decryptor counts as dropped unless a valid answer from it arrives,
    and the round goes on with the others. Once ``decrypt_threshold`` valid
    answers arrived they are combined into :attr:`result`; if that sum then
    decodes out of range (a client's input was, since every proof verified)
    the round aborts with :class:`MalformedSumError`, naming no decryptor and
    outputting nothing. :meth:`close_round` with fewer raises
    :class:`AbortError` and outputs nothing.
    """

    address = SERVER

    def __init__(
        self,
        config: PaillierSumConfig,
        *,
        expected_public_key: Any = None,
        insecure_allow_small_key_for_tests: bool = False,
        threshold_key: tp.ThresholdKey | None = None,
    ) -> None:
        self.config = config
        self._insecure = insecure_allow_small_key_for_tests
        self._pinned_fp = (
            paillier.fingerprint(expected_public_key) if expected_public_key is not None else None
        )
        self._setup: PublicSetup | None = None
        self._pk: Any = None
        self.layout: paillier.PackingLayout | None = None
        self._sum: EncryptedVector | None = None
        self._included: set[int] = set()
        self._seen: set[bytes] = set()
        self._inputs: dict[int, EncryptedInput] = {}  # malicious mode: signed inputs kept
        self.state: Literal["setup", "collecting", "summed", "done", "aborted"] = "setup"
        self.raw_result: npt.NDArray[np.int64] | None = None
        self._result: CoordinatorResult | None = None
        self._tkey: tp.ThresholdKey | None = None
        self._partials: dict[int, tp.PartialDecryption] = {}
        self._relay: ThresholdSetup | None = None
        if threshold_key is not None:
            self._take_dealt(threshold_key)

    def _take_dealt(self, key: tp.ThresholdKey) -> None:
        """The key was dealt out of band: start collecting, relaying its public setup."""
        if self.config.trust_layout != "threshold":
            raise ParameterError(f"threshold_key belongs to the 'threshold' layout, not "
                                 f"{self.config.trust_layout!r}")
        if not isinstance(key, tp.ThresholdKey) or key.digest != self.config.threshold_key_digest:
            raise ParameterError("threshold_key is not the key the configuration names")
        if self._pinned_fp is not None and paillier.fingerprint(key.public_key) != self._pinned_fp:
            raise ParameterError("threshold_key does not hold the expected public key")
        setup = ThresholdSetup(key, self.config.packing(
            key.public_key, insecure_allow_small_key_for_tests=self._insecure),
            _NO_DEALER_KEY, sender=SERVER)
        self.layout = _check_threshold_setup(self.config, setup, self._insecure, relayed=True)
        self._tkey, self._pk, self._relay = key, key.public_key, setup
        self.state = "collecting"

    @property
    def included(self) -> frozenset[int]:
        """Clients whose input is in the running sum."""
        return frozenset(self._included)

    @property
    def round(self) -> str | None:
        return {"setup": "setup", "collecting": "encrypt", "summed": "decrypt"}.get(self.state)

    @property
    def dealt_out_of_band(self) -> bool:
        """True when the threshold key was dealt out of band (``threshold_key=``):
        no dealer party; this aggregator relays the public setup."""
        return self._relay is not None

    @property
    def valid_decryptors(self) -> frozenset[int]:
        """Decryptors whose partial decryption verified (threshold layout)."""
        return frozenset(self._partials)

    @property
    def result(self) -> CoordinatorResult | None:
        """The exact int64 sum and who is in it (key-holder layout, once decrypted)."""
        return self._result

    def start(self) -> list[Envelope]:
        """Nothing to send first (the setup comes from the key holder, the dealer
        or the clients), except when the threshold key was dealt out of band
        (``threshold_key=``): then the public setup, relayed to every client
        (each checks it against its own copy of the public material)."""
        if self._relay is None:
            return []
        return [Envelope(c, self._relay) for c in self.config.client_ids]

    def handle(self, message: Message) -> list[Envelope]:
        """Take a setup, an input or the decrypted sum (``message.sender`` names it)."""
        msg = message
        if self.state == "aborted":
            raise ProtocolError(f"the round aborted; {type(msg).__name__} refused")
        if isinstance(msg, PublicSetup):
            return self._on_setup(msg)
        if isinstance(msg, EncryptedInput):
            return self._on_input(msg)
        if isinstance(msg, DecryptedSum):
            return self._on_result(msg)
        if isinstance(msg, ThresholdSetup):
            return self._on_threshold_setup(msg)
        if isinstance(msg, DecryptionShare):
            return self._on_decryption_share(msg)
        raise ProtocolError(f"the aggregator does not accept {type(msg).__name__}")

    def receive(self, message: Message) -> list[Envelope]:
        """Deprecated alias of :meth:`handle` (typed messages only)."""
        _deprecated("PaillierSumAggregator.receive", "handle")
        return self.handle(message)

    def finish(self) -> list[Envelope]:
        """Deprecated alias of :meth:`close_round`."""
        _deprecated("PaillierSumAggregator.finish", "close_round")
        return self.close_round()

    def close_round(self) -> list[Envelope]:
        """The deadline: in ``"encrypt"``, send the sum of whatever arrived
        (:class:`AbortError`, round left open, if fewer than ``min_clients``);
        in ``"setup"`` or ``"decrypt"`` nothing more can come, so abort (no output)."""
        if self.state == "collecting":
            return self._send_sum()
        if self.state == "setup":
            self.state = "aborted"
            raise AbortError("no public setup reached the aggregator")
        if self.state == "summed" and self.config.trust_layout == "threshold":
            self.state = "aborted"
            missing = sorted(self.config.committee - set(self._partials))
            raise AbortError(
                f"{len(self._partials)} valid partial decryption(s) of the "
                f"{self.config.decrypt_threshold} needed arrived: nothing decrypted "
                f"(no valid answer from decryptors {missing})")
        if self.state == "summed":
            self.state = "aborted"
            raise AbortError("the key holder never returned the decrypted sum")
        raise LocalProtocolError(f"no round to close in state {self.state!r}")

    def _on_threshold_setup(self, msg: ThresholdSetup) -> list[Envelope]:
        if self.config.trust_layout != "threshold":
            raise ProtocolError(f"a threshold setup in the {self.config.trust_layout!r} layout")
        if self._relay is not None:
            raise ProtocolError("the threshold key was dealt out of band; no setup is "
                                "accepted during the session")
        if msg.sealed_share or msg.dealer_key != _NO_DEALER_KEY:
            raise ProtocolError("the dealer sent the aggregator a key share or a dealer key; "
                                "refusing it")
        if self._setup is not None or self._tkey is not None:
            if msg.key != self._tkey or msg.layout != self.layout:
                raise ProtocolError("a threshold setup with a different key or layout")
            return []
        if self._pinned_fp is not None and msg.key_fingerprint() != self._pinned_fp:
            raise ProtocolError("the announced public key is not the expected one")
        layout = _check_threshold_setup(self.config, msg, self._insecure)
        self._tkey, self._pk, self.layout = msg.key, msg.key.public_key, layout
        self.state = "collecting"
        return []

    def _on_decryption_share(self, msg: DecryptionShare) -> list[Envelope]:
        if self.config.trust_layout != "threshold":
            raise ProtocolError(f"a decryption share in the {self.config.trust_layout!r} layout")
        cid = msg.sender
        if cid not in self.config.committee:
            raise ProtocolError(f"{cid!r} is not a decryptor of this round")
        if cid in self._partials:
            raise ProtocolError(f"decryptor {cid} already answered (replay refused)")
        if self.state == "done":
            return []  # a late answer once t were combined: not needed, ignored
        if self.state != "summed":
            raise ProtocolError(f"unexpected decryption share in state {self.state!r}")
        assert self._tkey is not None and self._sum is not None
        index = self.config.decryptor_index(cid)
        try:
            partial = tp.PartialDecryption.from_bytes(msg.payload, self._tkey)
            if partial.index != index:
                raise ProtocolError(f"it answers for share {partial.index}, not {index}")
            tp.verify_partial(self._tkey, self._sum, partial,
                              context=decryption_context(self.config))
        except SecAggError as exc:
            raise FaultyDecryptorError(cid, index, str(exc)) from exc
        partials = {**self._partials, cid: partial}
        if len(partials) < self.config.decrypt_threshold:
            self._partials = partials
            return []
        assert self.layout is not None
        self._partials = partials
        try:  # every proof verified: the plaintext is the true sum of what clients sent
            raw = tp.combine_integers(self._tkey, self._sum, partials.values(),
                                      context=decryption_context(self.config), verify=False)
            _check_bound(raw, len(self._included), self.layout.max_int)
        except SecAggError as exc:
            self.state = "aborted"
            raise MalformedSumError(
                "decrypted sum malformed: a client input is out of range; every decryptor's "
                f"proof verified (decryptors {sorted(partials)}); nothing output ({exc})"
            ) from exc
        self.raw_result = raw
        self._result = CoordinatorResult(raw_sum=raw, included=self.included)
        self.state = "done"
        return []

    def _on_setup(self, msg: PublicSetup) -> list[Envelope]:
        if self.config.trust_layout == "threshold":
            raise ProtocolError("the threshold layout's setup comes from the dealer")
        cross = self.config.trust_layout == "cross-silo"
        if cross and msg.sender not in self.config.clients:
            raise ProtocolError("cross-silo: the public setup must come from a client of the round")
        if not cross and msg.sender != KEY_HOLDER:
            raise ProtocolError("the public setup must come from the key holder")
        if self._setup is not None:
            if (
                msg.key_fingerprint() != self._setup.key_fingerprint()
                or msg.layout != self._setup.layout
            ):
                raise ProtocolError("a public setup with a different key or layout was announced")
            return []
        if self._pinned_fp is not None and msg.key_fingerprint() != self._pinned_fp:
            raise ProtocolError("the announced public key is not the expected one")
        layout = _check_setup(self.config, msg, self._insecure)
        self._setup, self._pk, self.layout = msg, msg.public_key, layout
        self.state = "collecting"
        return []

    def _on_input(self, msg: EncryptedInput) -> list[Envelope]:
        if self.state == "setup":
            raise ProtocolError("an encrypted input arrived before the public setup")
        if self.state != "collecting":
            raise ProtocolError(
                f"input from client {msg.sender} after the round closed; it is not included"
            )
        malicious = self.config.mode == "malicious"
        if malicious:  # exact fields, each read once; only these copies are used
            sender, payload, signature, proofs = _exact_input(msg)
        else:
            sender, payload = msg.sender, msg.payload
        if sender not in self.config.clients:
            raise ProtocolError(f"client {sender} is not in the round")
        if sender in self._included:
            raise ProtocolError(f"client {sender} already sent its input (replay refused)")
        digest = hashlib.sha256(payload).digest()
        if digest in self._seen:
            raise ProtocolError(f"client {sender} sent a ciphertext already received (replay)")
        if malicious:
            assert self.config.registry is not None
            try:
                self.config.registry[sender].verify(
                    signature, input_signing_payload(self.config, sender, payload, proofs))
            except SecAggError as exc:
                raise IntegrityError(f"client {sender}'s input is not signed by its "
                                     f"registry key for this configuration: {exc}") from exc
        elif msg.signature or msg.proofs:
            raise ProtocolError(f"client {sender}'s input carries a signature or proofs; "
                                "this round is semi-honest")
        vec = open_vector(payload, self._pk, self._insecure)
        if vec.layout != self.layout:
            raise ProtocolError(f"client {sender}'s vector has another packing layout")
        if vec.summands != 1:
            raise ProtocolError(
                f"client {sender}'s vector claims {vec.summands} summands, expected 1"
            )
        if malicious:
            _check_proofs(self.config, [(sender, vec, proofs)], self._pk, self._insecure)
        try:
            new_sum = vec if self._sum is None else paillier.aggregate([self._sum, vec])
        except ParameterError as exc:
            raise ProtocolError(f"cannot add client {sender}'s vector: {exc}") from exc
        self._sum = new_sum
        self._included.add(sender)
        self._seen.add(digest)
        if malicious:  # what the committee gets: the checked copies, never the caller's object
            self._inputs[sender] = EncryptedInput(sender, payload, signature, proofs)
        if self._included == set(self.config.clients):
            return self._send_sum()
        return []

    def _send_sum(self) -> list[Envelope]:
        if len(self._included) < self.config.min_clients or self._sum is None:
            raise AbortError(
                f"only {len(self._included)} inputs arrived; min_clients is "
                f"{self.config.min_clients}"
            )
        if self.config.mode == "malicious":  # every input, each decryptor multiplies them
            request = SignedInputs(tuple(self._inputs[c] for c in sorted(self._included)))
            self.state = "summed"
            return [Envelope(c, request) for c in self.config.decryptor_ids]
        out = EncryptedSum(self.included, self._sum.to_bytes())
        if self.config.trust_layout == "key-holder":
            self.state = "summed"
            return [Envelope(KEY_HOLDER, out)]
        if self.config.trust_layout == "threshold":
            self.state = "summed"
            return [Envelope(c, out) for c in self.config.decryptor_ids]
        self.state = "done"
        return [Envelope(c, out) for c in self.config.client_ids]

    def _on_result(self, msg: DecryptedSum) -> list[Envelope]:
        if self.config.trust_layout != "key-holder":
            raise ProtocolError(f"{self.config.trust_layout}: the aggregator never receives a "
                                "decrypted sum from a key holder")
        if self.state != "summed":
            raise ProtocolError(f"unexpected decrypted sum in state {self.state!r}")
        if msg.included != self.included:
            raise ProtocolError("the decrypted sum names other clients than the sum sent")
        assert self.layout is not None
        if msg.raw_sum.shape != (self.config.dimension,):
            raise ProtocolError(
                f"decrypted sum has {msg.raw_sum.shape[0]} values, expected {self.config.dimension}"
            )
        _check_bound(msg.raw_sum, len(msg.included), self.layout.max_int)
        self.raw_result = msg.raw_sum.copy()
        self._result = CoordinatorResult(raw_sum=self.raw_result, included=self.included)
        self.state = "done"
        return []
