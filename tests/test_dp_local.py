"""dp.local: LocalDPTrainer across rounds, budget, ghost clipping, secure noise."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn
from torch.utils.data import Dataset

from dp.accounting import epsilon
from dp.local import (
    GRAD_SAMPLE_MODES,
    LocalDPTrainer,
    UnclippedGradientError,
    make_dp_compatible,
    time_grad_sample_modes,
)
from secagg.errors import ParameterError, PrivacyBudgetExceeded, SecAggError

DELTA = 1e-5


def _data(n: int = 200, d: int = 10, k: int = 3, seed: int = 0, scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g) * scale
    w = torch.randn(d, k, generator=g)
    return x, (x @ w).argmax(1)


def _trainer(model=None, data=None, **kw):
    args = dict(
        batch_size=20,
        max_grad_norm=1.0,
        noise_multiplier=1.0,
        secure_mode=False,
        seed=0,
        grad_sample_mode="hooks",
    )
    args.update(kw)
    return LocalDPTrainer(model or nn.Linear(10, 3), data or _data(), **args)


class CountingDataset(Dataset):
    def __init__(self, x, y):
        self.x, self.y, self.reads = x, y, 0

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        self.reads += 1
        return self.x[i], self.y[i]


# ------------------------------------------------------------------ rounds


def test_rounds_keep_accounting_state():
    tr = _trainer()
    s1 = tr.train_round(1.0, round=0)
    s2 = tr.train_round(steps=4, round=1)
    assert (s1.steps, s2.steps) == (10, 4)  # one epoch = 1/q = 10 steps
    assert s1.examples > 0 and math.isfinite(s1.mean_loss)
    assert tr.rounds == 2 and tr.ledger.steps == 14
    # Opacus's own accountant saw the same steps at the true sampling rate
    assert tr.engine.accountant.history == [(1.0, 0.1, 14)]
    g = tr.epsilon()
    assert (g.unit, g.adjacency, g.accountant) == ("example", "add/remove one", "pld")
    assert g.epsilon == epsilon(0.1, 1.0, 14, DELTA).epsilon
    assert s1.as_dict()["steps"] == 10


def test_budget_is_enforced_before_any_data_is_read():
    x, y = _data()
    ds = CountingDataset(x, y)
    tr = _trainer(
        data=ds, noise_multiplier=None, target_epsilon=3.0, planned_steps=12, accountant="rdp"
    )
    assert epsilon(0.1, tr.noise_multiplier, 12, DELTA, accountant="rdp").epsilon <= 3.0
    assert tr.can_train(steps=12) and not tr.can_train(steps=13)
    tr.train_round(steps=12)
    assert 2.9 < tr.epsilon().epsilon <= 3.0
    reads = ds.reads
    before = tr.get_flat_params()
    with pytest.raises(PrivacyBudgetExceeded) as exc:
        tr.train_round(steps=1)
    assert isinstance(exc.value, SecAggError)
    assert ds.reads == reads  # no example was touched
    np.testing.assert_array_equal(tr.get_flat_params(), before)
    assert tr.ledger.steps == 12


def test_noise_multiplier_calibrated_from_epochs():
    tr = _trainer(noise_multiplier=None, target_epsilon=2.0, planned_epochs=3)
    assert tr.ledger.epsilon_budget == 2.0
    for r in range(3):
        tr.train_round(1.0, round=r)
    assert 1.97 < tr.epsilon().epsilon <= 2.0
    with pytest.raises(PrivacyBudgetExceeded):
        tr.train_round(1.0)


# --------------------------------------------------------------- clipping


@pytest.mark.parametrize("mode", GRAD_SAMPLE_MODES)
def test_every_mode_clips_per_example(mode):
    # huge inputs: unclipped gradients would have norms in the thousands
    x, y = _data(n=50, scale=1e3)
    model = nn.Linear(10, 3)
    tr = _trainer(
        model, (x, y), batch_size=None, sample_rate=1.0, noise_multiplier=0.0,
        grad_sample_mode=mode, lr=1.0,
    )
    before = tr.get_flat_params()
    tr.train_round(steps=1)
    # mean of per-example gradients clipped to C=1 has norm <= 1 (lr = 1)
    assert np.linalg.norm(tr.get_flat_params() - before) <= 1.0 + 1e-4


def test_ghost_clipping_cannot_be_bypassed():
    x, y = _data()
    tr = _trainer(data=(x, y), grad_sample_mode="ghost")
    before = tr.get_flat_params()
    # the classic mistake: backward() on the original criterion's loss
    opt = tr.dp_optimizer
    opt.zero_grad()
    loss = nn.CrossEntropyLoss()(tr.dp_module(x[:20]), y[:20])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss.backward()
    with pytest.raises(UnclippedGradientError):
        opt.step()
    np.testing.assert_array_equal(tr.get_flat_params(), before)
    # the trainer's own loop works
    opt.zero_grad()
    tr.train_round(steps=3)
    assert not np.array_equal(tr.get_flat_params(), before)


@pytest.mark.parametrize("mode", GRAD_SAMPLE_MODES)
def test_empty_poisson_batches_still_take_noisy_steps(mode):
    tr = _trainer(
        nn.Linear(10, 3), _data(n=10), batch_size=None, sample_rate=0.001, grad_sample_mode=mode
    )
    before = tr.get_flat_params()
    stats_ = tr.train_round(steps=5)
    assert stats_.empty_batches >= 4
    assert not np.array_equal(tr.get_flat_params(), before)  # the noise moved it
    assert tr.ledger.steps == 5


@pytest.mark.parametrize("mode", GRAD_SAMPLE_MODES)
def test_the_ledger_cannot_be_bypassed_by_stepping_outside_train_round(mode):
    from dp import local

    x, y = _data()
    model = nn.Linear(10, 3)
    user_opt = torch.optim.SGD(model.parameters(), lr=0.5)
    tr = _trainer(model, (x, y), grad_sample_mode=mode, optimizer=user_opt)
    tr.train_round(steps=2)
    spent, steps = tr.epsilon().epsilon, tr.ledger.steps
    opacus_steps = sum(h[2] for h in tr.engine.accountant.history)
    before = tr.get_flat_params()
    opt = tr.dp_optimizer

    def backward() -> None:
        opt.zero_grad(set_to_none=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tr._dp_criterion(tr.dp_module(x[:20]), y[:20]).backward()

    # a DP step on a correctly clipped backward pass, outside train_round
    backward()
    with pytest.raises(local.UnchargedStepError, match="train_round"):
        opt.step()
    assert isinstance(local.UnchargedStepError("x"), PrivacyBudgetExceeded)
    # the pieces of a step, and the optimizer Opacus wraps (a non-private step)
    backward()
    with pytest.raises(local.UnchargedStepError):
        opt.pre_step()
    with pytest.raises(local.UnchargedStepError):
        opt.add_noise()
    for raw in (opt.original_optimizer, user_opt):
        backward()
        with pytest.raises(local.UnchargedStepError):
            raw.step()
    np.testing.assert_array_equal(tr.get_flat_params(), before)
    assert tr.ledger.steps == steps and tr.epsilon().epsilon == spent
    assert sum(h[2] for h in tr.engine.accountant.history) == opacus_steps
    # the trainer's own loop still works, and is charged
    opt.zero_grad(set_to_none=True)
    tr.train_round(steps=1)
    assert tr.ledger.steps == steps + 1
    assert not np.array_equal(tr.get_flat_params(), before)


# ------------------------------------------------------------ secure noise


def test_secure_mode_draws_noise_and_batches_from_the_crypto_source():
    tr = LocalDPTrainer(
        nn.Linear(10, 3), _data(), batch_size=20, max_grad_norm=1.0, noise_multiplier=1.0,
        grad_sample_mode="ghost",
    )
    assert tr.secure_mode and tr.dp_optimizer.secure_mode
    torch_state = torch.get_rng_state()
    words = tr._crypto.words_drawn
    tr.train_round(steps=3)
    # no draw from torch's (non-cryptographic) global generator
    assert torch.equal(torch.get_rng_state(), torch_state)
    # per step: 200 sampling words + 4 draws x 33 parameters of noise
    assert tr._crypto.words_drawn - words >= 3 * (200 + 4 * 33)
    with pytest.raises(ParameterError):
        LocalDPTrainer(nn.Linear(10, 3), _data(), batch_size=20, max_grad_norm=1.0,
                       noise_multiplier=1.0, seed=1, grad_sample_mode="hooks")


@pytest.mark.parametrize("mode", ["ghost", "hooks"])
def test_secure_noise_in_the_optimizer_is_gaussian_with_the_right_std(mode):
    # an (almost surely) empty batch: the update is pure noise,
    # delta = -lr * N(0, (sigma C)^2) / (q n); with lr = q n its std is sigma C
    n, q, sigma, c = 1000, 1e-7, 2.0, 0.5
    x, y = torch.zeros(n, 100), torch.zeros(n, dtype=torch.long)
    tr = LocalDPTrainer(
        nn.Linear(100, 50), (x, y), sample_rate=q, max_grad_norm=c, noise_multiplier=sigma,
        lr=q * n, grad_sample_mode=mode,
    )
    before = tr.get_flat_params().astype(np.float64)
    st_ = tr.train_round(steps=1)
    assert st_.empty_batches == 1
    delta = tr.get_flat_params().astype(np.float64) - before
    assert delta.std() == pytest.approx(sigma * c, rel=0.05)
    assert abs(delta.mean()) < 0.05
    assert stats.kstest(delta / (sigma * c), "norm").pvalue > 1e-4


def test_non_secure_runs_are_reproducible_under_a_seed():
    a = _trainer(nn.Linear(10, 3), seed=5)
    b = _trainer(nn.Linear(10, 3), seed=5)
    b.set_flat_params(a.get_flat_params())
    a.train_round(steps=3)
    b.train_round(steps=3)
    np.testing.assert_array_equal(a.get_flat_params(), b.get_flat_params())


# ------------------------------------------------------------------ models


def test_batchnorm_is_replaced_with_a_clear_warning():
    model = nn.Sequential(nn.Linear(10, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    with pytest.warns(UserWarning, match=r"'1': BatchNorm1d -> GroupNorm"):
        tr = _trainer(model)
    assert isinstance(tr.model[1], nn.GroupNorm) and tr.model is not model
    tr.train_round(steps=2)
    with pytest.raises(ParameterError, match=r"'1' \(BatchNorm1d\)"):
        make_dp_compatible(model, fix=False)
    plain = nn.Linear(3, 3)
    assert make_dp_compatible(plain) is plain


def test_flat_parameters_round_trip():
    tr = _trainer(nn.Sequential(nn.Linear(10, 4), nn.ReLU(), nn.Linear(4, 3)))
    v = np.arange(tr.num_params, dtype=np.float32) / 100
    tr.set_flat_params(v)
    np.testing.assert_array_equal(tr.get_flat_params(), v)
    assert tr.get_flat_params().dtype == np.float32
    with pytest.raises(ParameterError):
        tr.set_flat_params(np.zeros(tr.num_params + 1))
    with pytest.raises(ParameterError):
        tr.set_flat_params(np.full(tr.num_params, np.nan))


def test_map_style_dataset_optimizer_instance_and_factory():
    x, y = _data(n=40)
    model = nn.Linear(10, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    tr = _trainer(model, CountingDataset(x, y), optimizer=opt, batch_size=8)
    tr.train_round(1.0)
    assert tr.dp_optimizer.original_optimizer is opt
    tr.reset_optimizer_state()
    tr2 = _trainer(nn.Linear(10, 3), (x, y),
                   optimizer=lambda p: torch.optim.Adam(p, lr=1e-2), batch_size=8)
    tr2.train_round(steps=2)
    assert isinstance(tr2.dp_optimizer.original_optimizer, torch.optim.Adam)


@pytest.mark.parametrize(
    "kw",
    [
        {"noise_multiplier": None},
        {"target_epsilon": 1.0},
        {"noise_multiplier": None, "target_epsilon": 1.0},
        {"grad_sample_mode": "magic"},
        {"batch_size": 500},
        {"batch_size": None},
        {"max_grad_norm": 0.0},
        {"noise_multiplier": -1.0},
        {"delta": 1.0},
        {"delta": 1e-300},
        {"loss_fn": nn.CrossEntropyLoss(reduction="sum")},
        {"batch_size": None, "sample_rate": True},
        {"batch_size": None, "sample_rate": "0.5"},
        {"noise_multiplier": math.inf},
        {"max_grad_norm": "1"},
    ],
)
def test_bad_arguments_raise_parameter_error(kw):
    with pytest.raises(ParameterError):
        _trainer(**kw)


def test_a_large_delta_is_warned_about():
    import dp

    with pytest.warns(dp.DeltaWarning, match=r"delta=0.01 is not below 1/N = 1/200"):
        _trainer(delta=1e-2)


def test_numpy_step_counts_train_and_are_charged():
    tr = _trainer()
    assert tr.train_round(steps=np.int64(3)).steps == 3
    assert tr.ledger.steps == 3


def test_bad_round_arguments():
    tr = _trainer()
    with pytest.raises(ParameterError):
        tr.train_round(1.0, steps=3)
    with pytest.raises(ParameterError):
        tr.train_round(steps=-1)


def test_auto_mode_picks_the_fastest_and_remembers_it():
    from dp import local

    x, y = _data(n=64)
    tr = LocalDPTrainer(nn.Linear(10, 3), (x, y), batch_size=32, max_grad_norm=1.0,
                        noise_multiplier=1.0, secure_mode=False, seed=0)
    assert tr.grad_sample_mode in GRAD_SAMPLE_MODES
    assert tr.grad_sample_mode in local._AUTO_CHOICE.values()
    tr.train_round(steps=2)


def test_time_grad_sample_modes_reports_each_mode():
    x, y = _data(n=32)
    t = time_grad_sample_modes(lambda: nn.Linear(10, 3), (x, y), steps=2, repeat=1)
    assert set(t) == {"sgd", *GRAD_SAMPLE_MODES}
    assert all(v > 0 for v in t.values())
