"""``secagg budget``: the privacy budget of DP-SGD or DP-FedAvg, per accountant.

Epsilon for a dataset size, batch size, epochs (or steps), noise multiplier
and delta, under each accountant side by side::

    secagg budget -n 60000 -b 256 --epochs 60 --sigma 1.1 --delta 1e-5

or the noise multiplier needed for a target epsilon::

    secagg budget -n 60000 -b 256 --epochs 60 --target-epsilon 2 --delta 1e-5

``--sample-rate`` replaces ``-n``/``-b`` (e.g. clients per round over the
population, with ``--unit client`` and ``--steps`` = rounds).
"""

from __future__ import annotations

import argparse
import json
import math
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
    size.add_argument("-n", "--dataset-size", type=int, help="number of examples (or clients)")
    size.add_argument("-b", "--batch-size", type=int, help="expected batch size (or clients/round)")
    size.add_argument("-q", "--sample-rate", type=float, help="sampling rate q in (0, 1]")
    length = p.add_argument_group("length (give one)")
    length.add_argument("-e", "--epochs", type=float, help="epochs (ceil(epochs / q) steps)")
    length.add_argument("-t", "--steps", type=int, help="steps (or FedAvg rounds)")
    what = p.add_argument_group("noise (give one)")
    what.add_argument("-s", "--sigma", "--noise-multiplier", dest="sigma", type=float,
                      help="noise multiplier: noise std / clipping norm")
    what.add_argument("--target-epsilon", type=float, help="find the noise for this epsilon")
    p.add_argument("-d", "--delta", type=float, default=1e-5, help="delta (default 1e-5)")
    p.add_argument("--accountant", choices=ACCOUNTANT_CHOICES, default="all",
                   help="accountant to use (default: all, side by side)")
    p.add_argument("--unit", choices=("example", "client"), default="example",
                   help="privacy unit (default example)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_run)


def _sampling(args: argparse.Namespace) -> tuple[float, str]:
    from dp.accounting import sample_rate_for

    if args.sample_rate is not None:
        if args.dataset_size is not None or args.batch_size is not None:
            raise ParameterError("give --sample-rate or --dataset-size/--batch-size, not both")
        q = float(args.sample_rate)
        if not (math.isfinite(q) and 0.0 < q <= 1.0):
            raise ParameterError(f"sample rate q={q!r} is outside (0, 1]")
        return q, f"q={q:.6g}"
    if args.dataset_size is None or args.batch_size is None:
        raise ParameterError("give --dataset-size and --batch-size (or --sample-rate)")
    q = sample_rate_for(batch_size=args.batch_size, dataset_size=args.dataset_size)
    return q, f"q={args.batch_size}/{args.dataset_size}={q:.6g}"


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
    accountants = accounting.ACCOUNTANTS if args.accountant == "all" else (args.accountant,)
    header = (
        f"{args.unit}-level DP, adjacency: {accounting.ADJACENCY} {args.unit}; "
        f"Poisson sampling {q_text}, {steps} steps, delta={delta:g}"
    )

    rows: list[dict[str, Any]] = []
    if args.sigma is not None:
        sigma = float(args.sigma)
        if not math.isfinite(sigma) or sigma < 0:
            raise ParameterError(f"noise multiplier sigma={sigma!r} must be >= 0")
        for acc in accountants:
            g = accounting.epsilon(q, sigma, steps, delta, accountant=acc, unit=args.unit)
            rows.append(_row(g, sigma))
        title = f"epsilon for noise multiplier {sigma:g}"
    else:
        target = float(args.target_epsilon)
        for acc in accountants:
            s = accounting.noise_multiplier(target, q, steps, delta, accountant=acc)
            g = accounting.epsilon(q, s, steps, delta, accountant=acc, unit=args.unit)
            rows.append(_row(g, s))
        title = f"noise multiplier for target epsilon {target:g}"

    if args.json:
        print(json.dumps({"title": title, "sample_rate": q, "steps": steps, "delta": delta,
                          "unit": args.unit, "adjacency": accounting.ADJACENCY,
                          "results": rows}, indent=2))
        return 0
    print(f"{title}\n{header}\n")
    print(f"{'accountant':<22} {'noise multiplier':>16} {'epsilon':>10}")
    for r in rows:
        eps = float(r["epsilon"])
        eps_text = "inf" if math.isinf(eps) else f"{eps:.4f}"
        print(f"{r['accountant_name']:<22} {r['noise_multiplier']:>16.4f} {eps_text:>10}")
    return 0


def _row(g: PrivacyGuarantee, sigma: float) -> dict[str, Any]:
    return {"noise_multiplier": sigma, **g.as_dict()}
