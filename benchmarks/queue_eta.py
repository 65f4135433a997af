"""How right the queue's ETA is on a busy evening, against the real embedded model.

Run from the repository root with the project venv:

    .venv/bin/python benchmarks/queue_eta.py [--seed 19] [--smoke]

The real stack (hub, proxy, gateway, the embedded llama-server with SmolLM2, 4 slots) serves a
reproducible evening (``--seed``): several athletes asking short questions and long training
plans, a scientist's notebook sending a ``%%ai`` batch (unary requests, back to back), arrivals
in bursts and in trickles. Answers are kept short (32-160 tokens): on a shared two-core machine
SmolLM2 streams at a few tokens a second under load, and the run should take minutes, not an
hour; the estimator does not care how long answers are, only how they spread. A few requests
first warm the stack up (the estimator learns the
backend's speed and the answers' lengths from them, as it would from the ledger after a restart).

For every request that waited, the first ETA it was told is the ledger's ``eta_ms`` and its real
wait the ledger's ``queued_ms`` (both from the gateway's clock, arrival to slot). A streamed
request also hears updates (``: queue position=<n> eta_s=<s>`` comments, timed by the client);
the real wait left at an update is the slot's time (the first token's, less the ledger's
``ttft_ms - queued_ms``) minus the update's. An ETA is right within max(25 %, 2 s) of the real
wait. Only requests that nobody overtook are scored (a later arrival got its slot first: the
fair-share turns let a newcomer pass someone with several waiting, which no estimate made at
arrival can foresee); overtaken ones are counted apart.

Before/after from the same run: the old estimator (main before issue 19: slots simulated with
one moving average of whole request durations per model, alpha 0.2, starting at
``llm_initial_service_s``) is replayed here from the same events - the same arrivals, the same
slots and ends - so both are judged against the very same waits. The replay is that estimator's
arithmetic, kept only in this benchmark (the gateway no longer has it).

The last line printed is one JSON object with the figures. ``--smoke`` runs a short evening for
CI (it checks that everything is measured, not how well).
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sporthub.usage.report import ETA_BOUND_MS, ETA_BOUND_SHARE

MODEL = "smollm2-135m-instruct"
SLOTS = 4
OLD_ALPHA, OLD_INITIAL_S = 0.2, 10.0

TOPICS = ["sprint intervals", "a tempo run", "recovery after a match", "hill repeats",
          "a long ride", "core strength", "a taper week", "sleep before a race",
          "hydration in heat", "a deload week"]


@dataclass
class Ask:
    at: float  # seconds after the evening starts
    user: int
    kind: str
    max_tokens: int
    stream: bool
    prompt: str
    # filled in while it runs (time.time(), the ledger's clock)
    sent: float | None = None
    first_token: float | None = None
    comments: list[tuple[float, int, int]] = field(default_factory=list)  # (time, pos, eta_s)
    usage: tuple[int, int] | None = None
    error: str | None = None
    # from the ledger
    row: dict | None = None
    arrived: float = 0.0  # the gateway's arrival time (the ledger's started_at)

    @property
    def slot(self) -> float | None:
        if self.row is None or self.row["queued_ms"] is None:
            return None
        return self.row["started_at"] + self.row["queued_ms"] / 1000

    @property
    def end(self) -> float | None:
        if self.row is None or self.row["duration_ms"] is None:
            return None
        return self.row["started_at"] + self.row["duration_ms"] / 1000


def ask(rng: random.Random, at: float, user: int, kind: str) -> Ask:
    topic = rng.choice(TOPICS)
    if kind == "question":
        return Ask(at, user, kind, rng.choice([32, 48]), True,
                   f"In two sentences: one tip about {topic}?")
    if kind == "plan":
        return Ask(at, user, kind, rng.choice([128, 160]), True,
                   f"Write a detailed 7-day training plan that includes {topic}, day by day.")
    return Ask(at, user, kind, 48, False, f"Summarise this session's data about {topic} in a "
               "short paragraph: 42 min, 7.9 km, average heart rate 151, RPE 6.")


def evening(seed: int, smoke: bool) -> list[Ask]:
    """Bursts and trickles from five athletes (users 1-5) and a scientist's batch (user 0)."""
    rng = random.Random(seed)
    asks = []
    # a burst: four athletes at once after a team session
    for user in (1, 2, 3, 4):
        asks.append(ask(rng, rng.uniform(0, 0.5), user, rng.choice(["question", "plan"])))
    # the scientist's %%ai batch: one cell, one request after another answer... sent at once
    for i in range(3 if smoke else 6):
        asks.append(ask(rng, 4.0 + 0.05 * i, 0, "batch"))
    if not smoke:
        # a trickle of questions
        t = 8.0
        while t < 40:
            asks.append(ask(rng, t, rng.randint(1, 5), rng.choice(["question"] * 3 + ["plan"])))
            t += rng.uniform(2.0, 6.0)
        # a second burst
        for user in (1, 2, 3, 4, 5):
            asks.append(ask(rng, 45 + rng.uniform(0, 1.0), user,
                            rng.choice(["question", "question", "plan"])))
    return sorted(asks, key=lambda a: a.at)


