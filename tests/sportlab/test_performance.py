"""Banister impulse-response model and its fit."""

import math

import numpy as np
import pandas as pd
import pytest

from sportlab.metrics import banister_performance, fit_banister


def test_single_impulse_worked_example():
    # One load of 100 on day 0: on day t >= 1, p = p0 + k1 100 e^(-t/tau1) - k2 100 e^(-t/tau2)
    # (Banister et al. 1975); the session does not change day 0's own performance.
    perf = banister_performance([100.0, 0.0, 0.0, 0.0], p0=500, k1=1.0, k2=2.0, tau1=42, tau2=7)
    assert perf.iloc[0] == 500.0
    for t in (1, 2, 3):
        expected = 500 + 100 * math.exp(-t / 42) - 2 * 100 * math.exp(-t / 7)
        assert perf.iloc[t] == pytest.approx(expected)


def test_fit_recovers_simulated_parameters():
    rng = np.random.default_rng(7)
    days = pd.date_range("2026-01-01", periods=200, freq="D")
    load = pd.Series(rng.gamma(3.0, 30.0, size=200), index=days)
    load[days.day_of_week == 0] = 0.0
    truth = {"p0": 300.0, "k1": 0.10, "k2": 0.30, "tau1": 40.0, "tau2": 8.0}
    modelled = banister_performance(load, **truth)
    tests = days[10::4]  # a performance test every 4 days
    measured = modelled[tests] + rng.normal(0, 0.5, size=len(tests))
    fit = fit_banister(load, measured)
    assert fit.rmse < 1.0
    assert fit.tau1 == pytest.approx(40.0, rel=0.15)
    assert fit.tau2 == pytest.approx(8.0, rel=0.15)
    np.testing.assert_allclose(fit.predict(load).to_numpy(), modelled.to_numpy(), atol=2.0)


def test_fit_rejects_performances_outside_the_load():
    load = pd.Series(1.0, index=pd.date_range("2026-01-01", periods=30, freq="D"))
    performances = pd.Series(1.0, index=pd.date_range("2026-03-01", periods=6, freq="D"))
    with pytest.raises(ValueError, match="inside"):
        fit_banister(load, performances)
