"""Configuration of a FedAvg run: one dataclass, loadable from TOML.

Every field has a default that runs; :meth:`FedAvgConfig.validate` checks
the whole configuration and names the key and its allowed values on error.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from secagg.errors import ParameterError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["AGGREGATIONS", "DP_MODES", "FIELD_HELP", "FedAvgConfig"]

AGGREGATIONS = ("plain", "secagg", "secagg+", "paillier")
DP_MODES = ("none", "local", "central", "distributed", "distributed-sgd")
DP_MECHANISMS = ("dgauss", "skellam")
TASKS = ("digits", "linear-regression")
SPLITS = ("iid", "dirichlet")
ACCOUNTANTS = ("pld", "prv", "rdp")
#: keys whose value may be unset (None; "none" in TOML and on the command line)
OPTIONAL_NUMBERS = ("target_epsilon", "noise_multiplier", "clip_count_stddev")


#: One line per config key: what it sets, its unit and range (shown by
#: ``secagg train --help`` and the command-line options).
FIELD_HELP: dict[str, str] = {
    "task": "built-in task: digits (8x8 images, an MLP) or linear-regression (synthetic)",
    "num_clients": "clients holding data, 1..65535",
    "split": "how digits are spread over clients: iid or dirichlet (label skew)",
    "alpha": "Dirichlet concentration of the label split (> 0; smaller: more skew)",
    "rounds": "FedAvg rounds (>= 1)",
    "clients_per_round": "clients sampled per round (<= num_clients; the expected "
    "number with dp=central)",
    "local_epochs": "passes over its data each client makes per round (>= 1)",
    "batch_size": "local batch size (the expected Poisson batch with dp=local)",
    "client_lr": "clients' SGD learning rate (> 0)",
    "server_lr": "server step: the global model moves by server_lr x the mean update (> 0)",
    "aggregation": "how updates are summed: plain (no protection), secagg (complete "
    "graph), secagg+ (sparse graph) or paillier",
    "update_clip": "bound on each coordinate of an update inside the secure sum "
    "(model units; values past it are clipped and counted)",
    "max_examples_per_client": "public bound on a client's example count, used to "
    "weight updates inside the sum with dp=none",
    "paillier_key_bits": "Paillier key size: 2048 or 3072",
    "dropout_rate": "chance that a sampled client vanishes before sending, in [0, 0.999]",
    "dp": "differential privacy: none, local (DP-SGD on each client, example-level), "
    "central (client-level, noise at the aggregator) or distributed (client-level, "
    "discrete noise shares added by the clients inside the secure sum) or distributed-sgd "
    "(example-level DP-SGD, one step per round, its noise shared the same way)",
    "target_epsilon": "epsilon to reach after all rounds (setting it unsets "
    "noise_multiplier; 'none' to unset), in (0, 100]",
    "noise_multiplier": "noise std / clip norm (setting it unsets target_epsilon; "
    "'none' to unset), in [0.1, 1000]",
    "delta": "delta of the guarantee, in [1e-12, 1); keep it below 1/N for N "
    "examples (dp=local) or clients (dp=central)",
    "accountant": "privacy accountant: pld (tightest), prv or rdp",
    "max_grad_norm": "per-example L2 clip of DP-SGD (dp=local or distributed-sgd, > 0)",
    "example_sample_rate": "dp=distributed-sgd: Poisson rate of each example per step, "
    "in (0, 1] (1: full batch)",
    "clip_norm": "L2 clip of each client's update (dp=central or distributed, > 0; the "
    "starting norm with adaptive_clipping)",
    "dp_bits": "dp=distributed or distributed-sgd: the noisy sum is computed mod "
    "2^dp_bits, in [2, 32]",
    "dp_mechanism": "dp=distributed or distributed-sgd: each client's noise share, "
    "dgauss (discrete Gaussian) or skellam",
    "adaptive_clipping": "dp=central: move clip_norm towards a quantile of the "
    "update norms, privately (Andrew et al. 2021)",
    "target_quantile": "adaptive clipping: fraction of updates to leave unclipped, in (0, 1)",
    "clip_learning_rate": "adaptive clipping: geometric step size (> 0)",
    "clip_count_stddev": "adaptive clipping: noise std on the clipped count "
    "(default expected clients / 20; must exceed noise_multiplier / 2)",
    "secure_noise": "draw DP-SGD noise from a cryptographic source; false: seeded and "
    "reproducible, for experiments only",
    "seed": "seed of the public choices (split, sampling, dropouts, initial model)",
    "out_dir": "directory that receives one new run directory per run",
    "progress": "show a progress bar",
}


@dataclass
class FedAvgConfig:
    """A FedAvg run.

    Data and model:
        task: ``digits`` or ``linear-regression`` (ignored when a
            :class:`~protocols.fedavg.tasks.Task` is passed to the driver).
        num_clients: clients holding data; split: ``iid`` or ``dirichlet``
            (with ``alpha``).
    Training:
        rounds, clients_per_round (sampled uniformly without replacement
        each round), local_epochs, batch_size, client_lr, server_lr
        (the global step is ``server_lr`` times the weighted mean update).
    Aggregation:
        aggregation: ``plain`` (no protection), ``secagg`` (Bonawitz,
        complete graph), ``secagg+`` (sparse random graph), ``paillier``.
        update_clip: bound on each coordinate of a client's update (model
        units) inside the secure sum; values past it are clipped and counted.
        max_examples_per_client: public bound used to weight updates inside
        the sum (each client sends ``n_k / bound`` times its update, plus
        ``n_k / bound``), so no single count reaches the server.
        paillier_key_bits: 2048 or 3072.
        dropout_rate: probability that a sampled client vanishes after
        training, before its masked input is sent (0 <= rate < 1).
    Differential privacy:
        dp: ``none``, ``local`` (DP-SGD on each client, example-level) or
        ``central`` (client-level: clip each update to L2 ``clip_norm``,
        the aggregator adds N(0, (noise_multiplier * clip_norm)^2); updates
        are not weighted by example counts). ``local`` averages the updates
        unweighted too (example counts are private there).
        target_epsilon or noise_multiplier (one of them: giving one unsets
        the other), delta, accountant, max_grad_norm (per-example clipping
        for ``local``), adaptive_clipping with target_quantile,
        clip_learning_rate and clip_count_stddev (``central``),
        secure_noise (``local``). ``distributed`` (client-level, against
        the server): each client clips to L2 ``clip_norm``, rotates, rounds
        and adds a discrete noise share (``dp_mechanism``) mod
        ``2^dp_bits`` before the secure sum (``secagg`` or ``secagg+``);
        noise is calibrated for the secure sum's threshold of survivors and
        ``target_epsilon`` after ``rounds`` rounds (every round charged in
        full: the server sees who takes part, so no amplification by
        sampling is claimed). ``distributed-sgd`` (example-level, against
        the server): one DP-SGD step per round; every client takes part,
        Poisson-samples its examples at ``example_sample_rate``, clips each
        example's gradient to ``max_grad_norm``, rounds each and adds one
        discrete noise share to its summed batch inside the secure sum; the
        server divides the decoded sum by the public expected batch size and
        steps by ``client_lr * server_lr`` (see
        :mod:`protocols.fedavg.dp_distributed_sgd`).
    Run:
        seed, out_dir (a new directory per run inside it), progress.
    """

    task: str = "digits"
    num_clients: int = 20
    split: str = "dirichlet"
    alpha: float = 0.5
    rounds: int = 30
    clients_per_round: int = 20
    local_epochs: int = 2
    batch_size: int = 32
    client_lr: float = 0.5
    server_lr: float = 1.0
    aggregation: str = "secagg+"
    update_clip: float = 4.0
    max_examples_per_client: int = 1000
    paillier_key_bits: int = 2048
    dropout_rate: float = 0.1
    dp: str = "local"
    target_epsilon: float | None = 8.0
    noise_multiplier: float | None = None
    delta: float = 1e-5
    accountant: str = "pld"
    max_grad_norm: float = 1.0
    clip_norm: float = 1.0
    adaptive_clipping: bool = False
    target_quantile: float = 0.5
    clip_learning_rate: float = 0.2
    clip_count_stddev: float | None = None
    dp_bits: int = 16
    dp_mechanism: str = "dgauss"
    example_sample_rate: float = 1.0
    secure_noise: bool = True
    seed: int = 0
    out_dir: str = "runs"
    progress: bool = True

    # -- loading ------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FedAvgConfig:
        """Build from a mapping; unknown keys and wrong types are errors."""
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                close = difflib.get_close_matches(str(key), list(known), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ParameterError(
                    f"unknown config key {key!r}; {hint}allowed keys: {', '.join(sorted(known))}"
                )
            default = known[key].default
            if isinstance(default, bool) and not isinstance(value, bool):
                raise ParameterError(f"config key {key!r} must be true or false, got {value!r}")
            if (
                isinstance(default, int)
                and not isinstance(default, bool)
                and (isinstance(value, bool) or not isinstance(value, int))
            ):
                raise ParameterError(f"config key {key!r} must be an integer, got {value!r}")
            if isinstance(default, float) or key in OPTIONAL_NUMBERS:
                if value is not None and (
                    isinstance(value, bool) or not isinstance(value, (int, float))
                ):
                    raise ParameterError(f"config key {key!r} must be a number, got {value!r}")
                value = None if value is None else float(value)
            if isinstance(default, str) and not isinstance(value, str):
                raise ParameterError(f"config key {key!r} must be a string, got {value!r}")
            kwargs[key] = value
        # one rule for both ways to choose the noise: giving one unsets the other
        for one, other in (("noise_multiplier", "target_epsilon"),
                           ("target_epsilon", "noise_multiplier")):
            if kwargs.get(one) is not None and other not in kwargs:
                kwargs[other] = None
        cfg = cls(**kwargs)
        cfg.validate()
        return cfg

    @classmethod
    def from_toml(cls, path: str | Path) -> FedAvgConfig:
        """Load a TOML file; keys may sit at the top level or under ``[fedavg]``."""
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ParameterError(f"config file {str(path)!r} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ParameterError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
        if "fedavg" in data and isinstance(data["fedavg"], dict):
            data = {**{k: v for k, v in data.items() if k != "fedavg"}, **data["fedavg"]}
        # TOML has no null: "none" for an optional number means unset
        for key in OPTIONAL_NUMBERS:
            if data.get(key) == "none":
                data[key] = None
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> FedAvgConfig:
        cfg = dataclasses.replace(self, **changes)
        cfg.validate()
        return cfg

    # -- checks -------------------------------------------------------------
    def validate(self) -> None:
        """Raise :class:`ParameterError` naming the key and its allowed values.

        Every key is checked for its type first (a bool is not a number, a
        string is not a number, NaN and infinities are refused), then for
        its range, then the keys against each other.
        """
        for f in fields(self):
            v = getattr(self, f.name)
            default = f.default
            if isinstance(default, bool):
                if not isinstance(v, bool):
                    raise ParameterError(f"config key {f.name!r} must be true or false, got {v!r}")
            elif isinstance(default, int):
                if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                    raise ParameterError(f"config key {f.name!r} must be an integer, got {v!r}")
            elif isinstance(default, float) or f.name in OPTIONAL_NUMBERS:
                if v is None and f.name in OPTIONAL_NUMBERS:
                    continue
                if isinstance(v, bool) or not isinstance(v, (int, float, np.integer,
                                                             np.floating)):
                    raise ParameterError(f"config key {f.name!r} must be a number, got {v!r}")
                if not math.isfinite(float(v)):
                    raise ParameterError(
                        f"config key {f.name!r} is {v}; it must be a finite number"
                    )
            elif isinstance(default, str) and not isinstance(v, str):
                raise ParameterError(f"config key {f.name!r} must be a string, got {v!r}")

        def one_of(key: str, allowed: tuple[str, ...]) -> None:
            v = getattr(self, key)
            if v not in allowed:
                raise ParameterError(
                    f"config key {key!r} is {v!r}; allowed values: {', '.join(allowed)}"
                )

        def rng(
            key: str, lo: float, hi: float | None = None, lo_open: bool = False,
            hi_open: bool = False,
        ) -> None:
            v = getattr(self, key)
            bad = (v < lo or (lo_open and v == lo) or (hi is not None and v > hi)
                   or (hi_open and v == hi))
            if bad:
                left = "(" if lo_open else "["
                right = (f"{hi})" if hi_open else f"{hi}]") if hi is not None else "inf)"
                raise ParameterError(
                    f"config key {key!r} is {v}; allowed range {left}{lo}, {right}"
                )

        one_of("task", TASKS)
        one_of("split", SPLITS)
        one_of("aggregation", AGGREGATIONS)
        one_of("dp", DP_MODES)
        one_of("accountant", ACCOUNTANTS)
        one_of("dp_mechanism", DP_MECHANISMS)
        rng("dp_bits", 2, 32)
        rng("num_clients", 1, 65535)
        rng("clients_per_round", 1, self.num_clients)
        rng("rounds", 1, 100_000)
        rng("local_epochs", 1)
        rng("batch_size", 1)
        rng("alpha", 0, lo_open=True)
        rng("client_lr", 0, lo_open=True)
        rng("server_lr", 0, lo_open=True)
        rng("update_clip", 0, lo_open=True)
        rng("max_examples_per_client", 1)
        rng("dropout_rate", 0, 0.999)
        rng("delta", 1e-12, 1, hi_open=True)
        rng("max_grad_norm", 0, lo_open=True)
        rng("clip_norm", 0, lo_open=True)
        rng("target_quantile", 0, 1, lo_open=True, hi_open=True)
        rng("clip_learning_rate", 0, lo_open=True)
        rng("example_sample_rate", 0, 1, lo_open=True)
        if self.clip_count_stddev is not None:
            rng("clip_count_stddev", 0, lo_open=True)
        if self.paillier_key_bits not in (2048, 3072):
            raise ParameterError(
                f"config key 'paillier_key_bits' is {self.paillier_key_bits}; "
                "allowed values: 2048, 3072"
            )
        if self.dp != "none":
            if (self.target_epsilon is None) == (self.noise_multiplier is None):
                raise ParameterError(
                    f"with dp={self.dp!r} give exactly one of 'target_epsilon' and "
                    "'noise_multiplier' (set the other to \"none\")"
                )
            if self.target_epsilon is not None:
                rng("target_epsilon", 0, 100, lo_open=True)
            if self.noise_multiplier is not None:
                rng("noise_multiplier", 0.1, 1000)
        if self.dp in ("distributed", "distributed-sgd"):
            if self.target_epsilon is None:
                raise ParameterError(
                    f"config key 'noise_multiplier' is set with dp={self.dp!r}; give "
                    "'target_epsilon' instead (the noise is calibrated from it)")
            if self.aggregation not in ("secagg", "secagg+"):
                raise ParameterError(
                    f"config key 'aggregation' is {self.aggregation!r}; dp={self.dp!r} "
                    "needs secagg or secagg+ (its noise is calibrated to the secure sum's "
                    "threshold, and the server must see only the noisy sum)")
        if self.dp in ("central", "distributed") and self.delta >= 1 / self.num_clients:
            raise ParameterError(
                f"config key 'delta' is {self.delta}; with dp={self.dp!r} it must be below "
                f"1/num_clients = {1 / self.num_clients:.3g} (a delta that large allows "
                "releasing one client's update outright)"
            )
        if self.dp == "distributed-sgd" and self.clients_per_round != self.num_clients:
            raise ParameterError(
                f"config key 'clients_per_round' is {self.clients_per_round}; "
                f"dp='distributed-sgd' needs every client in every step (num_clients = "
                f"{self.num_clients}): the examples are what is sampled")
        if self.adaptive_clipping and self.dp != "central":
            raise ParameterError(
                f"config key 'adaptive_clipping' is true with dp={self.dp!r}; "
                "adaptive clipping is a dp='central' step"
            )
        if self.aggregation in ("secagg", "secagg+") and self.clients_per_round < 3:
            raise ParameterError(
                f"config key 'clients_per_round' is {self.clients_per_round}; "
                "secure aggregation needs at least 3 clients per round"
            )
