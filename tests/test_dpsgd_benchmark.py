"""benchmarks/privacy.py --distributed-sgd: one tiny run of each kind."""

from __future__ import annotations

import math

from benchmarks import privacy


def test_distributed_sgd_rows_run_and_stay_within_budget() -> None:
    data = privacy.load_data()
    cfg = privacy.Config(sample_rate=1.0, lr=2.0, epochs=1)
    d = privacy.run_distributed_sgd(data, 4.0, cfg, 0)
    assert d["steps"] == 1 and d["epsilon"] <= 4.0 and 0.0 <= d["accuracy"] <= 1.0
    assert d["near_boundary_max"] == 0.0 and "per example" in d["guarantee"]
    full = privacy.run_distributed_sgd(data, 4.0, cfg, 0, all_survive=True)
    # noise for all 10 shares: less noise per share, the full budget spent
    assert full["noise_multiplier"] < d["noise_multiplier"]
    assert math.isclose(full["epsilon"], 4.0, rel_tol=1e-3) and full["epsilon"] <= 4.0
    for eps, c in privacy.DISTRIBUTED_SGD.items():
        assert c.sample_rate == 1.0 and c.epochs == privacy.CENTRAL[eps].epochs


def test_epsilons_option_is_checked(monkeypatch, capsys) -> None:
    import pytest

    seen = {}

    def fake(quick, seeds, out, accountant, only=None):  # records what main passes on
        seen.update(quick=quick, seeds=seeds, only=only)
        return 0

    monkeypatch.setattr(privacy, "main_distributed_sgd", fake)
    assert privacy.main(["--distributed-sgd", "--seeds", "2", "--epsilons", "0.5", "4"]) == 0
    assert seen == {"quick": False, "seeds": [0, 1], "only": [0.5, 4.0]}
    for bad in (["--distributed-sgd", "--epsilons", "3"], ["--epsilons", "2"]):
        with pytest.raises(SystemExit):
            privacy.main(bad)
    assert "--epsilons" in capsys.readouterr().err