async def send(client: httpx.AsyncClient, gateway: str, token: str, a: Ask) -> None:
    body = {"model": MODEL, "max_tokens": a.max_tokens, "stream": a.stream,
            "messages": [{"role": "user", "content": a.prompt}]}
    if a.stream:
        body["stream_options"] = {"include_usage": True}
    headers = {"Authorization": f"Bearer {token}"}
    a.sent = time.time()
    try:
        if not a.stream:
            response = await client.post(f"{gateway}/v1/chat/completions", json=body,
                                         headers=headers)
            response.raise_for_status()
            usage = response.json()["usage"]
            a.usage = (usage["prompt_tokens"], usage["completion_tokens"])
            return
        async with client.stream("POST", f"{gateway}/v1/chat/completions", json=body,
                                 headers=headers) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                now = time.time()
                if line.startswith(": queue position="):
                    fields = dict(part.split("=") for part in line[2:].split()[1:])
                    a.comments.append((now, int(fields["position"]), int(fields["eta_s"])))
                elif line.startswith("data: {"):
                    chunk = json.loads(line[6:])
                    if a.first_token is None and any(
                            (c.get("delta") or {}).get("content") for c in chunk.get("choices", [])):
                        a.first_token = now
                    if chunk.get("usage"):
                        a.usage = (chunk["usage"]["prompt_tokens"],
                                   chunk["usage"]["completion_tokens"])
    except (httpx.HTTPError, KeyError, ValueError) as e:
        a.error = f"{type(e).__name__}: {e}"[:200]


async def play(gateway: str, tokens: list[str], asks: list[Ask]) -> None:
    async with httpx.AsyncClient(timeout=httpx.Timeout(600, connect=30)) as client:
        start = time.monotonic()
        tasks = []
        for a in asks:
            await asyncio.sleep(max(a.at - (time.monotonic() - start), 0))
            tasks.append(asyncio.create_task(send(client, gateway, tokens[a.user], a)))
        await asyncio.gather(*tasks)


def match_rows(asks: list[Ask], rows: list[dict], users: list[str]) -> None:
    """Each ask's ledger row: the same user and token counts, in order of sending."""
    free = sorted(rows, key=lambda r: r["started_at"])
    for a in sorted(asks, key=lambda a: a.sent or 0):
        if a.usage is None:
            continue
        for r in free:
            if (r["user"] == users[a.user]
                    and (r["prompt_tokens"], r["completion_tokens"]) == a.usage):
                a.row = r
                free.remove(r)
                break


# -- the old estimator, replayed --------------------------------------------------------------


def old_eta(at: float, asks: list[Ask], ahead: list[Ask], service: float) -> float:
    """main's ``Scheduler._estimate`` for a request at time ``at`` with ``ahead`` before it:
    each slot frees ``service`` after its request started; the next in line takes the first."""
    running = [a for a in asks if a.slot is not None and a.slot <= at < (a.end or at + 1)]
    frees = [max(service - (at - a.slot), 0.0) for a in running][:SLOTS]
    frees += [0.0] * (SLOTS - len(frees))
    heapq.heapify(frees)
    for _ in ahead:
        start = heapq.heappop(frees)
        heapq.heappush(frees, start + service)
    return heapq.heappop(frees)


