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
        outer(0.02, 0.2)
    # exclusive: an inclusive count would give outer >= 0.24; slack for a loaded machine
    assert 0.04 <= s["outer"] < 0.19
    assert 0.2 <= s["inner"] < 0.35


def test_inactive_collects_nothing_and_nested_collectors_are_separate():
    outer(0.0, 0.0)  # no collector: just runs
    with profiling.collect() as a:
        inner(0.01)
        with profiling.collect() as b:
            inner(0.2)
    assert set(a) == {"inner"} and set(b) == {"inner"}
    assert a["inner"] < 0.15 and b["inner"] >= 0.2  # b's time is not in a


def test_exceptions_still_counted():
    @profiling.timed("x")
    def boom():
        raise ValueError

    with profiling.collect() as s:
        with contextlib.suppress(ValueError):
            boom()
        inner(0.0)
    assert "x" in s and "inner" in s
