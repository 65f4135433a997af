"""Time sportlab's session metrics on a 5-hour 1-Hz ride and its team-season load metrics.

Run from the repository root with the sportlab venv:

    .venv/bin/python benchmarks/sportlab_bench.py [--repeat 7] [--smoke]

Prints the median (and fastest) wall time of each operation over ``--repeat`` runs, after one
warm-up run, so the numbers reflect steady state in a notebook kernel.
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
    args = parser.parse_args()
    if args.smoke:
        args.repeat = 1

    ride = synthetic_ride(duration_s=5 * 3600, cp_w=CP_W, w_prime_j=W_PRIME_J, seed=0)
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

    cases: list[tuple[str, Callable[[], object]]] = [
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
        median_s, min_s = measure(fn, args.repeat)
        print(f"{name:<{width}}  {median_s * 1e3:>10.2f}  {min_s * 1e3:>10.2f}")


if __name__ == "__main__":
    main()
