"""Local DP-SGD on one client's PyTorch model, through Opacus.

:class:`LocalDPTrainer` wraps a model, an optimizer and a dataset with
Opacus's ``PrivacyEngine`` exactly once and then trains round after round,
so the privacy accounting carries over between rounds. It owns the training
loop, which makes the classic mistakes impossible: calling ``make_private``
afresh every round (the accountant would forget earlier rounds), training
past the budget, stepping the optimizer outside :meth:`LocalDPTrainer.train_round`
(the step would not be charged: :class:`UnchargedStepError`), or, with ghost
clipping, calling ``backward`` on the original loss (which silently skips
clipping).

Privacy unit: one *example* of this client's dataset; adjacency: add/remove
one example. Sampling: Poisson, each example independently with probability
``batch_size / len(dataset)`` per step. An empty batch still takes a noisy
step (noise on a zero gradient), as the accounting assumes.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import torch
from opacus import PrivacyEngine
from opacus.optimizers import DPOptimizer, get_optimizer_class
from opacus.optimizers.optimizer import _check_processed_flag, _mark_as_processed
from opacus.validators import ModuleValidator
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset
from torch.utils.data._utils.collate import default_collate

from secagg.errors import ParameterError, PrivacyBudgetExceeded, UnclippedGradientError

from .accounting import (
    DEFAULT_ACCOUNTANT,
    PrivacyGuarantee,
    _check_accountant,
    _check_rate,
    _check_sigma,
    _check_steps,
    _real,
    check_delta,
    sample_rate_for,
    steps_for_epochs,
)
from .accounting import noise_multiplier as calibrate_noise_multiplier
from .ledger import PrivacyLedger
from .secure_noise import CryptoRandom

__all__ = [
    "GRAD_SAMPLE_MODES",
    "LocalDPTrainer",
    "PoissonBatchSampler",
    "RoundStats",
    "UnchargedStepError",
    "UnclippedGradientError",
    "make_dp_compatible",
    "time_grad_sample_modes",
]

#: Opacus's per-sample gradient modes for flat clipping. Which is fastest
#: depends on the model (ghost clipping, which never materialises per-sample
#: gradients, on wider layers; "ew" on tiny ones), so the default "auto" measures.
GRAD_SAMPLE_MODES: Final[tuple[str, ...]] = ("ghost", "ew", "hooks", "functorch")


# ----------------------------------------------------------------- sampling


class PoissonBatchSampler(Sampler[list[int]]):
    """Poisson sampling: each step includes every index independently with
    probability ``sample_rate``; batches may be empty.

    Randomness comes from ``crypto`` (a :class:`CryptoRandom`, for deployment)
    or else from ``generator`` (a seeded ``torch.Generator``, for experiments).
    Iterating yields ``steps`` batches (set it before each pass).
    """

    def __init__(
        self,
        num_samples: int,
        sample_rate: float,
        *,
        steps: int = 1,
        generator: torch.Generator | None = None,
        crypto: CryptoRandom | None = None,
    ) -> None:
        if _check_steps(num_samples, "num_samples") < 1:
            raise ParameterError(f"num_samples={num_samples} must be >= 1")
        self.num_samples = int(num_samples)
        self.sample_rate = _check_rate(sample_rate)
        self.steps = steps
        self.generator = generator
        self.crypto = crypto

    def draw(self) -> list[int]:
        """One Poisson batch of indices."""
        if self.crypto is not None:
            mask = self.crypto.bernoulli_mask(self.num_samples, self.sample_rate)
            return np.flatnonzero(mask).tolist()  # type: ignore[no-any-return]
        u = torch.rand(self.num_samples, generator=self.generator, dtype=torch.float64)
        return (u < self.sample_rate).nonzero(as_tuple=False).reshape(-1).tolist()

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[list[int]]:
        for _ in range(self.steps):
            yield self.draw()


# ----------------------------------------------------------- Opacus plumbing


class UnchargedStepError(PrivacyBudgetExceeded):
    """A DP-SGD step (or a piece of one: ``pre_step``, ``add_noise``, or a step
    of the optimizer Opacus wraps) was attempted outside
    :meth:`LocalDPTrainer.train_round`, so the ledger has not charged it."""


def _uncharged(what: str) -> UnchargedStepError:
    return UnchargedStepError(
        f"refusing {what} outside LocalDPTrainer.train_round: the privacy ledger has not "
        "charged it, so the reported epsilon would not cover it; train with "
        "trainer.train_round(steps=...), which charges the steps first"
    )


class _GuardedOptimizerMixin:
    """Mixed into Opacus's optimizer classes. Adds three things:

    * noise from a :class:`CryptoRandom` (four summed Gaussian draws per value,
      as in Opacus's secure mode) when ``_crypto`` is set;
    * with ghost clipping, a refusal to step unless the clipped backward pass
      ran (``_clip_token`` is set by the module's clipping-coefficient call);
    * with ``_ledger_guard``, a refusal of every step the trainer has not
      granted (``_steps_granted``, set only after the ledger charged them),
      and of ``add_noise`` outside a granted step.
    """

    _crypto: CryptoRandom | None = None
    _require_clip_token: bool = False
    _clip_token: bool = False
    _ledger_guard: bool = False
    _steps_granted: int = 0
    _in_pre_step: bool = False
    _in_step: bool = False

    def add_noise(self) -> None:
        if self._ledger_guard and not self._in_pre_step:
            raise _uncharged("add_noise()")
        if self._crypto is None:
            super().add_noise()  # type: ignore[misc]
            return
        opt: Any = self
        nm = getattr(opt, "_adjusted_noise_multiplier", opt.noise_multiplier)
        std = float(nm) * float(opt.max_grad_norm)
        params = list(opt.params)
        for p in params:
            _check_processed_flag(p.summed_grad)
        # one draw for all parameters, then split (fewer keystream calls)
        flat = self._crypto.gaussian(std, sum(int(p.summed_grad.numel()) for p in params))
        offset = 0
        for p in params:
            g = p.summed_grad
            k = int(g.numel())
            noise = torch.from_numpy(flat[offset : offset + k]).view(g.shape)
            p.grad = (g + noise.to(dtype=g.dtype, device=g.device)).view_as(p)
            offset += k
            _mark_as_processed(p.summed_grad)

    def pre_step(self, closure: Callable[[], float] | None = None) -> bool | None:
        if self._require_clip_token:
            if not self._clip_token:
                raise UnclippedGradientError(
                    "refusing an optimizer step on unclipped gradients: with ghost "
                    "clipping, backward() must be called on the loss the trainer "
                    "computes (LocalDPTrainer.train_round does this); calling it on the "
                    "original criterion's loss skips per-sample clipping"
                )
            self._clip_token = False
        if self._ledger_guard:
            if self._steps_granted <= 0:
                raise _uncharged("an optimizer step")
            self._steps_granted -= 1
        self._in_pre_step = True
        try:
            return super().pre_step(closure)  # type: ignore[misc, no-any-return]
        finally:
            self._in_pre_step = False

    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        self._in_step = True
        try:
            return super().step(closure)  # type: ignore[misc, no-any-return]
        finally:
            self._in_step = False


def _guard_wrapped_optimizer(dp_optimizer: Any) -> None:
    """Make the optimizer Opacus wraps refuse to step except from inside
    ``dp_optimizer.step`` (a direct step would apply unclipped, un-noised
    gradients). The caller's own reference to it is the same object."""
    inner = dp_optimizer.original_optimizer
    unguarded = inner.step

    def step(*args: Any, **kwargs: Any) -> Any:
        if not dp_optimizer._in_step:
            raise _uncharged("a step of the optimizer wrapped for DP-SGD (no clipping, no noise)")
        return unguarded(*args, **kwargs)

    inner.step = step


_GUARDED_CLASSES: dict[type, type] = {}


def _guarded(cls: type) -> type:
    if cls not in _GUARDED_CLASSES:
        _GUARDED_CLASSES[cls] = type(f"Guarded{cls.__name__}", (_GuardedOptimizerMixin, cls), {})
    return _GUARDED_CLASSES[cls]


class _Engine(PrivacyEngine):
    """``PrivacyEngine`` whose optimizers draw noise from a :class:`CryptoRandom`
    (secure mode) and refuse unclipped ghost-clipping steps."""

    def __init__(self, *, crypto: CryptoRandom | None) -> None:
        with warnings.catch_warnings():
            # Opacus warns that its own secure RNG is off; ours replaces it.
            warnings.simplefilter("ignore")
            super().__init__(accountant="prv", secure_mode=False)
        self._crypto = crypto

    def _prepare_optimizer(  # type: ignore[override]
        self,
        *,
        optimizer: torch.optim.Optimizer,
        noise_multiplier: float,
        max_grad_norm: float,
        expected_batch_size: int,
        loss_reduction: str = "mean",
        distributed: bool = False,
        clipping: str = "flat",
        noise_generator: torch.Generator | None = None,
        grad_sample_mode: str = "hooks",
        **kwargs: Any,
    ) -> DPOptimizer:
        if isinstance(optimizer, DPOptimizer):
            optimizer = optimizer.original_optimizer
        base = get_optimizer_class(
            clipping=clipping, distributed=distributed, grad_sample_mode=grad_sample_mode
        )
        opt = _guarded(base)(
            optimizer=optimizer,
            noise_multiplier=noise_multiplier,
            max_grad_norm=max_grad_norm,
            expected_batch_size=expected_batch_size,
            loss_reduction=loss_reduction,
            generator=noise_generator,
            secure_mode=self._crypto is not None,
            **kwargs,
        )
        opt._crypto = self._crypto
        opt._require_clip_token = grad_sample_mode == "ghost"
        return opt  # type: ignore[no-any-return]


def make_dp_compatible(model: nn.Module, *, fix: bool = True) -> nn.Module:
    """Return ``model`` if every layer supports per-example gradients, else a fixed
    copy (BatchNorm replaced by GroupNorm, and so on) with a warning naming
    each replaced layer; with ``fix=False`` raise :class:`ParameterError` instead.

    BatchNorm mixes the examples of a batch, so one example's gradient depends
    on the others and per-example clipping no longer bounds its influence.
    """
    model.train()
    if not ModuleValidator.validate(model, strict=False):
        return model
    problems: list[tuple[str, str]] = []
    for name, sub in model.named_modules():
        validator = ModuleValidator.VALIDATORS.get(type(sub))
        if validator is not None and validator(sub):
            problems.append((name, type(sub).__name__))
    listing = ", ".join(f"{n or '<root>'!r} ({t})" for n, t in problems)
    if not fix:
        raise ParameterError(
            f"layers not supported by DP-SGD: {listing}. BatchNorm mixes the examples "
            "of a batch, so per-example clipping would not bound one example's "
            "influence; replace it with GroupNorm or LayerNorm, or pass fix_model=True"
        )
    fixed = ModuleValidator.fix(model)
    remaining = ModuleValidator.validate(fixed, strict=False)
    if remaining:
        raise ParameterError(
            f"layers not supported by DP-SGD and not fixable automatically: {listing}"
        )
    modules = dict(fixed.named_modules())
    replaced = ", ".join(
        f"{n or '<root>'!r}: {t} -> {type(modules[n]).__name__ if n in modules else '?'}"
        for n, t in problems
    )
    warnings.warn(
        f"replaced layers not supported by DP-SGD ({replaced}): BatchNorm mixes the "
        "examples of a batch, which per-example clipping cannot bound. The trainer "
        "trains a fixed copy of the model: use LocalDPTrainer.model from now on",
        UserWarning,
        stacklevel=3,
    )
    return fixed


# ------------------------------------------------------------------- trainer


@dataclass(frozen=True)
class RoundStats:
    """What one :meth:`LocalDPTrainer.train_round` did.

    Attributes:
        round: the round number passed in (or ``None``).
        steps: noisy optimizer steps taken.
        examples: examples processed (sum of Poisson batch sizes).
        empty_batches: steps whose Poisson batch was empty (noise-only steps).
        mean_loss: mean training loss over non-empty batches (NaN if none).
        seconds: wall time of the round.
        sample_rate: per-step inclusion probability of each example.
        noise_multiplier: noise std / clipping norm.
    """

    round: int | None
    steps: int
    examples: int
    empty_batches: int
    mean_loss: float
    seconds: float
    sample_rate: float
    noise_multiplier: float

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


OptimizerArg = torch.optim.Optimizer | Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


class LocalDPTrainer:
    """DP-SGD for one client, across federated rounds.

    Args:
        model: the client's model; trained in place (or a fixed copy, see
            ``fix_model``; always use :attr:`model`).
        dataset: a map-style ``Dataset`` of ``(input, target)`` pairs, or a
            tuple of tensors ``(inputs, targets)``.
        batch_size: expected Poisson batch size; the sampling rate is
            ``batch_size / len(dataset)``.
        sample_rate: the per-step inclusion probability, instead of
            ``batch_size`` (lets clients of different sizes share one rate).
        max_grad_norm: per-example L2 clipping norm C (> 0).
        optimizer: an optimizer over ``model``'s parameters, or a factory
            ``params -> optimizer``; default SGD with learning rate ``lr``.
        lr: learning rate of the default SGD optimizer.
        loss_fn: criterion with a ``reduction`` attribute (default
            cross-entropy); the trainer averages over the *expected* batch size.
        noise_multiplier: noise std / C. Give this or ``target_epsilon``.
        target_epsilon: calibrate the noise so that ``planned_epochs`` (or
            ``planned_steps``) of training spend exactly this much at ``delta``.
        delta: the delta of every guarantee, in (0, 1); keep it below
            1 / len(dataset).
        planned_epochs, planned_steps: the total training the calibration is for
            (over all rounds).
        epsilon_budget: the most this client will spend; defaults to
            ``target_epsilon`` (or unlimited when ``noise_multiplier`` is given).
            Training past it raises ``PrivacyBudgetExceeded`` before any data
            is read.
        accountant: ``"pld"`` (default), ``"prv"`` or ``"rdp"``.
        grad_sample_mode: ``"auto"`` (default: time each mode for a few steps on
            a synthetic batch of the data's shape, pick the fastest, and remember
            the choice for this architecture), or one of ``"ghost"``, ``"ew"``,
            ``"hooks"``, ``"functorch"``. Ghost clipping wins on wider models,
            ``"ew"`` on very small ones.
        secure_mode: draw noise and Poisson samples from a cryptographic source
            (:class:`CryptoRandom`) instead of torch's generator. On by default;
            turn it off (and pass ``seed``) only for reproducible experiments.
        seed: seed of the non-secure generators (only with ``secure_mode=False``).
        fix_model: replace unsupported layers (BatchNorm) with a warning, rather
            than raising ``ParameterError``.
        ledger: an existing ledger to continue (e.g. restored from disk).
    """

    def __init__(
        self,
        model: nn.Module,
        dataset: Dataset[Any] | tuple[torch.Tensor, ...],
        *,
        batch_size: int | None = None,
        sample_rate: float | None = None,
        max_grad_norm: float,
        optimizer: OptimizerArg | None = None,
        lr: float = 0.1,
        loss_fn: nn.Module | None = None,
        noise_multiplier: float | None = None,
        target_epsilon: float | None = None,
        delta: float = 1e-5,
        planned_epochs: float | None = None,
        planned_steps: int | None = None,
        epsilon_budget: float | None = None,
        accountant: str = DEFAULT_ACCOUNTANT,
        grad_sample_mode: str = "auto",
        secure_mode: bool = True,
        seed: int | None = None,
        fix_model: bool = True,
        ledger: PrivacyLedger | None = None,
    ) -> None:
        if isinstance(dataset, tuple):
            dataset = TensorDataset(*dataset)
        try:
            n = len(dataset)  # type: ignore[arg-type]
        except TypeError as exc:
            raise ParameterError("dataset must be a map-style Dataset with a length") from exc
        self.dataset_size = n
        if (batch_size is None) == (sample_rate is None):
            raise ParameterError("give exactly one of batch_size and sample_rate")
        if sample_rate is not None:
            self.sample_rate = _check_rate(sample_rate)
        else:
            assert batch_size is not None
            self.sample_rate = sample_rate_for(batch_size=batch_size, dataset_size=n)
        #: expected Poisson batch size
        self.batch_size = self.sample_rate * n
        c = _real(max_grad_norm, "max_grad_norm")
        if not (math.isfinite(c) and c > 0):
            raise ParameterError(f"max_grad_norm={max_grad_norm!r} must be a finite number > 0")
        self.max_grad_norm = c
        # refused outside [MIN_DELTA, 1); a DeltaWarning at or above 1/len(dataset)
        self.delta = check_delta(delta, population=n, unit="example")
        self.accountant = _check_accountant(accountant)
        if grad_sample_mode not in ("auto", *GRAD_SAMPLE_MODES):
            raise ParameterError(
                f"grad_sample_mode={grad_sample_mode!r} is not one of "
                f"auto, {', '.join(GRAD_SAMPLE_MODES)}"
            )
        if secure_mode and seed is not None:
            raise ParameterError("seed is refused in secure mode: the noise must be unpredictable")
        self.secure_mode = bool(secure_mode)

        # --- noise level and budget
        if (noise_multiplier is None) == (target_epsilon is None):
            raise ParameterError("give exactly one of noise_multiplier and target_epsilon")
        if target_epsilon is not None:
            if planned_steps is None:
                if planned_epochs is None:
                    raise ParameterError(
                        "target_epsilon needs planned_epochs or planned_steps (the total "
                        "training, over all rounds, the budget is for)"
                    )
                planned_steps = steps_for_epochs(planned_epochs, self.sample_rate)
            sigma = calibrate_noise_multiplier(
                target_epsilon,
                self.sample_rate,
                planned_steps,
                self.delta,
                accountant=self.accountant,
                population=n,
            )
            if epsilon_budget is None:
                epsilon_budget = target_epsilon
        else:
            assert noise_multiplier is not None
            sigma = _check_sigma(noise_multiplier)
        self.noise_multiplier = sigma
        if ledger is None:
            ledger = PrivacyLedger(
                math.inf if epsilon_budget is None else float(epsilon_budget),
                self.delta,
                unit="example",
                accountant=self.accountant,
                population=n,
            )
        elif ledger.unit != "example" or ledger.delta != self.delta:
            raise ParameterError(
                f"ledger is for unit={ledger.unit!r}, delta={ledger.delta:g}; this trainer "
                f"needs unit='example', delta={self.delta:g}"
            )
        self.ledger = ledger
        if target_epsilon is not None and planned_steps:
            # the calibration already evaluated the planned run: record that it
            # fits, so per-round budget checks up to it are free
            ledger.can_spend(self.sample_rate, sigma, planned_steps)

        # --- randomness
        self._crypto = CryptoRandom() if self.secure_mode else None
        self._generator: torch.Generator | None = None
        noise_gen: torch.Generator | None = None
        if not self.secure_mode:
            self._generator = torch.Generator()
            noise_gen = torch.Generator()
            if seed is not None:
                self._generator.manual_seed(int(seed))
                noise_gen.manual_seed(int(seed) + 1)
            else:
                self._generator.seed()
                noise_gen.seed()

        # --- model, optimizer, data, then Opacus (once)
        original = model
        model = make_dp_compatible(model, fix=fix_model)
        model.train()
        self.model = model
        opt: torch.optim.Optimizer
        if optimizer is None:
            opt = torch.optim.SGD(model.parameters(), lr=lr)
        elif isinstance(optimizer, torch.optim.Optimizer):
            opt = optimizer
            if model is not original:  # the fixed copy has new parameters
                opt = type(optimizer)(model.parameters(), **optimizer.defaults)
        else:
            opt = optimizer(model.parameters())
        criterion = loss_fn if loss_fn is not None else nn.CrossEntropyLoss()
        if getattr(criterion, "reduction", "mean") != "mean":
            raise ParameterError(
                f"loss_fn.reduction={criterion.reduction!r}: use 'mean' (the trainer "
                "scales by the expected batch size)"
            )
        if grad_sample_mode == "auto":
            grad_sample_mode = _fastest_mode(model, dataset, criterion, self.batch_size)
        #: the per-sample gradient mode in use
        self.grad_sample_mode = grad_sample_mode

        self.sampler = PoissonBatchSampler(
            n, self.sample_rate, generator=self._generator, crypto=self._crypto
        )
        self.sampler.steps = max(1, round(1 / self.sample_rate))
        self._dataset = dataset
        loader = DataLoader(dataset, batch_sampler=self.sampler, collate_fn=default_collate)
        self.engine = _Engine(crypto=self._crypto)
        out = self.engine.make_private(
            module=model,
            optimizer=opt,
            data_loader=loader,
            criterion=criterion,
            noise_multiplier=sigma,
            max_grad_norm=self.max_grad_norm,
            poisson_sampling=False,  # our sampler already is Poisson
            grad_sample_mode=grad_sample_mode,
            noise_generator=noise_gen,
        )
        if grad_sample_mode == "ghost":
            self.dp_module, self.dp_optimizer, self._dp_criterion, _ = out
            self._install_clip_token()
        else:
            self.dp_module, self.dp_optimizer, _ = out
            self._dp_criterion = criterion
        if hasattr(self.dp_module, "forbid_grad_accumulation"):
            self.dp_module.forbid_grad_accumulation()
        # Average over the expected batch size n*q (Opacus rounds it to an int),
        # and keep Opacus's own accountant in step with the true sampling rate.
        self.dp_optimizer.expected_batch_size = n * self.sample_rate
        self.dp_optimizer.attach_step_hook(
            self.engine.accountant.get_optimizer_hook_fn(sample_rate=self.sample_rate)
        )
        self._params = [p for p in self.model.parameters()]
        self._rounds = 0
        # From here on, every step must be granted by train_round after the
        # ledger charged it.
        guarded: Any = self.dp_optimizer
        guarded._ledger_guard = True
        guarded._steps_granted = 0
        _guard_wrapped_optimizer(guarded)

    # ------------------------------------------------------------ internals

    def _install_clip_token(self) -> None:
        module: Any = self.dp_module
        optimizer: Any = self.dp_optimizer
        original = module.get_clipping_coef

        def get_clipping_coef() -> torch.Tensor:
            coef = original()
            optimizer._clip_token = True
            return coef  # type: ignore[no-any-return]

        module.get_clipping_coef = get_clipping_coef

    def _fetch(self, indices: list[int]) -> Any:
        ds = self._dataset
        if isinstance(ds, TensorDataset):
            idx = torch.as_tensor(indices, dtype=torch.long)
            return tuple(t[idx] for t in ds.tensors)
        if not indices:
            return None
        return default_collate([ds[i] for i in indices])

    def _noise_only_step(self) -> None:
        """A DP step on an empty batch: zero clipped sum plus noise."""
        opt: Any = self.dp_optimizer
        if self.grad_sample_mode == "ghost":
            for p in opt.params:
                p.grad = torch.zeros_like(p)
            opt._clip_token = True
        else:
            for p in opt.params:
                p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device)
        opt.step()
        opt.zero_grad(set_to_none=True)

    def _device(self) -> torch.device:
        return self._params[0].device if self._params else torch.device("cpu")

    # ------------------------------------------------------------ public API

    @property
    def rounds(self) -> int:
        """Number of rounds trained so far."""
        return self._rounds

    def steps_for(self, epochs: float) -> int:
        """Steps in ``epochs`` passes over the local data (``ceil(epochs / q)``)."""
        return steps_for_epochs(epochs, self.sample_rate)

    def epsilon(self, *, accountant: str | None = None) -> PrivacyGuarantee:
        """Example-level guarantee spent so far (add/remove one example)."""
        return self.ledger.spent(accountant=accountant)

    def can_train(self, epochs: float | None = None, *, steps: int | None = None) -> bool:
        """Whether :meth:`train_round` with these arguments fits the budget."""
        t = self._resolve_steps(epochs, steps)
        return self.ledger.can_spend(self.sample_rate, self.noise_multiplier, t)

    def _resolve_steps(self, epochs: float | None, steps: int | None) -> int:
        if steps is None:
            return self.steps_for(1.0 if epochs is None else epochs)
        if epochs is not None:
            raise ParameterError("give epochs or steps, not both")
        return _check_steps(steps)

    def train_round(
        self,
        epochs: float | None = None,
        *,
        steps: int | None = None,
        round: int | None = None,
    ) -> RoundStats:
        """Train ``epochs`` local epochs (default 1) or exactly ``steps`` DP-SGD steps.

        The privacy cost is charged to :attr:`ledger` first; if it would pass
        the budget, ``PrivacyBudgetExceeded`` is raised and no data is read.
        """
        t = self._resolve_steps(epochs, steps)
        self.ledger.charge(self.sample_rate, self.noise_multiplier, t, round=round)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            losses, examples, empty = self._run_steps(t)
        self._rounds += 1
        return RoundStats(
            round=round,
            steps=t,
            examples=examples,
            empty_batches=empty,
            mean_loss=float(np.mean(losses)) if losses else math.nan,
            seconds=time.perf_counter() - start,
            sample_rate=self.sample_rate,
            noise_multiplier=self.noise_multiplier,
        )

    def _run_steps(self, t: int) -> tuple[list[float], int, int]:
        """Run ``t`` DP-SGD steps; call only after the ledger charged them."""
        module, opt, crit = self.dp_module, self.dp_optimizer, self._dp_criterion
        module.train()
        device = self._device()
        losses: list[float] = []
        examples = empty = 0
        guarded: Any = opt
        guarded._steps_granted = t
        try:
            for _ in range(t):
                indices = self.sampler.draw()
                if not indices:
                    empty += 1
                    self._noise_only_step()
                    continue
                batch = self._fetch(indices)
                x, y = batch[0].to(device), batch[1].to(device)
                opt.zero_grad(set_to_none=True)
                loss = crit(module(x), y)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                losses.append(float(loss.item()))
                examples += len(indices)
        finally:
            guarded._steps_granted = 0  # nothing charged is left over for later
        return losses, examples, empty

    # -------------------------------------------------- parameters as vectors

    @property
    def num_params(self) -> int:
        """Number of scalars in the model's parameters."""
        return sum(p.numel() for p in self._params)

    def get_flat_params(self) -> npt.NDArray[np.float32]:
        """The model's parameters, concatenated in ``model.parameters()`` order,
        as a float32 vector (a copy)."""
        if not self._params:
            return np.zeros(0, dtype=np.float32)
        with torch.no_grad():
            flat = torch.cat(
                [p.detach().reshape(-1).to("cpu", torch.float32) for p in self._params]
            )
        return flat.numpy().copy()

    def set_flat_params(self, vector: npt.ArrayLike) -> None:
        """Load parameters from a vector laid out as :meth:`get_flat_params`."""
        v = np.asarray(vector)
        if v.ndim != 1 or v.shape[0] != self.num_params:
            raise ParameterError(
                f"parameter vector has shape {v.shape}, expected ({self.num_params},)"
            )
        if not np.all(np.isfinite(v)):
            raise ParameterError("parameter vector contains NaN or Inf")
        src = torch.from_numpy(v.astype(np.float32, copy=False))
        offset = 0
        with torch.no_grad():
            for p in self._params:
                k = p.numel()
                p.copy_(src[offset : offset + k].view_as(p).to(p.device, p.dtype))
                offset += k

    def reset_optimizer_state(self) -> None:
        """Forget optimizer state (momentum, Adam moments), e.g. between rounds."""
        self.dp_optimizer.original_optimizer.state.clear()


_AUTO_CHOICE: dict[tuple[Any, ...], str] = {}


def _fastest_mode(model: nn.Module, dataset: Any, criterion: nn.Module, batch: float) -> str:
    """The fastest grad-sample mode for ``model`` on a synthetic batch shaped like
    the data (only shapes and dtypes of one example are used, no values)."""
    first = dataset[0]
    x0, y0 = torch.as_tensor(first[0]), torch.as_tensor(first[1])
    b = int(min(512, max(2, round(batch))))
    key = (repr(model), tuple(x0.shape), x0.dtype, tuple(y0.shape), y0.dtype, b,
           type(criterion).__name__)
    if key not in _AUTO_CHOICE:
        gen = torch.Generator().manual_seed(0)
        if x0.is_floating_point():
            x = torch.randn((b, *x0.shape), generator=gen, dtype=x0.dtype)
        else:
            x = torch.zeros((b, *x0.shape), dtype=x0.dtype)
        y = torch.zeros((b, *y0.shape), dtype=y0.dtype)
        times = time_grad_sample_modes(
            lambda: copy.deepcopy(model),
            (x, y),
            steps=4,
            repeat=2,
            loss_fn=lambda: copy.deepcopy(criterion),
        )
        times.pop("sgd")
        _AUTO_CHOICE[key] = min(times, key=lambda m: times[m])
    return _AUTO_CHOICE[key]


def time_grad_sample_modes(
    make_model: Callable[[], nn.Module],
    batch: Sequence[torch.Tensor],
    *,
    modes: Sequence[str] = GRAD_SAMPLE_MODES,
    steps: int = 20,
    repeat: int = 3,
    loss_fn: Callable[[], nn.Module] = nn.CrossEntropyLoss,
) -> dict[str, float]:
    """Seconds per optimizer step of plain SGD (key ``"sgd"``) and of DP-SGD in
    each grad-sample mode, on one fixed batch (best of ``repeat`` runs of
    ``steps`` steps). Use it to pick ``grad_sample_mode`` for a model. A mode
    that fails on the model (e.g. ghost clipping with tied weights) gets
    ``math.inf``."""
    x, y = batch[0], batch[1]
    n = int(x.shape[0])
    out: dict[str, float] = {}

    def timed(step: Callable[[], None]) -> float:
        for _ in range(3):
            step()
        best = math.inf
        for _ in range(repeat):
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            best = min(best, (time.perf_counter() - t0) / steps)
        return best

    model = make_model()
    sgd = torch.optim.SGD(model.parameters(), lr=0.01)
    crit = loss_fn()

    def plain() -> None:
        sgd.zero_grad(set_to_none=True)
        crit(model(x), y).backward()
        sgd.step()

    out["sgd"] = timed(plain)
    for mode in modes:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                trainer = LocalDPTrainer(
                    make_model(),
                    (x, y),
                    batch_size=n,
                    max_grad_norm=1.0,
                    noise_multiplier=1.0,
                    loss_fn=loss_fn(),
                    grad_sample_mode=mode,
                    secure_mode=False,
                    seed=0,
                    lr=0.01,
                )
                module, opt = trainer.dp_module, trainer.dp_optimizer
                dcrit = trainer._dp_criterion
                # timing steps are DP steps too: charge them (unlimited budget
                # here) and grant exactly that many
                total = 3 + repeat * steps
                trainer.ledger.charge(trainer.sample_rate, trainer.noise_multiplier, total)
                opt._steps_granted = total

                def dp_step(module: Any = module, opt: Any = opt, dcrit: Any = dcrit) -> None:
                    opt.zero_grad(set_to_none=True)
                    dcrit(module(x), y).backward()
                    opt.step()

                out[mode] = timed(dp_step)
        except Exception:  # a mode this model does not support
            out[mode] = math.inf
    return out
