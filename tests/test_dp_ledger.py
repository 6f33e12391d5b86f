"""dp.ledger: charging, refusal before spending, persistence."""

from __future__ import annotations

import json
import math
import re

import pytest

from dp.accounting import epsilon
from dp.ledger import ClientLedgers, PrivacyLedger
from secagg.errors import ParameterError, PrivacyBudgetExceeded, SecAggError

DELTA = 1e-5


def test_charge_records_and_spent_composes():
    led = PrivacyLedger(10.0, DELTA, accountant="rdp")
    assert led.spent().epsilon == 0.0 and led.steps == 0
    led.charge(0.1, 1.0, 30, round=0)
    led.charge(0.1, 1.0, 20, round=3)
    assert led.steps == 50
    assert len(led.history) == 1  # equal consecutive segments merge
    assert led.spent().epsilon == epsilon(0.1, 1.0, 50, DELTA, accountant="rdp").epsilon
    assert [e.round for e in led.entries] == [0, 3]
    assert 0 < led.remaining() < 10.0


def test_refusal_happens_before_anything_is_recorded():
    budget = epsilon(0.1, 1.0, 100, DELTA, accountant="rdp").epsilon
    led = PrivacyLedger(budget, DELTA, accountant="rdp")
    led.charge(0.1, 1.0, 100)
    before = list(led.entries)
    assert not led.can_spend(0.1, 1.0, 1)
    with pytest.raises(PrivacyBudgetExceeded) as exc:
        led.charge(0.1, 1.0, 1)
    assert isinstance(exc.value, SecAggError)
    msg = str(exc.value)
    assert "budget" in msg and "example-level" in msg and "add/remove one" in msg
    assert led.entries == before


def test_fast_path_agrees_with_the_tight_accountant():
    # budget between the PLD and RDP values: PLD (the ledger's accountant) allows it
    pld = epsilon(0.05, 1.0, 200, DELTA).epsilon
    rdp = epsilon(0.05, 1.0, 200, DELTA, accountant="rdp").epsilon
    assert pld < rdp
    led = PrivacyLedger((pld + rdp) / 2, DELTA)
    led.charge(0.05, 1.0, 200)
    assert led.spent().epsilon == pld


def test_unlimited_budget_never_refuses():
    led = PrivacyLedger(math.inf, DELTA)
    led.charge(1.0, 0.0, 5)  # no noise at all
    assert math.isinf(led.spent().epsilon)


def test_round_trip_through_json():
    led = PrivacyLedger(3.0, DELTA, unit="client", accountant="rdp")
    led.charge(0.2, 1.5, 10, round=1)
    led.charge(0.1, 1.5, 5)
    data = json.loads(json.dumps(led.to_dict()))
    assert data["adjacency"] == "add/remove one" and data["unit"] == "client"
    back = PrivacyLedger.from_dict(data)
    assert back.entries == led.entries
    assert back.spent() == led.spent()


@pytest.mark.parametrize(
    "bad",
    [
        {"epsilon_budget": 1.0, "delta": 2.0},
        {"epsilon_budget": -1.0, "delta": DELTA},
        {"delta": DELTA},
        {
            "epsilon_budget": 1.0,
            "delta": DELTA,
            "entries": [{"sample_rate": 3, "noise_multiplier": 1, "steps": 1}],
        },
        {"epsilon_budget": 1.0, "delta": DELTA, "entries": [{"sample_rate": 0.1}]},
    ],
)
def test_malformed_records_are_refused(bad):
    with pytest.raises(ParameterError):
        PrivacyLedger.from_dict(bad)


def test_bad_construction():
    with pytest.raises(ParameterError):
        PrivacyLedger(0.0, DELTA)
    with pytest.raises(ParameterError):
        PrivacyLedger(1.0, DELTA, unit="user")
    with pytest.raises(ParameterError):
        PrivacyLedger(1.0, DELTA, accountant="moments")


def test_client_ledgers_track_each_client():
    book = ClientLedgers(5.0, DELTA, accountant="rdp")
    book.charge("alice", 0.1, 1.0, 10, round=0)
    book.charge("bob", 0.1, 1.0, 30, round=0)
    book.charge("alice", 0.1, 1.0, 10, round=1)
    assert set(book) == {"alice", "bob"} and len(book) == 2
    spent = book.spent()
    assert spent["alice"].epsilon < spent["bob"].epsilon
    assert book["alice"].steps == 20
    with pytest.raises(PrivacyBudgetExceeded):
        book.charge("bob", 0.1, 1.0, 100000)
    assert book["bob"].steps == 30


def test_checks_within_a_cleared_run_are_free(monkeypatch):
    import dp.ledger as ledger_mod

    led = PrivacyLedger(epsilon(0.1, 1.0, 100, DELTA).epsilon, DELTA)
    assert led.can_spend(0.1, 1.0, 100)  # clears 100 steps at (0.1, 1.0)

    def boom(*args, **kwargs):
        raise AssertionError("accountant called")

    monkeypatch.setattr(ledger_mod, "quick_upper_bound", boom)
    monkeypatch.setattr(ledger_mod, "epsilon_of_history", boom)
    led.charge(0.1, 1.0, 60)
    led.charge(0.1, 1.0, 40)  # monotone in steps: 100 steps were shown to fit
    with pytest.raises(AssertionError, match="accountant called"):
        led.charge(0.1, 1.0, 1)  # past the cleared run: computed again
    monkeypatch.undo()
    with pytest.raises(PrivacyBudgetExceeded):
        led.charge(0.1, 1.0, 1)
    assert led.steps == 100


@pytest.mark.parametrize(
    "entry,needle",
    [
        ({"sample_rate": 0.1, "noise_multiplier": 1.0, "steps": 2.7}, "steps=2.7"),
        ({"sample_rate": True, "noise_multiplier": 1.0, "steps": 2}, "sample_rate=True"),
        ({"sample_rate": "0.5", "noise_multiplier": 1.0, "steps": 2}, "sample_rate='0.5'"),
        ({"sample_rate": 0.1, "noise_multiplier": 1.0, "steps": 2, "round": 1.5}, "round=1.5"),
    ],
)
def test_from_dict_never_rounds_or_coerces_a_value(entry, needle):
    with pytest.raises(ParameterError, match=re.escape(needle)):
        PrivacyLedger.from_dict({"epsilon_budget": 1.0, "delta": DELTA, "entries": [entry]})


def test_numpy_step_counts_are_charged():
    import numpy as np

    led = PrivacyLedger(10.0, DELTA, accountant="rdp")
    led.charge(np.float64(0.1), np.float64(1.0), np.int64(7), round=np.int64(0))
    assert led.steps == 7
    assert json.loads(json.dumps(led.to_dict()))["entries"][0]["steps"] == 7


def test_a_ledger_checks_delta_against_its_population():
    import dp

    with pytest.warns(dp.DeltaWarning, match="1/N = 1/50 = 0.02 clients"):
        led = PrivacyLedger(5.0, 0.05, unit="client", accountant="rdp", population=50)
    back = PrivacyLedger.from_dict(json.loads(json.dumps(PrivacyLedger(
        5.0, 1e-4, unit="client", population=50).to_dict())))
    assert back.population == 50 and led.population == 50
    with pytest.raises(ParameterError, match="population=0"):
        PrivacyLedger(5.0, 1e-4, population=0)
