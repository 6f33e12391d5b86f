"""Fresh per-run binding of the malicious-mode consistency round.

A configuration (and its digest) can be run more than once, by accident or by
a server that repeats session ids. Signatures that bind only the digest and
the survivor set can then be replayed from one run into another: a server
that shows some clients run 1's signed set (victim included) and others run
2's (victim excluded) collects both kinds of the victim's shares of the
current run. To rule that out, whatever the server does with session ids,
each client contributes fresh randomness in the first round: its two X25519
public keys, generated anew for every run and signed in its advertisement.

In the consistency round the server shows every client the *roster*: for each
client that advertised keys (U1), its id and :func:`roster_entry` of its two
public keys. A client checks that its own entry is its own keys of this run
(and its neighbours' entries the keys it was shown), then signs the survivor
set together with :func:`session_binding` of the roster. A signature from
another run binds a roster without this client's current keys, so it fails
to verify. Two quorums of signatures share an honest client, who signs one
(binding, survivor set) pair only, so all honest clients that reveal shares
agree on both.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable

from .config import SecAggConfig

__all__ = ["ROSTER_ENTRY_BYTES", "SESSION_BYTES", "roster_entry", "session_binding"]

#: Size of one roster entry (a SHA-256 digest).
ROSTER_ENTRY_BYTES = 32
#: Size of a session binding (a SHA-256 digest).
SESSION_BYTES = 32


def roster_entry(c_public: bytes, s_public: bytes) -> bytes:
    """SHA-256 of a client's two advertised X25519 public keys (32 + 32 bytes)."""
    return hashlib.sha256(b"secagg/roster-entry/v1" + c_public + s_public).digest()


def session_binding(config: SecAggConfig, roster: Iterable[tuple[int, bytes]]) -> bytes:
    """SHA-256 of the configuration digest and every ``(client, entry)`` of
    the roster, each client named by its internal index 1..n
    (:meth:`SecAggConfig.index_of`, bound by the digest), in increasing index
    order: fresh as soon as one entry is. Raises
    :class:`~secagg.errors.ParameterError` for a client not in ``config``."""
    h = hashlib.sha256(b"secagg/session-binding/v1" + config.digest)
    for ix, entry in sorted((config.index_of(cid), entry) for cid, entry in roster):
        h.update(struct.pack(">I", ix) + entry)
    return h.digest()
