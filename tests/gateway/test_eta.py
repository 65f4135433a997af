"""The wait estimate against scripted queues: a fake clock, and a fake backend whose speed
depends on how many streams it runs at once as llama-server's and vLLM's do (DESIGN.md's
measured figures). No network: this is the estimator's arithmetic; the real model's waits are
``benchmarks/queue_eta.py``'s and ``test_embedded_backend``'s."""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field

import pytest

from sporthub.gateway.scheduler import HONEST_DEPTH, Pool, Scheduler, Speed, Ticket
from sporthub_coach.gateway import QUEUE_COMMENT, Place

TICK = 0.02


# a stream's context (prompt and answer so far) at which it decodes at half its rate with none:
# measured for SmolLM2-135M on llama-server here (2026-12-07: alone 118.6 -> 83.7 tokens/s from
# tokens 0-399 to 800-1199, four running 31.1 -> 23.9)
LLAMA_CONTEXT = 2000.0
# vLLM on the CPU showed none up to 800 tokens (2026-12-08, queue_eta --longer 4: 14.9 and 15.8
# tokens/s alone at tokens 0-399 and 400-799, 6.5 and 6.4 with four running)
VLLM_CONTEXT = math.inf


def llama_server(n: int, context: float = 0.0) -> float:
    """Per-stream tokens/s: 110 alone (measured 80-140), the total growing as sqrt(n) on two
    cores, slower as the context grows."""
    return 110.0 * n ** 0.5 / n / (1 + context / LLAMA_CONTEXT)


def vllm_cpu(n: int, context: float = 0.0) -> float:
    """Per-stream tokens/s: 25 alone, 85 in total over four (measured 70-95)."""
    return 25.0 * n ** 0.88 / n / (1 + context / VLLM_CONTEXT)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Job:
    length: int
    prefill_s: float
    done: float = 0.0


@dataclass
class Arrival:
    at: float
    user: str
    max_tokens: int
    length: int
    prompt_tokens: int = 40
    ticket: Ticket | None = None
    etas: list[tuple[float, float]] = field(default_factory=list)  # (time, shown ETA)


class FakeBackend:
    """Serves the scheduler's running tickets: prefill, then tokens at ``per_stream(n, context)``
    each, reporting each token as the gateway's relay does, and releasing the slot at the end."""

    def __init__(self, scheduler: Scheduler, clock: Clock, per_stream, prefill_tps=2000.0):
        self.s, self.clock, self.per_stream, self.prefill_tps = scheduler, clock, per_stream, prefill_tps
        self.jobs: dict[Ticket, Job] = {}

    def take(self, ticket: Ticket, length: int) -> None:
        self.jobs[ticket] = Job(length, ticket.prompt_tokens / self.prefill_tps)

    def step(self, dt: float) -> None:
        running = [t for t in self.jobs if t.backend is not None]
        for ticket in running:
            job = self.jobs[ticket]
            if job.prefill_s > 0:
                # prefill shares the machine like decoding does
                job.prefill_s -= dt * self.per_stream(len(running)) / self.per_stream(1)
                continue
            before = int(job.done)
            rate = self.per_stream(len(running), ticket.prompt_tokens + job.done)
            job.done = min(job.done + rate * dt, job.length)
            if int(job.done) > before:
                self.s.progress(ticket, int(job.done) - before)
            if job.done >= job.length:
                del self.jobs[ticket]
                self.s.release(ticket, succeeded=True, tokens=job.length)


def run(arrivals: list[Arrival], per_stream, capacity: int = 4, sample_every: float = 1.0,
        scheduler: Scheduler | None = None, clock: Clock | None = None,
        prefill_tps: float = 2000.0) -> Scheduler:
    """Play the arrivals through a scheduler and the fake backend until all are answered."""
    clock = clock or Clock()
    s = scheduler or Scheduler([Pool("b", capacity, frozenset({"m"}))], max_running_per_user=4,
                               max_queued_per_user=50, initial_service_s=10.0, clock=clock)
    backend = FakeBackend(s, clock, per_stream, prefill_tps)
    pending = sorted(arrivals, key=lambda a: a.at)
    next_sample = clock.now
    while pending or backend.jobs:
        while pending and pending[0].at <= clock.now:
            a = pending.pop(0)
            a.ticket = s.submit(a.user, 0, "m", max_tokens=a.max_tokens,
                                prompt_tokens=a.prompt_tokens)
            backend.take(a.ticket, a.length)
        if clock.now >= next_sample:
            for a in arrivals:
                if a.ticket is not None and a.ticket.backend is None:
                    a.etas.append((clock.now, s.eta(a.ticket)))
            next_sample += sample_every
        clock.now += TICK
        backend.step(TICK)
        assert clock.now < 3600, "the scripted queue never drained"
    return s


