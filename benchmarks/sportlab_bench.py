"""Time sportlab's session metrics on a 6-hour 1-Hz ride and its team-season load metrics.

Run from the repository root with the sportlab venv:

    .venv/bin/python benchmarks/sportlab_bench.py [--repeat 7] [--hours 6] [--smoke]

Prints the median (and fastest) wall time of each operation over ``--repeat`` runs, after one
warm-up run, so the numbers reflect steady state in a notebook kernel. Operations a sportlab
version does not have print "n/a", so the same script compares two versions (run it with
``PYTHONPATH=<other checkout>/sportlab/src`` for the other one). On a shared machine compare
two versions with ``benchmarks/sportlab_ab.py`` instead: it interleaves them on the same inputs.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

import sportlab
from sportlab.datasets import synthetic_ride, team_season
from sportlab.metrics import (
    acwr,
    critical_power,
    hr_zones,
    mean_max_power,
    monotony,
    pmc,
    strain,
    time_in_zones,
    to_1hz,
    trimp_edwards,
    w_prime_balance,
    weighted_power,
)

CP_W, W_PRIME_J = 260.0, 20_000.0


def measure(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    fn()  # warm-up: imports, caches, first-call allocation
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per operation")
    parser.add_argument("--smoke", action="store_true",
                        help="one timed run each, for CI (make bench-smoke): it still runs")
    parser.add_argument("--hours", type=float, default=6.0, help="length of the ride")
    args = parser.parse_args()
    if args.smoke:
        args.repeat = 1

    ride = synthetic_ride(duration_s=int(args.hours * 3600), cp_w=CP_W, w_prime_j=W_PRIME_J,
                          seed=0)
    power = to_1hz(ride["power_w"])
    smart = ride["power_w"].iloc[::3]  # a sample every 3 s: gaps to interpolate
    heart_rate = ride["heart_rate_bpm"]
    curve = mean_max_power(power)
    efforts = mean_max_power(power, durations_s=[10, 60, 180, 300, 720, 1200])
    zones = hr_zones("hrmax", hr_max=190)
    season = team_season(seed=0)
    daily = season.daily_load()

    def team(fn: Callable[[pd.Series], object]) -> Callable[[], object]:
        return lambda: [fn(daily[a]) for a in daily.columns]

    cases: list[tuple[str, Callable[[], object] | None]] = [
        ("ride: put power on 1-Hz grid", lambda: to_1hz(ride["power_w"])),
        ("ride: 1-Hz grid from smart recording", lambda: to_1hz(smart)),
        ("ride: 30-s weighted power", lambda: weighted_power(power)),
        ("ride: mean-max curve (default grid)", lambda: mean_max_power(power)),
        ("ride: mean-max, every second to 1 h", lambda: mean_max_power(power, np.arange(1, 3601))),
        ("ride: CP 2-parameter fit", lambda: critical_power(curve, model="2p")),
        ("ride: CP 3-parameter fit", lambda: critical_power(efforts, model="3p")),
        ("ride: W' balance, integral", lambda: w_prime_balance(power, CP_W, W_PRIME_J)),
        (
            "ride: W' balance, differential",
            lambda: w_prime_balance(power, CP_W, W_PRIME_J, method="differential"),
        ),
        ("ride: time in HR zones", lambda: time_in_zones(heart_rate, zones)),
        ("ride: Edwards TRIMP", lambda: trimp_edwards(heart_rate, hr_max=190)),
        *new_cases(ride),
        ("season: generate team_season()", lambda: team_season(seed=0)),
        ("season: daily load table", season.daily_load),
        ("season: PMC, 12 athletes", team(pmc)),
        ("season: ACWR rolling, 12 athletes", team(lambda s: acwr(s, method="rolling"))),
        ("season: ACWR EWMA, 12 athletes", team(lambda s: acwr(s, method="ewma"))),
        ("season: monotony + strain, 12 athletes", team(lambda s: (monotony(s), strain(s)))),
    ]

    print(
        f"sportlab {sportlab.__version__}, Python {platform.python_version()}, "
        f"numpy {np.__version__}, pandas {pd.__version__}; "
        f"ride {len(power)} s at 1 Hz, season {daily.shape[1]} athletes x {daily.shape[0]} days; "
        f"median of {args.repeat} runs"
    )
    width = max(len(name) for name, _ in cases)
    print(f"{'operation':<{width}}  {'median ms':>10}  {'min ms':>10}")
    print(f"{'-' * width}  {'-' * 10}  {'-' * 10}")
    for name, fn in cases:
        if fn is None:
            print(f"{name:<{width}}  {'n/a':>10}  {'n/a':>10}")
            continue
        median_s, min_s = measure(fn, args.repeat)
        print(f"{name:<{width}}  {median_s * 1e3:>10.2f}  {min_s * 1e3:>10.2f}")


def new_cases(ride: pd.DataFrame) -> list[tuple[str, Callable[[], object] | None]]:
    """Issue 22's functions (None where this sportlab version lacks them)."""
    metrics = sportlab.metrics
    rng = np.random.default_rng(0)
    rr = 950 + 60 * np.sin(np.arange(3600) * 2 * np.pi / 4.5) + rng.normal(0, 25, 3600)
    altitude = 300 + np.cumsum(rng.normal(0, 0.3, len(ride)))
    jumped = ride.copy()
    half = len(ride) // 2
    jumped.index = jumped.index.where(np.arange(len(ride)) < half,
                                      jumped.index - pd.Timedelta("1h"))
    plausible = getattr(sportlab, "plausible", None)
    clock = getattr(sportlab, "clock", None)
    return [
        ("ride: SDNN of 1 h of RR intervals",
         (lambda: metrics.sdnn(rr)) if hasattr(metrics, "sdnn") else None),
        ("ride: pNN50 of 1 h of RR intervals",
         (lambda: metrics.pnn50(rr)) if hasattr(metrics, "pnn50") else None),
        ("ride: elevation gain (3-m hysteresis)",
         (lambda: metrics.elevation_gain(altitude)) if hasattr(metrics, "elevation_gain")
         else None),
        ("ride: plausibility check, whole ride",
         (lambda: plausible.clean_frame(ride)) if plausible else None),
        ("ride: repair a 1-h clock jump back",
         (lambda: clock.repair_clock(jumped, what="bench")) if clock else None),
        ("ride: session row (summarize_session)",
         lambda: sportlab.summarize_session(ride, name="bench")),
    ]


if __name__ == "__main__":
    main()
