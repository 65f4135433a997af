"""Who runs next: a concurrency limit per backend and a fair priority queue in front of it.

Waiting requests are ordered by priority class (higher first), then by *round*, then by arrival.
A user's k-th waiting request gets round ``max(current round, that user's last round) + 1``, so
within a class users take turns: one user with ten requests waiting does not hold back another
with one (round-robin fair queueing). Within a user the order is FIFO.

Queues are sorted lists, so admission, removal and "what is my position" are O(log n) in the
number waiting.

The wait estimate (ETA) is the time until a waiting request gets a slot. It simulates the
backends' slots with what the gateway knows (:class:`Speed`, :class:`Lengths`):

- a running request has generated ``generated`` tokens (the relay reports each streamed chunk)
  and is expected to write as many more as the model's recent answers that were longer than that,
  capped by its own ``max_tokens``;
- a waiting request is expected to write the model's typical answer, capped by its ``max_tokens``,
  after a prefill of its prompt;
- a backend decodes at a per-stream rate that depends on how many streams it runs at once
  (continuous batching: llama-server and vLLM serve four streams at two to four times the total
  rate of one, so each is slower), learnt online per backend and per concurrency, times the
  machine's current load (shared by every level: other work on the host slows one stream and
  four alike), and slower as a stream's context grows (its prompt and what it wrote: attention
  reads all of it for every token), by a factor fitted online too.

Slots are processor-shared: n streams on a backend each advance at ``rate(n)``. The simulation is
one pass over the queue (sampled futures for the first :data:`SAMPLED_DEPTH`, throughput behind
them), run lazily: at most every :data:`ETA_REFRESH_S`, or at the next read after a request got
a slot, ended or left. An arrival never reruns it: at the tail of its queue (the usual case) it
continues the last simulation by one step and wakes nobody; a fair turn ahead of others takes the
ETA of the one it passed, and the others hear theirs at the next periodic re-estimate. So
admission stays O(log n) with hundreds waiting. The shown ETA is smoothed
(:meth:`Scheduler._smooth`): a re-estimate moves it only past a dead band as wide as the noise
the measured speed puts into it, so it drifts with facts and does not swing with each second's
speed.

Nothing here foresees people who have not arrived yet: a later arrival of a higher priority class
or a fairer turn may overtake. Past :data:`HONEST_DEPTH` in line, or when the learnt answer
lengths spread so much that the estimate is a guess, :meth:`Scheduler.more_than` gives a lower
bound to say ("more than N minutes") instead of a number.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
import math
import statistics
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sortedcontainers import SortedList

from sporthub.gateway.errors import GatewayError

ETA_REFRESH_S = 0.5
# an answer's length before any was measured for the model
PRIOR_ANSWER_TOKENS = 200
# prompt tokens per second before a backend's prefill was measured
PRIOR_PREFILL_TPS = 1000.0
# prompts this long or longer teach the prefill rate; shorter ones the fixed time to a first token
LONG_PROMPT = 256
PREFILL_ALPHA = 0.3  # EWMA weight of a prefill sample
# while a backend reads a new prompt it decodes the running answers less (llama-server little):
# each start holds the others back by this share of its time to a first token. Replayed on a
# recorded evening: 0 left the ETAs late (median +13 %), 1 early (-13 %), 0.5 -0.3 %.
STALL = 0.5
# how the total decode rate grows with concurrency before it is measured: total(n) = total(1) *
# n**SCALING. Measured here: vLLM CPU 25 tok/s alone, 70-95 over 4 streams (n**0.8 .. 0.95);
# llama-server on two cores gains less. A measured neighbour is scaled by this exponent too.
SCALING = 0.7
# A rate sample spans at least RATE_SAMPLE_S (a start or an end cuts one shorter, and it weighs
# less), and moves the rate of its level and the load (shared by every level) by these EWMA
# weights. On the shared machine tokens come in bursts: one-second samples of one evening went
# 0.35 -> 2.95 -> 0.82 tokens/s within ten seconds, and learnt fast (0.5/0.3) the rate was the last
# burst's. Two recorded evenings, replayed (--rescore): 1 s and 0.5/0.3 gave 64 % and 12 % of the
# first ETAs within the bound and the ETA went back and forth 3 and 4.4 times the time waited;
# 5 s and 0.3/0.15 gave 64 % and 62 %, and 0.25 and 0.48.
RATE_ALPHA = 0.15
LOAD_ALPHA = 0.3
RATE_SAMPLE_S = 5.0
# a span's tokens are counted to within one a stream: this many tell a rate to within 20 %
# (replayed on three recorded evenings, 5, 10 and 20 alike; 5 keeps a loaded machine's first
# spans, of a token a second, whole)
RELIABLE_TOKENS = 5
# A stream decodes slower as its context (prompt and answer so far) grows: rate / (1 + context /
# C). Measured for SmolLM2-135M on llama-server (two cores, 100-token windows of the benchmark's
# long evenings): alone 118.6 -> 100.3 -> 83.7 tokens/s at tokens 0-399 / 400-799 / 800-1199,
# four running 31.1 -> 27.0 -> 23.9 (C about 2000 and 2700); on a second machine of the kind
# about 1200-2000 alone and 2800-13000 with four; the CPU vLLM none up to 800 tokens. Learnt on
# short answers, the rate was a third too fast for long ones (late ETAs on long evenings). A
# GPU's large model reads its weights once a step for the whole batch and has a C of its own: C
# is fitted per backend to the recent samples, as the candidate under which the samples of each
# concurrency, brought to no context, agree best (one C for every concurrency: per concurrency,
# replayed on three evenings, was no better), once their contexts spread over CONTEXT_SPREAD
# tokens
CONTEXT_PRIOR = 2000.0
CONTEXT_CANDIDATES = (*(500.0 * 2 ** (k / 2) for k in range(13)), math.inf)  # 500 .. 32000
CONTEXT_WINDOW, CONTEXT_REFIT, CONTEXT_SPREAD = 120, 10, 400.0
# how noisy a second's rate is (the variance of the log of its surprise), before it is measured,
# and the weight of a sample in that
NOISE_PRIOR, NOISE_ALPHA = 0.04, 0.1
LENGTH_WINDOW = 200  # recent answer lengths kept per model
ALIKE_ENOUGH = 5  # answers bounded alike needed to judge by them alone
# the estimate is said as a number only this deep in line: further back, fair turns and priority
# arrivals reorder the queue more than any estimate can know
HONEST_DEPTH = 12
# ... and only while the spread (one standard deviation of the wait, from the spread of the
# answer lengths) stays under this share of the estimate
HONEST_SPREAD = 0.5
# the futures simulated for the first SAMPLED_DEPTH in line (further back: throughput). Those
# behind HONEST_DEPTH are told a bound, not a number: sampling them too doubled the cost of an
# estimate, which holds up every arrival while it runs (2.5 -> 1.3 ms of CPU with 400 waiting)
SAMPLES, SAMPLED_DEPTH = 12, HONEST_DEPTH
# a re-estimate moves the shown ETA only past this many seconds or this share of it, or past twice
# the estimate's own noise (from the measured noise of the speed) when that is wider
DEAD_BAND_S, DEAD_BAND_SHARE, DEAD_BAND_MAX_SHARE = 1.0, 0.05, 0.5
NOISE_BANDS = 3.0
FAR_BANDS = 3.0  # a re-estimate this many bands off is news: the ETA follows it all the way


@dataclass(eq=False)
class Ticket:
    """One request's place in line, then its slot on a backend."""

    user: str
    priority: int
    model: str
    round: int
    seq: int
    enqueued_at: float = field(default_factory=time.monotonic)
    admitted: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    max_tokens: int = 0  # the answer's bound (0: unknown)
    prompt_tokens: int = 0  # an estimate, for the prefill
    stream: bool = True  # a unary request reports no progress: its tokens are estimated
    backend: str | None = None
    started_at: float | None = None
    first_token_at: float | None = None
    generated: int = 0  # tokens streamed so far
    eta_s: float = 0.0  # the raw estimate, from the last simulation
    # the smoothed expected start (scheduler clock) that ETAs are shown from; None before any
    eta_at: float | None = None
    # how uncertain the estimate is: one standard deviation of the wait, as a share of it
    spread: float = 0.0
    # the ETA computed when the ticket joined the queue (what the person is told first); None
    # when it got a slot at once
    eta_given_s: float | None = None
    # when its estimate was last computed (scheduler clock): a reader within ETA_REFRESH_S of
    # it, and with no news since, is told it without a re-estimate
    estimated_at: float | None = None
    # how many were ahead of it in line at that estimate, and how many of its model's requests
    # had got a slot by then: a line ahead that changed otherwise (someone left, or a fair turn
    # came in ahead) is news that moves the shown ETA at once
    ahead: int | None = None
    starts_seen: int = 0

    @property
    def waited_s(self) -> float | None:
        """From arrival to the slot; None while waiting."""
        return None if self.started_at is None else self.started_at - self.enqueued_at

    @property
    def eta_error_s(self) -> float | None:
        """The real wait minus the ETA given on joining (positive: later than told); None if it
        did not wait, has no slot yet, or was given no finite ETA (its backend was starting)."""
        if self.waited_s is None or self.eta_given_s is None or self.eta_given_s == float("inf"):
            return None
        return self.waited_s - self.eta_given_s

    @property
    def key(self) -> tuple[int, int, int]:
        return (-self.priority, self.round, self.seq)