def known(clock: Clock, length: int, tokens_per_s: float, queued: int = 50,
          running: int = 4) -> Scheduler:
    """One slot, every recent answer ``length`` tokens, decoded at ``tokens_per_s`` whatever
    the context."""
    s = Scheduler([Pool("b", 1, frozenset({"m"}))], max_running_per_user=running,
                  max_queued_per_user=queued, initial_service_s=10.0, clock=clock)
    s.seed_lengths({"m": [length] * 20})
    speed = s.speed_of(s.pools["b"])
    speed.per_stream[1], speed.context_scale = tokens_per_s, math.inf
    return s


def evening(rng: random.Random, start: float, people: int = 4, count: int = 16) -> list[Arrival]:
    """A burst of mixed requests: short questions, long plans, a notebook's batch."""
    arrivals = []
    for i in range(count):
        kind = rng.choice(["question", "question", "plan", "batch"])
        max_tokens, length = {
            "question": (150, rng.randint(30, 150)),
            "plan": (600, rng.randint(300, 600)),
            "batch": (80, rng.randint(40, 80)),
        }[kind]
        arrivals.append(Arrival(start + 0.2 * i, f"u{i % people}", max_tokens, length))
    return arrivals


def within(eta: float, wait: float) -> bool:
    return abs(eta - wait) <= max(0.25 * wait, 2.0)


def scored(arrivals: list[Arrival]) -> list[Arrival]:
    """The ones that waited and that nobody overtook (a later arrival started before them)."""
    waited = [a for a in arrivals if a.ticket.eta_given_s is not None]
    return [a for a in waited
            if not any(b.at > a.at and b.ticket.started_at < a.ticket.started_at
                       for b in arrivals)]


def scheduler_with_history(rng: random.Random, per_stream, clock: Clock,
                           capacity: int = 4) -> Scheduler:
    """A scheduler that has served three busy evenings: it knows the backend's speed and has
    48 recent answers (a gateway restarted on a used ledger starts with more)."""
    s = Scheduler([Pool("b", capacity, frozenset({"m"}))], max_running_per_user=4,
                  max_queued_per_user=50, initial_service_s=10.0, clock=clock)
    for _ in range(3):
        run(evening(rng, clock.now), per_stream, capacity=capacity, scheduler=s, clock=clock)
    return s


