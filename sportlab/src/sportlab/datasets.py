"""A synthetic, deterministic team season for examples, notebooks and tests.

Generated from a seed with sportlab's own models: no downloads, no real athletes' data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from sportlab.metrics.hr import trimp
from sportlab.metrics.load import pmc
from sportlab.metrics.power import stress_score

SEASON_START = pd.Timestamp("2026-01-05")  # a Monday, so weeks line up with the plan

# Session types: (fraction of heart-rate reserve, duration in min, CR-10 RPE, fraction of FTP,
# variability of power = weighted/average).
_SESSION_TYPES = {
    "easy": (0.55, 50.0, 3.0, 0.60, 1.03),
    "moderate": (0.66, 65.0, 5.0, 0.72, 1.05),
    "hard": (0.78, 70.0, 7.5, 0.80, 1.12),
    "long": (0.62, 150.0, 5.0, 0.66, 1.06),
}
# Monday..Sunday: a typical endurance microcycle; None is a rest day.
_WEEK_PLAN = ("rest", "hard", "easy", "hard", "rest", "long", "moderate")
# Three build weeks then an easier week; the last two weeks taper into the goal event.
_MESO_FACTORS = (0.9, 1.0, 1.1, 0.7)


@dataclass(frozen=True)
class TeamSeason:
    """A generated season: the roster, one row per session, and one wellness row per athlete-day."""

    athletes: pd.DataFrame
    sessions: pd.DataFrame
    wellness: pd.DataFrame

    def daily_load(self, column: str = "load") -> pd.DataFrame:
        """Daily summed ``column`` per athlete (dates x athletes); rest days are 0."""
        table = self.sessions.pivot_table(
            index="date", columns="athlete", values=column, aggfunc="sum", fill_value=0.0
        )
        days = pd.date_range(self.wellness["date"].min(), self.wellness["date"].max(), freq="D")
        return table.reindex(days, fill_value=0.0).rename_axis("date")


def _roster(rng: np.random.Generator, n_athletes: int) -> pd.DataFrame:
    sports = ["cycling", "running"] * (n_athletes // 2) + ["cycling"] * (n_athletes % 2)
    sex = rng.choice(["male", "female"], size=n_athletes)
    age = rng.integers(19, 38, size=n_athletes)
    female = sex == "female"
    mass = np.where(female, rng.normal(60, 5, n_athletes), rng.normal(72, 6, n_athletes))
    # Tanaka et al. 2001: HRmax ~ 208 - 0.7 age, with individual scatter.
    hr_max = np.round(208 - 0.7 * age + rng.normal(0, 5, n_athletes))
    hr_rest = np.round(rng.normal(50, 5, n_athletes))
    ftp_w_per_kg = np.where(
        female, rng.normal(3.6, 0.3, n_athletes), rng.normal(4.0, 0.35, n_athletes)
    )
    cycling = np.array(sports) == "cycling"
    return pd.DataFrame(
        {
            "athlete": [f"A{i + 1:02d}" for i in range(n_athletes)],
            "sport": sports,
            "sex": sex,
            "age": age,
            "mass_kg": mass.round(1),
            "hr_rest_bpm": hr_rest,
            "hr_max_bpm": hr_max,
            "lthr_bpm": np.round(hr_rest + 0.85 * (hr_max - hr_rest)),
            "ftp_w": np.where(cycling, np.round(ftp_w_per_kg * mass), np.nan),
            "ln_rmssd_baseline": rng.normal(4.2, 0.3, n_athletes).round(3),
        }
    )


def _plan_factor(n_days: int) -> np.ndarray:
    week = np.arange(n_days) // 7
    factor = np.array([_MESO_FACTORS[w % 4] for w in week])
    taper_start = n_days - 14
    # Taper: cut volume ~40-60 % over the last two weeks, keeping some intensity (Bosquet 2007).
    factor[taper_start:] *= np.linspace(0.7, 0.45, n_days - taper_start)
    return factor


def team_season(seed: int = 0, n_athletes: int = 12, n_days: int = 180) -> TeamSeason:
    """Generate a deterministic, physiologically plausible team season.

    Half the squad cycles (with power), half runs. Each athlete follows a periodised plan (3 build
    weeks and 1 easier week, a 2-week taper at the end) with individual capacity, missed
    sessions, an illness break for some athletes and a spike in load when they return. Sessions
    carry duration, mean and peak heart rate, CR-10 session RPE, session-RPE load (Foster 2001),
    Banister TRIMP and, for cyclists, average/weighted power and stress score. Wellness has
    sleep, 1-5 fatigue/soreness/mood, resting HR and morning rMSSD, which drops when acute load
    outruns chronic load.

    Same seed, same season: the generator uses only ``numpy.random.default_rng(seed)``.
    """
    rng = np.random.default_rng(seed)
    roster = _roster(rng, n_athletes)
    days = pd.date_range(SEASON_START, periods=n_days, freq="D")
    plan = _plan_factor(n_days)
    session_rows: list[pd.DataFrame] = []
    wellness_rows: list[pd.DataFrame] = []

    for athlete in roster.itertuples(index=False):
        capacity = rng.normal(1.0, 0.12)
        kinds = np.array([_WEEK_PLAN[d.day_of_week] for d in days])
        trains = (kinds != "rest") & (rng.random(n_days) > 0.08)  # ~8 % sessions missed
        spike = np.ones(n_days)
        if rng.random() < 0.5:
            # Illness: 5-9 days off mid-season, then an over-eager return week.
            start = int(rng.integers(50, n_days - 60))
            length = int(rng.integers(5, 10))
            trains[start : start + length] = False
            spike[start + length : start + length + 7] = 1.45
        idx = np.flatnonzero(trains)
        kind = kinds[idx]
        hrr_frac, base_min, base_rpe, ftp_frac, variability = (
            np.array([_SESSION_TYPES[k][j] for k in kind]) for j in range(5)
        )
        volume = plan[idx] * capacity * spike[idx]
        duration = np.round(base_min * volume * rng.lognormal(0, 0.12, idx.size))
        duration = np.clip(duration, 20, 330)
        hrr = np.clip(hrr_frac + rng.normal(0, 0.03, idx.size), 0.4, 0.92)
        reserve = athlete.hr_max_bpm - athlete.hr_rest_bpm
        hr_avg = np.round(athlete.hr_rest_bpm + hrr * reserve)
        hr_peak = np.minimum(hr_avg + np.round(rng.uniform(8, 25, idx.size)), athlete.hr_max_bpm)
        # RPE follows the session's internal intensity, with individual perception noise.
        rpe = base_rpe + 4 * (hrr - hrr_frac) + rng.normal(0, 0.7, idx.size)
        rpe = np.clip(np.round(rpe), 1, 10)
        sessions = pd.DataFrame(
            {
                "date": days[idx],
                "athlete": athlete.athlete,
                "sport": athlete.sport,
                "session_type": kind,
                "duration_min": duration,
                "hr_avg_bpm": hr_avg,
                "hr_max_bpm": hr_peak,
                "rpe": rpe,
                "load": rpe * duration,
                "trimp": np.round(
                    trimp(duration, hr_avg, athlete.hr_rest_bpm, athlete.hr_max_bpm, athlete.sex), 1
                ),
            }
        )
        if athlete.sport == "cycling":
            avg_power = np.round(athlete.ftp_w * (ftp_frac + rng.normal(0, 0.03, idx.size)))
            weighted = np.round(avg_power * variability)
            sessions["avg_power_w"] = avg_power
            sessions["weighted_power_w"] = weighted
            score = stress_score(duration * 60, weighted, athlete.ftp_w)
            sessions["stress_score"] = np.round(score, 1)
        session_rows.append(sessions)
        wellness_rows.append(
            _wellness(
                rng, athlete.athlete, athlete.ln_rmssd_baseline, athlete.hr_rest_bpm, days, sessions
            )
        )

    all_sessions = pd.concat(session_rows, ignore_index=True)
    for column in ("avg_power_w", "weighted_power_w", "stress_score"):
        if column not in all_sessions:
            all_sessions[column] = np.nan
    all_sessions = all_sessions.sort_values(["date", "athlete"], ignore_index=True)
    wellness = pd.concat(wellness_rows, ignore_index=True).sort_values(
        ["date", "athlete"], ignore_index=True
    )
    return TeamSeason(roster, all_sessions, wellness)


def _wellness(
    rng: np.random.Generator,
    athlete: str,
    ln_rmssd_baseline: float,
    hr_rest_bpm: float,
    days: pd.DatetimeIndex,
    sessions: pd.DataFrame,
) -> pd.DataFrame:
    n = len(days)
    daily = sessions.groupby("date")["load"].sum().reindex(days, fill_value=0.0)
    state = pmc(daily, ctl0=float(daily.iloc[:28].mean()), atl0=float(daily.iloc[:7].mean()))
    # Relative fatigue: how far acute load sits above chronic load, measured the morning after.
    overload = ((state["atl"] - state["ctl"]) / state["ctl"].clip(lower=50)).to_numpy()
    noise = np.zeros(n)
    for i in range(1, n):  # AR(1): day-to-day HRV noise is autocorrelated
        noise[i] = 0.5 * noise[i - 1] + rng.normal(0, 0.07)
    ln_rmssd = ln_rmssd_baseline - 0.25 * overload + noise
    fatigue = np.clip(np.round(2.5 + 2.0 * overload + rng.normal(0, 0.6, n)), 1, 5)
    return pd.DataFrame(
        {
            "date": days,
            "athlete": athlete,
            "sleep_h": np.round(np.clip(rng.normal(7.6, 0.7, n) - 0.6 * overload, 4, 10), 1),
            "fatigue": fatigue,
            "soreness": np.clip(np.round(fatigue + rng.normal(0, 0.7, n)), 1, 5),
            "mood": np.clip(np.round(3.8 - 1.2 * overload + rng.normal(0, 0.6, n)), 1, 5),
            "resting_hr_bpm": np.round(hr_rest_bpm + 4 * overload + rng.normal(0, 1.5, n)),
            "rmssd_ms": np.round(np.exp(ln_rmssd), 1),
            "ln_rmssd": ln_rmssd.round(3),
        }
    )


def _flat_road_speed_m_s(power_w: np.ndarray, mass_kg: float) -> np.ndarray:
    # Steady speed on a flat road where power = aero drag + rolling resistance
    # (Martin JC et al. Validation of a mathematical model for road cycling power. J Appl Biomech
    # 1998;14:276-291), with CdA 0.32 m^2, air density 1.2 kg/m^3, Crr 0.005.
    speeds = np.linspace(0.0, 25.0, 2501)
    needed = 0.5 * 1.2 * 0.32 * speeds**3 + 0.005 * mass_kg * 9.81 * speeds
    return np.interp(power_w, needed, speeds)


def synthetic_ride(
    duration_s: int = 3 * 3600,
    cp_w: float = 260.0,
    w_prime_j: float = 20_000.0,
    p_max_w: float = 1000.0,
    seed: int = 0,
    start: str = "2026-03-01 08:00:00",
    pause_s: int = 180,
) -> pd.DataFrame:
    """A 1-Hz ride shaped like :func:`sportlab.read_activity` output, for examples and benchmarks.

    Endurance riding at ~65 % of CP with short freewheeling spells, plus maximal efforts of
    10 s, 1, 3, 5, 12 and 20 min (as many as fit; all six need about 2 h 20 min), each at the
    power Morton's 3-parameter model with ``cp_w``, ``w_prime_j`` and ``p_max_w`` predicts for
    its duration (Morton 1996), so a critical-power fit on those durations should recover
    roughly those values. A café stop of ``pause_s`` seconds between efforts is left as a gap in
    the index, as a paused recording would be.
    Heart rate follows power with a ~40 s lag; speed follows from flat-road physics.
    """
    rng = np.random.default_rng(seed)
    n = int(duration_s)
    # Endurance base: AR(1) fluctuations around 65 % of CP.
    wobble = lfilter([1.0], [1.0, -0.9], rng.normal(0, 0.06 * cp_w, n))
    power = np.clip(0.65 * cp_w + wobble, 0, None)
    coasting = rng.random(n) < 0.004
    for i in np.flatnonzero(coasting):
        power[i : i + int(rng.integers(3, 20))] = 0.0
    # Maximal efforts after a 15-min warm-up, each followed by easy spinning (>= 10 min) so the
    # next one starts reasonably fresh; efforts that do not fit before a 10-min cool-down are
    # left out.
    cursor = 900
    for length in (10, 60, 180, 300, 720, 1200):
        recovery = max(600, length)
        if cursor + length + recovery > n - 600:
            break
        target = cp_w + w_prime_j / (length + w_prime_j / (p_max_w - cp_w))
        effort = target * rng.uniform(0.97, 1.0) + rng.normal(0, 5, length)
        power[cursor : cursor + length] = effort
        power[cursor + length : cursor + length + recovery] = 0.45 * cp_w
        cursor += length + recovery
    pause_at = cursor  # stop for coffee after the efforts, never in the middle of one
    power = np.clip(np.round(power), 0, None)
    hr_rest, hr_max = 50.0, 190.0
    alpha = 1 - np.exp(-1 / 40.0)
    drive = lfilter([alpha], [1, -(1 - alpha)], np.clip(power / (1.15 * cp_w), 0, 1))
    drift = np.linspace(0, 6, n)  # cardiac drift over a long ride
    heart_rate = np.round(
        np.clip(hr_rest + 45 + (hr_max - hr_rest - 45) * drive + drift, 0, hr_max)
    )
    cadence = np.where(power > 0, np.round(rng.normal(90, 4, n)), 0.0)
    speed = _flat_road_speed_m_s(power, mass_kg=75.0)
    speed = lfilter([0.2], [1, -0.8], speed)  # the bike's inertia smooths speed changes
    seconds = np.arange(n)
    seconds[pause_at:] += pause_s  # the café stop: no samples, just a gap in time
    index = pd.DatetimeIndex(
        pd.Timestamp(start, tz="UTC") + pd.to_timedelta(seconds, unit="s"), name="timestamp"
    )
    return pd.DataFrame(
        {
            "power_w": power,
            "heart_rate_bpm": heart_rate,
            "cadence_rpm": cadence,
            "speed_m_s": speed.round(3),
            "distance_m": np.cumsum(speed).round(2),
        },
        index=index,
    )