def old_service_at(at: float, asks: list[Ask]) -> float:
    """The old moving average of whole durations (slot to end) of the answers ended by ``at``."""
    service = None
    for a in sorted((a for a in asks if a.end is not None and a.end <= at), key=lambda a: a.end):
        elapsed = a.end - a.slot
        service = elapsed if service is None else service + OLD_ALPHA * (elapsed - service)
    return OLD_INITIAL_S if service is None else service


def waiting_before(a: Ask, at: float, asks: list[Ask]) -> list[Ask]:
    """Who was ahead of ``a`` in line at ``at``: earlier arrivals without a slot yet."""
    return [b for b in asks if b is not a and b.row is not None and b.arrived < a.arrived
            and b.arrived <= at and (b.slot is None or b.slot > at)]


# -- scoring ----------------------------------------------------------------------------------


def summary(pairs: list[tuple[float, float]]) -> dict:
    """``pairs``: (ETA, real wait) in seconds: share within the bound, and the errors' spread
    each way (signed error = wait - ETA; late = waited longer than told)."""
    if not pairs:
        return {"n": 0}
    errors = [(w - e) / w if w > 0 else 0.0 for e, w in pairs]
    late = sorted(x for x in errors if x > 0)
    early = sorted(-x for x in errors if x < 0)

    def q(values, p):
        return round(values[min(int(p * len(values)), len(values) - 1)] * 100, 1) if values else None

    # the usage page's bound, in seconds here
    within = sum(abs(w - e) <= max(ETA_BOUND_SHARE * w, ETA_BOUND_MS / 1000) for e, w in pairs)
    ordered = sorted(errors)
    return {"n": len(pairs), "within": round(within / len(pairs), 3),
            "median_error_pct": q(ordered, 0.5),
            "late": {"n": len(late), "median_pct": q(late, 0.5), "p90_pct": q(late, 0.9)},
            "early": {"n": len(early), "median_pct": q(early, 0.5), "p90_pct": q(early, 0.9)}}


def score(asks: list[Ask], history: list[Ask]) -> dict:
    """Judge ``asks``; ``history`` (the warm-up too) is what the old estimator had seen."""
    waited = [a for a in asks if a.row is not None and a.row["eta_ms"] is not None
              and a.slot is not None]
    overtaken = [a for a in waited
                 if any(b.arrived > a.arrived and b.slot is not None and b.slot < a.slot
                        for b in asks if b.row is not None)]
    judged = [a for a in waited if a not in overtaken]
    first_new = [(a.row["eta_ms"] / 1000, a.row["queued_ms"] / 1000) for a in judged]
    first_old = [(old_eta(a.arrived, history, waiting_before(a, a.arrived, history),
                          old_service_at(a.arrived, history)), a.row["queued_ms"] / 1000)
                 for a in judged]
    updates_new, updates_old = [], []
    for a in judged:
        if a.first_token is None:
            continue
        # the slot on the client's clock: the first token less the gateway's slot-to-token time
        slot = a.first_token - (a.row["ttft_ms"] - a.row["queued_ms"]) / 1000
        for at, _, eta in a.comments:
            if eta < 0 or slot - at <= 0:
                continue
            updates_new.append((float(eta), slot - at))
            ahead = waiting_before(a, at, history)
            updates_old.append((old_eta(at, history, ahead, old_service_at(at, history)),
                                slot - at))
    return {"requests": len(asks), "errors": sum(a.error is not None for a in asks),
            "unmatched": sum(a.row is None for a in asks), "waited": len(waited),
            "overtaken": len(overtaken), "scored": len(judged),
            "first_eta": {"new": summary(first_new), "old": summary(first_old)},
            "updates": {"new": summary(updates_new), "old": summary(updates_old)}}


