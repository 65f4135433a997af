"""Every benchmark can be smoke-run: ``make bench-smoke`` (in ``make test-all``) runs each file in
benchmarks/ with ``--smoke``, so one that stopped running is seen in CI, not at the next landing.
"""

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[2] / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("bench", BENCHMARKS, ids=[b.name for b in BENCHMARKS])
def test_each_benchmark_takes_smoke(bench):
    shown = subprocess.run([sys.executable, str(bench), "--help"], capture_output=True,
                           text=True, timeout=120, check=False)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "--smoke" in shown.stdout, f"{bench.name} has no --smoke for make bench-smoke"


def test_bench_smoke_runs_every_benchmark_and_is_part_of_test_all():
    makefile = (BENCHMARKS[0].parents[1] / "Makefile").read_text()
    assert "for bench in benchmarks/*.py" in makefile and "$$bench --smoke" in makefile
    assert "test-light" in recipe(makefile, "test-all")
    assert "bench-smoke" in recipe(makefile, "test-light")


def recipe(makefile: str, target: str) -> str:
    """A target's prerequisites and recipe lines (up to the next blank line)."""
    lines = makefile.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return "\n".join([lines[start].split("##")[0], *lines[start + 1:end]])
