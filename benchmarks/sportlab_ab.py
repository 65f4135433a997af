"""Compare this checkout's sportlab with an older commit's, interleaved, on the same inputs.

Run from the repository root with the sportlab venv:

    .venv/bin/python benchmarks/sportlab_ab.py [--base 738f981] [--rounds 7] [--repeat 5]

A shared machine's load changes by the minute, so two benchmark runs minutes apart compare the
machine as much as the code (issue 22 item 6: one run showed W' balance 1.53x slower, which a
second run did not). Here the old commit's ``sportlab/src`` is extracted with ``git archive``
into a temporary directory, the inputs (a ``--hours`` ride, one season) are generated once and
pickled, and each round runs one worker process per version, in alternating order, timing every
operation the two versions share (median of ``--repeat`` runs after a warm-up). Per operation it
prints each version's median over the rounds (wall and CPU time), the median of the per-round
ratios new/old (paired: both timed within seconds of each other) and their spread, and the load
average per round.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CP_W, W_PRIME_J = 260.0, 20_000.0
# The commit before issue 22's first change to sportlab (2ccfb5d): the code the issue's
# "no existing function more than 20 % slower" is measured against.
DEFAULT_BASE = "738f981"


def operations(ride, season_daily) -> dict[str, Callable[[], object]]:
    """The operations both versions have, on the given inputs (imports the sportlab on the
    path, whichever version it is)."""
    import numpy as np

    from sportlab.metrics import (
        acwr,
        critical_power,
        hr_zones,
        mean_max_power,
        pmc,
        time_in_zones,
        to_1hz,
        trimp_edwards,
        w_prime_balance,
        weighted_power,
    )

    power = to_1hz(ride["power_w"])
    smart = ride["power_w"].iloc[::3]
    heart_rate = ride["heart_rate_bpm"]
    curve = mean_max_power(power)
    efforts = mean_max_power(power, durations_s=[10, 60, 180, 300, 720, 1200])
    zones = hr_zones("hrmax", hr_max=190)
    athletes = list(season_daily.columns)
    return {
        "to_1hz (1-Hz ride)": lambda: to_1hz(ride["power_w"]),
        "to_1hz (smart recording)": lambda: to_1hz(smart),
        "weighted_power": lambda: weighted_power(power),
        "mean_max_power (default grid)": lambda: mean_max_power(power),
        "mean_max_power (1..3600 s)": lambda: mean_max_power(power, np.arange(1, 3601)),
        "critical_power 2p": lambda: critical_power(curve, model="2p"),
        "critical_power 3p": lambda: critical_power(efforts, model="3p"),
        "w_prime_balance integral": lambda: w_prime_balance(power, CP_W, W_PRIME_J),
        "w_prime_balance differential": lambda: w_prime_balance(
            power, CP_W, W_PRIME_J, method="differential"),
        "w_prime_balance integral (ride frame series)": lambda: w_prime_balance(
            ride["power_w"], CP_W, W_PRIME_J),
        "time_in_zones (HR)": lambda: time_in_zones(heart_rate, zones),
        "trimp_edwards": lambda: trimp_edwards(heart_rate, hr_max=190),
        "pmc, 12 athletes": lambda: [pmc(season_daily[a]) for a in athletes],
        "acwr rolling, 12 athletes": lambda: [
            acwr(season_daily[a], method="rolling") for a in athletes],
    }


def worker(inputs: Path, repeat: int) -> None:
    import sportlab

    with inputs.open("rb") as handle:
        ride, daily = pickle.load(handle)
    result: dict[str, object] = {"sportlab": str(Path(sportlab.__file__).parent)}
    timings = {}
    for name, fn in operations(ride, daily).items():
        fn()  # warm-up
        wall, cpu = [], []
        for _ in range(repeat):
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            cpu.append(time.process_time() - start_cpu)
            wall.append(time.perf_counter() - start)
        timings[name] = [statistics.median(wall), statistics.median(cpu)]
    result["timings"] = timings
    json.dump(result, sys.stdout)


def extract(base: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(REPO), "archive", base, "sportlab/src"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "sportlab" / "src"


def run_worker(src: Path, inputs: Path, repeat: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src))
    out = subprocess.run([sys.executable, __file__, "--worker", str(inputs), "--repeat",
                          str(repeat)], check=True, capture_output=True, text=True, env=env)
    result = json.loads(out.stdout)
    if Path(result["sportlab"]).resolve() != (src / "sportlab").resolve():
        raise SystemExit(f"worker imported {result['sportlab']}, not {src}")
    return result["timings"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=DEFAULT_BASE, help="the older commit to compare with")
    parser.add_argument("--rounds", type=int, default=7, help="worker pairs, alternating order")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per operation per round")
    parser.add_argument("--hours", type=float, default=6.0, help="length of the ride")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help="1 round, 1 run, a 1-hour ride")
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.repeat)
        return
    if args.smoke:
        args.rounds, args.repeat, args.hours = 1, 1, 1.0
    found = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{args.base}^{{commit}}"],
                           capture_output=True, check=False)
    if found.returncode != 0:
        # A shallow clone (CI) lacks the old commit: nothing to compare, and nothing broken.
        print(f"commit {args.base} is not in this clone: fetch its history to compare")
        raise SystemExit(0 if args.smoke else 1)

    from sportlab.datasets import synthetic_ride, team_season

    new_src = REPO / "sportlab" / "src"
    with tempfile.TemporaryDirectory(prefix="sportlab-ab-") as tmp:
        old_src = extract(args.base, Path(tmp))
        inputs = Path(tmp) / "inputs.pkl"
        ride = synthetic_ride(duration_s=int(args.hours * 3600), cp_w=CP_W, w_prime_j=W_PRIME_J,
                              seed=0)
        with inputs.open("wb") as handle:
            pickle.dump((ride, team_season(seed=0).daily_load()), handle)
        runs: dict[str, dict[str, list[list[float]]]] = {"old": {}, "new": {}}
        loads = []
        for round_ in range(args.rounds):
            loads.append(os.getloadavg()[0])
            order = [("old", old_src), ("new", new_src)]
            for label, src in order if round_ % 2 == 0 else order[::-1]:
                for name, seconds in run_worker(src, inputs, args.repeat).items():
                    runs[label].setdefault(name, []).append(seconds)
        loads.append(os.getloadavg()[0])

    print(f"old = {args.base}, new = this checkout; {args.hours:g}-h ride; {args.rounds} rounds "
          f"(alternating order) x median of {args.repeat} runs; 1-min load average per round: "
          + " ".join(f"{load:.1f}" for load in loads) + f" ({os.cpu_count()} CPUs)")
    width = max(len(name) for name in runs["new"])
    for column, what in ((0, "wall time"), (1, "CPU time of the process (less load-dependent)")):
        print(f"\n{what}")
        print(f"{'operation':<{width}}  {'old ms':>8}  {'new ms':>8}  {'new/old':>7}  "
              f"{'ratio range':>13}")
        for name, new_runs in runs["new"].items():
            new = [run[column] for run in new_runs]
            old = [run[column] for run in runs["old"][name]]
            ratios = sorted(n / o for n, o in zip(new, old, strict=True))
            print(f"{name:<{width}}  {statistics.median(old) * 1e3:>8.2f}  "
                  f"{statistics.median(new) * 1e3:>8.2f}  {statistics.median(ratios):>7.2f}  "
                  f"{ratios[0]:>6.2f}-{ratios[-1]:<6.2f}")


if __name__ == "__main__":
    main()
