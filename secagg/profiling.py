"""Opt-in attribution of wall time to categories ("crypto", "hot_path").

Library functions are decorated with :func:`timed`; they cost one context
variable lookup when no collection is active. A caller that wants the split
wraps its work in :func:`collect`::

    with profiling.collect() as seconds:
        run_round()
    seconds["crypto"], seconds["hot_path"]

Attribution is exclusive: when a timed function calls another, the inner
category gets the inner time and the outer category only the rest. The
collector lives in a :class:`contextvars.ContextVar`, so threads and asyncio
tasks that do not share the context do not mix their figures.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import ParamSpec, TypeVar

__all__ = ["CRYPTO", "HOT_PATH", "collect", "timed"]

CRYPTO = "crypto"
HOT_PATH = "hot_path"

P = ParamSpec("P")
R = TypeVar("R")


class _Collector:
    __slots__ = ("cats", "seconds", "starts")

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cats: list[str] = []  # categories of the active timed calls
        self.starts: list[float] = []  # start of each one's current stretch


_active: ContextVar[_Collector | None] = ContextVar("secagg_profiling", default=None)


@contextmanager
def collect() -> Iterator[dict[str, float]]:
    """Collect exclusive seconds per category for the enclosed block."""
    c = _Collector()
    token = _active.set(c)
    try:
        yield c.seconds
    finally:
        _active.reset(token)


def timed(category: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a function so its exclusive time counts toward ``category``."""

    def deco(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            c = _active.get()
            if c is None:
                return fn(*args, **kwargs)
            now = time.perf_counter()
            if c.cats:  # pause the enclosing category
                outer = c.cats[-1]
                c.seconds[outer] = c.seconds.get(outer, 0.0) + now - c.starts[-1]
            c.cats.append(category)
            c.starts.append(now)
            try:
                return fn(*args, **kwargs)
            finally:
                end = time.perf_counter()
                c.cats.pop()
                start = c.starts.pop()
                c.seconds[category] = c.seconds.get(category, 0.0) + end - start
                if c.starts:
                    c.starts[-1] = end  # resume the enclosing category

        return wrapper

    return deco
