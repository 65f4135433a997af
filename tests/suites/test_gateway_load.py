"""Load: 100 accounts, 5 people chatting the whole time and a burst of 50 questions at once,
driven by Locust (its own venv, `make test-suites` installs it) against the real stack and a
fast fake backend with 4 slots. No 5xx, every request in the ledger, fair shares between
people of equal priority (Jain's index), and the waits reported. Locust's own report (CSV and
HTML) and a summary are kept in ``reports/load/`` (a run's copy is in
``benchmarks/results/load/``)."""

from __future__ import annotations

import json
import subprocess
from statistics import quantiles

import pytest

from tests.support.fake_backend import KEY, MODEL, FakeBackend
from tests.support.gateway_client import ledger
from tests.support.stack import REPO, HubClient, make_stack

pytestmark = [pytest.mark.suites, pytest.mark.stack]

LOCUST = REPO / ".venv-locust" / "bin" / "locust"
REPORTS = REPO / "reports" / "load"
ACCOUNTS, CHATTERS, BURST = 100, 5, 50
RUN_S = 40


def jain(values: list[float]) -> float:
    """Jain's fairness index: 1 when everyone gets the same, 1/n when one gets everything."""
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values))


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    assert LOCUST.exists(), "Locust is missing: `make test-suites` installs it in .venv-locust"
    with FakeBackend() as backend:
        backends = json.dumps([{"name": "fake", "url": backend.url, "api_key": KEY,
                                "models": [MODEL], "max_concurrency": 4}])
        tmp = tmp_path_factory.mktemp("load")
        stack = make_stack(tmp, llm_backends=backends, max_accounts=str(ACCOUNTS + 1),
                           llm_max_queued_per_user="4")
        stack.start()
        try:
            admin = HubClient.admin(stack)
            names = [f"athlete{i:03d}" for i in range(ACCOUNTS)]
            assert admin.api("POST", "/users", json={"usernames": names}).status_code == 201
            assert admin.api("POST", "/groups/athletes/users",
                             json={"users": names}).status_code == 200
            people = names[:CHATTERS + BURST]
            tokens = [admin.new_token(name) for name in people]
            (tmp / "tokens.json").write_text(json.dumps(tokens))
            REPORTS.mkdir(parents=True, exist_ok=True)
            run = subprocess.run(
                [str(LOCUST), "-f", str(REPO / "tests" / "suites" / "locustfile.py"), "--headless",
                 "--host", stack.gateway, "-u", str(CHATTERS + BURST),
                 "-r", str(CHATTERS + BURST), "--run-time", f"{RUN_S}s", "--stop-timeout", "30",
                 "--csv", str(REPORTS / "locust"), "--html", str(REPORTS / "locust.html"),
                 "--only-summary", "--exit-code-on-error", "0"],
                env={"PATH": "/usr/bin:/bin", "LOAD_TOKENS_FILE": str(tmp / "tokens.json"),
                     "LOAD_MODEL": MODEL}, capture_output=True, text=True, timeout=RUN_S + 120,
                check=False)  # its output is kept first, then judged
            (REPORTS / "locust-output.txt").write_text(run.stdout + run.stderr)
            assert run.returncode == 0, run.stderr[-3000:]
            stack.db_url = f"sqlite:///{stack.data_dir / 'gateway.sqlite'}"
            yield stack, people, tokens
        finally:
            stack.descendants = stack.processes()
            stack.stop()


def locust_totals() -> dict:
    """Locust's final summary (its CSV is written before the last requests drain)."""
    output = (REPORTS / "locust-output.txt").read_text()
    line = next(x for x in output.splitlines() if x.strip().startswith("Aggregated"))
    requests, failures = line.split()[1:3]
    return {"requests": int(requests), "failures": int(failures.split("(")[0])}


def test_load_no_5xx_every_request_billed_and_fair(loaded):
    stack, people, _ = loaded
    rows = [r for r in ledger(stack) if r["user"] in set(people)]
    totals = locust_totals()
    waits = sorted(r["queued_ms"] or 0.0 for r in rows)
    chatters, burst = people[:CHATTERS], people[CHATTERS:]
    served = {p: sum(1 for r in rows if r["user"] == p and r["outcome"] == "ok")
              for p in people}
    q = quantiles(waits, n=20) if len(waits) > 1 else [waits[0]] * 19
    summary = {
        "requests": totals["requests"], "locust_failures": totals["failures"],
        "ledger_rows": len(rows),
        "errors_5xx": sum(1 for r in rows if r["status"] >= 500),
        "outcomes": {o: sum(1 for r in rows if r["outcome"] == o)
                     for o in sorted({r["outcome"] for r in rows})},
        "wait_p50_ms": round(q[9], 1), "wait_p95_ms": round(q[18], 1),
        "wait_max_ms": round(waits[-1], 1),
        "jain_chatters_requests": round(jain([served[p] for p in chatters]), 4),
        "chatter_requests": [served[p] for p in chatters],
        "burst_served": sum(1 for p in burst if served[p] == 1),
    }
    (REPORTS / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))
    assert summary["errors_5xx"] == 0 and totals["failures"] == 0, summary
    # every request Locust sent has its one ledger row (Locust counts the finished ones)
    assert len(rows) == totals["requests"], summary
    assert len({r["id"] for r in rows}) == len(rows)
    assert summary["burst_served"] == BURST, summary
    assert summary["jain_chatters_requests"] >= 0.9, summary