UP, STARTING, DOWN = "up", "starting", "down"


class Speed:
    """A backend's measured speed: per-stream decode rate by concurrency and context, and its
    prefill rate.

    Decode samples are taken over spans in which the number of running streams did not change
    (the scheduler marks each change): tokens streamed in the span / its length / the streams
    that were decoding, filed under the number running, and brought to a context of none by the
    context's slowdown (``1 + context / C``, C fitted by :meth:`_fit_context`). A span in which
    a stream was still reading its prompt is no sample: the prompt's time is learnt apart
    (:meth:`learn_prefill`), and llama-server decodes little while it reads one (on the
    recorded evening, 1 token in 7 s while three prompts were read; taken as the first rate at
    four streams, it put every ETA four times too long).
    """

    def __init__(self, initial_tps: float):
        self.initial_tps = initial_tps
        # concurrency -> tokens/s of one stream, at the machine's load when it was measured...
        self.per_stream: dict[int, float] = {}
        # ... times how fast the machine runs now relative to that: what it shares with other
        # processes changes every level's rate alike, so news from one level moves them all
        self.load = 1.0
        # the variance of the log of a sample's surprise: how noisy a second's rate is
        self.noise = NOISE_PRIOR
        # the context (tokens) at which a stream decodes at half its rate with none (C above),
        # and the recent samples it is fitted to: (running, context, tokens/s of one stream, weight)
        self.context_scale = CONTEXT_PRIOR
        self._samples: deque[tuple[int, float, float, float]] = deque(maxlen=CONTEXT_WINDOW)
        self._unfitted = 0
        self.prefill_tps: float | None = None
        # the part of the time to a first token that does not depend on the prompt (seconds)
        self.first_token_s = 0.0
        self._first_token_learnt = False
        self._span_start: float | None = None
        self._span_tokens = 0
        self._span_running = 0
        self._span_decoding = 0
        self._span_reading = 0  # streams reading their prompt in the span
        self._span_context = 0.0  # the decoding streams' mean context at its start

    def rate(self, running: int) -> float:
        """Tokens/s of one stream with no context yet, when ``running`` streams share the
        backend (:meth:`slowdown` says how much slower it is at a context)."""
        running = max(running, 1)
        known = self.per_stream.get(running)
        if known is not None:
            return known * self.load
        if not self.per_stream:
            base, at = self.initial_tps, 1
        else:
            at = min(self.per_stream, key=lambda n: abs(n - running))
            base = self.per_stream[at]
        return base * self.load * (running / at) ** (SCALING - 1)

    def slowdown(self, context: float) -> float:
        """How many times longer a token takes at ``context`` tokens than with none."""
        return 1.0 + context / self.context_scale

    def prefill_s(self, prompt_tokens: int) -> float:
        """From the slot to the first token, alone: a fixed part, then the prompt's tokens."""
        return self.first_token_s + max(prompt_tokens, 1) / (self.prefill_tps or PRIOR_PREFILL_TPS)

    def tokens(self, n: int) -> None:
        self._span_tokens += n

    def span_s(self, now: float) -> float:
        """How long the current span has lasted (inf before the first)."""
        return math.inf if self._span_start is None else now - self._span_start

    def mark(self, now: float, running: int, decoding: int, reading: int = 0,
             context: float = 0.0) -> None:
        """End the current span (learning from it) and start one with these counts;
        ``context``: the decoding streams' mean context now (prompt and answer so far)."""
        if self._span_start is not None:
            span = now - self._span_start
            if self._span_decoding and self._span_tokens and span >= 0.2 and not self._span_reading:
                # a short span (cut by a start or an end) counts its tokens to within one a
                # stream: it says less, and weighs less
                per_stream = self._span_tokens / self._span_decoding
                self.learn(self._span_running, per_stream / span, min(span / RATE_SAMPLE_S, 1.0),
                           context=self._span_context + per_stream / 2, tokens=per_stream)
        self._span_start, self._span_tokens = now, 0
        self._span_running, self._span_decoding = running, decoding
        self._span_reading, self._span_context = reading, context

    def learn(self, running: int, per_stream_tps: float, weight: float = 1.0,
              context: float = 0.0, tokens: float | None = None) -> None:
        """A sample at ``running`` streams and a mean ``context``, of ``tokens`` a stream (None:
        whole answers): the first of a level is its rate; later ones move both that level's
        rate and the load (every level), each by part of the surprise."""
        if per_stream_tps <= 0:
            return
        self._samples.append((running, context, per_stream_tps, weight))
        self._unfitted += 1
        if self._unfitted >= CONTEXT_REFIT:
            self._fit_context()
        per_stream_tps *= self.slowdown(context)
        if running not in self.per_stream:
            # a level's first sample is its rate if it counted enough tokens to tell; fewer
            # move it from what the levels learnt predict by their share of that (on a recorded
            # evening a span of one token, taken as it was, put four streams at 2.3 tokens/s
            # where 25 came, and the surprises after it made every level's load twice too fast)
            trust = 1.0 if tokens is None else min(tokens / RELIABLE_TOKENS, 1.0)
            predicted = self.rate(running) if self.per_stream else per_stream_tps
            self.per_stream[running] = predicted * (per_stream_tps / predicted) ** trust / self.load
            return
        surprise = per_stream_tps / self.rate(running)
        self.noise += NOISE_ALPHA * weight * (math.log(surprise) ** 2 - self.noise)
        self.load *= surprise ** (LOAD_ALPHA * weight)
        self.per_stream[running] *= surprise ** (RATE_ALPHA * weight)

    def _fit_context(self) -> None:
        """Refit C to the recent samples: the candidate under which the log rates of each
        concurrency, brought to no context, change least from one sample to the next (first
        differences: the machine's load, which moves every rate, changes little between
        neighbours; around a level's mean, its steps on a scripted shared machine passed for a
        context's slowdown). Their contexts must differ enough to tell (short answers alone say
        nothing of C). The learnt rates keep what they say at the contexts they were measured
        at."""
        self._unfitted = 0
        by_level: dict[int, list[tuple[float, float, float]]] = {}
        for running, context, tps, weight in self._samples:
            by_level.setdefault(running, []).append((context, math.log(tps), weight))
        levels = [s for s in by_level.values() if len(s) >= 3
                  and max(c for c, _, _ in s) - min(c for c, _, _ in s) >= CONTEXT_SPREAD]
        if not levels:
            return

        def spread(scale: float) -> float:
            total = 0.0
            for samples in levels:
                for (c0, y0, w0), (c1, y1, w1) in itertools.pairwise(samples):
                    total += min(w0, w1) * (y1 - y0 + math.log1p(c1 / scale)
                                            - math.log1p(c0 / scale)) ** 2
            return total

        scale = min(CONTEXT_CANDIDATES, key=spread)
        if scale == self.context_scale:
            return
        for running in self.per_stream:
            seen = by_level.get(running)
            typical = (statistics.fmean(c for c, _, _ in seen) if seen
                       else statistics.fmean(c for _, c, _, _ in self._samples))
            self.per_stream[running] *= (1 + typical / scale) / self.slowdown(typical)
        self.context_scale = scale

    @property
    def wobble(self) -> float:
        """How much the learnt rate moves by noise alone, as a share (one standard deviation):
        an EWMA of weight a over samples of log-variance v varies by v * a / (2 - a)."""
        a = 1.0 - (1.0 - LOAD_ALPHA) * (1.0 - RATE_ALPHA)
        return math.sqrt(self.noise * a / (2.0 - a))

    def learn_prefill(self, prompt_tokens: int, seconds: float) -> None:
        """A first token ``seconds`` after the slot (alone). A short prompt's time is the fixed
        part (the request reaching the backend, its slot, a first decode step: at a load of 15
        ten seconds for any prompt of 12 to 40 tokens); only a long one's says how fast the
        backend reads a prompt. Learnt as one rate, a short prompt's slow start made the 40
        tokens of the next one take 40 seconds."""
        if seconds <= 0 or prompt_tokens <= 0:
            return
        if prompt_tokens < LONG_PROMPT:
            sample = max(seconds - prompt_tokens / (self.prefill_tps or PRIOR_PREFILL_TPS), 0.0)
            first = self.first_token_s if self._first_token_learnt else sample
            self.first_token_s = first + PREFILL_ALPHA * (sample - first)
            self._first_token_learnt = True
            return
        sample = prompt_tokens / max(seconds - self.first_token_s, seconds / 10)
        old = self.prefill_tps
        self.prefill_tps = sample if old is None else old + PREFILL_ALPHA * (sample - old)


