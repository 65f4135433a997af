"""Execute notebooks 1-4 headless with the python3 kernel and check what they computed.

Each notebook's last cell prints a JSON summary; the tests recompute key numbers with sportlab
directly and compare, so a notebook that silently computes the wrong thing fails here.
"""

import json
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

from sportlab import read_activity, read_sessions
from sportlab.datasets import team_season
from sportlab.metrics import (
    acwr,
    hr_zones,
    hrv_readiness,
    mean_max_power,
    moving_time_s,
    pmc,
    time_in_zones,
    trimp_edwards,
)

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
# each notebook runs in a Jupyter kernel of its own, a process started and stopped per test (about
# 4 s of CPU each, 6 of them): `make test` runs them, `make test-unit` does not
pytestmark = pytest.mark.stack


def run_notebook(name: str) -> dict:
    path = NOTEBOOKS / name
    book = nbformat.read(path, as_version=4)
    assert not any(c.get("outputs") for c in book.cells if c.cell_type == "code"), (
        f"{name} is stored with outputs"
    )
    # a stuck cell fails on the client's timeout; how fast they run is the benchmarks' business
    NotebookClient(
        book,
        kernel_name="python3",
        timeout=120,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    ).execute()
    stdout = [o["text"] for o in book.cells[-1].outputs if o.get("name") == "stdout"]
    return json.loads(stdout[-1])


@pytest.fixture(scope="module")
def season():
    return team_season(seed=0)


def test_team_load_monitoring(season):
    summary = run_notebook("01-team-load-monitoring.ipynb")
    assert summary["n_athletes"] == 12 and summary["n_days"] == 180
    daily = season.daily_load()
    for athlete in ("A01", "A09"):
        ctl = pmc(daily[athlete])["ctl"].iloc[-1]
        assert summary["ctl_latest"][athlete] == pytest.approx(ctl, abs=0.05)
        spikes = int((acwr(daily[athlete], method="ewma")["acwr"] > 1.5).sum())
        assert summary["acwr_days_over_1_5"][athlete] == spikes
    assert sum(summary["acwr_days_over_1_5"].values()) > 0


def test_one_session_synthetic_ride(monkeypatch):
    monkeypatch.delenv("SPORTLAB_EXAMPLE_FIT", raising=False)
    summary = run_notebook("02-one-session-from-a-fit-file.ipynb")
    assert summary["source"] == "synthetic" and summary["has_power"]
    # The café stop (3 min) is not moving time.
    assert summary["moving_s"] == pytest.approx(summary["elapsed_s"] - 180, abs=1)
    # The synthetic ride hides CP 260 W and W' 20 kJ (Morton 3-parameter, Pmax 1000 W).
    assert summary["cp3_w"] == pytest.approx(260, rel=0.03)
    assert summary["w_prime3_j"] == pytest.approx(20_000, rel=0.10)
    assert summary["mmp_1s_w"] == summary["max_power_w"]
    assert summary["min_w_balance_integral_j"] < summary["w_prime3_j"]


def test_one_session_real_fit_file(monkeypatch, activities):
    fit_path = activities / "4078723797.fit"
    monkeypatch.setenv("SPORTLAB_EXAMPLE_FIT", str(fit_path))
    summary = run_notebook("02-one-session-from-a-fit-file.ipynb")
    ride = read_activity(fit_path)
    assert summary["source"] == "4078723797.fit"
    assert summary["samples"] == len(ride)
    assert summary["elapsed_s"] == pytest.approx(2 * 3600 + 19 * 60 + 16)
    assert summary["mmp_1s_w"] == ride["power_w"].max()
    efforts = mean_max_power(ride["power_w"], durations_s=[1200])
    # The default CP fits stay below the rider's best 20 minutes, as CP must.
    assert summary["cp3_w"] < efforts.loc[1200] and summary["cp2_w"] < efforts.loc[1200]
    assert 150 < summary["cp2_w"] < 450
    head_unit = read_sessions(fit_path).iloc[0]
    assert summary["weighted_power_w"] == pytest.approx(head_unit["weighted_power_w"], rel=0.01)
    # Zones start at 50 % of the ride's highest heart rate; every sample above that is counted.
    hr = ride["heart_rate_bpm"]
    assert sum(summary["hr_zone_seconds"].values()) == (hr >= 0.5 * hr.max()).sum()


def test_readiness_from_hrv(season):
    summary = run_notebook("03-readiness-from-hrv.ipynb")
    for athlete, rows in season.wellness.groupby("athlete"):
        expected = int(hrv_readiness(rows.set_index("date")["ln_rmssd"])["below_swc"].sum())
        assert summary["below_swc_days"][athlete] == expected
    # More form (TSB) goes with higher HRV in the generated season.
    assert summary["ln_rmssd_tsb_correlation"] > 0.1
    assert 10 < summary["example_rmssd_ms"] < 150


def test_season_planning_impulse_response():
    summary = run_notebook("04-season-planning-impulse-response.ipynb")
    fit = summary["fit"]
    # The notebook's synthetic truth is tau1 42 d, tau2 7 d, p0 250 W.
    assert fit["tau1"] == pytest.approx(42, rel=0.25)
    assert fit["tau2"] == pytest.approx(7, rel=0.4)
    assert fit["p0"] == pytest.approx(250, abs=5)
    race = summary["race_day_performance"]
    assert all(race[plan] > race["no taper"] for plan in race if plan != "no taper")
    assert summary["best_plan"] != "no taper"
    assert np.isfinite(list(race.values())).all()


def test_one_session_analyses_a_ride_without_power_by_heart_rate(monkeypatch, activities):
    fit_path = activities / "4801048867.fit"  # heart rate, speed and GPS; no power meter
    monkeypatch.setenv("SPORTLAB_EXAMPLE_FIT", str(fit_path))
    summary = run_notebook("02-one-session-from-a-fit-file.ipynb")
    ride = read_activity(fit_path)
    assert summary["has_power"] is False
    assert "weighted_power_w" not in summary and "cp3_w" not in summary
    hr = ride["heart_rate_bpm"]
    expected = time_in_zones(hr, hr_zones("hrmax", hr_max=hr.max()))
    assert summary["hr_zone_seconds"] == pytest.approx(expected.to_dict())
    assert sum(summary["hr_zone_seconds"].values()) > 0.9 * summary["moving_s"]
    assert summary["trimp_edwards"] == pytest.approx(trimp_edwards(hr, hr_max=hr.max()))
    assert summary["moving_s"] == pytest.approx(moving_time_s(ride))
