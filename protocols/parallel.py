"""Work a party hands out to a transport's processes: bytes in, bytes out.

A party that has independent, heavy work (the SecAgg server's unmasking)
splits it into items of bytes and a *task*, a module-level function
``task(item: bytes) -> bytes`` registered with :func:`task`. It never spawns
a process itself (parties are sans-I/O): it calls a :class:`Mapper` that it
was given, which runs the task over the items where it likes: in this
process (:data:`SEQUENTIAL`, the default everywhere) or in a transport's
worker processes (the in-process simulator's pool). Only the task's
registered name and the items' bytes cross to a worker, never pickle; the
results come back as bytes, in item order.

A task must be pure: its result depends on its item alone, so every mapper
gives the same results. A task that raises a
:class:`~secagg.errors.SecAggError` subclass has it re-raised by the mapper
as itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, runtime_checkable

from secagg.errors import ParameterError

__all__ = ["SEQUENTIAL", "Mapper", "SequentialMapper", "Task", "resolve_task", "task",
           "task_name"]

#: A registered task: one item's bytes to one result's bytes.
Task = Callable[[bytes], bytes]

_TASKS: dict[str, Task] = {}


def task(fn: Task) -> Task:
    """Register a module-level function as a task (a decorator); its name is
    ``module:qualname``, which is all a worker is told of it."""
    name = f"{fn.__module__}:{fn.__qualname__}"
    if "<" in name:
        raise ParameterError(f"a task must be a module-level function, got {name}")
    other = _TASKS.get(name)
    if other is not None and other is not fn:
        raise ParameterError(f"task name {name} is already registered")
    _TASKS[name] = fn
    return fn


def task_name(fn: Task) -> str:
    """The registered name of ``fn``; :class:`ParameterError` if it is none."""
    name = f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', '?')}"
    if _TASKS.get(name) is not fn:
        raise ParameterError(f"{name} is not a registered task (decorate it with "
                             f"protocols.parallel.task)")
    return name


def resolve_task(name: str) -> Task:
    """The task registered as ``name``, importing its module if needed (the
    import registers it); :class:`ParameterError` if there is no such task."""
    fn = _TASKS.get(name)
    if fn is None:
        module = name.partition(":")[0]
        try:
            importlib.import_module(module)
        except ImportError:
            raise ParameterError(f"no task {name!r}: module {module!r} cannot be "
                                 f"imported") from None
        fn = _TASKS.get(name)
    if fn is None:
        raise ParameterError(f"no registered task {name!r}")
    return fn


@runtime_checkable
class Mapper(Protocol):
    """Runs a registered task over items; ``width`` is how many run at once."""

    @property
    def width(self) -> int: ...

    def map(self, fn: Task, items: Iterable[bytes]) -> Iterator[bytes]: ...


class SequentialMapper:
    """Every item in this process, one after the other (width 1). Stateless:
    a copy of a party that holds it shares it."""

    def __copy__(self) -> SequentialMapper:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> SequentialMapper:
        return self

    @property
    def width(self) -> int:
        return 1

    def map(self, fn: Task, items: Iterable[bytes]) -> Iterator[bytes]:
        """``fn(item)`` for each item, in order, computed as they are taken."""
        task_name(fn)  # the same tasks run here as in a worker pool
        return (fn(item) for item in items)


#: The default mapper: no processes.
SEQUENTIAL = SequentialMapper()