class Lengths:
    """Recent answer lengths of one model, and what they say about an answer still to come.

    Each length is kept with the ``max_tokens`` its request asked for (0: unknown, as for the
    ledger's rows at start): callers that ask for short answers get short ones, so a request is
    judged by the answers of requests bounded alike (within a factor 1.5), when there are enough
    of them, else by all of them, each scaled to its bound (the share of its own bound it wrote)
    and capped by it."""

    def __init__(self, seed: Iterable[int] = ()):
        self.recent: deque[tuple[int, int]] = deque(
            ((n, 0) for n in seed if n > 0), maxlen=LENGTH_WINDOW)
        self._alike: dict[int, list[float]] = {}  # max_tokens -> lengths to judge by (cache)
        self._expected: dict[int, float] = {}  # max_tokens -> expected length (cache)
        self._sorted: dict[int, list[float]] = {}  # max_tokens -> alike lengths, capped, sorted

    def add(self, n: int, max_tokens: int = 0) -> None:
        if n > 0:
            self.recent.append((n, max_tokens))
            self._alike.clear()
            self._expected.clear()
            self._sorted.clear()

    def alike(self, max_tokens: int) -> list[float]:
        """The lengths of answers whose requests were bounded like ``max_tokens``."""
        cached = self._alike.get(max_tokens)
        if cached is None:
            near = [n for n, bound in self.recent
                    if bound and max_tokens / 1.5 <= bound <= max_tokens * 1.5]
            if max_tokens and len(near) >= ALIKE_ENOUGH:
                cached = near
            elif max_tokens:
                # too few alike (a fresh gateway, a bound not asked for lately): every answer,
                # as the same share of this bound as it wrote of its own. Taken as they were,
                # capped by this bound, the few a fresh gateway had seen made a batch's answer
                # as long as its bound and a plan's as short as a question's (scripted quiet
                # evenings: 50 % within the bound instead of 81 %). Answers of unknown bound
                # (the ledger's, at start) count as they were.
                cached = [n * max_tokens / bound if bound else n for n, bound in self.recent]
            else:
                cached = [n for n, _ in self.recent]
            self._alike[max_tokens] = cached
        return cached

    def expected(self, max_tokens: int) -> float:
        """The expected length of a new answer bounded by ``max_tokens`` (0: no bound known)."""
        cached = self._expected.get(max_tokens)
        if cached is None:
            alike = self.alike(max_tokens)
            if alike:
                cap = max_tokens or math.inf
                cached = statistics.fmean(min(n, cap) for n in alike)
            else:
                cached = min(max_tokens or PRIOR_ANSWER_TOKENS, PRIOR_ANSWER_TOKENS)
            self._expected[max_tokens] = cached
        return cached

    def remaining(self, generated: int, max_tokens: int) -> float:
        """Tokens still to come of an answer that has ``generated`` so far: as many as the recent
        answers longer than that had left, within its bound."""
        if generated == 0:
            return self.expected(max_tokens)
        cap = max_tokens or math.inf
        longer = [min(n, cap) - generated for n in self.alike(max_tokens) if n > generated]
        if longer:
            return max(statistics.fmean(longer), 1.0)
        # longer than any answer seen: it ends within its bound, likely soon
        return max(min(cap - generated, generated / 2 + 8), 1.0)

    def draw(self, u: float, max_tokens: int, generated: int = 0) -> float:
        """The tokens still to come, drawn at quantile ``u`` of the recent answers bounded like
        this one (capped by its bound) that are longer than ``generated``."""
        ordered = self._sorted.get(max_tokens)
        if ordered is None:
            cap = max_tokens or math.inf
            ordered = self._sorted[max_tokens] = sorted(min(n, cap) for n in self.alike(max_tokens))
        if not ordered:
            return max(self.expected(max_tokens) - generated, 1.0)
        first = bisect.bisect_right(ordered, generated)
        if first == len(ordered):
            return self.remaining(generated, max_tokens)  # longer than any seen
        return ordered[first + int(u * (len(ordered) - first))] - generated


