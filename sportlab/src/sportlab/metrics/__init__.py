"""Sports-science metrics. Each function's docstring gives its formula, units and reference."""

from sportlab.metrics.hr import hr_zones, time_in_zones, trimp, trimp_edwards, trimp_lucia
from sportlab.metrics.hrv import hrv_readiness, ln_rmssd, pnn50, rmssd, sdnn
from sportlab.metrics.load import acwr, as_daily, monotony, pmc, session_rpe_load, strain
from sportlab.metrics.performance import BanisterFit, banister_performance, fit_banister
from sportlab.metrics.power import (
    CriticalPowerFit,
    ImplausibleFitWarning,
    critical_power,
    intensity,
    mean_max_power,
    power_series,
    power_zones,
    skiba_tau_s,
    stress_score,
    to_1hz,
    w_prime_balance,
    weighted_power,
)
from sportlab.metrics.running import (
    GradeError,
    VdotRangeError,
    grade_adjusted_pace,
    minetti_energy_cost,
    race_time_s,
    vdot,
)
from sportlab.metrics.terrain import ElevationChange, elevation_gain
from sportlab.resample import moving_time_s

__all__ = [
    "BanisterFit",
    "CriticalPowerFit",
    "ElevationChange",
    "GradeError",
    "ImplausibleFitWarning",
    "VdotRangeError",
    "acwr",
    "as_daily",
    "banister_performance",
    "critical_power",
    "elevation_gain",
    "fit_banister",
    "grade_adjusted_pace",
    "hr_zones",
    "hrv_readiness",
    "intensity",
    "ln_rmssd",
    "mean_max_power",
    "minetti_energy_cost",
    "monotony",
    "moving_time_s",
    "pmc",
    "pnn50",
    "power_series",
    "power_zones",
    "race_time_s",
    "rmssd",
    "sdnn",
    "session_rpe_load",
    "skiba_tau_s",
    "strain",
    "stress_score",
    "time_in_zones",
    "to_1hz",
    "trimp",
    "trimp_edwards",
    "trimp_lucia",
    "vdot",
    "w_prime_balance",
    "weighted_power",
]
