"""``secagg budget``: the privacy budget of DP-SGD or DP-FedAvg, per accountant.

Epsilon for a dataset size, batch size, epochs (or steps), noise multiplier
and delta, under each accountant side by side::

    secagg budget -n 60000 -b 256 --epochs 60 --sigma 1.1 --delta 1e-5

or the noise multiplier needed for a target epsilon::

    secagg budget -n 60000 -b 256 --epochs 60 --target-epsilon 2 --delta 1e-5

``--sample-rate`` replaces ``-b`` (e.g. clients per round over the
population, with ``--unit client`` and ``--steps`` = rounds).

Delta is checked against 1/N (N from ``-n``): at or above it, a loud warning
heads the output. RDP is computed first (its cost does not depend on the
number of steps); PLD's work is bounded, and PRV says when it cannot answer
within its bound. Progress goes to stderr (``--progress``, or a terminal).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from typing import TYPE_CHECKING, Any

from secagg.errors import ParameterError

if TYPE_CHECKING:
    from dp.accounting import PrivacyGuarantee

ACCOUNTANT_CHOICES = ("all", "pld", "prv", "rdp")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "budget",
        help="privacy budget (epsilon) of DP-SGD / DP-FedAvg, or the noise for a target",
        description=(
            "Epsilon of the Poisson-subsampled Gaussian mechanism (DP-SGD, or "
            "client-level DP-FedAvg) under the PLD, PRV and RDP accountants, or the "
            "noise multiplier that reaches a target epsilon. Adjacency: add/remove "
            "one example (or one client with --unit client)."
        ),
    )
    size = p.add_argument_group("sampling (give -n and -b, or --sample-rate)")
    size.add_argument("-n", "--dataset-size", type=int,
                      help="number of examples (or clients); with --sample-rate it is "
                           "used only to check delta against 1/N")
    size.add_argument("-b", "--batch-size", type=int, help="expected batch size (or clients/round)")
    size.add_argument("-q", "--sample-rate", type=float, help="sampling rate q in (0, 1]")
    length = p.add_argument_group("length (give one)")
    length.add_argument("-e", "--epochs", type=float, help="epochs (ceil(epochs / q) steps)")
    length.add_argument("-t", "--steps", type=int, help="steps (or FedAvg rounds)")
    what = p.add_argument_group("noise (give one)")
    what.add_argument("-s", "--sigma", "--noise-multiplier", dest="sigma", type=float,
                      help="noise multiplier: noise std / clipping norm")
    what.add_argument("--target-epsilon", type=float, help="find the noise for this epsilon")
    p.add_argument("-d", "--delta", type=float, default=1e-5,
                   help="delta (default 1e-5); keep it well below 1/N (a delta at or "
                        "above 1/N, or above 0.01 without -n, is flagged)")
    p.add_argument("--accountant", choices=ACCOUNTANT_CHOICES, default="all",
                   help="accountant to use (default: all, side by side)")
    p.add_argument("--unit", choices=("example", "client"), default="example",
                   help="privacy unit (default example)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--progress", action="store_true",
                   help="report progress on stderr (on by default when stderr is a terminal)")
    p.set_defaults(func=_run)


def _sampling(args: argparse.Namespace) -> tuple[float, str]:
    from dp.accounting import sample_rate_for

    if args.sample_rate is not None:
        if args.batch_size is not None:
            raise ParameterError("give --sample-rate or --batch-size, not both")
        q = float(args.sample_rate)
        if not (math.isfinite(q) and 0.0 < q <= 1.0):
            raise ParameterError(f"sample rate q={q!r} is outside (0, 1]")
        return q, f"q={q:.6g}"
    if args.dataset_size is None or args.batch_size is None:
        raise ParameterError("give --dataset-size and --batch-size (or --sample-rate)")
    q = sample_rate_for(batch_size=args.batch_size, dataset_size=args.dataset_size)
    return q, f"q={args.batch_size}/{args.dataset_size}={q:.6g}"


class _Progress:
    """Progress lines on stderr, each stamped with the seconds since the start."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        if self.enabled:
            elapsed = time.perf_counter() - self.start
            print(f"[{elapsed:7.1f}s] {message}", file=sys.stderr, flush=True)


