"""The scheduler alone: ordering, limits, timeouts and the ETA simulation (no network)."""

from __future__ import annotations

import asyncio
import math

import pytest

from sporthub.gateway.errors import GatewayError
from sporthub.gateway.metrics import GatewayMetrics
from sporthub.gateway.scheduler import DOWN, STARTING, UP, Pool, Scheduler


def scheduler(capacity: int = 1, **limits) -> Scheduler:
    options = {"max_running_per_user": 2, "max_queued_per_user": 10, "initial_service_s": 10.0}
    return Scheduler([Pool("gpu", capacity, frozenset({"m"}))], **{**options, **limits})


async def test_order_is_priority_then_turns_then_arrival():
    s = scheduler()
    blocker = s.submit("blocker", 0, "m")
    flood = [s.submit("flooder", 0, "m") for _ in range(3)]
    other = s.submit("other", 0, "m")
    vip = s.submit("vip", 10, "m")
    assert blocker.admitted.done()
    order = []
    running = blocker
    for _ in range(5):
        s.release(running, succeeded=True)
        running = next(t for t in [*flood, other, vip] if t.admitted.done() and t not in order)
        order.append(running)
    assert [t.user for t in order] == ["vip", "flooder", "other", "flooder", "flooder"]
    assert order[1] is flood[0] and order[3] is flood[1]  # FIFO within a user


async def test_positions_and_eta_follow_the_answer_lengths_and_the_speed():
    s = scheduler()
    s.seed_lengths({"m": [40] * 10})  # every answer 40 tokens
    speed = s.speed_of(s.pools["gpu"])
    speed.per_stream[1] = 10.0  # 10 tokens/s alone: 4 s an answer
    speed.context_scale = math.inf  # at any context
    running = s.submit("a", 0, "m")
    waiting = [s.submit(user, 0, "m") for user in ("b", "c", "d")]
    assert [s.position(t) for t in waiting] == [1, 2, 3]
    assert s.position(running) == 0
    etas = [s.eta(t) for t in waiting]
    assert etas == pytest.approx([4.0, 8.0, 12.0], abs=0.1)
    s.withdraw(waiting[0])
    assert [s.position(t) for t in waiting[1:]] == [1, 2]
    assert s.eta(waiting[1]) == pytest.approx(4.0, abs=0.1)


async def test_the_per_user_queue_limit_is_a_429():
    s = scheduler(max_queued_per_user=2)
    s.submit("a", 0, "m")
    s.submit("a", 0, "m")
    s.submit("a", 0, "m")
    with pytest.raises(GatewayError) as refused:
        s.submit("a", 0, "m")
    assert refused.value.status == 429 and refused.value.code == "too_many_queued"


async def test_the_running_limit_lets_others_pass():
    s = scheduler(capacity=3, max_running_per_user=1)
    first = s.submit("a", 0, "m")
    second = s.submit("a", 0, "m")
    other = s.submit("b", 0, "m")
    assert first.admitted.done() and other.admitted.done()
    assert not second.admitted.done()  # a free slot, but "a" already runs one


async def test_a_queue_timeout_is_a_503_and_gives_the_place_up():
    s = scheduler()
    s.submit("a", 0, "m")
    late = s.submit("b", 0, "m")
    with pytest.raises(GatewayError) as timed_out:
        await s.wait(late, timeout=0.05)
    assert timed_out.value.status == 503 and timed_out.value.headers["Retry-After"]
    assert s.position(late) == 0 and s.queued_by_user["b"] == 0


async def test_cancelling_a_waiter_gives_the_place_up():
    s = scheduler()
    s.submit("a", 0, "m")
    late = s.submit("b", 0, "m")
    waiter = asyncio.create_task(s.wait(late, timeout=10))
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert s.waiting_by_priority() == {}


async def test_a_backend_that_is_down_is_skipped_and_reported():
    s = Scheduler([Pool("a", 1, frozenset({"m"})), Pool("b", 1, frozenset({"m"}))],
                  max_running_per_user=5, max_queued_per_user=5, initial_service_s=1)
    s.set_up("a", False)
    first, second = s.submit("u", 0, "m"), s.submit("v", 0, "m")
    assert first.backend == "b" and not second.admitted.done()
    s.set_up("a", True)
    assert second.backend == "a"
    s.set_up("a", False)
    s.set_up("b", False)
    with pytest.raises(GatewayError) as down:
        s.submit("w", 0, "m")
    assert down.value.status == 503


async def test_a_starting_backend_is_waited_for_and_a_down_one_refuses():
    s = Scheduler([Pool("a", 1, frozenset({"m"}), state=STARTING)],
                  max_running_per_user=5, max_queued_per_user=5, initial_service_s=1)
    waiting = s.submit("u", 0, "m")  # not refused: the model is loading
    assert not waiting.admitted.done() and s.eta(waiting) == float("inf")
    s.set_state("a", UP)
    assert waiting.backend == "a"
    queued = s.submit("v", 0, "m")
    s.set_state("a", DOWN)
    # nobody can serve it any more: told at once, not at the queue timeout
    with pytest.raises(GatewayError) as down:
        await s.wait(queued, timeout=10)
    assert down.value.code == "backend_down" and s.waiting_by_priority() == {}
    assert s.queued_by_user["v"] == 0


async def test_a_queued_ticket_keeps_the_eta_it_was_given_and_knows_its_error():
    s = scheduler()
    s.seed_lengths({"m": [40] * 10})
    speed = s.speed_of(s.pools["gpu"])
    speed.per_stream[1], speed.context_scale = 10.0, math.inf
    running = s.submit("a", 0, "m")
    waiting = [s.submit(user, 0, "m") for user in ("b", "c")]
    # a slot at once: no ETA was given, nothing to be wrong about
    assert running.eta_given_s is None and running.eta_error_s is None
    assert [t.eta_given_s for t in waiting] == pytest.approx([4.0, 8.0], abs=0.1)
    assert waiting[0].eta_error_s is None  # still waiting
    s.release(running, succeeded=True)  # long before the 4 s it was told
    first = waiting[0]
    assert first.eta_error_s == first.waited_s - first.eta_given_s
    assert first.eta_error_s < 0  # early
    assert waiting[1].eta_given_s == pytest.approx(8.0, abs=0.1)  # kept, not re-estimated


async def test_no_eta_error_for_a_wait_that_had_no_estimate():
    s = Scheduler([Pool("gpu", 1, frozenset({"m"}), state=STARTING)], max_running_per_user=2,
                  max_queued_per_user=10, initial_service_s=10.0)
    ticket = s.submit("a", 0, "m")
    assert ticket.eta_given_s == float("inf")  # shown as "unknown" while the backend loads
    s.set_state("gpu", UP)
    assert ticket.admitted.done() and ticket.eta_error_s is None


def test_the_eta_error_metric_splits_a_signed_error_by_direction():
    metrics = GatewayMetrics()
    for error in (3.0, 1.5, -2.0):
        metrics.observe_eta_error(error)
    value = metrics.registry.get_sample_value
    name = "sporthub_llm_queue_eta_error_seconds"
    assert value(f"{name}_count", {"direction": "late"}) == 2
    assert value(f"{name}_sum", {"direction": "late"}) == 4.5
    assert value(f"{name}_count", {"direction": "early"}) == 1
    assert value(f"{name}_sum", {"direction": "early"}) == 2.0