@dataclass(eq=False)
class Pool:
    """A backend's slots.

    A backend that is *starting* (not answered yet, or still loading its model: llama-server's
    and vLLM's 503) gets no requests, but requests wait in line for it; one that is *down*
    (it answered before, and now does not) refuses them.
    """

    name: str
    capacity: int
    models: frozenset[str]
    running: set[Ticket] = field(default_factory=set)
    state: str = UP
    speed: Speed | None = None

    @property
    def up(self) -> bool:
        return self.state == UP

    @property
    def free(self) -> int:
        return self.capacity - len(self.running) if self.up else 0

    @property
    def reading(self) -> int:
        """Streams still reading their prompt (an unary answer says nothing: not counted)."""
        return sum(1 for t in self.running if t.stream and t.first_token_at is None)

    def mark(self, now: float, force: bool = True) -> None:
        """A span of its speed ends (``force``: the streams changed; else only once it is
        RATE_SAMPLE_S long): the streams running now start the next, with their mean context
        (prompt and answer so far) while they decode."""
        if not force and self.speed.span_s(now) < RATE_SAMPLE_S:
            return  # the hot path: every streamed chunk comes here
        decoding = [t for t in self.running if t.first_token_at is not None]
        context = (sum(t.prompt_tokens + t.generated for t in decoding) / len(decoding)
                   if decoding else 0.0)
        self.speed.mark(now, len(self.running), len(decoding), reading=self.reading,
                        context=context)


