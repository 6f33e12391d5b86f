"""Typed messages of Paillier summation and their strict binary codec.

Every message is framed as ``magic (4) | version (u8) | config digest (32) |
sender | body`` (big-endian, :mod:`secagg.wire`); a sender is a role byte
(0 the aggregator, 1 the key holder, 2 a client, 3 the dealer) and, for a
client, its internal index 1..n (:meth:`PaillierSumConfig.index_of`). The
message objects carry the caller's client ids, :data:`~protocols.core.SERVER`
for the aggregator, :data:`KEY_HOLDER` and :data:`DEALER`.

=================  ======  ========================  ========  =====================
message            magic   sender                    round     body
=================  ======  ========================  ========  =====================
PublicSetup        PSPS    key holder (or a client,  setup     public key, layout
                           cross-silo)
EncryptedInput     PSEI    a client                  encrypt   packed ciphertexts
EncryptedSum       PSES    aggregator                decrypt   included ids, sum
DecryptedSum       PSDS    key holder                decrypt   included ids, int64
ThresholdSetup     PSTS    dealer (threshold), or    setup     threshold key, layout,
                           the aggregator relaying             dealer X25519 key,
                           a key dealt out of band             sealed key share
                                                               (relayed: none)
DecryptionShare    PSPD    a decryptor (threshold)   decrypt   partial decryption
SignedInputs       PSSI    aggregator (threshold,    decrypt   every included input:
                           malicious mode)                     id, ciphertexts, signature,
                                                               proofs
=================  ======  ========================  ========  =====================

Under a configuration in ``mode="malicious"`` every message is version 5:
an :class:`EncryptedInput` then also carries its client's 64-byte Ed25519
signature over :func:`input_signing_payload` and, after it, a blob of
proofs of plaintext knowledge in committed form
(:class:`secagg.paillier.popk.BatchableProofVector`, ``SGPB``: one
``(a, z, w)`` per ciphertext, bound to :func:`proof_context`, so that a
decryptor checks every input's proofs in one batched verification), which
the signature covers; the aggregator sends the committee :class:`SignedInputs` (every
included input, each with its signature and proofs) instead of an
:class:`EncryptedSum`, which that mode refuses. Semi-honest configurations
keep version 2 and their exact bytes.

The threshold key (``SGTK``) in a :class:`ThresholdSetup` is parsed and
checked by the codec; the sealed share (AES-256-GCM, see
:func:`secagg.paillier.threshold.seal_share`) is opened only by the
decryptor it is sealed to, and a :class:`DecryptionShare`'s partial
decryption (``SGTP``) is parsed and its proof verified by the aggregator,
which alone knows the vector it answers.

:meth:`PaillierSumCodec.decode` checks magic, version, digest, sender role,
field lengths (each length is checked against its limit before the field is
read) and that no byte is left over, and raises only
:class:`~secagg.errors.SecAggError` subclasses
(:class:`~secagg.errors.RemoteProtocolError` for malformed bytes). The
ciphertext payloads are parsed and checked against the round's key by the
receiving party (:func:`open_vector`). Nothing is pickled.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias

import numpy as np
import numpy.typing as npt

from secagg import paillier, wire
from secagg.errors import EncodingError, ParameterError, RemoteProtocolError
from secagg.paillier import EncryptedVector, PackingLayout
from secagg.paillier import threshold as tp
from secagg.sign import SIGNATURE_BYTES

from ..core import SERVER, Address
from .config import PaillierSumConfig

__all__ = [
    "AGGREGATOR",
    "DEALER",
    "KEY_HOLDER",
    "DecryptedSum",
    "DecryptionShare",
    "EncryptedInput",
    "EncryptedSum",
    "Message",
    "PaillierSumCodec",
    "PublicSetup",
    "SignedInputs",
    "ThresholdSetup",
    "input_signing_payload",
    "open_vector",
    "proof_context",
]

#: The aggregator's address: the coordinator's, :data:`protocols.core.SERVER`.
AGGREGATOR = SERVER
#: The key holder's address (an auxiliary party, ``Session.others``).
KEY_HOLDER = "key_holder"
#: The trusted dealer's address (``"threshold"`` layout, ``Session.others``).
DEALER = "dealer"

_VERSION = 2
# mode="malicious": signed inputs with proofs of plaintext knowledge in committed form
# (SGPB), SignedInputs, no EncryptedSum (version 3 carried no proofs, version 4 the
# compact form SGPR)
_VERSION_MALICIOUS = 5
_INPUT_SIGN_DOMAIN = b"secagg/paillier_sum/signed-input/v3"
_PROOF_DOMAIN = b"secagg/paillier_sum/plaintext-knowledge/v1"
_ROLE_AGGREGATOR, _ROLE_KEY_HOLDER, _ROLE_CLIENT, _ROLE_DEALER = 0, 1, 2, 3
_MAX_TKEY_BYTES = (tp.MAX_PARTIES + 2) * (2 * paillier.MAX_KEY_BITS // 8 + 4) + 16
_MAX_SEALED_BYTES = _MAX_TKEY_BYTES + 2 * paillier.MAX_KEY_BITS // 8 + 128
_DEALER_KEY_BYTES = 32
_MAX_KEY_BYTES = 4096
_MAX_LAYOUT_BYTES = 1024
_CT_BYTES_MAX = 2 * paillier.MAX_KEY_BITS // 8


@dataclass(frozen=True)
class PublicSetup:
    """The public key and packing layout of the round (sent by the key holder
    or, cross-silo, by every client)."""

    ROUND: ClassVar[str] = "setup"
    MAGIC: ClassVar[bytes] = b"PSPS"
    sender: Address
    public_key: Any
    layout: PackingLayout

    def key_fingerprint(self) -> bytes:
        return paillier.fingerprint(self.public_key)


def input_signing_payload(config: PaillierSumConfig, client: int, payload: bytes,
                          proofs: bytes = b"") -> bytes:
    """What a client signs in malicious mode: a domain label, the config
    digest, its client id (u64), SHA-256 of the exact ciphertext bytes
    ``payload`` and SHA-256 of the exact proof bytes ``proofs``. A signature
    therefore holds for one input (with its proofs) of one client under one
    configuration only."""
    return (_INPUT_SIGN_DOMAIN + config.digest + int(client).to_bytes(8, "big")
            + hashlib.sha256(bytes(payload)).digest() + hashlib.sha256(bytes(proofs)).digest())


def proof_context(config: PaillierSumConfig, client: int) -> bytes:
    """The context a client's proofs of plaintext knowledge are bound to: a
    domain label, the config digest and its client id (u64). Proofs copied to
    another client or configuration do not verify."""
    return _PROOF_DOMAIN + config.digest + int(client).to_bytes(8, "big")


@dataclass(frozen=True)
class EncryptedInput:
    """One client's encrypted vector: a serialised
    :class:`~secagg.paillier.EncryptedVector` (parsed by the receiver) and,
    in malicious mode, the client's Ed25519 signature over
    :func:`input_signing_payload` and its proofs of plaintext knowledge
    (:class:`secagg.paillier.popk.BatchableProofVector` bytes, parsed by the
    receiver); both empty in semi-honest mode."""

    ROUND: ClassVar[str] = "encrypt"
    MAGIC: ClassVar[bytes] = b"PSEI"
    sender: int
    payload: bytes
    signature: bytes = field(default=b"", repr=False)
    proofs: bytes = field(default=b"", repr=False)


@dataclass(frozen=True)
class EncryptedSum:
    """The aggregator's homomorphic sum and who is in it."""

    ROUND: ClassVar[str] = "decrypt"
    MAGIC: ClassVar[bytes] = b"PSES"
    included: frozenset[int]
    payload: bytes
    sender: Address = SERVER


