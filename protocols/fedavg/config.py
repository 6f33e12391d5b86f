"""Configuration of a FedAvg run: one dataclass, loadable from TOML.

Every field has a default that runs; :meth:`FedAvgConfig.validate` checks
the whole configuration and names the key and its allowed values on error.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from secagg.errors import ParameterError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["AGGREGATIONS", "DP_MODES", "FedAvgConfig"]

AGGREGATIONS = ("plain", "secagg", "secagg+", "paillier")
DP_MODES = ("none", "local", "central")
TASKS = ("digits", "linear-regression")
SPLITS = ("iid", "dirichlet")


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
        the aggregator adds N(0, (noise_multiplier * clip_norm)^2)).
        target_epsilon or noise_multiplier (one of them), delta,
        max_grad_norm (per-example clipping for ``local``).
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
    max_grad_norm: float = 1.0
    clip_norm: float = 1.0
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
                raise ParameterError(
                    f"unknown config key {key!r}; allowed keys: {', '.join(sorted(known))}"
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
            if isinstance(default, float) or key in ("target_epsilon", "noise_multiplier"):
                if value is not None and (
                    isinstance(value, bool) or not isinstance(value, (int, float))
                ):
                    raise ParameterError(f"config key {key!r} must be a number, got {value!r}")
                value = None if value is None else float(value)
            if isinstance(default, str) and not isinstance(value, str):
                raise ParameterError(f"config key {key!r} must be a string, got {value!r}")
            kwargs[key] = value
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
        # TOML has no null: "none" for the two optional numbers means unset
        for key in ("target_epsilon", "noise_multiplier"):
            if data.get(key) == "none":
                data[key] = None
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> FedAvgConfig:
        cfg = dataclasses.replace(self, **changes)
        cfg.validate()
        return cfg

    # -- checks -------------------------------------------------------------
    def validate(self) -> None:
        """Raise :class:`ParameterError` naming the key and its allowed values."""

        def one_of(key: str, allowed: tuple[str, ...]) -> None:
            v = getattr(self, key)
            if v not in allowed:
                raise ParameterError(
                    f"config key {key!r} is {v!r}; allowed values: {', '.join(allowed)}"
                )

        def rng(key: str, lo: float, hi: float | None = None, lo_open: bool = False) -> None:
            v = getattr(self, key)
            bad = v < lo or (lo_open and v == lo) or (hi is not None and v > hi)
            if bad:
                left = "(" if lo_open else "["
                right = f"{hi}]" if hi is not None else "inf)"
                raise ParameterError(
                    f"config key {key!r} is {v}; allowed range {left}{lo}, {right}"
                )

        one_of("task", TASKS)
        one_of("split", SPLITS)
        one_of("aggregation", AGGREGATIONS)
        one_of("dp", DP_MODES)
        rng("num_clients", 1, 65535)
        rng("clients_per_round", 1, self.num_clients)
        rng("rounds", 1)
        rng("local_epochs", 1)
        rng("batch_size", 1)
        rng("alpha", 0, lo_open=True)
        rng("client_lr", 0, lo_open=True)
        rng("server_lr", 0, lo_open=True)
        rng("update_clip", 0, lo_open=True)
        rng("max_examples_per_client", 1)
        rng("dropout_rate", 0, 0.999)
        rng("delta", 0, 1, lo_open=True)
        if self.delta >= 1:
            raise ParameterError(f"config key 'delta' is {self.delta}; allowed range (0, 1)")
        rng("max_grad_norm", 0, lo_open=True)
        rng("clip_norm", 0, lo_open=True)
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
                rng("target_epsilon", 0, lo_open=True)
            if self.noise_multiplier is not None:
                rng("noise_multiplier", 0, lo_open=True)
        if self.aggregation in ("secagg", "secagg+") and self.clients_per_round < 3:
            raise ParameterError(
                f"config key 'clients_per_round' is {self.clients_per_round}; "
                "secure aggregation needs at least 3 clients per round"
            )
