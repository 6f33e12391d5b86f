import contextlib
import time

from secagg import profiling


@profiling.timed("inner")
def inner(t):
    time.sleep(t)


@profiling.timed("outer")
def outer(t_self, t_inner):
    time.sleep(t_self)
    inner(t_inner)
    time.sleep(t_self)


def test_exclusive_attribution():
    with profiling.collect() as s:
        outer(0.02, 0.05)
    assert 0.04 <= s["outer"] < 0.05 + 0.04
    assert 0.05 <= s["inner"] < 0.05 + 0.04


def test_inactive_collects_nothing_and_nested_collectors_are_separate():
    outer(0.0, 0.0)  # no collector: just runs
    with profiling.collect() as a:
        inner(0.01)
        with profiling.collect() as b:
            inner(0.05)
    assert set(a) == {"inner"} and set(b) == {"inner"}
    assert a["inner"] < 0.04 <= 0.05 <= b["inner"]


def test_exceptions_still_counted():
    @profiling.timed("x")
    def boom():
        raise ValueError

    with profiling.collect() as s:
        with contextlib.suppress(ValueError):
            boom()
        inner(0.0)
    assert "x" in s and "inner" in s
