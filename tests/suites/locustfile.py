"""Locust scenario of the load suite (run by tests/suites/test_gateway_load.py, not by hand).

Five people chat the whole time (a question, the answer streamed, a short pause, again); a few
seconds in, fifty others send one question each, all at once. Each simulated person has an
account of their own; the tokens come from the file named by LOAD_TOKENS_FILE.
"""

import json
import os
import time
from pathlib import Path

from locust import HttpUser, between, constant, task
from locust.exception import StopUser

TOKENS = json.loads(Path(os.environ["LOAD_TOKENS_FILE"]).read_text())
MODEL = os.environ["LOAD_MODEL"]
BURST_AT_S = float(os.environ.get("LOAD_BURST_AT_S", "8"))
CHATTERS = 5
STARTED = time.monotonic()
# the first CHATTERS tokens are the chatters', the rest the burst's (the test reads them so)
_free = {"Chatter": list(TOKENS[:CHATTERS]), "Burst": list(TOKENS[CHATTERS:])}


def next_token(user) -> str:
    return _free[type(user).__name__].pop(0)


def ask(user, text: str) -> None:
    body = {"model": MODEL, "stream": True, "max_tokens": 32,
            "messages": [{"role": "user", "content": text}]}
    with user.client.post("/v1/chat/completions", json=body, name="chat",
                          headers={"Authorization": f"Bearer {user.token}"},
                          catch_response=True) as response:
        if response.status_code != 200:
            response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
        elif not response.text.rstrip().endswith("data: [DONE]") or '"error"' in response.text:
            response.failure(f"stream did not finish cleanly: {response.text[-200:]}")


class Chatter(HttpUser):
    fixed_count = CHATTERS
    wait_time = between(0.2, 0.6)

    def on_start(self):
        self.token = next_token(self)

    @task
    def chat(self):
        ask(self, "tokens=8 delay=0.03")


class Burst(HttpUser):
    fixed_count = len(TOKENS) - CHATTERS
    wait_time = constant(0)

    def on_start(self):
        self.token = next_token(self)
        time.sleep(max(0.0, BURST_AT_S - (time.monotonic() - STARTED)))  # gevent-patched

    @task
    def once(self):
        ask(self, "tokens=8 delay=0.03")
        raise StopUser()