@dataclass(frozen=True, eq=False)
class DecryptedSum:
    """The exact integer sum, from the key holder to the aggregator:
    ``raw_sum[i] = sum over included clients of round(x_i * scale)`` (int64)."""

    ROUND: ClassVar[str] = "decrypt"
    MAGIC: ClassVar[bytes] = b"PSDS"
    included: frozenset[int]
    raw_sum: npt.NDArray[np.int64] = field(repr=False)
    sender: Address = KEY_HOLDER


@dataclass(frozen=True)
class ThresholdSetup:
    """The dealer's announcement in the ``"threshold"`` layout: the threshold
    key (public: n, t, verification keys), the packing layout, the dealer's
    one-time X25519 public key and, for a decryptor only, its key share
    sealed to it (empty otherwise). The share is sealed under
    ``kex.agree(dealer key, decryptor's X25519 key)`` with the config digest
    as context, so it opens only for that decryptor in this round."""

    ROUND: ClassVar[str] = "setup"
    MAGIC: ClassVar[bytes] = b"PSTS"
    key: tp.ThresholdKey
    layout: PackingLayout
    dealer_key: bytes
    sealed_share: bytes = field(default=b"", repr=False)
    sender: Address = DEALER

    @property
    def public_key(self) -> Any:
        return self.key.public_key

    def key_fingerprint(self) -> bytes:
        return paillier.fingerprint(self.key.public_key)


