"""How right the queue's ETA is on a busy evening, against the real embedded model.

Run from the repository root with the project venv:

    .venv/bin/python benchmarks/queue_eta.py [--seed 19] [--smoke]

The real stack (hub, proxy, gateway, the embedded llama-server with SmolLM2, 4 slots) serves
reproducible evenings (``--seed``), one after another on the same gateway (``--evenings``, by
default ``CAB``), each scored apart:

- C, a quiet evening, first on the fresh stack: two athletes and a short batch, one or two
  waiting at a time, with only the warm-up's answers learnt (few samples: where an estimator
  that needs many goes wrong);
- A, a busy evening: several athletes asking short questions and long training plans, a
  scientist's notebook sending a ``%%ai`` batch (unary requests, back to back), arrivals in
  bursts and in trickles;
- B, the same busy evening again right after (the estimator has A's history now).

``SPORTHUB_EMBEDDED_BACKEND=vllm`` runs them on the CPU vLLM instead (``sporthub prepare``
first). Answers are kept short (32-160 tokens): on a shared two-core machine
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

First, the cost of an arrival (``--admission``, 400 by default: the most 100 accounts can queue;
``--admission-only`` for just that), on a stack of its own whose backend is the tests' fake one
(the model does not matter here, and it holds its four slots until told): 100 people (four requests each, in a random order, so
that fair turns put many ahead of others already waiting) open streams at 100 a second, and the
time from sending a request to its first ``: queue position=`` comment is measured over HTTP on
the gateway's port (every person's token checked once before, as in a busy evening). Target:
p99 <= 20 ms. The waiting streams then hang up, which must empty the queue.

The last line printed is one JSON object with the figures. ``--smoke`` runs a short evening for
CI (it checks that everything is measured, not how well).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gzip
import heapq
import itertools
import json
import os
import random
import statistics
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
    chunks: list[float] = field(default_factory=list)  # when each content chunk came
    usage: tuple[int, int] | None = None
    error: str | None = None
    # from the ledger
    row: dict | None = None
    arrived: float = 0.0  # the gateway's arrival time (the ledger's started_at)

    @property
    def prompt_estimate(self) -> int:
        """The prompt's tokens, about as the gateway estimates them (characters / 4)."""
        return len(self.prompt) // 4 + 1

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


def quiet(seed: int) -> list[Ask]:
    """Two athletes and a short batch: one or two wait at a time, behind answers of all lengths."""
    rng = random.Random(seed + 2)
    asks = [ask(rng, 0.0, 1, "plan"), ask(rng, 0.3, 2, "question")]
    asks += [ask(rng, 1.0 + 0.05 * i, 0, "batch") for i in range(4)]
    # a trickle while the batch runs, then one more pair when it is over
    asks += [ask(rng, t, 1 + i % 2, kind)
             for i, (t, kind) in enumerate([(12.0, "question"), (20.0, "plan"),
                                            (45.0, "question"), (45.5, "question")])]
    return asks


def evening(seed: int, smoke: bool) -> list[Ask]:
    """Bursts and trickles from five athletes (users 1-5) and a scientist's batch (user 0)."""
    rng = random.Random(seed)
    asks = []
    # a burst: four athletes at once after a team session
    for user in (1, 2, 3, 4):
        asks.append(ask(rng, rng.uniform(0, 0.5), user, rng.choice(["question", "plan"])))
    # the scientist's %%ai batch: one cell, one request after another answer... sent at once;
    # the smoke run's comes right behind the burst, so that someone waits even on a quiet
    # machine, where the burst's answers are over within 4 s (CI failed: "nobody waited")
    for i in range(3 if smoke else 6):
        asks.append(ask(rng, (0.6 if smoke else 4.0) + 0.05 * i, 0, "batch"))
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


def longer(asks: list[Ask], factor: int) -> list[Ask]:
    """The same evening with every answer's bound ``factor`` times longer: on a quiet machine
    the model writes the default lengths in a second or two and hardly anyone waits."""
    return [dataclasses.replace(a, max_tokens=a.max_tokens * factor) for a in asks]


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
                    if any((c.get("delta") or {}).get("content")
                           for c in chunk.get("choices", [])):
                        a.chunks.append(now)
                        if a.first_token is None:
                            a.first_token = now
                    if chunk.get("usage"):
                        a.usage = (chunk["usage"]["prompt_tokens"],
                                   chunk["usage"]["completion_tokens"])
    except (httpx.HTTPError, KeyError, ValueError) as e:
        a.error = f"{type(e).__name__}: {e}"[:200]