def read_ledger(db_path: Path) -> list[dict]:
    import sqlite3

    with sqlite3.connect(db_path) as db:
        db.row_factory = sqlite3.Row
        rows = [dict(r) for r in db.execute("SELECT * FROM llm_requests")]
    for r in rows:
        started = datetime.fromisoformat(str(r["started_at"]))
        r["started_at"] = (started if started.tzinfo else started.replace(tzinfo=UTC)).timestamp()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--smoke", action="store_true", help="a short evening, for CI")
    parser.add_argument("--keep", action="store_true", help="keep the data and logs")
    args = parser.parse_args()

    from tests.support.stack import HubClient, make_stack, started

    tmp = Path(tempfile.mkdtemp(prefix="queue-eta-"))
    load_before = os.getloadavg()
    print(f"queue ETA benchmark: seed {args.seed}{' (smoke)' if args.smoke else ''}, "
          f"{os.cpu_count()} cores, load average {load_before[0]:.2f}, data in {tmp}", flush=True)
    stack = make_stack(tmp, llm_max_concurrency=str(SLOTS), llm_tokens_per_day="100000000",
                       llm_max_queued_per_user="20", llm_max_running_per_user=str(SLOTS))
    began = time.monotonic()
    with started(stack):
        admin = HubClient.admin(stack)
        users, tokens = [], []
        for i in range(6):
            name = f"bench{i}"
            assert admin.api("POST", f"/users/{name}").status_code == 201
            admin.api("POST", "/groups/athletes")
            admin.api("POST", "/groups/athletes/users", json={"users": [name]})
            users.append(name)
            tokens.append(admin.new_token(name, note="queue ETA benchmark"))
        gateway = f"http://127.0.0.1:{stack.env['SPORTHUB_GATEWAY_PORT']}/services/llm"
        rng = random.Random(args.seed + 1)
        warmup = [ask(rng, 0.3 * i, 1 + i % 5, kind)
                  for i, kind in enumerate(["question", "plan", "question"])]
        asks = evening(args.seed, args.smoke)
        print(f"stack up in {time.monotonic() - began:.0f} s; warm-up, then {len(asks)} "
              "requests", flush=True)
        asyncio.run(play(gateway, tokens, warmup))
        time.sleep(1.0)
        evening_began = time.monotonic()
        asyncio.run(play(gateway, tokens, asks))
        evening_s = time.monotonic() - evening_began
        time.sleep(1.0)  # the last rows
        rows = read_ledger(stack.data_dir / "gateway.sqlite")
    match_rows(warmup + asks, rows, users)
    everything = warmup + asks
    for a in everything:
        a.arrived = a.row["started_at"] if a.row else (a.sent or 0)
    # the warm-up's requests ran before the evening: the replay needs their durations too
    result = score(asks, everything)
    result["evening_s"] = round(evening_s, 1)
    result["load_average"] = [round(x, 2) for x in load_before]
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    result["completion_tokens"] = sorted(a.row["completion_tokens"] for a in asks if a.row)
    report(result)
    if not args.keep:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    if args.smoke and (result["unmatched"] or result["errors"] or not result["waited"]):
        sys.exit(1)


def report(result: dict) -> None:
    print(f"evening: {result['requests']} requests in {result['evening_s']} s, "
          f"{result['errors']} errors, {result['waited']} waited, {result['overtaken']} "
          f"overtaken (not scored), {result['scored']} scored; load {result['load_average']} "
          f"-> {result['load_average_after']}")
    for what in ("first_eta", "updates"):
        for which in ("old", "new"):
            s = result[what][which]
            if not s["n"]:
                print(f"  {what:<9} {which}: nothing to score")
                continue
            print(f"  {what:<9} {which}: n={s['n']:>3} within max(25 %, 2 s): "
                  f"{s['within'] * 100:5.1f} %  median error {s['median_error_pct']} %  "
                  f"late n={s['late']['n']} median {s['late']['median_pct']} % p90 "
                  f"{s['late']['p90_pct']} %  early n={s['early']['n']} median "
                  f"{s['early']['median_pct']} % p90 {s['early']['p90_pct']} %")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
