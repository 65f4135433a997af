"""The queue's ETA on the real embedded model (llama-server + SmolLM2), end to end.

One slot, one long answer holding it, two people waiting behind: each waiting stream hears its
place and an ETA in the SSE comment lines, ``/queue`` shows the same, the ETA is updated as the
line moves, the ledger keeps the first ETA told, and the real wait ends within a generous bound
of it. The machine may be loaded by anything else: no assertion here depends on how fast the
model is, only on the ETA being consistent with the waits that happened (the accuracy figures
are ``benchmarks/queue_eta.py``'s).
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.support.gateway_client import COMMENT, new_user
from tests.support.stack import HubClient, make_stack, started

pytestmark = pytest.mark.stack

MODEL = "smollm2-135m-instruct"
PLAN = "Write a detailed 7-day training plan for a 10 km runner, day by day, with paces."
QUESTION = "In two sentences: one tip about hill repeats?"


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    stack = make_stack(tmp_path_factory.mktemp("eta-embedded"), llm_max_concurrency="1",
                       llm_tokens_per_day="1000000", llm_max_tokens="400")
    with started(stack):
        stack.admin = HubClient.admin(stack)
        yield stack


def chat(text: str, max_tokens: int) -> dict:
    return {"model": MODEL, "stream": True, "max_tokens": max_tokens, "temperature": 0,
            "seed": 19, "messages": [{"role": "user", "content": text}],
            "stream_options": {"include_usage": True}}


async def read(gw, token: str, body: dict) -> dict:
    """Stream one answer: its comments (client time, position, ETA, more-than), the first
    content chunk's time, and the usage."""
    heard = {"comments": [], "first_token": None, "usage": None, "sent": time.monotonic()}
    async with httpx.AsyncClient(timeout=300) as client, client.stream(
            "POST", f"{gw.gateway}/v1/chat/completions", json=body,
            headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            match = COMMENT.match(line)
            if match:
                heard["comments"].append((time.monotonic(), int(match.group(1)),
                                          int(match.group(2)), match.group(3)))
            elif line.startswith("data: {") and heard["first_token"] is None \
                    and '"content":"' in line.replace(" ", ""):
                heard["first_token"] = time.monotonic()
            elif line.startswith("data: {") and '"usage":{' in line.replace(" ", ""):
                heard["usage"] = line
    return heard


async def queue(gw, token: str) -> list[dict]:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(f"{gw.gateway}/queue",
                                    headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        return response.json()["requests"]


def test_an_eta_is_announced_updated_and_ends_near_the_real_wait(gw):
    holder, first, second = new_user(gw), new_user(gw), new_user(gw)

    async def scenario():
        # the estimator learns the model's speed and answer lengths from a few answers first,
        # as it would from the ledger and the first requests of an evening
        for text, n in ((QUESTION, 48), (PLAN, 160), (QUESTION, 48)):
            await read(gw, holder, chat(text, n))
        hold = asyncio.create_task(read(gw, holder, chat(PLAN, 300)))
        while not any(r["state"] == "running" for r in await queue(gw, holder)):
            await asyncio.sleep(0.02)
        one = asyncio.create_task(read(gw, first, chat(QUESTION, 48)))
        while not await queue(gw, first):
            await asyncio.sleep(0.02)
        two = asyncio.create_task(read(gw, second, chat(QUESTION, 48)))
        # /queue tells the second one its place and the same kind of ETA as the comments
        looks = []
        while not two.done() and len(looks) < 200:
            waiting = [r for r in await queue(gw, second) if r["state"] == "waiting"]
            if waiting:
                looks.append(waiting[0])
            elif looks:
                break
            await asyncio.sleep(0.1)
        return await asyncio.gather(hold, one, two), looks

    (_, one, two), looks = asyncio.run(scenario())

    # /queue: a place and a whole-second ETA while waiting; "more than" (when the few answers
    # seen spread too much for a number) only ever a bound below the ETA
    assert looks, "the second request was never seen waiting in /queue"
    assert {look["position"] for look in looks} <= {1, 2} and looks[0]["position"] == 2
    assert all(isinstance(look["eta_s"], int) and look["eta_s"] >= 0 for look in looks)
    assert all(look["eta_more_than_s"] is None or look["eta_more_than_s"] <= look["eta_s"]
               for look in looks)

    rows = gw.ledger_rows()[-3:]  # hold, one, two (by arrival)
    assert rows[0]["eta_ms"] is None  # it got its slot at once: no wait was told
    for heard, row in ((one, rows[1]), (two, rows[2])):
        assert heard["usage"] and heard["first_token"] is not None
        comments = heard["comments"]
        # announced while it waited (before its first token), with a finite ETA
        assert comments, "a waiting stream heard no place in line"
        assert comments[0][0] < heard["first_token"]
        assert all(eta >= 0 and (more is None or int(more) <= eta)
                   for _, _, eta, more in comments)
        # the ledger holds the first ETA told, and the real wait
        assert row["eta_ms"] is not None and row["queued_ms"] is not None
        assert abs(row["eta_ms"] / 1000 - comments[0][2]) <= 1.0
        # ends within a generous bound of what was told: a slow or loaded machine moves both
        # the speed learnt and the wait alike, so a factor of three (plus ten seconds for a
        # wait of a few) holds anywhere this runs
        told, waited = row["eta_ms"] / 1000, row["queued_ms"] / 1000
        assert waited <= 3 * told + 10 and told <= 3 * waited + 10, (told, waited)

    # updated as the line moved: the second one was second, then first, and heard both
    positions = [p for _, p, _, _ in two["comments"]]
    assert positions[0] == 2 and 1 in positions and positions == sorted(positions, reverse=True)
    # Not asserted here: that the expected start (time heard + ETA) does not swing. On the real
    # model on a loaded two-core machine it did (43 comments over a minute: 558 s of moves for a
    # net 6 s, 2026-12-02): an open defect of the estimator, asserted on the fake backend by
    # test_eta.py's test_etas_while_waiting_follow_the_queue_and_do_not_jump_back_and_forth.
    # the last ETA before the slot was closer to the truth than a wild guess: within the same
    # generous bound of the time that was really left
    at, _, eta, _ = two["comments"][-1]
    left = two["first_token"] - at
    assert eta <= 3 * left + 10, (eta, left)
