"""The Coach answers from the athlete's own files, and says plainly when it cannot answer.

A real stack (hub, proxy, gateway, the athlete's JupyterLab with Jupyter AI) in front of the
fake backend of tests/support/fake_backend.py, which keeps every request that reached it: so the test
can read the exact prompt the model got. The athlete uploads real recordings through Jupyter's
contents API and chats over Jupyter AI's websocket, as JupyterLab does.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import time
import tomllib
from datetime import UTC, datetime, timedelta

import httpx
import pytest

import sportlab
from sportlab.athlete import LOG_HEADER
from sportlab.metrics import mean_max_power, trimp_edwards, weighted_power
from tests.e2e.test_walking_skeleton import COACH, chat
from tests.support.athletes import athlete, recordings
from tests.support.fake_backend import KEY, MODEL, FakeBackend
from tests.support.stack import HubClient, add_rows, make_stack

pytestmark = pytest.mark.stack

RIDES = ("4078723797.fit", "2020-06-01-16-52-40.fit")  # with power and heart rate
BUDGET = 3000  # tokens per day for athletes here


@pytest.fixture(scope="module")
def backend():
    fake = FakeBackend().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def hub(backend, tmp_path_factory):
    backends = (f'[{{"name": "fake", "url": "{backend.url}", "api_key": "{KEY}", '
                f'"models": ["{MODEL}"], "max_concurrency": 1}}]')
    # one server for each of this module's athletes, more than the default limit of 5 at once
    stack = make_stack(tmp_path_factory.mktemp("coach-data"), llm_backends=backends,
                       llm_tokens_per_day=str(BUDGET), active_server_limit="10",
                       llm_groups=json.dumps({"athletes": {"llm_tokens_per_day": BUDGET}}))
    stack.start()
    stack.admin = HubClient.admin(stack)
    yield stack
    stack.descendants = stack.processes()
    stack.stop()


def contents(hub, user: str, token: str, path: str) -> httpx.Response:
    return httpx.get(f"{hub.url}/user/{user}/api/contents/{path}", timeout=30,
                     headers={"Authorization": f"token {token}"})


def sportlab_numbers(paths) -> dict[str, dict]:
    """What sportlab itself says about each ride (its public API), rounded as the Coach shows."""
    frames = {p.name: sportlab.read_activity(p) for p in paths}
    hr_max = max(f["heart_rate_bpm"].max() for f in frames.values())
    numbers = {}
    for name, frame in frames.items():
        best = mean_max_power(frame["power_w"], [5, 60])
        numbers[name] = {
            "weighted power": f"{weighted_power(frame['power_w']):.0f} W",
            "HR load": f"{trimp_edwards(frame['heart_rate_bpm'].dropna(), hr_max):.0f}",
            "best 5 s": f"{best[5]:.0f} W", "1 min": f"{best[60]:.0f} W",
        }
    return numbers


def test_first_start_makes_the_activities_folder_with_a_readme(hub):
    token = athlete(hub, "dora")
    listing = contents(hub, "dora", token, "activities").json()
    assert [c["name"] for c in listing["content"]] == ["README.md"]
    readme = contents(hub, "dora", token, "activities/README.md").json()["content"]
    assert "log.csv" in readme and "/data" in readme


def test_the_coach_answers_from_the_athletes_own_rides(hub, backend, activities):
    token = athlete(hub, "erik", {**recordings(activities, RIDES),
                                  "activities/broken.fit": b"this is not a FIT file"})
    before = {c["name"]: c["last_modified"]
              for c in contents(hub, "erik", token, "activities").json()["content"]}

    served = len(backend.served)
    replies = asyncio.run(chat(hub, "erik", token, "Was my last week too hard? tokens=5",
                               persona=COACH, chat_file="load.chat"))
    assert len(backend.served) == served + 1, "one request reached the model"
    prompt = backend.served[-1]["body"]["messages"][0]
    assert prompt["role"] == "system"
    summary = prompt["content"]
    for name, numbers in sportlab_numbers([activities / n for n in RIDES]).items():
        line = next(line for line in summary.splitlines() if name in line)
        for label, value in numbers.items():
            assert f"{label} {value}" in line, (label, value, line)
    assert "ACWR" in summary and "Impellizzeri" in summary
    # the corrupt file is named, and the answer still came
    assert re.search(r"Could not read.*broken\.fit", summary)
    answer = replies[-1]["body"]
    assert answer.startswith("tok")
    assert "Data used:" in answer and all(name in answer for name in RIDES)
    assert "broken.fit" not in answer.split("Data used:")[1]

    # nothing in the home changed: the Coach only reads
    after = {c["name"]: c["last_modified"]
             for c in contents(hub, "erik", token, "activities").json()["content"]}
    assert after == before


def test_data_command_shows_the_summary_without_asking_the_model(hub, backend):
    token = hub.admin.new_token("erik", note="tests")
    served = len(backend.served)
    replies = asyncio.run(chat(hub, "erik", token, "/data", persona=COACH,
                               chat_file="data.chat"))
    body = replies[-1]["body"]
    assert "Your training data" in body
    assert "weighted power" in body and "broken.fit" in body
    assert len(backend.served) == served, "/data must not reach the model"


def test_log_and_profile_in_the_chat_write_the_athletes_files_and_nothing_unclear(hub, backend):
    token = athlete(hub, "lena")
    served = len(backend.served)

    def say(text: str) -> str:
        replies = asyncio.run(chat(hub, "lena", token, text, persona=COACH,
                                   chat_file="checkin.chat"))
        return replies[-1]["body"]

    def log_rows() -> list[dict]:
        response = contents(hub, "lena", token, "activities/log.csv")
        if response.status_code == 404:
            return []
        return list(csv.DictReader(io.StringIO(response.json()["content"])))

    said = say("/log rpe 12 60min")
    assert said.startswith("Nothing was written") and "RPE: 12 is not possible" in said, said
    assert log_rows() == []
    said = say("/log rpe 7 60min sleep 7.5h soreness 3")
    assert said.startswith("Written to"), said
    [row] = log_rows()
    assert list(row) == list(LOG_HEADER)
    assert (row["rpe"], row["minutes"], row["sleep_h"], row["soreness"], row["sleep_quality"]) \
        == ("7", "60", "7.5", "3", "")
    # a bare /log asks (the values that follow are taken as the answer while the chat stays
    # open: held by the chat's persona, which a new websocket here does not always meet)
    assert "/log rpe 7" in say("/log")
    assert say("/log quality 2 yesterday").startswith("Written to")
    assert [r["sleep_quality"] for r in log_rows()] == ["", "2"]

    # Russian words in a Russian interface, answered in Russian
    interface(hub, "lena", token, "ru-RU,ru;q=0.9")
    said = say("/profile чссмакс 192 ftp 265")
    assert said.startswith("Записано в `activities/profile.toml`"), said
    profile = contents(hub, "lena", token, "activities/profile.toml").json()["content"]
    thresholds = tomllib.loads(profile)
    assert (thresholds["hr_max_bpm"]["value"], thresholds["ftp_w"]["value"]) == (192, 265)
    said = say("/profile чссмакс 400")
    assert said.startswith("Ничего не записано"), said
    assert contents(hub, "lena", token, "activities/profile.toml").json()["content"] == profile
    assert len(backend.served) == served, "/log and /profile never reach the model"


def test_a_chat_is_still_there_after_the_server_stops_and_starts(hub, backend):
    token = hub.admin.new_token("erik", note="tests")
    saved = json.loads(contents(hub, "erik", token, "load.chat").json()["content"])
    asked = [m["body"] for m in saved["messages"] if m["sender"] != COACH]
    assert asked == ["Was my last week too hard? tokens=5"]
    assert hub.admin.api("DELETE", "/users/erik/server").status_code in (202, 204)
    deadline = time.monotonic() + 60
    while hub.admin.api("GET", "/users/erik").json()["servers"]:
        assert time.monotonic() < deadline, "erik's server did not stop"
        time.sleep(0.5)
    hub.admin.start_server("erik")
    again = json.loads(contents(hub, "erik", token, "load.chat").json()["content"])
    assert again["messages"] == saved["messages"]
    # and Jupyter AI reads it back: the Coach's next request carries the earlier exchange
    asyncio.run(chat(hub, "erik", token, "And this week? tokens=2", persona=COACH,
                     chat_file="load.chat"))
    turns = [m["content"] for m in backend.served[-1]["body"]["messages"][1:]]
    assert turns[0] == "Was my last week too hard? tokens=5"
    assert turns[1].startswith("tok") and turns[-1] == "And this week? tokens=2"


def status(hub, user: str, token: str) -> dict:
    """What JupyterLab's status bar asks the person's own server."""
    response = httpx.get(f"{hub.url}/user/{user}/sporthub/status", timeout=30,
                         headers={"Authorization": f"token {token}"})
    assert response.status_code == 200, response.text
    return response.json()


def test_the_status_says_idle_then_waiting_in_line_then_answering(hub, backend):
    token = athlete(hub, "hana")
    idle = status(hub, "hana", token)
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    assert idle["state"] == "idle" and idle["position"] is None
    assert idle["budget"] == {"used": 0, "limit": BUDGET, "resets_at": f"{tomorrow}T00:00:00Z"}
    # someone else holds the only slot; hana's question waits behind it
    assert hub.admin.api("POST", "/users/ivan").status_code == 201
    assert hub.admin.api("POST", "/groups/athletes/users", json={"users": ["ivan"]}
                         ).status_code == 200
    other = hub.admin.new_token("ivan")

    async def ask(who: str, text: str) -> httpx.Response:
        async with httpx.AsyncClient(timeout=120) as client:
            return await client.post(
                f"{hub.gateway}/v1/chat/completions", headers={"Authorization": f"Bearer {who}"},
                json={"model": MODEL, "messages": [{"role": "user", "content": text}]})

    async def until(state: str) -> dict:
        async with asyncio.timeout(60):
            while (seen := await asyncio.to_thread(status, hub, "hana", token))["state"] != state:
                await asyncio.sleep(0.2)
        return seen

    async def scenario():
        first = asyncio.create_task(ask(other, "tokens=60 delay=0.1"))
        while backend.active < 1:
            await asyncio.sleep(0.05)
        mine = asyncio.create_task(ask(token, "tokens=30 delay=0.1"))
        waiting = await until("waiting")
        answering = await until("answering")
        await asyncio.gather(first, mine)
        return waiting, answering

    waiting, answering = asyncio.run(scenario())
    assert waiting["position"] == 1 and waiting["eta_s"] is not None
    assert answering["position"] is None
    after = status(hub, "hana", token)
    assert after["state"] == "idle"
    spent = sum(r["prompt_tokens"] + r["completion_tokens"] for r in hub.ledger_rows()
                if r["user"] == "hana")
    assert after["budget"]["used"] == spent > 0


def test_over_budget_is_said_in_plain_words_with_the_reset_time(hub, backend):
    token = athlete(hub, "fred")
    # fred spent the day's budget earlier today (a ledger row as the gateway writes it)
    add_rows(hub, [{"user": "fred", "started_at": datetime.now(UTC), "prompt_tokens": BUDGET,
                    "completion_tokens": 0, "endpoint": "chat/completions"}])
    served = len(backend.served)
    replies = asyncio.run(chat(hub, "fred", token, "And now? tokens=3", persona=COACH,
                               chat_file="budget.chat"))
    assert len(backend.served) == served, "the gateway must refuse before the model"
    said = replies[-1]["body"]
    assert said.startswith("You have used today's AI budget. It resets at 00:00 UTC"), said
    assert_plain(said)
    assert status(hub, "fred", token)["state"] == "over_budget"


def interface(hub, user: str, token: str, accept_language: str) -> None:
    """JupyterLab loads its language as a browser with this Accept-Language would."""
    response = httpx.get(f"{hub.url}/user/{user}/lab/api/translations/default",
                         headers={"Authorization": f"token {token}",
                                  "Accept-Language": accept_language})
    assert response.status_code == 200, response.text


def test_backend_down_is_said_in_plain_words_in_the_interface_language(hub, backend):
    token = athlete(hub, "galina")
    backend.stop()  # the last test of the module: the model is gone
    interface(hub, "galina", token, "ru-RU,ru;q=0.9,en;q=0.5")
    # the Coach's own words follow the interface, whatever the question's language
    replies = asyncio.run(chat(hub, "galina", token, "How was my week?", persona=COACH,
                               chat_file="down.chat"))
    said = replies[-1]["body"]
    assert said.startswith("Модель ИИ сейчас недоступна. Попробуйте ещё раз"), said
    assert_plain(said)
    # this backend is not marked demo: no demo notice
    assert not any("демонстрационная" in r["body"] or "demo model" in r["body"] for r in replies)
    interface(hub, "galina", token, "en-GB,en;q=0.9")
    replies = asyncio.run(chat(hub, "galina", token, "Как прошла моя неделя?", persona=COACH,
                               chat_file="down-en.chat"))
    said = replies[-1]["body"]
    assert said.startswith("The AI model is not available right now. Please try again"), said
    assert_plain(said)
    deadline = time.monotonic() + 60
    while status(hub, "galina", token)["state"] != "unavailable":
        assert time.monotonic() < deadline, "the status never said the model is down"
        time.sleep(1)


def assert_plain(text: str) -> None:
    """A sentence for a person: no status code, no error code, no traceback."""
    assert not re.search(r"\b[45]\d\d\b", text), text
    assert not re.search(r"Traceback|Error|HTTP|[a-z]+_[a-z]+", text), text
