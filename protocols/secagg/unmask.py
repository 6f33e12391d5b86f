"""The server's unmasking as independent work items (bytes in, bytes out).

After the unmask round the server must, for each survivor u of U3, rebuild
its self-mask seed b_u from t shares and remove PRG(b_u); for each dropped
client v whose masks some survivor applied, rebuild its mask key s_v, check
it against v's advertised public key, agree the pairwise seed s_uv with each
surviving neighbour u and remove PRG(s_uv) (u added it if u < v and
subtracted it otherwise). Every secret is independent of the others, so the
work splits into chunks of secrets:

* :func:`plan` groups the secrets into chunks of about equal cost (one PRG
  expansion per self mask, one agreement and one expansion per pair) and
  encodes each as one item: the dimension and dtype, the two PRG labels, and
  per secret its t shares (plus, for a dropped client, its advertised key and
  per surviving neighbour that neighbour's key, the HKDF context and the
  sign);
* :func:`run_chunk` (a :func:`protocols.parallel.task`) reconstructs the
  chunk's secrets, does every check and key agreement, and only then expands
  the masks into one vector of the protocol's dtype: the chunk's correction,
  what is to be added to the masked sum mod 2^bits;
* the server adds the corrections, which commute, so any chunking and any
  order give the same bits.

An item holds shares of secrets and a result is a sum of masks: both stay
inside the server (its own process or the processes its transport runs for
it). Errors are the server's: :class:`IntegrityError` for shares that do not
give a 32-byte secret or a key that does not match its advertisement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from secagg import kex, prg, shamir
from secagg.errors import EncodingError, IntegrityError, ParameterError
from secagg.wire import DTYPE_CODES, MAX_FIELD, Reader, Writer

from ..parallel import task

__all__ = ["DroppedSecret", "SelfSecret", "decode_correction", "plan", "run_chunk"]

_ITEM = b"SAUI"
_RESULT = b"SAUR"
_CODE_OF = {dt: code for code, dt in DTYPE_CODES.items()}
#: Chunks per unit of mapper width (several per process balance uneven ones).
CHUNKS_PER_WORKER = 4


@dataclass(frozen=True)
class SelfSecret:
    """A survivor's self-mask seed, as the t shares that rebuild it."""

    owner: int
    shares: tuple[shamir.Share, ...]


@dataclass(frozen=True)
class DroppedSecret:
    """A dropped client's mask key, as t shares, with what the pairwise seeds
    need: its advertised public key, and per surviving neighbour the
    neighbour's public key, the HKDF context and whether to subtract."""

    owner: int
    shares: tuple[shamir.Share, ...]
    s_public: bytes
    peers: tuple[tuple[bytes, bytes, bool], ...]


def _cost(s: SelfSecret | DroppedSecret) -> int:
    return 1 if isinstance(s, SelfSecret) else 1 + len(s.peers)


def _chunks(secrets: list[SelfSecret | DroppedSecret], count: int,
            ) -> list[list[SelfSecret | DroppedSecret]]:
    """Consecutive groups of about equal cost (deterministic)."""
    total = sum(_cost(s) for s in secrets)
    out: list[list[SelfSecret | DroppedSecret]] = [[]]
    done = 0
    for s in secrets:
        if out[-1] and len(out) < count and done >= total * len(out) / count:
            out.append([])
        out[-1].append(s)
        done += _cost(s)
    return out


def _shares(w: Writer, shares: tuple[shamir.Share, ...]) -> None:
    w.u32(len(shares))
    for s in shares:
        w.raw(s.to_bytes())


