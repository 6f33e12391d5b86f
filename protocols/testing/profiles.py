"""Hypothesis settings for the properties: ``quick`` for CI, ``thorough`` for a
deeper search. Needs hypothesis (``pip install hypothesis``).

What each covers, on the library's own specs:

* ``quick``: 25 derandomized examples (the same cases on every run). Enough
  for the planted bugs of ``tests/test_testing_kit_planted.py`` and, with the
  default :func:`~protocols.testing.strategies.server_adversaries` (split
  view drawn first), for the semi-honest split-view weakness SECURITY.md
  names: ``check_no_double_reveal(secagg_spec(), settings=quick)`` fails with
  a three-client counterexample. A bug that needs a rarer combination
  (several faults at once, a large graph) may pass it.
* ``thorough``: 500 random examples per property, failures remembered in
  the example database: the nightly depth.

::

    from protocols.testing import check_sum_property, profiles
    check_sum_property(spec, settings=profiles.quick)

:func:`register` adds them as named profiles (``secagg-quick``,
``secagg-thorough``) for ``settings.load_profile`` or pytest's
``--hypothesis-profile``; :func:`capped` lowers the example count of any
settings, for protocols whose runs are slow.
"""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, settings

__all__ = ["capped", "quick", "register", "thorough"]

_QUIET = (HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much)

#: 25 examples, derandomized (the same cases on every run), no example database,
#: and no "explain" phase after shrinking (the shrunk case is the report).
quick = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                 suppress_health_check=_QUIET, report_multiple_bugs=False,
                 phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.target,
                         Phase.shrink))

#: 500 random examples, failures remembered in hypothesis's example database.
thorough = settings(max_examples=500, deadline=None, suppress_health_check=_QUIET,
                    report_multiple_bugs=False)


def capped(base: settings, max_examples: int) -> settings:
    """``base`` with at most ``max_examples`` examples."""
    return settings(base, max_examples=min(base.max_examples, max_examples))


def register(prefix: str = "secagg-") -> None:
    """Register ``quick`` and ``thorough`` as ``{prefix}quick`` / ``{prefix}thorough``."""
    settings.register_profile(f"{prefix}quick", quick)
    settings.register_profile(f"{prefix}thorough", thorough)
