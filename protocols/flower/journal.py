"""A node's durable record of the malicious-mode Paillier sessions it took part in.

In malicious mode a committee node decrypts only the product of the signed
inputs it checks itself, and answers once per session; the signatures bind
the session's configuration digest. A ServerApp that started the same
configuration again (it picks the round number; a new Flower run, or a
SuperNode that restarted, gives every node a fresh ``context.state``) would
meet fresh parties that decrypt another subset of the same signed inputs.
So a node refuses any configuration digest it already started under the
same dealt key, and keeps those digests **in a file that outlives the run
and the process**, for the life of the key.

The file lives in a folder named in the node config (``secagg-paillier-journal``,
see :mod:`protocols.flower.paillier`); one file per node id and dealt key::

    <folder>/paillier-journal-<node id>-<threshold key digest, hex>.bin

Format, magic ``PSJL`` v1 (:mod:`secagg.wire`, strict)::

    u64 node id | 32 bytes key digest | u32 count | count x 32-byte digests
    | 32 bytes SHA-256 of everything before

The digests are distinct; anything else (a truncated, extended or flipped
file, another node's or key's journal) is an
:class:`~secagg.errors.IntegrityError` and the node refuses the session
(fail closed). :func:`write_journal` writes the new file to a fresh temporary file
in the same folder (created exclusively, never through a link, mode 0600),
``fsync`` s it, renames it over the old one and ``fsync`` s the folder,
**before** the node answers the session's first message.

Checks on POSIX: the folder (created with mode 0700 if absent, its parent
must exist) must be a real folder, not a symlink, owned by this user and
not writable by group or others; the file must be a regular file, not a
symlink, owned by this user, mode 0600 or stricter.

Security assumption: the node's operator keeps the file. Deleting it, or
rolling it back to an earlier copy, makes the node forget those sessions
(nothing on the node can tell a missing file from a new key's). One
ClientApp process runs per node at a time, so there is no concurrent
writer; two nodes may share a folder (the file name carries the node id).
The file grows by 32 bytes per session; each session rewrites it whole.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from secagg import wire
from secagg.errors import IntegrityError, ParameterError, ProtocolError

from ..paillier_sum.dealing import write_private_file

__all__ = ["MAX_ENTRIES", "journal_file", "read_journal", "write_journal"]

_MAGIC = b"PSJL"
_VERSION = 1
#: most session digests a journal holds (32 MiB); a key used for more
#: malicious sessions than this must be dealt again
MAX_ENTRIES = 1 << 20
_HEADER = 4 + 1 + 8 + 32 + 4
_MAX_BYTES = _HEADER + 32 * MAX_ENTRIES + 32


def journal_file(folder: Path | str, node_id: int, key_digest: bytes) -> Path:
    """The journal of ``node_id`` for the key of ``key_digest`` (32 bytes) in ``folder``."""
    if not isinstance(key_digest, bytes) or len(key_digest) != 32:
        raise ParameterError("key_digest must be 32 bytes")
    if isinstance(node_id, bool) or not isinstance(node_id, int) or not 0 <= node_id < 2**64:
        raise ParameterError(f"node id {node_id!r} is not an int in [0, 2^64)")
    return Path(folder) / f"paillier-journal-{node_id}-{key_digest.hex()}.bin"


def _check_folder(folder: Path, create: bool) -> None:
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        if not create:
            return
        try:
            os.mkdir(folder, 0o700)
        except OSError as exc:
            raise ParameterError(f"cannot create the journal folder {folder}: {exc}") from exc
        st = os.lstat(folder)
    except OSError as exc:
        raise ParameterError(f"cannot inspect the journal folder {folder}: {exc}") from exc
    if stat.S_ISLNK(st.st_mode):
        raise IntegrityError(f"the journal folder {folder} is a symlink; refusing it")
    if not stat.S_ISDIR(st.st_mode):
        raise ParameterError(f"the journal folder {folder} is not a folder "
                             f"(mode {stat.filemode(st.st_mode)})")
    _check_owner_and_mode(st, f"the journal folder {folder}", 0o022,
                          f"group or others may replace its files (chmod 700 {folder})")


def _check_owner_and_mode(st: os.stat_result, what: str, forbidden: int, hint: str) -> None:
    """On POSIX, refuse (``IntegrityError``) what another user owns or whose
    mode has any of the ``forbidden`` bits."""
    if os.name != "posix":  # pragma: no cover - no owner or mode bits there
        return
    if st.st_uid != os.geteuid():
        raise IntegrityError(f"{what} belongs to uid {st.st_uid}, not this user "
                             f"({os.geteuid()})")
    mode = stat.S_IMODE(st.st_mode)
    if mode & forbidden:
        raise IntegrityError(f"{what} has mode {oct(mode)}: {hint}")


def _load(path: Path, node_id: int, key_digest: bytes) -> list[bytes]:
    flags = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
             | getattr(os, "O_CLOEXEC", 0))
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return []
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise IntegrityError(f"the journal {path} is a symlink; refusing it") from exc
        raise ParameterError(f"cannot read the journal {path}: {exc}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise IntegrityError(f"the journal {path} is not a regular file "
                                 f"(mode {stat.filemode(st.st_mode)})")
        _check_owner_and_mode(st, f"the journal {path}", 0o077,
                              f"it must be 0600 or stricter (chmod 600 {path})")
        if st.st_size > _MAX_BYTES:
            raise IntegrityError(f"the journal {path} has {st.st_size} bytes, limit "
                                 f"{_MAX_BYTES}")
        chunks, left = [], _MAX_BYTES + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    except OSError as exc:
        raise ParameterError(f"cannot read the journal {path}: {exc}") from exc
    finally:
        os.close(fd)
    return _decode(data, path, node_id, key_digest)


def _decode(data: bytes, path: Path, node_id: int, key_digest: bytes) -> list[bytes]:
    if len(data) < 32 or hashlib.sha256(data[:-32]).digest() != data[-32:]:
        raise IntegrityError(f"the journal {path} is corrupt or truncated ({len(data)} bytes, "
                             "checksum mismatch); refusing malicious-mode sessions until its "
                             "operator restores it")
    try:
        r = wire.Reader(data[:-32], _MAGIC, (_VERSION,))
        owner, key = r.u64(), r.raw(32)
        count = r.u32()
        if count > MAX_ENTRIES:
            raise IntegrityError(f"the journal {path} claims {count} entries, limit "
                                 f"{MAX_ENTRIES}")
        entries = [r.raw(32) for _ in range(count)]
        r.done()
    except ProtocolError as exc:
        raise IntegrityError(f"the journal {path} is malformed: {exc}") from exc
    if owner != node_id or key != key_digest:
        raise IntegrityError(f"the journal {path} belongs to node {owner} and key "
                             f"{key.hex()[:16]}..., not node {node_id} and key "
                             f"{key_digest.hex()[:16]}...")
    if len(set(entries)) != len(entries):
        raise IntegrityError(f"the journal {path} names a session digest twice")
    return entries


def _encode(node_id: int, key_digest: bytes, entries: list[bytes]) -> bytes:
    w = wire.Writer(_MAGIC, _VERSION).u64(node_id).raw(key_digest).u32(len(entries))
    for e in entries:
        w.raw(e)
    body = w.getvalue()
    return body + hashlib.sha256(body).digest()


def read_journal(folder: Path | str, node_id: int, key_digest: bytes) -> tuple[bytes, ...]:
    """The session digests recorded for ``node_id`` and the key (empty if no file
    yet); IntegrityError if the file or folder is corrupt, foreign or unsafe."""
    path = journal_file(folder, node_id, key_digest)
    _check_folder(path.parent, create=False)
    return tuple(_load(path, node_id, key_digest))


def write_journal(folder: Path | str, node_id: int, key_digest: bytes,
                  entries: Sequence[bytes]) -> None:
    """Replace the journal of ``node_id`` and the key with ``entries`` (distinct
    32-byte session digests, at most :data:`MAX_ENTRIES`), durably: it returns
    only once the new file is on disk (temporary file in the same folder,
    fsync, rename, fsync of the folder). The folder is created (mode 0700)
    if absent."""
    items = list(entries)
    if any(not isinstance(e, bytes) or len(e) != 32 for e in items):
        raise ParameterError("every session digest must be 32 bytes")
    if len(set(items)) != len(items):
        raise ParameterError("a session digest appears twice")
    path = journal_file(folder, node_id, key_digest)
    if len(items) > MAX_ENTRIES:
        raise ParameterError(f"the journal {path} would hold {len(items)} sessions, limit "
                             f"{MAX_ENTRIES}: deal a new key")
    _check_folder(path.parent, create=True)
    write_private_file(path, _encode(node_id, key_digest, items), "journal")
    try:
        _fsync_folder(path.parent)
    except OSError as exc:  # I/O error: the session is refused
        raise ParameterError(f"cannot write the journal {path}: {exc}") from exc


def _fsync_folder(folder: Path) -> None:
    if os.name != "posix":  # pragma: no cover - no folder fsync there
        return
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