@pytest.mark.parametrize("per_stream", [llama_server, vllm_cpu], ids=["llama-server", "vllm"])
async def test_first_etas_of_busy_evenings_are_within_a_quarter_without_bias(per_stream):
    judged = []
    for seed in range(8):
        rng = random.Random(seed)
        clock = Clock()
        s = scheduler_with_history(rng, per_stream, clock)
        arrivals = evening(rng, clock.now + 1.0)
        run(arrivals, per_stream, scheduler=s, clock=clock)
        judged += scored(arrivals)
    assert len(judged) >= 60
    good = [a for a in judged if within(a.ticket.eta_given_s, a.ticket.waited_s)]
    assert len(good) >= 0.8 * len(judged), [
        (round(a.ticket.eta_given_s, 1), round(a.ticket.waited_s, 1)) for a in judged]
    # no systematic bias: the median relative error (late or early) stays within 10 %
    relative = sorted(a.ticket.eta_error_s / a.ticket.waited_s for a in judged)
    assert abs(relative[len(relative) // 2]) <= 0.1, relative


def slow_llama_server(n: int, context: float = 0.0) -> float:
    """llama-server as a loaded two-core machine runs it (the benchmark's evenings): 20 tokens/s
    alone, waits of a minute and more."""
    return 20.0 * n ** 0.5 / n / (1 + context / LLAMA_CONTEXT)


def slow_vllm_cpu(n: int, context: float = 0.0) -> float:
    """vLLM on CPU as a loaded two-core machine runs it: 8 tokens/s alone, n**0.88 in total."""
    return 8.0 * n ** 0.88 / n / (1 + context / VLLM_CONTEXT)


def question(rng: random.Random, at: float, user: str) -> Arrival:
    return Arrival(at, user, 150, rng.randint(30, 150))


def plan(rng: random.Random, at: float, user: str) -> Arrival:
    return Arrival(at, user, 600, rng.randint(300, 600))


def quiet_evening(rng: random.Random, start: float) -> list[Arrival]:
    """The benchmark's quiet evening: a plan and a question, a batch of four behind them (two
    wait), then a trickle: one or two waiting at a time."""
    return [plan(rng, start, "u1"), question(rng, start + 0.3, "u2"),
            *(Arrival(start + 1.0 + 0.05 * i, "u0", 80, rng.randint(40, 80)) for i in range(4)),
            question(rng, start + 12.0, "u1"), plan(rng, start + 20.0, "u2"),
            question(rng, start + 45.0, "u1"), question(rng, start + 45.5, "u2")]


@pytest.mark.parametrize("per_stream", [slow_llama_server, slow_vllm_cpu],
                         ids=["llama-server", "vllm"])
async def test_first_etas_of_a_quiet_evening_right_after_a_start(per_stream):
    """A fresh gateway has learnt only three answers (a question, a plan, a question) when a
    quiet evening begins: with that few, no answer was bounded like a batch's, and judged by the
    others' lengths capped by its bound (each as long as the bound: a third too long) the waits
    were told half as long again as they were (50 % and 42 % within the bound, median -32 % and
    -41 %). An answer's length as a share of its bound carries over to other bounds."""
    judged = []
    for seed in range(12):
        rng = random.Random(seed)
        clock = Clock()
        s = Scheduler([Pool("b", 4, frozenset({"m"}))], max_running_per_user=4,
                      max_queued_per_user=50, initial_service_s=10.0, clock=clock)
        # the benchmark's warm-up: a question, a plan, a question
        run([question(rng, 0.0, "u1"), plan(rng, 0.3, "u2"), question(rng, 0.6, "u3")],
            per_stream, scheduler=s, clock=clock)
        arrivals = quiet_evening(rng, clock.now + 1.0)
        run(arrivals, per_stream, scheduler=s, clock=clock)
        judged += scored(arrivals)
    assert len(judged) >= 20
    good = [a for a in judged if within(a.ticket.eta_given_s, a.ticket.waited_s)]
    # the one ahead to end first is the shortest of four answers whose lengths nobody knows:
    # fewer hold than on a busy evening, where the wait is many answers' and their spread
    # averages out
    assert len(good) >= QUIET_SHARE[per_stream] * len(judged), [
        (round(a.ticket.eta_given_s, 1), round(a.ticket.waited_s, 1)) for a in judged]
    relative = sorted(a.ticket.eta_error_s / a.ticket.waited_s for a in judged)
    assert abs(relative[len(relative) // 2]) <= 0.1, relative


QUIET_SHARE = {slow_llama_server: 0.75, slow_vllm_cpu: 0.6}


def loaded(per_stream, clock: Clock, seed: int):
    """``per_stream`` on a machine shared with other work that comes and goes: every few
    seconds the backend gets between 35 % and all of what it had alone (measured here: the
    agents sharing the two cores move llama-server's speed by a factor of two to three)."""
    rng = random.Random(seed)
    state = {"until": -1.0, "share": 1.0}

    def speed(n: int, context: float = 0.0) -> float:
        if clock.now >= state["until"]:
            state["share"] = rng.uniform(0.35, 1.0)
            state["until"] = clock.now + rng.uniform(3.0, 15.0)
        return per_stream(n, context) * state["share"]

    return speed


@pytest.mark.parametrize("per_stream", [llama_server, vllm_cpu], ids=["llama-server", "vllm"])
async def test_first_etas_hold_on_a_machine_whose_load_comes_and_goes(per_stream):
    judged = []
    for seed in range(8):
        rng = random.Random(seed)
        clock = Clock()
        speed = loaded(per_stream, clock, seed + 100)
        s = scheduler_with_history(rng, speed, clock)
        arrivals = evening(rng, clock.now + 1.0)
        run(arrivals, speed, scheduler=s, clock=clock)
        judged += scored(arrivals)
    good = [a for a in judged if within(a.ticket.eta_given_s, a.ticket.waited_s)]
    # no estimate foresees the other work: less than on a machine of its own, but most hold
    # (each level's rate learnt apart, as before the shared load: 65-70 %). vLLM's slower
    # answers span more of these load steps, which the 5 s rate samples (chosen on two real
    # evenings, see scheduler.RATE_SAMPLE_S) follow later than 1 s ones did: 67 % and +18 %
    # there (74 % and +8 % with 1 s samples, which failed on the real evenings)
    share, bias = (0.7, 0.15) if per_stream is llama_server else (0.65, 0.2)
    assert len(good) >= share * len(judged), (len(good), len(judged))
    relative = sorted(a.ticket.eta_error_s / a.ticket.waited_s for a in judged)
    assert abs(relative[len(relative) // 2]) <= bias, relative


async def test_a_slowdown_seen_at_one_concurrency_slows_every_level():
    """The machine's load changes every level's rate alike: four streams found slower than
    learnt means one alone will be slower too."""
    clock = Clock()
    s = Scheduler([Pool("b", 4, frozenset({"m"}))], max_running_per_user=4,
                  max_queued_per_user=50, initial_service_s=10.0, clock=clock)
    speed = s.speed_of(s.pools["b"])
    speed.learn(1, 100.0)
    speed.learn(4, 40.0)
    for _ in range(6):
        speed.learn(4, 20.0)  # half as fast: other work took the cores
    assert speed.rate(4) == pytest.approx(20.0, rel=0.1)
    # most of the surprise is put on the load (every level), the rest on this level's own rate
    # (a level may simply have been measured wrong): alone, most of the slowdown is expected
    assert 45.0 < speed.rate(1) < 70.0
    # a sample cut short (a stream ended 0.1 s into it) moves the rates less than a full one
    before = speed.rate(4)
    speed.learn(4, 40.0, weight=0.1)
    assert speed.rate(4) < before * 1.1


async def test_a_prefill_shared_with_others_is_learnt_as_the_time_it_takes_alone():
    """Four long prompts at once each take four streams' share of the machine to read: the
    rate learnt is the lone one, as the simulation slows it by the concurrency itself (before,
    it was slowed twice)."""
    clock = Clock()
    s = Scheduler([Pool("b", 4, frozenset({"m"}))], max_running_per_user=4,
                  max_queued_per_user=50, initial_service_s=10.0, clock=clock)
    # the speeds alone and by four are known first (short prompts)
    run([Arrival(1.0, "a", 300, 300, prompt_tokens=4)], llama_server, scheduler=s, clock=clock)
    run([Arrival(clock.now + 0.01 * i, f"u{i}", 300, 300, prompt_tokens=4) for i in range(4)],
        llama_server, scheduler=s, clock=clock)
    speed = s.speed_of(s.pools["b"])
    speed.prefill_tps = None
    run([Arrival(clock.now + 0.5 + 0.01 * i, f"u{i}", 50, 50, prompt_tokens=400)
         for i in range(4)], llama_server, scheduler=s, clock=clock, prefill_tps=200.0)
    assert speed.prefill_tps == pytest.approx(200.0, rel=0.15)


async def test_a_stream_decoding_while_others_read_their_prompts_is_no_sample_of_the_speed():
    """The recorded evening (load 10-16): one answer wrote 1 token in 7 s while three others
    read their prompts, and those spans, the first at four streams, became the rate of four
    streams (0.135 tokens/s instead of 0.8): every ETA was four times too long for a minute."""
    clock = Clock()
    s = Scheduler([Pool("b", 4, frozenset({"m"}))], max_running_per_user=4,
                  max_queued_per_user=50, initial_service_s=10.0, clock=clock)
    speed = s.speed_of(s.pools["b"])
    speed.learn(1, 2.0)
    first = s.submit("a", 0, "m", prompt_tokens=12)
    clock.now += 1.0
    s.progress(first)
    others = [s.submit(f"u{i}", 0, "m", prompt_tokens=12) for i in range(3)]
    before = speed.rate(4)
    for _ in range(3):
        clock.now += 2.5
        s.progress(first)  # a token every 2.5 s: the backend is reading three prompts
    for ticket in others:
        s.progress(ticket)  # their first tokens
    assert 4 not in speed.per_stream and speed.rate(4) == pytest.approx(before)
    # once all four decode, their spans are samples again
    for _ in range(6):
        clock.now += 1.0
        for ticket in [first, *others]:
            s.progress(ticket)
    assert speed.per_stream[4] * speed.load == pytest.approx(1.0, rel=0.2)


def test_a_short_first_sample_of_a_concurrency_does_not_set_its_rate_alone():
    """On a recorded evening (queue_eta seed 20) the first sample at four streams was a 0.45-s
    span with one token. Taken as that level's rate, four streams were expected at 2.3 tokens/s
    where 25 came; the surprises after it made every level's load twice too fast, and the next
    waits were told three times too long (1 of 4 within the bound; weighed, 4 of 4)."""
    speed = Speed(20.0)
    speed.context_scale = math.inf
    speed.learn(1, 80.0)
    speed.learn(2, 50.0)
    speed.learn(4, 2.3, weight=0.09, tokens=1)
    # one token says little: 23 tokens/s, between it and what two streams predict (41)
    assert speed.rate(4) > 20.0
    speed.learn(4, 25.0)  # a whole span
    assert speed.rate(4) == pytest.approx(25.0, rel=0.3)
    assert speed.rate(1) == pytest.approx(80.0, rel=0.3)


async def test_while_a_prompt_is_read_the_others_decode_less():
    """llama-server decodes the running answers little while it reads a new prompt: a start
    holds the others back by half of its time to a first token. Replayed on the recorded
    evening, without it the ETAs were late (median +13 %), with half of it -0.3 %."""
    clock = Clock()
    s = Scheduler([Pool("b", 2, frozenset({"m"}))], max_running_per_user=4,
                  max_queued_per_user=50, initial_service_s=10.0, clock=clock)
    s.seed_lengths({"m": [200] * 20})
    speed = s.speed_of(s.pools["b"])
    speed.per_stream.update({1: 50.0, 2: 50.0})
    speed.context_scale = math.inf  # as fast at any context
    speed.learn_prefill(1, 2.0)  # two seconds to a first token
    a, b = s.submit("a", 0, "m"), s.submit("b", 0, "m")
    s.progress(a, 150)  # 50 tokens left: ends in 1 s
    s.progress(b, 50)  # 150 left: in 3 s, unless held back
    s.submit("c", 0, "m")  # takes a's slot at 1 s and reads its prompt for 2 s
    d = s.submit("d", 0, "m")
    # b's slot frees at 3 s plus half of c's two seconds of reading
    assert s.eta(d) == pytest.approx(4.0, abs=0.05)


def test_a_slow_first_token_is_a_fixed_time_not_a_slow_prompt():
    """At a load of 15 the embedded model's first token came ten seconds after the slot for any
    prompt of 12 to 40 tokens. Learnt as a prompt rate (a token a second), the next 40-token
    prompt was expected to take 40 s and every ETA behind it was minutes early: the short
    prompts teach the fixed time, and only long ones (the Coach's) the rate of reading."""
    speed = Speed(20.0)
    for n in (12, 14, 12):
        speed.learn_prefill(n, 10.0)
    assert speed.prefill_s(40) == pytest.approx(10.0, rel=0.05)
    for _ in range(3):
        speed.learn_prefill(2000, 10.0 + 2000 / 500)  # read at 500 tokens/s
    assert speed.prefill_s(2000) == pytest.approx(14.0, rel=0.05)
    assert speed.prefill_s(40) == pytest.approx(10.0, rel=0.05)


@pytest.mark.parametrize("per_stream", [llama_server, vllm_cpu], ids=["llama-server", "vllm"])
async def test_the_speed_by_concurrency_is_learnt(per_stream):
    clock = Clock()
    s = Scheduler([Pool("b", 4, frozenset({"m"}))], max_running_per_user=4,
                  max_queued_per_user=50, initial_service_s=10.0, clock=clock)
    run([Arrival(0.0, "a", 400, 400)], per_stream, scheduler=s, clock=clock)
    run([Arrival(clock.now + 0.5 + 0.01 * i, f"u{i}", 400, 400) for i in range(4)], per_stream,
        scheduler=s, clock=clock)
    speed = s.speed_of(s.pools["b"])
    # at the answers' mean context (a 40-token prompt and 200 of their 400 tokens): one answer
    # alone and one of four at once are too few to tell how the context weighs
    at = 240
    assert speed.rate(1) / speed.slowdown(at) == pytest.approx(per_stream(1, at), rel=0.1)
    assert speed.rate(4) / speed.slowdown(at) == pytest.approx(per_stream(4, at), rel=0.1)
    assert speed.rate(4) < speed.rate(1)  # each of four streams is slower than one alone


async def test_etas_while_waiting_follow_the_queue_and_do_not_jump_back_and_forth():
    rng = random.Random(7)
    clock = Clock()
    s = scheduler_with_history(rng, llama_server, clock, capacity=2)
    arrivals = evening(rng, clock.now + 1.0, count=12)
    run(arrivals, llama_server, capacity=2, sample_every=0.5, scheduler=s, clock=clock)
    updates = good = 0
    for a in scored(arrivals):
        start = a.ticket.started_at
        for at, eta in a.etas:
            updates += 1
            good += within(eta, start - at)
        # the expected start (now + ETA) drifts as facts arrive, but does not swing: the sum
        # of its moves is at most three times its net move plus a second per update
        expected = [at + eta for at, eta in a.etas]
        moves = sum(abs(b - c) for b, c in itertools.pairwise(expected))
        assert moves <= 3 * abs(expected[-1] - expected[0]) + 1.0 * len(expected), expected
    assert updates >= 20 and good >= 0.8 * updates, (good, updates)


def jittery(per_stream, clock: Clock, seed: int):
    """``per_stream`` as a busy machine delivers it: every 0.3 s between half and one and a half
    times its speed, at random. Noise around a steady mean: nothing an ETA should follow."""
    rng = random.Random(seed)
    state = {"until": -1.0, "share": 1.0}

    def speed(n: int, context: float = 0.0) -> float:
        if clock.now >= state["until"]:
            state["share"] = rng.uniform(0.5, 1.5)
            state["until"] = clock.now + 0.3
        return per_stream(n, context) * state["share"]

    return speed


def back_and_forth(etas: list[tuple[float, float]]) -> float:
    """How far the expected start (time shown + ETA) went against its net direction and back:
    the part of its moves that a steady drift towards the truth would not have made."""
    expected = [at + eta for at, eta in etas]
    moves = sum(abs(b - c) for b, c in itertools.pairwise(expected))
    return (moves - abs(expected[-1] - expected[0])) / 2


def evenings_swing(per_stream, capacity: int) -> tuple[float, float, float]:
    """Six scripted evenings on ``capacity`` slots, each waiting request's ETA read every half
    second: the back and forth of them all, the time they waited, and the worst one's back and
    forth as a share of its wait."""
    swings, waits, worst = 0.0, 0.0, 0.0
    for seed in range(6):
        rng = random.Random(seed)
        clock = Clock()
        speed = per_stream(clock, seed)
        s = scheduler_with_history(rng, speed, clock, capacity=capacity)
        arrivals = evening(rng, clock.now + 1.0, count=10)
        run(arrivals, speed, capacity=capacity, sample_every=0.5, scheduler=s, clock=clock)
        for a in scored(arrivals):
            wait = a.ticket.started_at - a.etas[0][0]
            swing = back_and_forth(a.etas)
            swings, waits = swings + swing, waits + wait
            worst = max(worst, swing / max(wait, 10.0))
    return swings, waits, worst


@pytest.mark.parametrize("capacity", [1, 4])
async def test_on_a_noisy_machine_the_eta_shown_does_not_jump_back_and_forth(capacity):
    """What the embedded test saw on the real model (2026-12-02: 558 s of moves for a net 6 s
    over a minute), scripted: the speed of each fraction of a second is noise around a steady
    rate. The shown start may move as answers end sooner or later than expected (news: the same
    evenings on a quiet machine show how much), but the noise must add little to that: before,
    it added 1.4 times the time waited with one slot and half of it with four."""
    quiet_swings, quiet_waits, _ = evenings_swing(lambda clock, seed: slow_llama_server,
                                                  capacity)
    swings, waits, worst = evenings_swing(
        lambda clock, seed: jittery(slow_llama_server, clock, seed), capacity)
    assert waits > 500  # long enough waits, many reads each
    assert swings / waits <= quiet_swings / quiet_waits + 0.05, (swings, waits, quiet_swings)
    # and nobody's ETA went back and forth by nearly half of the wait (on a quiet machine: a
    # fifth at worst)
    assert worst <= 0.4, worst


async def test_a_running_answer_that_has_written_much_is_expected_to_end_sooner():
    clock = Clock()
    s = known(clock, length=500, tokens_per_s=50.0, queued=50, running=4)
    running = s.submit("a", 0, "m", max_tokens=1000)
    waiting = s.submit("b", 0, "m", max_tokens=1000)
    assert s.eta(waiting) == pytest.approx(10.0, abs=0.1)  # 500 tokens at 50/s
    clock.now += 2.0
    s.progress(running, 400)  # much faster than thought: 100 left, 2 s
    shown, left = [], []
    for i in range(1, 4):
        clock.now += 0.6  # each look is a periodic re-estimate
        s.progress(running, 30)  # 50 tokens/s
        shown.append(s.eta(waiting))
        left.append((100 - 30 * i) / 50)
    # far off: the new facts move it at once, and it follows them down
    assert shown == pytest.approx(left, abs=0.3), (shown, left)
    assert shown == sorted(shown, reverse=True)  # only ever down, never back up


async def test_a_waiting_requests_own_bound_caps_its_expected_length():
    clock = Clock()
    s = known(clock, length=400, tokens_per_s=100.0, queued=50, running=4)
    s.submit("a", 0, "m", max_tokens=50)  # runs: at most 50 tokens
    short = s.submit("b", 0, "m", max_tokens=20)
    behind = s.submit("c", 0, "m", max_tokens=1000)
    assert s.eta(short) == pytest.approx(0.5, abs=0.1)
    assert s.eta(behind) == pytest.approx(0.7, abs=0.1)


async def test_arrivals_at_the_tail_continue_the_estimate_without_waking_the_waiters():
    clock = Clock()
    s = known(clock, length=50, tokens_per_s=50.0, queued=500, running=4)  # 1 s an answer
    s.submit("a", 0, "m")
    tickets = [s.submit("a", 0, "m") for _ in range(20)]
    changed = s.changed()
    more = [s.submit("a", 0, "m") for _ in range(5)]
    assert not changed.done()  # nobody's place moved
    assert [t.eta_given_s for t in tickets + more] == pytest.approx(range(1, 26), abs=0.05)
    # a full re-estimate agrees with the continued one
    clock.now += 1.0
    assert s.eta(more[-1]) == pytest.approx(24.0, abs=0.05)


async def test_deep_in_line_or_too_uncertain_it_says_more_than():
    clock = Clock()
    s = known(clock, length=100, tokens_per_s=10.0, queued=50, running=40)  # no spread at all
    s.submit("a", 0, "m")
    line = [s.submit("a", 0, "m") for _ in range(HONEST_DEPTH + 2)]
    assert s.more_than(line[0]) is None
    assert s.more_than(line[HONEST_DEPTH - 1]) is None
    deep = line[HONEST_DEPTH]
    bound = s.more_than(deep)
    assert bound is not None and bound <= s.eta(deep)
    # answers of very different lengths: the next in line behind one running answer is a guess
    spread = Scheduler([Pool("b", 1, frozenset({"m"}))], max_running_per_user=4,
                       max_queued_per_user=50, initial_service_s=10.0, clock=clock)
    spread.seed_lengths({"m": [5, 400] * 10})
    spread.submit("a", 0, "m")
    next_one = spread.submit("b", 0, "m")
    bound = spread.more_than(next_one)
    assert bound is not None and 0 <= bound < spread.eta(next_one)


@pytest.mark.parametrize("more_than_s, lang, said", [
    (60, "en", "14th in line, more than 1 minute"),
    (300, "en", "14th in line, more than 5 minutes"),
    (61, "ru", "14-й в очереди, больше 1 минуты"),
    (130, "ru", "14-й в очереди, больше 2 минут"),
    (300, "ru", "14-й в очереди, больше 5 минут"),
    (660, "ru", "14-й в очереди, больше 11 минут"),
    (1260, "ru", "14-й в очереди, больше 21 минуты"),
    (30, "en", "14th in line, about 40 s"),  # a bound under a minute says nothing: the number
])
def test_the_coach_says_more_than_n_minutes_when_no_number_is_honest(more_than_s, lang, said):
    assert Place(14, 40, more_than_s).describe(lang) == said


def test_the_coach_reads_the_bound_from_the_gateways_comment():
    line = ": queue position=14 eta_s=700 more_than_s=420"
    match = QUEUE_COMMENT.match(line)
    assert match and match.group(3) == "420"
    assert QUEUE_COMMENT.match(": queue position=2 eta_s=30").group(3) is None


async def test_an_answer_that_was_not_streamed_teaches_the_speed_too():
    clock = Clock()
    s = Scheduler([Pool("b", 1, frozenset({"m"}))], max_running_per_user=2,
                  max_queued_per_user=50, initial_service_s=10.0, clock=clock)
    first = s.submit("a", 0, "m", max_tokens=200, stream=False)
    clock.now += 2.0
    s.release(first, succeeded=True, tokens=10)  # 10 tokens in 2 s, no chunk seen
    s.submit("a", 0, "m", max_tokens=200, stream=False)
    clock.now += 0.4
    waiting = s.submit("b", 0, "m", max_tokens=200)
    # the running one has written about 2 of its 10 tokens at 5 tokens/s: 8 left, 1.6 s
    assert s.eta(waiting) == pytest.approx(1.6, abs=0.3)


async def test_a_fair_turn_ahead_of_others_starts_about_when_the_one_it_passed_would_have():
    clock = Clock()
    s = known(clock, length=50, tokens_per_s=50.0, queued=10)  # 1 s an answer
    running = s.submit("a", 0, "m")
    flood = [s.submit("a", 0, "m") for _ in range(3)]  # rounds 2, 3, 4
    newcomer = s.submit("b", 0, "m")  # round 2: ahead of a's second and third
    assert s.position(newcomer) == 2
    assert newcomer.eta_given_s == pytest.approx(flood[1].eta_given_s, abs=0.05)
    clock.now += 1.0  # the running answer as expected: 49 of its 50 tokens in a second
    s.progress(running, 49)
    # the periodic re-estimate: the flood's later ones moved back by one, at once (the line
    # ahead of them changed: that is news, not noise to smooth away)
    assert s.eta(newcomer) == pytest.approx(1.0, abs=0.05)
    assert [s.eta(t) for t in flood[1:]] == pytest.approx([2.0, 3.0], abs=0.05)


async def test_an_arrival_deep_in_a_long_line_never_reruns_the_whole_estimate(monkeypatch):
    """With 400 waiting (the most 100 accounts can queue) an arrival's ETA, and the first
    comment that reads it, continue the last simulation even when it is a few seconds old;
    only news (a slot given or freed, someone leaving) or another waiter's periodic read
    reruns it."""
    clock = Clock()
    s = known(clock, length=50, tokens_per_s=50.0, queued=5, running=1)
    people = [f"p{i}" for i in range(100)]
    s.submit("h", 0, "m")  # holds the slot
    for _ in range(4):
        for person in people:
            s.submit(person, 0, "m")
    s.eta(s.queues["m"][0])  # everyone estimated once
    runs = []
    real = s._estimate
    monkeypatch.setattr(s, "_estimate", lambda now: (runs.append(now), real(now)))
    late = []
    for i in range(20):
        clock.now += 0.3  # the last simulation gets older than ETA_REFRESH_S
        ticket = s.submit(people[i], 0, "m")  # a fifth: at the tail
        late.append(ticket)
        assert s.eta(ticket) == pytest.approx(ticket.eta_given_s)
    assert runs == []
    assert [s.position(t) for t in late] == list(range(401, 421))
    told = [t.eta_given_s - 0.3 * (19 - i) for i, t in enumerate(late)]  # as of now
    # a periodic read by someone waiting long since reruns it
    s.eta(s.queues["m"][5])
    assert len(runs) == 1
    # and the continued simulation agreed with the fresh one, to a second or two in 400 (the
    # fresh one still sees the running answer's whole length: nothing streamed here)
    assert told == pytest.approx([s.eta(t) for t in late], rel=0.02)


async def test_long_answers_are_expected_to_slow_as_their_context_grows():
    """A stream decodes slower as its context grows (measured on the embedded model: about 30 %
    slower after 1000 tokens). Learnt on short answers alone, the rate was a third too fast for
    long ones: on a long evening (benchmarks/queue_eta.py --longer 8) the last burst was told
    5-12 s and waited 18-30 s. Here every answer's length is known, so the speed is the only
    error: ignoring the context, the ETA behind four long plans was 21 % short."""
    clock = Clock()
    s = Scheduler([Pool("b", 4, frozenset({"m"}))], max_running_per_user=4,
                  max_queued_per_user=50, initial_service_s=10.0, clock=clock)
    s.seed_lengths({"m": [1280] * 20})
    # short answers teach the speed, alone and four at once
    run([Arrival(0.0, "a", 100, 100)], llama_server, scheduler=s, clock=clock)
    run([Arrival(clock.now + 0.5 + 0.01 * i, f"u{i}", 100, 100) for i in range(4)],
        llama_server, scheduler=s, clock=clock)
    # then eight long plans at once: four wait for the first four's 1280 tokens each
    arrivals = [Arrival(clock.now + 1.0 + 0.01 * i, f"u{i % 4}", 1280, 1280) for i in range(8)]
    run(arrivals, llama_server, scheduler=s, clock=clock)
    waited = [a.ticket for a in arrivals if a.ticket.eta_given_s is not None]
    assert len(waited) == 4
    for ticket in waited:
        assert ticket.eta_given_s == pytest.approx(ticket.waited_s, rel=0.1)


@pytest.mark.parametrize("context_scale", [1000.0, 8000.0, math.inf])
async def test_how_much_a_growing_context_slows_decoding_is_learnt(context_scale):
    """The slowdown differs by backend (a GPU reads a large model's weights once a step for
    the whole batch, so the context weighs less): it is fitted to the samples of long answers,
    whatever the prior, and a backend whose speed does not depend on the context learns that."""

    def backend(n: int, context: float = 0.0) -> float:
        return 110.0 * n ** 0.5 / n / (1 + context / context_scale)

    clock = Clock()
    s = Scheduler([Pool("b", 4, frozenset({"m"}))], max_running_per_user=4,
                  max_queued_per_user=50, initial_service_s=10.0, clock=clock)
    speed = s.speed_of(s.pools["b"])
    rng = random.Random(3)
    for _ in range(3):
        run([Arrival(clock.now + 0.5 + 0.2 * i, f"u{i % 4}", 1280, rng.randint(100, 1280))
             for i in range(8)], backend, scheduler=s, clock=clock)
    if context_scale == math.inf:
        assert speed.context_scale >= 16000
    else:
        assert speed.context_scale == pytest.approx(context_scale, rel=0.2)
    # the rates it learnt are the backend's with no context, at every concurrency seen
    for n in (1, 4):
        assert speed.rate(n) == pytest.approx(backend(n), rel=0.15)
