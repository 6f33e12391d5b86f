"""Out-of-band dealing of a threshold Paillier key to a committee of client ids.

The ``"threshold"`` layout needs a trusted dealer. In process it is an
auxiliary party of the session (:class:`~protocols.paillier_sum.PaillierSumDealer`);
on a transport whose server must never hold key material (Flower's
ServerApp) it runs **once, before any session, out of band**:
:func:`deal_committee` generates a safe-prime key, splits it t-of-n among
the committee (share ``i`` for the ``i``-th smallest id) and returns

* :class:`ThresholdPublic`: the public material (threshold key with its
  public key, t and verification keys; the committee's ids). The server
  and every client get it; the server builds sessions from it alone
  (``PAILLIER_SUM.make_session(..., trust="threshold", public=...)``);
* one :class:`~secagg.paillier.threshold.KeyShare` per committee member,
  for that member only (written to a file only it reads,
  :func:`write_key_share`, mode 0600).

Every session of the layout then binds the key's digest, the committee and
t into its configuration, so a client refuses a session (or a relayed
public setup) that differs from its own copy of the public material.

The dealer also states the sessions' **mode** (``mode=`` of
:func:`deal_committee`): a key dealt for ``"malicious"`` sessions must never
run a semi-honest one (whose decryptors decrypt whatever the aggregator
sends, so a malicious-mode input signed under that key could be decrypted
alone), and a key dealt ``"semi-honest"`` runs no malicious session. The
mode is in the public material every node holds, so the key, not each
node's own setting, decides it (the Flower node enforces it,
:mod:`protocols.flower.paillier`).

File formats (strict, versioned, :mod:`secagg.wire`; never pickle):

* public material, magic ``PSTK`` v2: ``blob ThresholdKey (SGTK) |
  committee ids (u32 count, u64 each, increasing) | u8 mode`` (0: the key
  runs semi-honest sessions only, 1: malicious-mode sessions only). A v1
  file (the same without the mode byte, written before the mode existed) is
  read as semi-honest; files are always written as v2;
* key share file, magic ``PSKF`` v1: ``u64 client id | blob KeyShare (SGTS)``.

Each holds one encoding per value: integers minimal (no leading zero byte),
ids increasing, a share below the public bound on ``n m``; anything else is
refused.

Security assumption: the dealer is trusted to generate honestly, to hand
each share to its owner only and to forget the factorisation and every
share (Python cannot wipe memory: run it in a process that exits
afterwards). See SECURITY.md.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secagg import paillier, wire
from secagg.errors import IntegrityError, ParameterError, ProtocolError
from secagg.paillier import DEFAULT_KEY_BITS
from secagg.paillier import threshold as tp

from ..core import check_client_ids
from .config import MAX_DECRYPTORS

__all__ = [
    "ThresholdPublic",
    "deal_committee",
    "read_key_share",
    "read_public",
    "write_key_share",
    "write_private_file",
    "write_public",
]

_PUBLIC_MAGIC = b"PSTK"
_PUBLIC_VERSION = 2
#: the session modes a key can be dealt for, by their byte in ``PSTK`` v2
KEY_MODES = ("semi-honest", "malicious")
_SHARE_MAGIC = b"PSKF"
_MAX_TKEY_BYTES = (tp.MAX_PARTIES + 2) * (2 * paillier.MAX_KEY_BITS // 8 + 4) + 16
#: largest public-material or key-share file read (bytes)
MAX_FILE_BYTES = 4 * _MAX_TKEY_BYTES


@dataclass(frozen=True, eq=False)
class ThresholdPublic:
    """The public material of a dealt committee key.

    Attributes:
        key: the :class:`~secagg.paillier.threshold.ThresholdKey` (public key,
            threshold t, verification keys; its ``digest`` names it).
        committee: the decryptors' client ids, sorted; ``committee[i - 1]``
            holds share ``i``. Exactly ``key.parties`` distinct ids in
            ``[0, 2^64)``.
        mode: the only session mode the key may run, ``"semi-honest"``
            (default) or ``"malicious"`` (see the module docstring).

    Derived: ``threshold`` (t), ``digest`` (SHA-256 of :meth:`to_bytes`).
    """

    key: tp.ThresholdKey
    committee: tuple[int, ...]
    mode: str = "semi-honest"
    digest: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in KEY_MODES:
            raise ParameterError(f"mode must be one of {KEY_MODES}, got {self.mode!r}")
        if not isinstance(self.key, tp.ThresholdKey):
            raise ParameterError(f"key must be a ThresholdKey, got {type(self.key).__name__}")
        ids = check_client_ids(self.committee)
        if len(ids) != self.key.parties:
            raise ParameterError(f"the committee names {len(ids)} ids but the key has "
                                 f"{self.key.parties} shares")
        if len(ids) > MAX_DECRYPTORS:
            raise ParameterError(f"{len(ids)} decryptors; at most {MAX_DECRYPTORS}")
        object.__setattr__(self, "committee", ids)
        object.__setattr__(self, "digest", hashlib.sha256(self.to_bytes()).digest())

    @property
    def threshold(self) -> int:
        """t: how many decryptors must answer."""
        return self.key.threshold

    @property
    def public_key(self) -> Any:
        """The ``phe`` public key clients encrypt under."""
        return self.key.public_key

    def index_of(self, client: int) -> int:
        """Share index (1..len(committee)) of ``client``; ParameterError otherwise."""
        try:
            return self.committee.index(client) + 1
        except ValueError:
            raise ParameterError(f"{client!r} is not on the committee") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ThresholdPublic) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def to_bytes(self) -> bytes:
        """``PSTK`` v2 (see the module docstring)."""
        w = wire.Writer(_PUBLIC_MAGIC, _PUBLIC_VERSION).blob(self.key.to_bytes())
        return wire.write_ids(w, self.committee, width=64).u8(
            KEY_MODES.index(self.mode)).getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, *,
                   insecure_allow_small_key_for_tests: bool = False) -> ThresholdPublic:
        """Parse and check :meth:`to_bytes` (a malformed file is a ProtocolError);
        a v1 file, which predates the mode, is semi-honest."""
        r = wire.Reader(data, _PUBLIC_MAGIC, (1, _PUBLIC_VERSION))
        key = tp.ThresholdKey.from_bytes(
            r.blob(max_len=_MAX_TKEY_BYTES),
            insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests)
        ids = wire.read_ids(r, width=64, max_count=tp.MAX_PARTIES)
        code = r.u8() if r.version >= 2 else 0
        r.done()
        if code >= len(KEY_MODES):
            raise ProtocolError(f"threshold public material: mode byte {code}; known "
                                f"0..{len(KEY_MODES) - 1} ({', '.join(KEY_MODES)})")
        try:
            return cls(key, ids, KEY_MODES[code])
        except ParameterError as exc:
            raise ProtocolError(f"invalid threshold public material: {exc}") from exc


def deal_committee(
    committee: Iterable[int],
    threshold: int,
    *,
    key_bits: int = DEFAULT_KEY_BITS,
    keypair: tuple[Any, Any] | None = None,
    mode: str = "semi-honest",
    insecure_allow_small_key_for_tests: bool = False,
) -> tuple[ThresholdPublic, dict[int, tp.KeyShare]]:
    """The trusted dealer: a ``threshold``-of-``len(committee)`` key for ``committee``.

    Generates a safe-prime key of ``key_bits`` bits (slow: about 10 s at
    2048 bits), or deals ``keypair`` (from
    :func:`secagg.paillier.threshold.generate_keypair`; the caller must then
    destroy the private key). ``mode``: the only session mode the key will
    run (``"semi-honest"`` or ``"malicious"``, stated in the public
    material). Returns the public material and each member's share by
    client id. Trust: see the module docstring.
    """
    if mode not in KEY_MODES:
        raise ParameterError(f"mode must be one of {KEY_MODES}, got {mode!r}")
    ids = check_client_ids(committee)
    if not 1 <= len(ids) <= MAX_DECRYPTORS:
        raise ParameterError(f"the committee has {len(ids)} members; it needs 1 to "
                             f"{MAX_DECRYPTORS}")
    key: int | tuple[Any, Any] = key_bits if keypair is None else keypair
    dealt = tp.deal(key, len(ids), threshold,
                    insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests)
    public = ThresholdPublic(dealt.key, ids, mode)
    return public, {cid: dealt.shares[i] for i, cid in enumerate(ids)}


def _read(path: Path | str, what: str, *, private: bool = False) -> bytes:
    """The bytes of the regular file ``path`` (at most :data:`MAX_FILE_BYTES`).

    Opened without blocking (a FIFO or device is refused, never waited on)
    and checked on the open descriptor. ``private``: on POSIX, refuse a file
    that group or others may access (like ssh with a private key)."""
    p = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(p, flags)
    except OSError as exc:
        raise ParameterError(f"cannot read the {what} {p}: {exc}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ParameterError(f"the {what} {p} is not a regular file "
                                 f"(mode {stat.filemode(st.st_mode)}); refusing to read it")
        mode = stat.S_IMODE(st.st_mode)
        if private and os.name == "posix" and mode & 0o077:
            raise IntegrityError(
                f"the {what} {p} has mode {oct(mode)}: group or others may access it; "
                f"it must be readable by its owner only (chmod 600 {p})")
        if st.st_size > MAX_FILE_BYTES:
            raise ParameterError(f"{what} {p} has {st.st_size} bytes, limit {MAX_FILE_BYTES}")
        chunks, left = [], MAX_FILE_BYTES + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > MAX_FILE_BYTES:
            raise ParameterError(f"{what} {p} has more than {MAX_FILE_BYTES} bytes")
        return data
    except OSError as exc:
        raise ParameterError(f"cannot read the {what} {p}: {exc}") from exc
    finally:
        os.close(fd)


def write_public(path: Path | str, public: ThresholdPublic) -> None:
    """Write the public material (any mode: it holds nothing secret)."""
    Path(path).write_bytes(public.to_bytes())


def read_public(path: Path | str, *,
                insecure_allow_small_key_for_tests: bool = False) -> ThresholdPublic:
    """Read :func:`write_public`'s file, checked."""
    return ThresholdPublic.from_bytes(
        _read(path, "threshold public material"),
        insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests)