_MASK64 = 2**64 - 1


def _uniform(seq: int, sample: int) -> float:
    """A fixed draw in [0, 1) for a request in one of the simulated futures: the same request
    draws the same in every re-estimate, so the ETA moves with facts, not with dice."""
    # splitmix64's finaliser: neighbouring requests draw independently
    x = (seq * 0x9E3779B97F4A7C15 + (sample + 1) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (x ^ (x >> 31)) / 2**64


class _Simulation:
    """The slots of one model's pools, advanced in time; continued by one step per arrival.

    The first :data:`SAMPLED_DEPTH` in line are placed in :data:`SAMPLES` simulated futures, in
    each of which every answer has a length drawn from the recent ones (the running ones: of
    those longer than what they have written): the ETA is their mean, the spread their standard
    deviation. One future with every answer at its mean length would be biased: the first of
    four running answers ends sooner than any one of them is expected to. Further back, each
    request adds its expected work to a backend running at full concurrency (its throughput).
    """

    def __init__(self, scheduler: Scheduler, model: str, pools: list[Pool], now: float):
        self.s, self.model, self.now = scheduler, model, now
        self.pools = pools
        self.placed = 0
        self.speeds = [scheduler.speed_of(p) for p in pools]
        # per future: its clock, and per pool the work done by each of its streams (virtual
        # time; all streams of a pool advance alike) and a heap of the virtual times at which
        # each running one ends. Work is in seconds of a stream running alone.
        # the rates are read thousands of times per estimate: once per pool and concurrency
        self.alone = [sp.rate(1) for sp in self.speeds]
        self.shares = [[sp.rate(n) / sp.rate(1) for n in range(p.capacity + 1)]
                       for p, sp in zip(pools, self.speeds, strict=True)]
        self.t = [0.0] * SAMPLES
        self.virtual = [[0.0] * len(pools) for _ in range(SAMPLES)]
        self.ends: list[list[list[float]]] = [[[] for _ in pools] for _ in range(SAMPLES)]
        for i, pool in enumerate(pools):
            speed = self.speeds[i]
            reading = 0.0
            for ticket in pool.running:
                prefill, generated = self._running_state(ticket, speed, now)
                reading += prefill
                for k in range(SAMPLES):
                    tokens = self._lengths.draw(_uniform(ticket.seq, k), ticket.max_tokens,
                                                generated)
                    self.ends[k][i].append(
                        prefill + self._decode_s(i, tokens, ticket.prompt_tokens + generated))
            if STALL and reading:
                # the prompts still being read hold the others back as long
                for k in range(SAMPLES):
                    self.ends[k][i] = [end + STALL * reading for end in self.ends[k][i]]
        for k in range(SAMPLES):
            for heap in self.ends[k]:
                heapq.heapify(heap)
        # past the sampled depth: when the last sampled one starts, and the throughput after
        self.deep_at = 0.0
        capacity = sum(p.capacity for p in pools)
        self.throughput = sum(p.capacity * sp.rate(p.capacity) / sp.rate(1)
                              for p, sp in zip(pools, self.speeds, strict=True)) / capacity
        self.capacity = capacity
        self.works: dict[tuple[int, int], float] = {}
        self.deep_share = 0.0

    @property
    def _lengths(self) -> Lengths:
        return self.s.lengths_of(self.model)

    def _running_state(self, ticket: Ticket, speed: Speed, now: float) -> tuple[float, int]:
        """The prefill still to do (seconds alone) and the tokens written so far."""
        generated, prefill = ticket.generated, 0.0
        if ticket.first_token_at is None:
            elapsed = now - (now if ticket.started_at is None else ticket.started_at)
            prefill = max(speed.prefill_s(ticket.prompt_tokens) - elapsed, 0.0)
            if not ticket.stream:
                # a unary answer says nothing until it ends: assume it decodes since its prefill
                decode_s = max(elapsed - speed.prefill_s(ticket.prompt_tokens), 0.0)
                running = len(self.s.pools[ticket.backend].running)
                generated = int(decode_s * speed.rate(running))
        return prefill, generated

    def _decode_s(self, i: int, tokens: float, context: float) -> float:
        """Seconds alone on pool ``i`` to write ``tokens`` more after ``context`` tokens: the
        slowdown grows linearly with the context, so its mean is the one halfway."""
        return tokens * self.speeds[i].slowdown(context + tokens / 2) / self.alone[i]

    def place(self, ticket: Ticket) -> tuple[float, float]:
        """When (from ``now``) this next one in line gets a slot, and one standard deviation
        of that over the simulated futures."""
        self.placed += 1
        if self.placed > SAMPLED_DEPTH:
            # as uncertain as the last one sampled (further back the spreads of more answers
            # add up and partly cancel: a bound on the safe side)
            start = self.deep_at
            deviation = self.deep_share * start
        else:
            starts = [self._place_in(k, ticket) for k in range(SAMPLES)]
            # floats, not statistics.pstdev's exact fractions: this runs hundreds of times
            start = sum(starts) / SAMPLES
            deviation = math.sqrt(max(sum(x * x for x in starts) / SAMPLES - start * start, 0.0))
            self.deep_share = _share(deviation, start)
        # further back the backends run full: the next start comes this one's expected work
        # (spread over all slots) later
        self.deep_at = start + self._work(ticket.prompt_tokens, ticket.max_tokens)
        return start, deviation

    def _work(self, prompt_tokens: int, max_tokens: int) -> float:
        """Seconds of the full backends one request takes (the same for hundreds alike: kept)."""
        key = (prompt_tokens, max_tokens)
        work = self.works.get(key)
        if work is None:
            work = self.works[key] = (
                self.speeds[0].prefill_s(prompt_tokens)
                + self._decode_s(0, self._lengths.expected(max_tokens), prompt_tokens)
            ) / (self.capacity * self.throughput)
        return work

    def _place_in(self, k: int, ticket: Ticket) -> float:
        ends, virtual = self.ends[k], self.virtual[k]
        while True:
            free = [i for i, p in enumerate(self.pools) if len(ends[i]) < p.capacity]
            if free:
                break
            self._advance(k)
        i = free[0] if len(free) == 1 else min(
            free, key=lambda i: len(ends[i]) / self.pools[i].capacity)
        tokens = self._lengths.draw(_uniform(ticket.seq, k), ticket.max_tokens)
        prefill = self.speeds[i].prefill_s(ticket.prompt_tokens)
        if STALL:
            # while it reads its prompt the others barely decode: they end that much later
            ends[i] = [end + STALL * prefill for end in ends[i]]
        heapq.heappush(ends[i], virtual[i] + prefill
                       + self._decode_s(i, tokens, ticket.prompt_tokens))
        return self.t[k]

    def _advance(self, k: int) -> None:
        """Future ``k`` to the next end of a stream on any pool."""
        ends, virtual = self.ends[k], self.virtual[k]
        # each stream of pool i advances rate(n)/rate(1) seconds of lone work per second
        shares = [self.shares[i][min(len(ends[i]), self.pools[i].capacity)]
                  for i in range(len(self.pools))]
        dt, first = min(((ends[i][0] - virtual[i]) / shares[i], i)
                        for i in range(len(self.pools)) if ends[i])
        dt = max(dt, 0.0)
        for i in range(len(self.pools)):
            virtual[i] += dt * shares[i]
        heapq.heappop(ends[first])
        self.t[k] += dt


class Scheduler:
    def __init__(self, pools: list[Pool], *, max_running_per_user: int, max_queued_per_user: int,
                 initial_service_s: float, clock: Callable[[], float] = time.monotonic,
                 answer_lengths: dict[str, Iterable[int]] | None = None):
        self.pools = {p.name: p for p in pools}
        self.max_running_per_user = max_running_per_user
        self.max_queued_per_user = max_queued_per_user
        # before anything is measured a typical answer takes ``initial_service_s`` alone
        self.initial_tps = PRIOR_ANSWER_TOKENS / initial_service_s
        for pool in pools:
            self.speed_of(pool)  # measured from the first request on
        self.clock = clock
        self.lengths: dict[str, Lengths] = {m: Lengths(n) for m, n in (answer_lengths or {}).items()}
        self.queues: dict[str, SortedList] = {}
        self.running_by_user: Counter[str] = Counter()
        self.queued_by_user: Counter[str] = Counter()
        self._last_round: dict[str, int] = {}
        self._current_round = 0
        self._seq = itertools.count()
        self._eta_computed_at = -math.inf
        self._eta_dirty = True
        # the last simulation of each model, continued by arrivals at the tail of its queue
        self._tails: dict[str, _Simulation] = {}
        self._starts: Counter[str] = Counter()  # per model, requests given a slot so far
        self._changed: asyncio.Future | None = None

    def speed_of(self, pool: Pool) -> Speed:
        if pool.speed is None:
            pool.speed = Speed(self.initial_tps)
        return pool.speed

    def lengths_of(self, model: str) -> Lengths:
        if model not in self.lengths:
            self.lengths[model] = Lengths()
        return self.lengths[model]

    def seed_lengths(self, lengths: dict[str, Iterable[int]]) -> None:
        """Recent answer lengths per model (from the ledger at start), oldest first."""
        for model, recent in lengths.items():
            for n in recent:
                self.lengths_of(model).add(n)
        self._eta_dirty = True

    def changed(self) -> asyncio.Future:
        """A future resolved at the next change of the queues (waiters then re-read their place)."""
        if self._changed is None or self._changed.done():
            self._changed = asyncio.get_running_loop().create_future()
        return self._changed

    def _notify(self) -> None:
        """The queue changed in a way that moves the ETAs: they are recomputed when next read."""
        self._eta_dirty = True
        self._wake()

    def _wake(self) -> None:
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)

    # -- admission ------------------------------------------------------------------------

    def submit(self, user: str, priority: int, model: str, *, max_tokens: int = 0,
               prompt_tokens: int = 0, stream: bool = True) -> Ticket:
        """Take a place in line (or a slot at once). Raises 429/503 when that is not possible."""
        if not self._servable(model):
            raise _backend_down(model)
        if self.queued_by_user[user] >= self.max_queued_per_user:
            raise GatewayError(429, f"You already have {self.max_queued_per_user} requests "
                               "waiting; wait for one to finish.", "too_many_queued",
                               {"Retry-After": "5"})
        round_ = max(self._current_round, self._last_round.get(user, 0)) + 1
        self._last_round[user] = round_
        now = self.clock()
        ticket = Ticket(user=user, priority=priority, model=model, round=round_,
                        seq=next(self._seq), enqueued_at=now, max_tokens=max_tokens,
                        prompt_tokens=prompt_tokens, stream=stream)
        queue = self.queues.setdefault(model, SortedList(key=lambda t: t.key))
        queue.add(ticket)
        self.queued_by_user[user] += 1
        if self._runnable_somewhere(ticket):
            self._dispatch()
        elif queue[-1] is ticket:
            # at the tail nobody's place changes: the waiters need not wake, and the last
            # simulation of this queue, if still fresh, goes on by one step
            self._eta_for_tail(ticket, now)
        else:
            # a fair turn ahead of others: it starts about when the one it passed would have;
            # the ones behind move back, and hear it from the next periodic re-estimate (an
            # arrival never reruns the whole estimate: with hundreds waiting that is the cost)
            self._eta_for_insert(ticket, queue, now)
            self._wake()
        if ticket.backend is None:
            ticket.eta_given_s = self.eta(ticket)
        return ticket

    def _runnable_somewhere(self, ticket: Ticket) -> bool:
        return (self.running_by_user[ticket.user] < self.max_running_per_user
                and any(p.free > 0 and ticket.model in p.models for p in self.pools.values()))

    def _eta_for_tail(self, ticket: Ticket, now: float) -> None:
        sim = self._tails.get(ticket.model)
        deep = len(self.queues[ticket.model]) > SAMPLED_DEPTH
        if self._eta_dirty or sim is None or (now - sim.now > ETA_REFRESH_S and not deep):
            # news since the last simulation (or none yet), or a short line whose simulation
            # is cheap to redo and better fresh: this arrival's ETA comes from a new one
            self._eta_dirty = True
            return
        # with no news, an old simulation is only older: deep in a long line it goes on from
        # where it stood (rerunning it for every arrival is what made admission slow)
        start, deviation = sim.place(ticket)
        ticket.estimated_at = now
        ticket.ahead, ticket.starts_seen = len(self.queues[ticket.model]) - 1, self._starts[ticket.model]
        ticket.eta_s = max(start - (now - sim.now), 0.0)
        ticket.spread = _share(deviation, start)
        self._smooth(ticket, now, 0.0)

    def _eta_for_insert(self, ticket: Ticket, queue: SortedList, now: float) -> None:
        passed = queue[queue.index(ticket) + 1]
        if self._eta_dirty or passed.eta_at is None or passed.eta_s == math.inf:
            self._eta_dirty = True
            return
        ticket.eta_s = max(passed.eta_s - (now - self._eta_computed_at), 0.0)
        ticket.spread = passed.spread
        ticket.eta_at = now + ticket.eta_s
        ticket.estimated_at = now
        ticket.ahead, ticket.starts_seen = queue.index(ticket), self._starts[ticket.model]

    async def wait(self, ticket: Ticket, timeout: float) -> str:
        """Wait for a slot; leaving (timeout, cancellation) gives the place up at once."""
        try:
            return await asyncio.wait_for(asyncio.shield(ticket.admitted), timeout)
        except TimeoutError:
            self.withdraw(ticket)
            raise GatewayError(503, f"The assistant is busy: no slot became free within "
                               f"{timeout:.0f} s. Please retry in a minute.", "queue_timeout",
                               {"Retry-After": "60"}) from None
        except asyncio.CancelledError:
            self.withdraw(ticket)
            raise

    def withdraw(self, ticket: Ticket) -> None:
        """Leave the queue, or free the slot if the ticket was already running."""
        if ticket.backend is not None:
            self.release(ticket, succeeded=False)
            return
        queue = self.queues.get(ticket.model)
        if queue is not None and ticket in queue:
            queue.remove(ticket)
            self.queued_by_user[ticket.user] -= 1
            self._notify()
        if not ticket.admitted.done():
            ticket.admitted.cancel()

    def progress(self, ticket: Ticket, tokens: int = 1) -> None:
        """A running stream sent ``tokens`` more tokens (called by the relay for each chunk)."""
        pool = self.pools.get(ticket.backend or "")
        if pool is None:
            return
        speed = self.speed_of(pool)
        now = self.clock()
        if ticket.first_token_at is None:
            ticket.first_token_at = now
            # its prefill shared the backend with the others running: the simulation wants
            # it in seconds of a stream alone (it slows it by the concurrency again)
            speed.learn_prefill(ticket.prompt_tokens, (now - (now if ticket.started_at is None else ticket.started_at))
                                * speed.rate(len(pool.running)) / speed.rate(1))
            # one more stream decodes: a new span (this chunk belongs to it)
            pool.mark(now)
        else:
            pool.mark(now, force=False)
        ticket.generated += tokens
        speed.tokens(tokens)

    def release(self, ticket: Ticket, succeeded: bool, tokens: int | None = None) -> None:
        """Free the ticket's slot; a complete answer teaches the model's typical length.

        ``tokens``: the answer's length if known better than the streamed count (usage)."""
        pool = self.pools.get(ticket.backend or "")
        if pool is None or ticket not in pool.running:
            return
        now = self.clock()
        speed = self.speed_of(pool)
        if succeeded and tokens and ticket.first_token_at is None and ticket.started_at is not None:
            # an answer that was not streamed: its whole decode at about today's concurrency
            decode_s = now - ticket.started_at - speed.prefill_s(ticket.prompt_tokens)
            if decode_s >= 0.2:
                speed.learn(len(pool.running), tokens / decode_s,
                            context=ticket.prompt_tokens + tokens / 2)
        pool.running.discard(ticket)
        self.running_by_user[ticket.user] -= 1
        pool.mark(now)
        if succeeded:
            self.lengths_of(ticket.model).add(max(tokens or 0, ticket.generated),
                                              ticket.max_tokens)
        self._dispatch()

    def _dispatch(self) -> None:
        """Give free slots to the best waiting tickets, least-loaded backend first."""
        self._notify()
        while True:
            heads = sorted((q[0] for q in self.queues.values() if q), key=lambda t: t.key)
            for ticket in heads:
                if self.running_by_user[ticket.user] >= self.max_running_per_user:
                    # this user is at their running limit; their head waits, others may go
                    ticket = self._first_runnable(self.queues[ticket.model])
                    if ticket is None:
                        continue
                pool = self._least_loaded(ticket.model)
                if pool is not None:
                    self._start(ticket, pool)
                    break
            else:
                return

    def _first_runnable(self, queue: SortedList) -> Ticket | None:
        for ticket in queue:
            if self.running_by_user[ticket.user] < self.max_running_per_user:
                return ticket
        return None

    def _least_loaded(self, model: str) -> Pool | None:
        pools = [p for p in self.pools.values() if model in p.models and p.free > 0]
        return min(pools, key=lambda p: len(p.running) / p.capacity, default=None)

    def _start(self, ticket: Ticket, pool: Pool) -> None:
        self.queues[ticket.model].remove(ticket)
        self.queued_by_user[ticket.user] -= 1
        self.running_by_user[ticket.user] += 1
        self._current_round = max(self._current_round, ticket.round)
        self._starts[ticket.model] += 1
        ticket.backend = pool.name
        ticket.started_at = now = self.clock()
        pool.running.add(ticket)
        pool.mark(now)
        ticket.admitted.set_result(pool.name)

    # -- health -----------------------------------------------------------------------------

    def set_up(self, backend: str, up: bool) -> None:
        self.set_state(backend, UP if up else DOWN)

    def set_state(self, backend: str, state: str) -> None:
        pool = self.pools[backend]
        if pool.state == state:
            return
        pool.state = state
        if state == UP:
            self._dispatch()
            return
        self._notify()
        # nobody can serve these any more: tell them now rather than at the queue timeout
        for model, queue in self.queues.items():
            if queue and not self._servable(model):
                for ticket in list(queue):
                    queue.remove(ticket)
                    self.queued_by_user[ticket.user] -= 1
                    ticket.admitted.set_exception(_backend_down(model))

    def _servable(self, model: str) -> bool:
        return any(p.state != DOWN and model in p.models for p in self.pools.values())

    # -- visibility -------------------------------------------------------------------------

    def position(self, ticket: Ticket) -> int:
        """1 for the next in line; 0 once running."""
        queue = self.queues.get(ticket.model)
        if ticket.backend is not None or queue is None or ticket not in queue:
            return 0
        return queue.index(ticket) + 1

    def eta(self, ticket: Ticket) -> float:
        """Seconds until this ticket is expected to get a slot (smoothed; inf: no estimate)."""
        if ticket.backend is not None:
            return 0.0
        now = self.clock()
        if (self._eta_dirty or ticket.estimated_at is None
                or now - ticket.estimated_at > ETA_REFRESH_S):
            # an arrival was just given its ETA by continuing the last simulation: its first
            # comment does not rerun the whole estimate (with hundreds waiting, that is the
            # cost); everyone else's reads keep it fresh
            self._refresh(now)
        if ticket.eta_at is None or ticket.eta_s == math.inf:
            return ticket.eta_s
        return max(ticket.eta_at - now, 0.0)

    def more_than(self, ticket: Ticket) -> float | None:
        """When no number is honest for this ticket (deep in line, or its wait too uncertain):
        a wait it will very likely exceed, in seconds, to say "more than N minutes"; else None."""
        eta = self.eta(ticket)
        if eta == math.inf or ticket.backend is not None:
            return None
        if self.position(ticket) <= HONEST_DEPTH and ticket.spread <= HONEST_SPREAD:
            return None
        # one standard deviation below the estimate: a bound that holds about five times in six
        return eta * max(1.0 - ticket.spread, 0.0)

    def _refresh(self, now: float) -> None:
        if self._eta_dirty or now - self._eta_computed_at > ETA_REFRESH_S:
            self._estimate(now)

    def _estimate(self, now: float) -> None:
        """Simulate each model's slots: the next in line takes the slot that frees first."""
        self._eta_computed_at, self._eta_dirty = now, False
        for model, queue in self.queues.items():
            if not queue:
                self._tails.pop(model, None)
                continue
            pools = [p for p in self.pools.values() if model in p.models and p.up]
            if not pools:
                for ticket in queue:
                    ticket.eta_s, ticket.eta_at = math.inf, None
                self._tails.pop(model, None)
                continue
            sim = self._tails[model] = _Simulation(self, model, pools, now)
            # how far a re-estimate moves by the speed's noise alone (a share of the wait)
            band = min(max(NOISE_BANDS * max(sp.wobble for sp in sim.speeds), DEAD_BAND_SHARE),
                       DEAD_BAND_MAX_SHARE)
            starts = self._starts[model]
            for ahead, ticket in enumerate(queue):
                start, deviation = sim.place(ticket)
                ticket.eta_s, ticket.spread = start, _share(deviation, start)
                ticket.estimated_at = now
                if ticket.ahead is not None and ahead != ticket.ahead - (starts - ticket.starts_seen):
                    ticket.eta_at = None  # the line ahead changed: a new estimate, not noise
                ticket.ahead, ticket.starts_seen = ahead, starts
                self._smooth(ticket, now, band)

    @staticmethod
    def _smooth(ticket: Ticket, now: float, band_share: float) -> None:
        """Move the shown start (now + ETA) to the new estimate's only past a dead band: the
        estimate's own noise (the speed of each second on a shared machine), which is no news.
        Past it, to within half the band of the estimate (noise around the new value then moves
        nothing, where following it fully made the ETA jump back and forth); far past it (an
        answer ended much sooner or later than expected, someone ahead left), all the way."""
        raw_at = now + ticket.eta_s
        if ticket.eta_at is None:
            ticket.eta_at = raw_at
            return
        difference = raw_at - ticket.eta_at
        band = max(DEAD_BAND_S, band_share * ticket.eta_s)
        if abs(difference) > FAR_BANDS * band:
            ticket.eta_at = raw_at
        elif abs(difference) > band:
            ticket.eta_at = raw_at - math.copysign(band / 2, difference)

    def waiting_by_priority(self) -> Counter[int]:
        return Counter(t.priority for q in self.queues.values() for t in q)

    def tickets_of(self, user: str) -> list[Ticket]:
        running = [t for p in self.pools.values() for t in p.running if t.user == user]
        waiting = [t for q in self.queues.values() for t in q if t.user == user]
        return running + waiting


def _share(deviation: float, mean: float) -> float:
    # a wait of under a second is certain enough, whatever its relative spread
    return deviation / mean if mean >= 1.0 else 0.0


def _backend_down(model: str) -> GatewayError:
    return GatewayError(503, f"Every backend serving '{model}' is down; retry later.",
                        "backend_down", {"Retry-After": "30"})