async def play(gateway: str, tokens: list[str], asks: list[Ask]) -> None:
    async with httpx.AsyncClient(timeout=httpx.Timeout(900, connect=30)) as client:
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


# -- the cost of an arrival ------------------------------------------------------------------


HOLD = "hold tokens=2"  # the fake backend keeps the slot until told to let go


def measure_admission(count: int, seed: int) -> dict:
    """Its own stack, whose backend (the tests' fake one, 4 slots) holds them all while
    ``count`` requests queue: the gateway's cost of an arrival, whatever the model."""
    from tests.support.fake_backend import KEY, FakeBackend
    from tests.support.fake_backend import MODEL as FAKE
    from tests.support.stack import HubClient, make_stack, started

    tmp = Path(tempfile.mkdtemp(prefix="queue-admission-"))
    with FakeBackend() as backend:
        backend.hold()
        backends = json.dumps([{"name": "fake", "url": backend.url, "api_key": KEY,
                                "models": [FAKE], "max_concurrency": SLOTS}])
        stack = make_stack(tmp, llm_backends=backends, llm_tokens_per_day="100000000",
                           llm_max_queued_per_user="4",
                           max_accounts=str(max(count // 4, 1) + SLOTS + 1))
        try:
            with started(stack):
                admin = HubClient.admin(stack)
                people = [f"crowd{i}" for i in range(max(count // 4, 1))]
                holders = [f"holder{i}" for i in range(SLOTS)]
                assert admin.api("POST", "/users", json={"usernames": people + holders}
                                 ).status_code == 201
                admin.api("POST", "/groups/athletes")
                admin.api("POST", "/groups/athletes/users", json={"users": people + holders})
                crowd = [admin.new_token(n, note="queue ETA benchmark") for n in people]
                holding = [admin.new_token(n, note="queue ETA benchmark") for n in holders]
                print(f"arrival cost: {len(people) * 4} requests from {len(people)} people "
                      f"behind {SLOTS} held slots", flush=True)
                gateway = f"http://127.0.0.1:{stack.env['SPORTHUB_GATEWAY_PORT']}/services/llm"
                process = next(p for p in stack.processes()
                               if "sporthub.gateway" in " ".join(p.cmdline()))

                def cpu() -> float:
                    times = process.cpu_times()
                    return times.user + times.system

                try:
                    import uvloop  # the client's own loop should cost as little as can be
                    run = uvloop.run
                except ImportError:
                    run = asyncio.run
                try:
                    return run(admission(gateway, FAKE, holding, crowd, 4, 100.0, seed, cpu))
                finally:
                    backend.release()
        finally:
            backend.release()
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)


async def admission(gateway: str, model: str, holders: list[str], people: list[str],
                    per_person: int, rate: float, seed: int, cpu=lambda: 0.0) -> dict:
    """Hold the slots, then queue ``per_person`` streams from each of ``people`` (tokens) in a
    random order: each one's time from sending to its first position comment, in ms."""
    url = f"{gateway}/v1/chat/completions"
    client = httpx.AsyncClient(timeout=httpx.Timeout(600, connect=30), limits=httpx.Limits(
        max_connections=len(people) * per_person + len(holders) + 20,
        max_keepalive_connections=0))
    admitted: list[float] = []
    outcome = {"at_once": 0, "errors": []}

    async def queue_of(token: str) -> list[dict]:
        response = await client.get(f"{gateway}/queue",
                                    headers={"Authorization": f"Bearer {token}"})
        return response.json()["requests"]

    async def hold(token: str) -> None:
        body = {"model": model, "stream": True, "max_tokens": 200,
                "messages": [{"role": "user", "content": HOLD}]}
        with contextlib.suppress(httpx.HTTPError, asyncio.CancelledError):
            async with client.stream("POST", url, json=body,
                                     headers={"Authorization": f"Bearer {token}"}) as response:
                async for _ in response.aiter_lines():
                    pass

    host, port = httpx.URL(url).host, httpx.URL(url).port
    path = httpx.URL(url).raw_path.decode()

    async def waiter(token: str) -> None:
        # a bare HTTP/1.1 client on a socket of its own: httpx's own cost per request, times
        # 400, would be measured instead of the gateway's
        body = json.dumps({"model": model, "stream": True, "max_tokens": 8,
                           "messages": [{"role": "user", "content": "tokens=1 hi"}]}).encode()
        request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                   f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        start = time.perf_counter()
        writer = None
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(request)
            seen = b""
            while True:
                data = await reader.read(65536)
                if not data:
                    raise RuntimeError(f"closed: {seen[:200]!r}")
                seen += data
                if b": queue position=" in seen:
                    admitted.append((time.perf_counter() - start) * 1000)
                    break
                if b"data:" in seen:
                    outcome["at_once"] += 1
                    break
                if seen.startswith(b"HTTP/1.1 ") and not seen.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(seen[:200].decode(errors="replace"))
            # then it waits, as a person would, until told to hang up
            while await reader.read(65536):
                pass
        except asyncio.CancelledError:
            pass
        except Exception as e:  # noqa: BLE001 - counted and reported
            outcome["errors"].append(f"{type(e).__name__}: {e}"[:200])
        finally:
            if writer is not None:
                writer.close()

    try:
        # every token checked once (the gateway's short cache), then the slots held
        await asyncio.gather(*(queue_of(t) for t in holders + people))
        holding = [asyncio.create_task(hold(t)) for t in holders]
        while sum(len(r) for r in await asyncio.gather(*map(queue_of, holders))) < len(holders):
            await asyncio.sleep(0.05)
        order = [t for t in people for _ in range(per_person)]
        random.Random(seed).shuffle(order)
        tasks = []
        opened, cpu_before = time.monotonic(), cpu()
        for i, token in enumerate(order):
            tasks.append(asyncio.create_task(waiter(token)))
            await asyncio.sleep(max(opened + (i + 1) / rate - time.monotonic(), 0))
        deadline = time.monotonic() + 60
        while (len(admitted) + outcome["at_once"] + len(outcome["errors"]) < len(order)
               and time.monotonic() < deadline):
            await asyncio.sleep(0.05)
        all_queued_s = time.monotonic() - opened
        cpu_s = cpu() - cpu_before
        for task in tasks + holding:
            task.cancel()
        await asyncio.gather(*tasks, *holding, return_exceptions=True)
        # hanging up gives the places up: the queue empties
        left = None
        for _ in range(100):
            await asyncio.sleep(0.1)
            left = sum(len(r) for r in await asyncio.gather(*(queue_of(t) for t in people)))
            if not left:
                break
    finally:
        await client.aclose()
    ordered = sorted(admitted)

    def q(p):
        return round(ordered[min(int(p * len(ordered)), len(ordered) - 1)], 2) if ordered else None

    return {"sent": len(order), "queued": len(admitted), "at_once": outcome["at_once"],
            "errors": len(outcome["errors"]), "error_example": outcome["errors"][:1],
            "opened_over_s": round(all_queued_s, 1),
            # the gateway's own CPU per arrival, comments to those waiting included: what the
            # latency would be made of on an idle machine
            "gateway_cpu_ms_per_arrival": round(cpu_s * 1000 / max(len(order), 1), 2),
            "load_average": round(os.getloadavg()[0], 2), "p50_ms": q(0.5), "p90_ms": q(0.9),
            "p99_ms": q(0.99), "max_ms": q(1.0),
            "last_100_p99_ms": (round(sorted(admitted[-100:])[min(98, len(admitted[-100:]) - 1)],
                                      2) if admitted[-100:] else None),
            "left_in_queue_after_hang_up": left}


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


# -- the gateway's estimator, replayed -------------------------------------------------------


def load_scheduler(source: str | None):
    """The scheduler module of the working tree (None), or of a git revision (``main``)."""
    import importlib.util
    import subprocess

    if source is None:
        from sporthub.gateway import scheduler
        return scheduler
    code = subprocess.run(["git", "show", f"{source}:sporthub/gateway/scheduler.py"], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp(prefix="scheduler-")) / "scheduler_replayed.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location(f"scheduler_{abs(hash(source))}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@dataclass
class Replayed:
    """What a replayed estimator told: the first ETA of each request that waited, and the ETA
    it showed at each moment the live gateway sent that request a comment (by ``id(ask)``)."""

    first: dict[int, float]
    updates: dict[int, list[tuple[float, float]]]


def replay(everything: list[Ask], module) -> Replayed:
    """Feed the run's events (arrivals, streamed chunks, ends; the same times) to a scheduler
    on a fake clock, and return what it tells the requests that wait.

    The slots are the scheduler's to give: with the same arrivals and ends it gives them in
    the same order as the live gateway did (requests whose replayed slot differs are left
    out), so an estimator's variants are judged on the very same evening. Each request's
    ETA is read again when the live gateway sent it a comment, as the gateway reads it."""

    class Clock:
        now = 0.0

        def __call__(self):
            return self.now

    asks = [a for a in everything if a.row is not None and a.slot is not None and a.end]
    # one person's requests are served in the order they reached the scheduler, which the
    # ledger's start times (taken before the token check) may not tell apart: a batch sent at
    # once is ordered by the slots it got
    arrival = {id(a): a.arrived for a in asks}
    for user in {a.user for a in asks}:
        mine = sorted((a for a in asks if a.user == user), key=lambda a: a.arrived)
        i = 0
        while i < len(mine):
            j = i + 1
            while j < len(mine) and mine[j].arrived - mine[j - 1].arrived < 1.0:
                j += 1
            times = [a.arrived for a in mine[i:j]]
            for at, a in zip(times, sorted(mine[i:j], key=lambda a: a.slot), strict=True):
                arrival[id(a)] = at
            i = j
    events = []
    for i, a in enumerate(asks):
        events.append((arrival[id(a)], 0, i, "arrive"))
        events.extend((t, 1, i, "chunk") for t in a.chunks)
        events.extend((t, 1, i, "look") for t, _, _ in a.comments[1:])
        events.append((a.end, 2, i, "end"))
    events.sort()

    async def run() -> Replayed:
        clock = Clock()
        s = module.Scheduler([module.Pool("embedded", SLOTS, frozenset({MODEL}))],
                             max_running_per_user=SLOTS, max_queued_per_user=20,
                             initial_service_s=OLD_INITIAL_S, clock=clock)
        tickets, given, looks = {}, {}, {}
        for at, _, i, kind in events:
            clock.now = at
            a = asks[i]
            if kind == "arrive":
                tickets[i] = s.submit(f"u{a.user}", 0, MODEL, max_tokens=a.max_tokens,
                                      prompt_tokens=a.prompt_estimate, stream=a.stream)
                if tickets[i].eta_given_s is not None:
                    given[id(a)] = tickets[i].eta_given_s
                    looks[id(a)] = [(at, tickets[i].eta_given_s)]
            elif kind == "look":
                if i in tickets and tickets[i].backend is None and id(a) in looks:
                    looks[id(a)].append((at, s.eta(tickets[i])))
            elif tickets[i].backend is None:
                continue  # the replay gave this slot to another one
            elif kind == "chunk":
                s.progress(tickets[i])
            else:
                s.release(tickets[i], succeeded=True, tokens=a.row["completion_tokens"])
        # only where the replayed slot came when the real one did
        faithful = {id(a) for i, a in enumerate(asks) if tickets[i].started_at is not None
                    and abs(tickets[i].started_at - a.slot) < 0.5}
        return Replayed({k: v for k, v in given.items() if k in faithful},
                        {k: v for k, v in looks.items() if k in faithful})

    return asyncio.run(run())


def swing(shown: list[tuple[float, float]]) -> float:
    """How far the expected start (time + ETA) went against its net direction and back."""
    expected = [at + eta for at, eta in shown if eta >= 0]
    moves = sum(abs(b - c) for b, c in itertools.pairwise(expected))
    return (moves - abs(expected[-1] - expected[0])) / 2 if expected else 0.0


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


def score(asks: list[Ask], history: list[Ask], replays: dict[str, Replayed]) -> dict:
    """Judge ``asks``; ``history`` (the warm-up too) is what the old estimator had seen;
    ``replays``: what the replayed estimators told (by name).

    Swing: for each scored request that heard several ETAs, how far the start they promised
    (time + ETA) went back and forth beyond its net move, summed, as a share of the time those
    requests waited (0: every move in one direction)."""
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
    first = {"new": summary(first_new), "old": summary(first_old)}
    updates = {"new": summary(updates_new), "old": summary(updates_old)}
    heard = [a for a in judged if len(a.comments) >= 2]
    swings = {"new": swung([[(at, float(eta)) for at, _, eta in a.comments] for a in heard],
                           [a.slot - a.comments[0][0] for a in heard])}
    for name, told in replays.items():
        # the replay of today's estimator must give what the live gateway gave: the check
        # that the replay is faithful (its updates are read when the live ones were sent)
        mine = [a for a in judged if id(a) in told.first]
        first[name] = summary([(told.first[id(a)], a.row["queued_ms"] / 1000) for a in mine])
        updates[name] = summary([(eta, a.slot - at) for a in mine
                                 for at, eta in told.updates[id(a)] if a.slot > at])
        shown = [a for a in mine if len(told.updates[id(a)]) >= 2]
        swings[name] = swung([told.updates[id(a)] for a in shown],
                             [a.slot - told.updates[id(a)][0][0] for a in shown])
    return {"requests": len(asks), "errors": sum(a.error is not None for a in asks),
            "unmatched": sum(a.row is None for a in asks), "waited": len(waited),
            "overtaken": len(overtaken), "scored": len(judged),
            "first_eta": first, "updates": updates, "swing": swings}


def swung(shown: list[list[tuple[float, float]]], waits: list[float]) -> dict:
    """The back-and-forth of the ETAs shown to each request, all together and the worst one,
    as shares of the time waited."""
    if not shown:
        return {"n": 0}
    each = [swing(s) for s in shown]
    return {"n": len(shown), "share_of_wait": round(sum(each) / max(sum(waits), 1e-9), 3),
            "worst_s": round(max(each), 1),
            "worst_share": round(max(x / max(w, 1.0) for x, w in zip(each, waits, strict=True)), 2)}


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
    parser.add_argument("--longer", type=int, default=1, metavar="K",
                        help="every answer's max_tokens K times longer (a quiet machine)")
    parser.add_argument("--keep", action="store_true", help="keep the data and logs")
    parser.add_argument("--rescore", metavar="EVENTS",
                        help="judge the estimators on a saved evening (events.json, or .json.gz "
                             "as in benchmarks/results/), no stack")
    parser.add_argument("--replay", action="append", default=[], metavar="REV",
                        help="also replay the estimator of this git revision (e.g. main)")
    parser.add_argument("--evenings", default="CAB",
                        help="which evenings, in order, on one stack (A busy, B the same again, "
                             "C quiet)")
    parser.add_argument("--admission", type=int, default=400,
                        help="requests queued to measure an arrival's cost (0: skip)")
    parser.add_argument("--admission-only", action="store_true",
                        help="measure only the arrival's cost (no model needed)")
    args = parser.parse_args()

    if args.rescore:
        raw = Path(args.rescore).read_bytes()
        saved = json.loads(gzip.decompress(raw) if args.rescore.endswith(".gz") else raw)
        everything = [Ask(**a) for a in saved["asks"]]
        # (an evening recorded before there were several is one, A)
        spans = saved.get("evenings") or [["A", saved["warmup"], len(everything), 0]]
        replays = {f"replayed {name or 'working tree'}": replay(everything, load_scheduler(name))
                   for name in (*args.replay, None)}
        result = scored_evenings(everything, spans, replays)
        result.update(load_average=saved.get("load_average", []),
                      load_average_after=saved.get("load_average_after", []),
                      decode_rates=decode_rates(everything))
        report(result)
        return

    cost = None
    if args.admission:
        cost = measure_admission(min(args.admission, 40) if args.smoke else args.admission,
                                 args.seed)
        report_admission(cost)
        if args.admission_only:
            print(json.dumps({"admission": cost}))
            return

    from tests.support.stack import HubClient, make_stack, started

    tmp = Path(tempfile.mkdtemp(prefix="queue-eta-"))
    load_before = os.getloadavg()
    # the stack takes no SPORTHUB_ setting from the environment but what it is given
    backend = os.environ.get("SPORTHUB_EMBEDDED_BACKEND", "llama-server")
    print(f"queue ETA benchmark: seed {args.seed}{' (smoke)' if args.smoke else ''}, {backend}, "
          f"{os.cpu_count()} cores, load average {load_before[0]:.2f}, data in {tmp}", flush=True)
    # nobody is cut off for taking long: on the shared machine at a load of 15 the model wrote
    # under a token a second, waits passed the evening's 300 s and left nothing to score
    stack = make_stack(tmp, embedded_backend=backend,
                       llm_max_concurrency=str(SLOTS), llm_tokens_per_day="100000000",
                       llm_max_queued_per_user="20", llm_max_running_per_user=str(SLOTS),
                       llm_request_timeout_s="3600", llm_queue_timeout_s="3600",
                       llm_stall_timeout_s="600")
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
        warmup = longer([ask(rng, 0.3 * i, 1 + i % 5, kind)
                         for i, kind in enumerate(["question", "plan", "question"])], args.longer)
        plans = {"A": lambda: longer(evening(args.seed, args.smoke), args.longer),
                 "B": lambda: longer(evening(args.seed, args.smoke), args.longer),
                 "C": lambda: longer(quiet(args.seed), args.longer)}
        names = "A" if args.smoke else args.evenings
        print(f"stack up in {time.monotonic() - began:.0f} s; warm-up, then evenings "
              f"{', '.join(names)}", flush=True)
        asyncio.run(play(gateway, tokens, warmup))
        everything, spans = list(warmup), []
        for name in names:
            time.sleep(1.0)
            asks = plans[name]()
            began = time.monotonic()
            asyncio.run(play(gateway, tokens, asks))
            spans.append([name, len(everything), len(everything) + len(asks),
                          round(time.monotonic() - began, 1)])
            everything += asks
            print(f"evening {name}: {len(asks)} requests in {spans[-1][3]} s, load "
                  f"{os.getloadavg()[0]:.2f}", flush=True)
            if args.keep:  # what is played so far, to look at while the rest plays
                partial = tmp / f"events-{name}.json"
                rows = read_ledger(stack.data_dir / "gateway.sqlite")
                match_rows(everything, rows, users)
                for a in everything:
                    a.arrived = a.row["started_at"] if a.row else (a.sent or 0)
                partial.write_text(json.dumps({"warmup": len(warmup), "evenings": spans,
                                               "asks": [vars(a) for a in everything]}))
                print(f"events so far in {partial}", flush=True)
        time.sleep(1.0)  # the last rows
        rows = read_ledger(stack.data_dir / "gateway.sqlite")
    match_rows(everything, rows, users)
    for a in everything:
        a.arrived = a.row["started_at"] if a.row else (a.sent or 0)
    load_after = [round(x, 2) for x in os.getloadavg()]
    # the evenings' events, to judge other estimators on them later (--rescore)
    events = Path(tempfile.gettempdir()) / f"queue-eta-events-{args.seed}-{int(time.time())}.json"
    events.write_text(json.dumps({"warmup": len(warmup), "evenings": spans,
                                  "load_average": [round(x, 2) for x in load_before],
                                  "load_average_after": load_after,
                                  "asks": [vars(a) for a in everything]}))
    print(f"events in {events}", flush=True)
    # the warm-up's requests ran before the evenings: the replay needs their durations too
    replays = {f"replayed {name or 'working tree'}": replay(everything, load_scheduler(name))
               for name in (*args.replay, None)}
    result = scored_evenings(everything, spans, replays)
    result["load_average"] = [round(x, 2) for x in load_before]
    result["load_average_after"] = load_after
    result["decode_rates"] = decode_rates(everything)
    result["admission"] = cost
    report(result)
    if not args.keep:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    if args.smoke and (any(e["unmatched"] or e["errors"] or not e["waited"]
                           for e in result["evenings"].values())
                       or (cost and (not cost["queued"] or cost["errors"]
                                     or cost["left_in_queue_after_hang_up"]))):
        sys.exit(1)


def scored_evenings(everything: list[Ask], spans: list, replays: dict[str, Replayed]) -> dict:
    """Each evening (name, first and last index in ``everything``, its length) scored apart:
    the estimators knew what came before it, as the gateway did."""
    evenings = {}
    for name, first, last, seconds in spans:
        evenings[name] = score(everything[first:last], everything, replays)
        evenings[name]["evening_s"] = seconds
        evenings[name]["completion_tokens"] = sorted(
            a.row["completion_tokens"] for a in everything[first:last] if a.row)
    return {"evenings": evenings}


def decode_rates(asks: list[Ask], window: int = 100, bucket: int = 400) -> dict[int, dict]:
    """How fast the backend decoded one stream, by how many ran and by the stream's context:
    the median tokens/s over ``window``-chunk stretches of streamed answers in which nobody
    started or ended, grouped by context (prompt, estimated as characters / 4, and tokens so
    far) in ``bucket``-token steps. What the estimator's ``1 + context / C`` is checked
    against."""
    spans = [(a.slot, a.end) for a in asks if a.slot is not None and a.end is not None]
    rates: dict[int, dict[int, list[float]]] = {}
    for a in asks:
        for k in range(0, len(a.chunks) - window, window):
            t0, t1 = a.chunks[k], a.chunks[k + window]
            if t1 <= t0 or any(t0 < t < t1 for span in spans for t in span):
                continue
            running = sum(1 for start, end in spans if start <= (t0 + t1) / 2 < end)
            context = a.prompt_estimate + k + window // 2
            rates.setdefault(running, {}).setdefault(context // bucket * bucket, []).append(
                window / (t1 - t0))
    return {n: {f"{lo}-{lo + bucket - 1}": {"tokens_per_s": round(statistics.median(r), 1),
                                            "windows": len(r)}
                for lo, r in sorted(by_context.items())}
            for n, by_context in sorted(rates.items())}


def report(result: dict) -> None:
    print(f"load average {result['load_average']} -> {result['load_average_after']}")
    for name, evening_ in result["evenings"].items():
        report_evening(name, evening_)
    for running, by_context in result.get("decode_rates", {}).items():
        print(f"decode rate of one stream, {running} running, by context: " + " | ".join(
            f"{span} {r['tokens_per_s']} tokens/s (n={r['windows']})"
            for span, r in by_context.items()))
    report_admission(result.get("admission"))
    print(json.dumps(result))


def report_evening(name: str, result: dict) -> None:
    print(f"evening {name}: {result['requests']} requests in {result['evening_s']} s, "
          f"{result['errors']} errors, {result['waited']} waited, {result['overtaken']} "
          f"overtaken (not scored), {result['scored']} scored")
    for what in ("first_eta", "updates"):
        for which in result[what]:
            s = result[what][which]
            if not s["n"]:
                print(f"  {what:<9} {which}: nothing to score")
                continue
            print(f"  {what:<9} {which:<22}: n={s['n']:>3} within max(25 %, 2 s): "
                  f"{s['within'] * 100:5.1f} %  median error {s['median_error_pct']} %  "
                  f"late n={s['late']['n']} median {s['late']['median_pct']} % p90 "
                  f"{s['late']['p90_pct']} %  early n={s['early']['n']} median "
                  f"{s['early']['median_pct']} % p90 {s['early']['p90_pct']} %")
    for which, s in result.get("swing", {}).items():
        if s["n"]:
            print(f"  swing     {which:<22}: n={s['n']:>3} back and forth {s['share_of_wait'] * 100:.1f} % "
                  f"of the time waited; worst {s['worst_s']} s ({s['worst_share'] * 100:.0f} % of its wait)")


def report_admission(cost: dict | None) -> None:
    if cost:
        print(f"arrival cost over HTTP ({cost['queued']} queued of {cost['sent']} sent over "
              f"{cost['opened_over_s']} s, {cost['at_once']} got a slot at once, "
              f"{cost['errors']} errors, load {cost['load_average']}): sent -> first position "
              f"comment p50 {cost['p50_ms']} ms, "
              f"p90 {cost['p90_ms']} ms, p99 {cost['p99_ms']} ms, max {cost['max_ms']} ms; "
              f"last 100 p99 {cost['last_100_p99_ms']} ms; left in line after hanging up: "
              f"{cost['left_in_queue_after_hang_up']}; the gateway's CPU per arrival "
              f"{cost['gateway_cpu_ms_per_arrival']} ms", flush=True)


if __name__ == "__main__":
    main()