def _run(args: argparse.Namespace) -> int:
    from dp import accounting

    q, q_text = _sampling(args)
    if (args.epochs is None) == (args.steps is None):
        raise ParameterError("give exactly one of --epochs and --steps")
    if args.steps is not None:
        if args.steps < 0:
            raise ParameterError(f"steps={args.steps} must be >= 0")
        steps = int(args.steps)
    else:
        steps = accounting.steps_for_epochs(args.epochs, q)
    if (args.sigma is None) == (args.target_epsilon is None):
        raise ParameterError("give exactly one of --sigma and --target-epsilon")
    delta = float(args.delta)
    if not (math.isfinite(delta) and 0.0 < delta < 1.0):
        raise ParameterError(f"delta={delta!r} is outside (0, 1)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", accounting.DeltaWarning)
        accounting.check_delta(delta, population=args.dataset_size, unit=args.unit)
    delta_warnings = [str(w.message) for w in caught if issubclass(w.category,
                                                                   accounting.DeltaWarning)]
    chosen = accounting.ACCOUNTANTS if args.accountant == "all" else (args.accountant,)
    # RDP first: its cost does not grow with the number of steps, so it answers at once
    order = sorted(chosen, key=lambda a: a != "rdp")
    header = (
        f"{args.unit}-level DP, adjacency: {accounting.ADJACENCY} {args.unit}; "
        f"Poisson sampling {q_text}, {steps} steps, delta={delta:g}"
    )
    progress = _Progress(args.progress or sys.stderr.isatty())
    for w in delta_warnings:
        if args.json:
            print(f"secagg budget: WARNING: {w}", file=sys.stderr, flush=True)
        else:
            print(f"WARNING: {w}\n", flush=True)

    results: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    sigma = target = None
    if args.sigma is not None:
        sigma = float(args.sigma)
        if not math.isfinite(sigma) or sigma < 0:
            raise ParameterError(f"noise multiplier sigma={sigma!r} must be >= 0")
        title = f"epsilon for noise multiplier {sigma:g}"
    else:
        target = float(args.target_epsilon)
        title = f"noise multiplier for target epsilon {target:g}"
    with warnings.catch_warnings(), accounting.reporting_progress(progress):
        warnings.simplefilter("ignore", accounting.DeltaWarning)  # reported above
        for acc in order:
            name = accounting.ACCOUNTANT_NAMES[acc]
            progress(f"{name}: {steps} steps ...")
            try:
                if sigma is not None:
                    s = sigma
                else:
                    assert target is not None
                    s = accounting.noise_multiplier(target, q, steps, delta, accountant=acc)
                g = accounting.epsilon(q, s, steps, delta, accountant=acc, unit=args.unit)
            except accounting.AccountantLimitError as exc:
                if len(chosen) == 1:
                    raise
                results[acc] = {"accountant": acc, "accountant_name": name,
                                "noise_multiplier": sigma, "epsilon": None, "error": str(exc)}
                notes.append(f"{name} not computed: {exc}")
                progress(f"{name}: not computed ({exc})")
                continue
            progress(f"{name}: done, epsilon {g.epsilon:.6g}")
            results[acc] = _row(g, s)
    pld = results.get("pld")
    if pld is not None and pld["epsilon"] is not None and accounting.pld_was_capped(
        [accounting.Segment(q, float(pld["noise_multiplier"]), steps)], delta
    ):
        notes.append(
            f"PLD's grid was capped by its work bound ({accounting.MAX_GRID_POINTS} points) "
            f"at {steps} steps before its bound settled: the figure is a valid upper "
            "bound (the smaller of the coarse PLD bound and RDP's), looser than PLD's "
            "usual 0.5 %"
        )
    prv = results.get("prv")
    if prv is not None and prv["epsilon"] is not None:
        notes.extend(_prv_notes(float(prv["epsilon"]), target, accounting.PRV_EPS_ERROR))
    rows = [results[a] for a in chosen]

    if args.json:
        print(json.dumps({"title": title, "sample_rate": q, "steps": steps, "delta": delta,
                          "unit": args.unit, "adjacency": accounting.ADJACENCY,
                          "warnings": delta_warnings, "notes": notes,
                          "results": rows}, indent=2))
        return 0
    print(f"{title}\n{header}\n")
    print(f"{'accountant':<22} {'noise multiplier':>16} {'epsilon':>10}")
    for r in rows:
        if r["epsilon"] is None:
            print(f"{r['accountant_name']:<22} {'':>16} {'not computed (see below)':>10}")
            continue
        eps = float(r["epsilon"])
        eps_text = "inf" if math.isinf(eps) else f"{eps:.4f}"
        print(f"{r['accountant_name']:<22} {r['noise_multiplier']:>16.4f} {eps_text:>10}")
    for n in notes:
        print(f"\nnote: {n}")
    return 0


def _prv_notes(eps: float, target: float | None, error: float) -> list[str]:
    """Say when PRV's fixed absolute error is a large part of the answer."""
    share = error / eps if eps > 0 else math.inf
    if share <= 0.01:
        return []
    what = f"at epsilon {eps:.4g} that is {100 * share:.0f}% of the value"
    if target is not None:
        what += (", so its noise multiplier overshoots what the target needs "
                 "(up to several times at small targets)")
    return [
        f"PRV's epsilon carries an absolute error of up to {error:g} (Opacus's "
        f"eps_error); {what}. PLD is the tight bound here, and RDP can be tighter than PRV."
    ]


def _row(g: PrivacyGuarantee, sigma: float) -> dict[str, Any]:
    return {"noise_multiplier": sigma, **g.as_dict()}