@dataclass(frozen=True)
class DecryptionShare:
    """A decryptor's partial decryption of the round's sum with its proof:
    :class:`secagg.paillier.threshold.PartialDecryption` bytes (``SGTP``),
    bound to the config digest as context (parsed by the aggregator)."""

    ROUND: ClassVar[str] = "decrypt"
    MAGIC: ClassVar[bytes] = b"PSPD"
    sender: int
    payload: bytes


@dataclass(frozen=True)
class SignedInputs:
    """Malicious mode: what the aggregator asks the committee to decrypt, as
    every included :class:`EncryptedInput` (client id, ciphertext bytes,
    signature, proofs) in increasing id order. Each decryptor checks every input and
    multiplies them itself; it never takes the aggregator's word for a sum."""

    ROUND: ClassVar[str] = "decrypt"
    MAGIC: ClassVar[bytes] = b"PSSI"
    inputs: tuple[EncryptedInput, ...]
    sender: Address = SERVER

    @property
    def included(self) -> frozenset[int]:
        """The clients whose inputs are in the request."""
        return frozenset(i.sender for i in self.inputs)


Message: TypeAlias = (PublicSetup | EncryptedInput | EncryptedSum | DecryptedSum
                      | ThresholdSetup | DecryptionShare | SignedInputs)
_TYPES: dict[bytes, type] = {
    t.MAGIC: t for t in (PublicSetup, EncryptedInput, EncryptedSum, DecryptedSum,
                         ThresholdSetup, DecryptionShare, SignedInputs)
}


def open_vector(payload: bytes, public_key: Any, insecure: bool) -> EncryptedVector:
    """Parse a ciphertext payload under ``public_key``; another key or layout
    is a :class:`RemoteProtocolError` (a peer's bad message)."""
    try:
        return EncryptedVector.from_bytes(
            payload, public_key, insecure_allow_small_key_for_tests=insecure
        )
    except ParameterError as exc:  # another key: a protocol violation here
        raise RemoteProtocolError(f"refusing the ciphertext vector: {exc}") from exc


