"""secagg.wire: library errors on both sides, the shared id-list codec, and
length limits enforced before a field is read."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from secagg.errors import EncodingError, ProtocolError, RemoteProtocolError
from secagg.wire import MAX_FIELD, Reader, Writer, read_ids, write_ids


@pytest.mark.parametrize("field,value", [
    ("u8", 256), ("u8", -1), ("u16", 2**16), ("u32", 2**32), ("u32", -5), ("u64", 2**64),
    ("u32", True), ("u64", 1.5), ("u8", "1"),
])
def test_writer_refuses_what_a_field_cannot_hold(field: str, value: object) -> None:
    with pytest.raises(EncodingError, match=f"{field} field cannot hold"):
        getattr(Writer(), field)(value)


def test_writer_refuses_other_bad_values_with_library_errors() -> None:
    for bad in (lambda: Writer(b"TOOLONG"), lambda: Writer().bigint(-1),
                lambda: Writer().bigint(True),  # type: ignore[arg-type]
                lambda: Writer().vector(np.zeros(3, np.float32)),  # type: ignore[arg-type]
                lambda: Writer().vector(np.zeros((2, 2), np.uint32)),
                lambda: Writer().f64("x")):  # type: ignore[arg-type]
        with pytest.raises(EncodingError):
            bad()
    assert Writer().u64(2**64 - 1).u8(255).getvalue() == b"\xff" * 9


def test_reader_errors_are_remote_protocol_errors() -> None:
    with pytest.raises(RemoteProtocolError):
        Reader(b"\x00").u32()
    assert issubclass(RemoteProtocolError, ProtocolError)


def test_a_length_prefix_is_checked_before_the_field_is_read() -> None:
    data = Writer().u32(2**30).getvalue() + b"abc"
    with pytest.raises(RemoteProtocolError, match="exceeds limit 16"):
        Reader(data).blob(max_len=16)
    with pytest.raises(RemoteProtocolError, match="only 3 left"):
        Reader(data).blob()
    assert MAX_FIELD == 2**30


@given(st.frozensets(st.integers(0, 2**64 - 1), max_size=20), st.sampled_from([32, 64]))
def test_id_lists_round_trip(ids: frozenset[int], width: int) -> None:
    if width == 32:
        ids = frozenset(i % 2**32 for i in ids)
    r = Reader(write_ids(Writer(), ids, width=width).getvalue())
    assert read_ids(r, width=width) == tuple(sorted(ids))
    r.done()


def test_id_lists_are_strict() -> None:
    unsorted = Writer().u32(2).u32(5).u32(3).getvalue()
    with pytest.raises(RemoteProtocolError, match="strictly increasing"):
        read_ids(Reader(unsorted))
    dup = Writer().u32(2).u32(5).u32(5).getvalue()
    with pytest.raises(RemoteProtocolError, match="strictly increasing"):
        read_ids(Reader(dup))
    long = Writer().u32(10**6).u32(1).getvalue()
    with pytest.raises(RemoteProtocolError, match="longer than the message"):
        read_ids(Reader(long))
    with pytest.raises(RemoteProtocolError, match="at most 1"):
        read_ids(Reader(Writer().u32(2).u32(1).u32(2).getvalue()), max_count=1)
    with pytest.raises(EncodingError, match="twice"):
        write_ids(Writer(), [3, 3])
    with pytest.raises(EncodingError):
        write_ids(Writer(), [2**32])  # a u32 list
