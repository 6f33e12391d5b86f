"""Paillier-encrypted summation as sans-I/O state machines.

Clients encrypt their vectors under an additively homomorphic Paillier key
(packed, see :mod:`secagg.paillier`); the aggregator multiplies ciphertexts
it cannot read; only a holder of the private key decrypts, and only the sum.

Three trust layouts:

``"key-holder"``
    A separate key holder owns the key pair. It announces the public key and
    packing layout (:class:`PublicSetup`) to the clients and the aggregator,
    decrypts the one :class:`EncryptedSum` the aggregator sends for the round
    and returns the exact integer sum (:class:`DecryptedSum`) to the
    aggregator. The aggregator never holds the private key.

``"cross-silo"``
    The clients (silos) share the key pair; the aggregator has only the
    public key. Every client announces the public setup it uses and sends its
    input; the aggregator broadcasts the :class:`EncryptedSum` back and each
    client decrypts it. The aggregator never learns the sum. Clients may use
    CRT-accelerated encryption since they hold the private key.

``"threshold"``
    A committee of clients (``config.committee``, drawn from a public seed)
    holds t-of-n shares of the private key from a trusted dealer
    (:class:`PaillierSumDealer`, ``session.others["dealer"]``), each share
    sealed to its decryptor. The aggregator sends the :class:`EncryptedSum`
    to the committee; each decryptor answers with a proven partial
    decryption (:class:`DecryptionShare`) bound to the config digest; the
    aggregator verifies them, refuses a faulty one naming its decryptor
    (:class:`FaultyDecryptorError`), and combines any t valid ones; a sum
    that decrypts out of range once t proofs verified is a client's fault and
    aborts with :class:`MalformedSumError`, blaming no decryptor. No
    single party, the aggregator included, can decrypt.

    ``mode="malicious"`` (:class:`PaillierSumConfig`; ``simulate(...,
    security="malicious")``) holds against an aggregator that deviates:
    clients sign their inputs under an Ed25519 identity ``registry``, the
    aggregator sends the committee every included input
    (:class:`SignedInputs`) instead of its product, and each decryptor checks
    every signature, id and count, multiplies the inputs itself and answers
    once per session. It needs ``2 * decrypt_threshold > len(committee)``
    and ``min_clients >= 2``.

The parties implement the party contract (:mod:`protocols.core`): each
takes one typed message in ``handle`` and returns the
:class:`~protocols.core.Envelope` s it sends; it owns no socket, thread,
clock or global state. :data:`PAILLIER_SUM` is the protocol descriptor; the
aggregator is the coordinator (address ``"server"``) and the key holder an
auxiliary party (``session.others["key_holder"]``); bytes travel through
:class:`PaillierSumCodec`, which binds the configuration digest. The
aggregator sums whatever arrived when the transport calls
:meth:`PaillierSumAggregator.close_round` (or as soon as every client has sent);
dropouts are fine and the result names who is included. A message from the
wrong round, a second input from one client, a replayed ciphertext, a
ciphertext under another key or with another layout is refused with a
specific :class:`~secagg.errors.SecAggError` and leaves the party unchanged.

Security assumptions (semi-honest mode): parties are honest-but-curious; the transport
authenticates senders (for example with :mod:`secagg.sign` over the message
bytes, which bind round and sender). A malicious aggregator can add or drop
inputs (Paillier is malleable) and must not collude with the key holder (or,
cross-silo, with any client; threshold, with t decryptors), or it learns
individual inputs; the threshold layout also trusts its dealer (see
SECURITY.md).

Module layout: :mod:`.config` (configuration, quantizer, rounds),
:mod:`.messages` (messages and codec), :mod:`.parties`, :mod:`.protocol`
(the descriptor) and :mod:`.simulate`. Renamed in this release, with
deprecated aliases that warn: ``simulate(layout=)`` is ``trust=``,
``simulate(mode=)`` / ``PaillierSumClient(mode=)`` is ``encryption=``,
``receive`` is ``handle`` and ``finish`` is ``close_round``.

::

    from protocols.paillier_sum import simulate
    result = simulate({0: x0, 1: x1}, trust="key-holder", encryption="online")
"""

from __future__ import annotations

import warnings
from typing import Any

from ..core import Envelope
from .config import MODES, ROUNDS, Mode, PaillierQuantizer, PaillierSumConfig, TrustLayout
from .dealing import (
    ThresholdPublic,
    deal_committee,
    read_key_share,
    read_public,
    write_key_share,
    write_public,
)
from .messages import (
    AGGREGATOR,
    DEALER,
    KEY_HOLDER,
    DecryptedSum,
    DecryptionShare,
    EncryptedInput,
    EncryptedSum,
    Message,
    PaillierSumCodec,
    PublicSetup,
    SignedInputs,
    ThresholdSetup,
    input_signing_payload,
    proof_context,
)
from .parties import (
    FaultyDecryptorError,
    MalformedSumError,
    PaillierSumAggregator,
    PaillierSumClient,
    PaillierSumDealer,
    PaillierSumKeyHolder,
)
from .protocol import PAILLIER_SUM, choose_committee
from .simulate import simulate


def __getattr__(name: str) -> Any:
    """Deprecated names, kept for one release."""
    if name == "Outgoing":
        warnings.warn("protocols.paillier_sum.Outgoing is deprecated: parties return "
                      "protocols.core.Envelope (receiver, message)", DeprecationWarning,
                      stacklevel=2)
        return Envelope
    if name == "CLIENTS":
        warnings.warn("protocols.paillier_sum.CLIENTS is deprecated: a broadcast is one "
                      "Envelope per client id", DeprecationWarning, stacklevel=2)
        return "clients"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "AGGREGATOR",
    "DEALER",
    "KEY_HOLDER",
    "MODES",
    "PAILLIER_SUM",
    "ROUNDS",
    "DecryptedSum",
    "DecryptionShare",
    "EncryptedInput",
    "EncryptedSum",
    "FaultyDecryptorError",
    "MalformedSumError",
    "Message",
    "Mode",
    "PaillierQuantizer",
    "PaillierSumAggregator",
    "PaillierSumClient",
    "PaillierSumCodec",
    "PaillierSumConfig",
    "PaillierSumDealer",
    "PaillierSumKeyHolder",
    "PublicSetup",
    "SignedInputs",
    "ThresholdPublic",
    "ThresholdSetup",
    "TrustLayout",
    "choose_committee",
    "deal_committee",
    "input_signing_payload",
    "proof_context",
    "read_key_share",
    "read_public",
    "simulate",
    "write_key_share",
    "write_public",
]