class PaillierSumCodec:
    """The :class:`~protocols.core.Codec` of one round (see the module docstring).

    ``insecure_allow_small_key_for_tests`` lets a public setup carry a key
    below 2048 bits (tests only).
    """

    def __init__(self, config: PaillierSumConfig, *,
                 insecure_allow_small_key_for_tests: bool = False) -> None:
        if not isinstance(config, PaillierSumConfig):
            raise ParameterError(f"expected a PaillierSumConfig, got {type(config).__name__}")
        self.config = config
        self._malicious = config.mode == "malicious"
        self._version = _VERSION_MALICIOUS if self._malicious else _VERSION
        self._insecure = insecure_allow_small_key_for_tests
        # an encrypted vector never holds more ciphertexts than values
        self._max_payload = min(wire.MAX_FIELD,
                                1024 + config.dimension * (_CT_BYTES_MAX + 8))
        # one proof (a commitment mod n^2, two responses mod n) per ciphertext
        self._max_proofs = min(wire.MAX_FIELD, 1024 + config.dimension * 2 * _CT_BYTES_MAX)

    # -- addresses -------------------------------------------------------------------
    def _put_sender(self, w: wire.Writer, sender: Address) -> None:
        if sender == SERVER:
            w.u8(_ROLE_AGGREGATOR).u32(0)
        elif sender == KEY_HOLDER:
            w.u8(_ROLE_KEY_HOLDER).u32(0)
        elif sender == DEALER:
            w.u8(_ROLE_DEALER).u32(0)
        else:
            try:
                w.u8(_ROLE_CLIENT).u32(self.config.index_of(sender))  # type: ignore[arg-type]
            except ParameterError as exc:
                raise EncodingError(f"sender: {exc}") from None

    def _get_sender(self, r: wire.Reader) -> Address:
        role, ix = r.u8(), r.u32()
        if role == _ROLE_AGGREGATOR and ix == 0:
            return SERVER
        if role == _ROLE_KEY_HOLDER and ix == 0:
            return KEY_HOLDER
        if role == _ROLE_DEALER and ix == 0:
            return DEALER
        if role == _ROLE_CLIENT and 1 <= ix <= len(self.config.client_ids):
            return self.config.client_ids[ix - 1]
        raise RemoteProtocolError(f"bad sender role {role} / index {ix}")

    def _put_ids(self, w: wire.Writer, ids: frozenset[int]) -> None:
        try:
            wire.write_ids(w, (self.config.index_of(i) for i in ids))
        except ParameterError as exc:
            raise EncodingError(f"included: {exc}") from None

    def _get_ids(self, r: wire.Reader) -> frozenset[int]:
        n = len(self.config.client_ids)
        ixs = wire.read_ids(r, max_count=n)
        if ixs and not (ixs[0] >= 1 and ixs[-1] <= n):
            raise RemoteProtocolError(f"client index outside [1, {n}] in an id list")
        return frozenset(self.config.client_ids[i - 1] for i in ixs)

    # -- encode ----------------------------------------------------------------------
    def encode(self, message: Message) -> bytes:
        """The bytes of ``message``; EncodingError for a field it cannot carry."""
        if type(message) not in _TYPES.values():
            raise EncodingError(f"cannot encode {type(message).__name__} as Paillier summation")
        if isinstance(message, SignedInputs) and not self._malicious:
            raise EncodingError("signed inputs belong to mode='malicious'")
        if isinstance(message, EncryptedSum) and self._malicious:
            raise EncodingError("mode='malicious' sends the committee SignedInputs, never an "
                                "EncryptedSum")
        w = wire.Writer(message.MAGIC, self._version).raw(self.config.digest)
        self._put_sender(w, message.sender)
        if isinstance(message, PublicSetup):
            if message.sender not in (KEY_HOLDER, *self.config.client_ids):
                raise EncodingError(f"a public setup cannot come from {message.sender!r}")
            w.blob(paillier.public_key_to_bytes(message.public_key))
            w.blob(message.layout.to_bytes())
        elif isinstance(message, EncryptedInput):
            if not isinstance(message.sender, int):
                raise EncodingError("an encrypted input comes from a client")
            self._put_input(w, message)
        elif isinstance(message, EncryptedSum):
            if message.sender != SERVER:
                raise EncodingError("an encrypted sum comes from the aggregator")
            self._put_ids(w, message.included)
            w.blob(bytes(message.payload))
        elif isinstance(message, ThresholdSetup):
            if message.sender not in (DEALER, SERVER):
                raise EncodingError("a threshold setup comes from the dealer (or is relayed "
                                    "by the aggregator)")
            if message.sender == SERVER and (message.sealed_share
                                             or any(message.dealer_key)):
                raise EncodingError("a relayed threshold setup carries no key share and no "
                                    "dealer key")
            if not isinstance(message.key, tp.ThresholdKey):
                raise EncodingError("a threshold setup carries a ThresholdKey")
            if len(message.dealer_key) != _DEALER_KEY_BYTES:
                raise EncodingError(f"the dealer key is {_DEALER_KEY_BYTES} bytes, got "
                                    f"{len(message.dealer_key)}")
            w.blob(message.key.to_bytes()).blob(message.layout.to_bytes())
            w.raw(bytes(message.dealer_key)).blob(bytes(message.sealed_share))
        elif isinstance(message, DecryptionShare):
            if message.sender not in self.config.committee:
                raise EncodingError(f"a decryption share cannot come from {message.sender!r}")
            w.blob(bytes(message.payload))
        elif isinstance(message, SignedInputs):
            if message.sender != SERVER:
                raise EncodingError("signed inputs come from the aggregator")
            inputs = tuple(message.inputs)
            if not all(isinstance(i, EncryptedInput) for i in inputs):
                raise EncodingError("signed inputs hold EncryptedInput objects only")
            ids = [i.sender for i in inputs]
            if ids != sorted(ids) or len(set(ids)) != len(ids):
                raise EncodingError("signed inputs must be in strictly increasing id order")
            self._put_ids(w, frozenset(ids))
            for i in inputs:
                self._put_input(w, i)
        else:
            if message.sender != KEY_HOLDER:
                raise EncodingError("a decrypted sum comes from the key holder")
            self._put_ids(w, message.included)
            raw = np.asarray(message.raw_sum)
            if raw.dtype != np.int64 or raw.shape != (self.config.dimension,):
                raise EncodingError(f"raw_sum must be int64 of length {self.config.dimension}")
            w.vector(np.ascontiguousarray(raw).view(np.uint64))
        return w.getvalue()

    def _put_input(self, w: wire.Writer, message: EncryptedInput) -> None:
        """A ciphertext blob and, in malicious mode, its 64-byte signature and
        its proof blob."""
        sig = bytes(message.signature)
        proofs = bytes(message.proofs)
        if self._malicious:
            if len(sig) != SIGNATURE_BYTES:
                raise EncodingError(f"mode='malicious': an input carries a {SIGNATURE_BYTES}-"
                                    f"byte signature, got {len(sig)} bytes")
            if len(proofs) > self._max_proofs:
                raise EncodingError(f"the proofs are {len(proofs)} bytes, past the limit "
                                    f"{self._max_proofs}")
        elif sig or proofs:
            raise EncodingError("a semi-honest input carries no signature and no proofs")
        w.blob(bytes(message.payload))
        if self._malicious:
            w.raw(sig).blob(proofs)

    def _get_input(self, r: wire.Reader, sender: int) -> EncryptedInput:
        payload = r.blob(max_len=self._max_payload)
        if not self._malicious:
            return EncryptedInput(sender, payload)
        sig = r.raw(SIGNATURE_BYTES)
        return EncryptedInput(sender, payload, sig, r.blob(max_len=self._max_proofs))

    # -- decode ----------------------------------------------------------------------
    def decode(self, data: bytes) -> Message:
        """Parse and check one message; raises only SecAggError subclasses."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise RemoteProtocolError(f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
        cls = _TYPES.get(data[:4])
        if cls is None:
            raise RemoteProtocolError(f"unknown message magic {data[:4]!r}")
        r = wire.Reader(data, cls.MAGIC, (self._version,))  # type: ignore[attr-defined]
        if r.raw(32) != self.config.digest:
            raise RemoteProtocolError(
                "message bound to another configuration (digest): another round, "
                "client set or encoding")
        sender = self._get_sender(r)
        msg: Message
        if cls is PublicSetup:
            if sender not in (KEY_HOLDER, *self.config.client_ids):
                raise RemoteProtocolError(f"a public setup from {sender!r}")
            try:
                pk = paillier.public_key_from_bytes(
                    r.blob(max_len=_MAX_KEY_BYTES),
                    insecure_allow_small_key_for_tests=self._insecure)
            except ParameterError as exc:
                raise RemoteProtocolError(f"refusing the announced public key: {exc}") from exc
            layout = PackingLayout.from_bytes(r.blob(max_len=_MAX_LAYOUT_BYTES))
            msg = PublicSetup(sender, pk, layout)
        elif cls is EncryptedInput:
            if not isinstance(sender, int):
                raise RemoteProtocolError(f"an encrypted input from {sender!r}")
            msg = self._get_input(r, sender)
        elif cls is EncryptedSum:
            if sender != SERVER:
                raise RemoteProtocolError(f"an encrypted sum from {sender!r}")
            if self._malicious:
                raise RemoteProtocolError("mode='malicious' refuses an encrypted sum: the "
                                          "committee decrypts signed inputs only")
            included = self._get_ids(r)
            msg = EncryptedSum(included, r.blob(max_len=self._max_payload))
        elif cls is ThresholdSetup:
            if sender not in (DEALER, SERVER) or self.config.trust_layout != "threshold":
                raise RemoteProtocolError(f"a threshold setup from {sender!r} under the "
                                          f"{self.config.trust_layout!r} layout")
            try:
                key = tp.ThresholdKey.from_bytes(
                    r.blob(max_len=_MAX_TKEY_BYTES),
                    insecure_allow_small_key_for_tests=self._insecure)
            except ParameterError as exc:
                raise RemoteProtocolError(f"refusing the threshold key: {exc}") from exc
            layout = PackingLayout.from_bytes(r.blob(max_len=_MAX_LAYOUT_BYTES))
            msg = ThresholdSetup(key, layout, r.raw(_DEALER_KEY_BYTES),
                                 r.blob(max_len=_MAX_SEALED_BYTES), sender=sender)
            if sender == SERVER and (msg.sealed_share or any(msg.dealer_key)):
                raise RemoteProtocolError("a relayed threshold setup carries a key share or "
                                          "a dealer key")
        elif cls is DecryptionShare:
            if sender not in self.config.committee:
                raise RemoteProtocolError(f"a decryption share from {sender!r}, not a "
                                          "decryptor of this round")
            msg = DecryptionShare(sender, r.blob(max_len=self._max_payload))  # type: ignore[arg-type]
        elif cls is SignedInputs:
            if sender != SERVER or not self._malicious:
                raise RemoteProtocolError(f"signed inputs from {sender!r} under mode="
                                          f"{self.config.mode!r}")
            ids = sorted(self._get_ids(r))
            msg = SignedInputs(tuple(self._get_input(r, i) for i in ids))
        else:
            if sender != KEY_HOLDER:
                raise RemoteProtocolError(f"a decrypted sum from {sender!r}")
            included = self._get_ids(r)
            raw = r.vector(self.config.dimension, np.dtype(np.uint64))
            msg = DecryptedSum(included, raw.view(np.int64))
        r.done()
        return msg
