import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from secagg.errors import ProtocolError
from secagg.wire import Reader, Writer


@given(
    st.integers(0, 255),
    st.integers(0, 2**64 - 1),
    st.binary(max_size=100),
    st.integers(0, 2**4000),
    hnp.arrays(st.sampled_from([np.uint32, np.uint64]), st.integers(0, 40)),
)
def test_round_trip(a, b, blob, big, vec):
    data = Writer(b"TEST", 3).u8(a).u64(b).blob(blob).bigint(big).vector(vec).getvalue()
    r = Reader(data, b"TEST", (3,))
    assert r.version == 3
    assert (r.u8(), r.u64(), r.blob(), r.bigint()) == (a, b, blob, big)
    v = r.vector(len(vec), vec.dtype)
    assert v.dtype == vec.dtype and np.array_equal(v, vec)
    r.done()


def test_strictness():
    data = Writer(b"TEST").u32(5).vector(np.arange(4, dtype=np.uint32)).getvalue()
    with pytest.raises(ProtocolError, match="magic"):
        Reader(data, b"NOPE")
    with pytest.raises(ProtocolError, match="version"):
        Reader(data, b"TEST", (2,))
    r = Reader(data, b"TEST")
    r.u32()
    with pytest.raises(ProtocolError, match="length 4 does not match expected 5"):
        r.vector(5)
    r = Reader(data[:-1], b"TEST")
    r.u32()
    with pytest.raises(ProtocolError, match="truncated"):
        r.vector()
    r = Reader(data + b"x", b"TEST")
    r.u32()
    r.vector()
    with pytest.raises(ProtocolError, match="trailing"):
        r.done()
    r = Reader(Writer().u32(2**31).getvalue())
    with pytest.raises(ProtocolError, match="exceeds limit"):
        r.blob(1000)
    with pytest.raises(ProtocolError, match="dtype code"):
        Reader(b"\x09" + bytes(8)).vector()
    with pytest.raises(ProtocolError):
        Reader("text")  # type: ignore[arg-type]