def write_key_share(path: Path | str, client: int, share: tp.KeyShare) -> None:
    """Write ``client``'s key share, mode 0600 (SECRET: for that client only).

    Written to a fresh temporary file in the same folder (created exclusively,
    never through a link, mode 0600) that then atomically replaces ``path``:
    an existing file's mode is not kept, and a symlink at ``path`` is
    replaced, its target never written."""
    check_client_ids([client])
    if not isinstance(share, tp.KeyShare):
        raise ParameterError(f"expected a KeyShare, got {type(share).__name__}")
    data = wire.Writer(_SHARE_MAGIC, 1).u64(client).blob(share.to_bytes()).getvalue()
    write_private_file(Path(path), data, "key share file")


def write_private_file(path: Path, data: bytes, what: str) -> None:
    """Atomically replace ``path`` with ``data``, readable by its owner only.

    ``data`` goes to a fresh temporary file in the same folder (created
    exclusively, never through a link, mode 0600), fsynced, then renamed over
    ``path`` (a symlink there is replaced, its target never written). Any
    OS error (disk full, I/O error, a folder that cannot be written) becomes
    a :class:`~secagg.errors.ParameterError` naming ``what`` and ``path``,
    and no temporary file is left behind."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
             | getattr(os, "O_CLOEXEC", 0))
    try:
        fd = os.open(tmp, flags, 0o600)
    except OSError as exc:
        raise ParameterError(f"cannot write the {what} {path}: {exc}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), 0o600)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ParameterError(f"cannot write the {what} {path}: {exc}") from exc
        raise


def read_key_share(path: Path | str, client: int, public: ThresholdPublic, *,
                   insecure_allow_small_key_for_tests: bool = False) -> tp.KeyShare:
    """Read ``client``'s share and check it against ``public``: the file must
    be a regular file only its owner may access (POSIX mode ``0o600`` or
    stricter, IntegrityError otherwise; a FIFO or folder is a
    ParameterError), name ``client``, hold the committee key and ``client``'s index, and the
    share must match its verification key (IntegrityError otherwise)."""
    r = wire.Reader(_read(path, "key share file", private=True), _SHARE_MAGIC, (1,))
    owner = r.u64()
    blob = r.blob(max_len=MAX_FILE_BYTES)
    r.done()
    if owner != client:
        raise IntegrityError(f"the key share file {path} belongs to client {owner}, "
                             f"not {client}")
    share = tp.KeyShare.from_bytes(
        blob, insecure_allow_small_key_for_tests=insecure_allow_small_key_for_tests)
    if share.key != public.key:
        raise IntegrityError(f"the key share in {path} is for another threshold key than "
                             "the public material")
    if share.index != public.index_of(client):
        raise IntegrityError(f"the key share in {path} has index {share.index}; client "
                             f"{client} holds share {public.index_of(client)}")
    return share


def shares_for(public: ThresholdPublic,
               shares: Mapping[int, tp.KeyShare]) -> dict[int, tp.KeyShare]:
    """``shares`` checked against ``public`` (one per member, right key and index)."""
    if set(shares) - set(public.committee):
        raise ParameterError(f"key shares for non-members "
                             f"{sorted(set(shares) - set(public.committee))}")
    out = {}
    for cid, share in shares.items():
        if not isinstance(share, tp.KeyShare) or share.key != public.key:
            raise ParameterError(f"client {cid}'s key share is not a share of the committee key")
        if share.index != public.index_of(cid):
            raise ParameterError(f"client {cid}'s key share has index {share.index}, "
                                 f"not {public.index_of(cid)}")
        out[int(cid)] = share
    return out