def plan(dimension: int, dtype: np.dtype[np.unsignedinteger], self_label: bytes,
         pair_label: bytes, selves: Sequence[SelfSecret], dropped: Sequence[DroppedSecret],
         width: int) -> list[bytes]:
    """The unmasking's items for a mapper of ``width`` (>= 1) processes: one
    item for width 1, else up to ``CHUNKS_PER_WORKER * width`` items."""
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ParameterError(f"mapper width must be an int >= 1, got {width!r}")
    code = _CODE_OF.get(np.dtype(dtype).newbyteorder("<"))
    if code is None:
        raise ParameterError(f"dtype {dtype} is not a vector dtype of the wire codec")
    secrets: list[SelfSecret | DroppedSecret] = [*selves, *dropped]
    count = 1 if width == 1 else CHUNKS_PER_WORKER * width
    items = []
    for chunk in _chunks(secrets, count):
        w = Writer(_ITEM).u64(dimension).u8(code).blob(self_label).blob(pair_label)
        mine = [s for s in chunk if isinstance(s, SelfSecret)]
        theirs = [s for s in chunk if isinstance(s, DroppedSecret)]
        w.u32(len(mine))
        for s in mine:
            w.u64(s.owner)
            _shares(w, s.shares)
        w.u32(len(theirs))
        for d in theirs:
            w.u64(d.owner).raw(d.s_public)
            _shares(w, d.shares)
            w.u32(len(d.peers))
            for public, info, subtract in d.peers:
                w.raw(public).blob(info).u8(int(subtract))
        items.append(w.getvalue())
    return items


def _read_shares(r: Reader) -> list[shamir.Share]:
    count = r.u32()
    if count * shamir.SHARE_BYTES > r.remaining():
        raise ParameterError(f"an unmask item announces {count} shares, longer than itself")
    return [shamir.Share.from_bytes(r.raw(shamir.SHARE_BYTES)) for _ in range(count)]


@task
def run_chunk(item: bytes) -> bytes:
    """One item of :func:`plan`: its correction to the masked sum, encoded.

    Reconstructs every secret of the chunk, checks each dropped client's key
    against its advertisement and agrees every pairwise seed before any mask
    is expanded. Raises :class:`IntegrityError` as the server does.
    """
    r = Reader(item, magic=_ITEM)
    dimension, code = r.u64(), r.u8()
    dt = DTYPE_CODES.get(code)
    if dt is None:
        raise ParameterError(f"unknown vector dtype code {code} in an unmask item")
    if dimension * dt.itemsize > MAX_FIELD:
        raise ParameterError(f"an unmask item of dimension {dimension} exceeds the vector "
                             f"limit of {MAX_FIELD} bytes")
    self_label, pair_label = r.blob(), r.blob()
    mine = [(r.u64(), _read_shares(r)) for _ in range(r.u32())]
    theirs = []
    for _ in range(r.u32()):
        owner, public, shares = r.u64(), r.raw(kex.KEY_BYTES), _read_shares(r)
        peers = [(r.raw(kex.KEY_BYTES), r.blob(), bool(r.u8())) for _ in range(r.u32())]
        theirs.append((owner, public, shares, peers))
    r.done()
    try:
        secrets = shamir.combine_many([s for _, s in mine] + [t[2] for t in theirs])
    except EncodingError as exc:
        raise IntegrityError(f"inconsistent shares in the unmask round: {exc}") from None
    b_seeds = secrets[:len(mine)]
    # every check and key agreement first, so a failure returns no partial result
    pair_seeds: list[tuple[bytes, bool]] = []
    for (owner, public, _, peers), s_key in zip(theirs, secrets[len(mine):], strict=True):
        s_priv = kex.PrivateKey.from_bytes(s_key)
        if s_priv.public_key().to_bytes() != public:
            raise IntegrityError(f"reconstructed mask key of client {owner} does not match "
                                 f"its advertised public key")
        for peer, info, subtract in peers:
            pair_seeds.append((kex.agree(s_priv, kex.PublicKey.from_bytes(peer), info),
                               subtract))
    out = np.zeros(dimension, dtype=dt.newbyteorder("="))
    for seed in b_seeds:
        prg.expand_into(out, seed, self_label, subtract=True)
    for seed, subtract in pair_seeds:
        prg.expand_into(out, seed, pair_label, subtract=subtract)
    return Writer(_RESULT).vector(out).getvalue()


def decode_correction(data: bytes, dimension: int,
                      dtype: np.dtype[np.unsignedinteger]) -> npt.NDArray[np.unsignedinteger]:
    """A result of :func:`run_chunk`, checked against the round's dimension and dtype."""
    r = Reader(data, magic=_RESULT)
    v = r.vector(expected_len=dimension, expected_dtype=np.dtype(dtype))
    r.done()
    return v
