"""How long an athlete waits: from the click on "Sign in" to JupyterLab open on their Coach chat,
ready for typing, and from their first question to the Coach's first words.

Run from the repository root with the project venv:

    .venv/bin/python benchmarks/athlete_login.py [--runs 3] [--smoke]

``--smoke`` (``make bench-smoke``, part of ``make test-all``) does one run without the returning
login, so a change that breaks the benchmark is seen in CI; its figures mean nothing.

The real stack on the embedded default (``sporthub up`` as ``make up`` starts it: hub, proxy,
gateway, llama-server with the embedded model, local profile) and Debian's Chromium driven by
Playwright, as tests/e2e/test_athlete_landing.py drives it. Each run is a new athlete (an account
made by the admin, its password set through the invite link):

- **first login**: the click on "Sign in" until JupyterLab shows the Coach's chat with the Coach
  loaded in its input (Jupyter AI's persona), split into the hub's part up to the JupyterLab page
  (sign-in and the spawn, whose own time is the hub's "took N seconds to start"), the JupyterLab
  page until its shell is drawn, and the shell until the Coach's chat is ready;
- **first words**: the question sent until the Coach's answer shows its first words, and until the
  answer is complete (its ledger row); next to it the model's own time to first token (the same
  question straight to llama-server) and through the gateway, measured with the model idle just
  before each login: the floor;
- **returning**: the same athlete signs in again after their server was stopped (their system user
  and home are there already).

Medians over the runs; the last line printed is one JSON object. No figure is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PASSWORD = "long-enough-passphrase-42"
QUESTION = "How should I warm up before an interval session?"
MODEL = "smollm2-135m-instruct"
ANSWER_WAIT_S = 180  # past this the whole answer is reported as not measured, not as a failure
# a first JupyterLab on a busy 2-core machine is slow: wait, do not fail
TIMEOUT_MS = 300_000


def first_login(stack, browser, name: str, locale: str) -> tuple[dict, object]:
    """Sign in through the form; the moments (s after the click) until the Coach is ready."""
    context = browser.new_context(locale=locale, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{stack.url}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", PASSWORD)
    marks: dict[str, float] = {}
    start = time.perf_counter()

    def navigated(frame):
        if frame == page.main_frame and "/lab" in frame.url and "lab_page" not in marks:
            marks["lab_page"] = time.perf_counter() - start

    page.on("framenavigated", navigated)
    page.click("#login_submit")
    page.wait_for_url(f"**/user/{name}/lab**")
    marks.setdefault("lab_page", time.perf_counter() - start)
    page.wait_for_selector("#jp-main-dock-panel")
    marks["shell"] = time.perf_counter() - start
    page.locator("#jp-main-dock-panel .lm-TabBar-tab", has_text="coach").wait_for()
    marks["coach_tab"] = time.perf_counter() - start
    page.locator(".jp-chat-message").first.wait_for()
    marks["welcome"] = time.perf_counter() - start
    # ready for typing: the input is there and Jupyter AI has loaded the Coach into it
    page.locator(".jp-chat-input-container textarea").first.wait_for()
    page.locator(".jp-chat-input-container").get_by_text("Coach").first.wait_for()
    marks["ready"] = time.perf_counter() - start
    return marks, page


def first_words(page, stack, name: str) -> dict:
    """Ask the Coach; seconds until its answer shows words, and until it is complete (the
    gateway's ledger row of the answer: written as the stream ends)."""
    rows = len([r for r in stack.ledger_rows() if r["user"] == name])
    # the Coach's messages after its welcome carry no header of their own (one sender in a row):
    # the answer is the message after the question's
    messages = page.locator(".jp-chat-message")
    before = messages.count()
    box = page.locator(".jp-chat-input-container textarea").first
    box.fill(QUESTION)
    start = time.perf_counter()
    box.press("Enter")
    marks: dict[str, float | None] = {}
    deadline = start + TIMEOUT_MS / 1000
    while "first_words" not in marks:
        if messages.count() >= before + 2:
            text = " ".join(messages.nth(before + 1).locator(".jp-chat-rendered-message")
                            .all_inner_texts())
            if re.search(r"\w{2}", text):
                marks["first_words"] = time.perf_counter() - start
        if time.perf_counter() > deadline:
            texts = messages.all_inner_texts()[before:]
            raise RuntimeError(f"the Coach did not answer: the chat shows {texts}")
        page.wait_for_timeout(20)
    # the whole answer: as long as the model takes to write it (up to the Coach's max_tokens)
    deadline = time.perf_counter() + ANSWER_WAIT_S
    marks["answer"] = None
    while time.perf_counter() < deadline:
        if len([r for r in stack.ledger_rows() if r["user"] == name]) > rows:
            marks["answer"] = time.perf_counter() - start
            break
        page.wait_for_timeout(100)
    return marks


def spawn_seconds(stack, name: str, seen: int) -> tuple[float | None, int]:
    """The hub's own measure of the spawn: its log's "User <name> took N seconds to start"."""
    found = re.findall(rf"User {re.escape(name)} took ([\d.]+) seconds to start", stack.log())
    return (float(found[seen]) if len(found) > seen else None), len(found)


def model_ttft(url: str, headers: dict, model: str, nonce: str = "") -> float:
    """Seconds to the first streamed token of the question, asked straight (no chat history);
    ``nonce`` makes the prompt one llama-server has not cached."""
    import httpx

    body = {"model": model, "stream": True, "max_tokens": 32,
            "messages": [{"role": "user", "content": f"{nonce}{QUESTION}"}]}
    start = time.perf_counter()
    with httpx.stream("POST", url, json=body, headers=headers, timeout=120) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
                choices = json.loads(line[5:]).get("choices") or [{}]
                if (choices[0].get("delta") or {}).get("content"):
                    return time.perf_counter() - start
    raise RuntimeError(f"{url}: no token")


def median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="athletes, each a first login")
    parser.add_argument("--locale", default="en-US", help="the browser's language")
    parser.add_argument("--no-returning", action="store_true",
                        help="skip the second login after a stop")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data and logs")
    parser.add_argument("--smoke", action="store_true", help="one run, for CI: it still runs")
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.no_returning = 1, True

    from playwright.sync_api import sync_playwright

    from tests.support.browser import CHROMIUM, FLAGS
    from tests.support.stack import HubClient, create_account, make_stack, set_password, started

    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install chromium")
    began = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="login-bench-"))
    print(f"athlete login benchmark: python {platform.python_version()}, {os.cpu_count()} cores "
          f"(load average {os.getloadavg()[0]:.2f}), {args.runs} runs, data in {tmp}", flush=True)
    runs: list[dict] = []
    floor: dict[str, list[float]] = {"model_ttft": [], "gateway_ttft": []}
    try:
        setup = time.monotonic()
        with started(make_stack(tmp / "stack")) as stack, sync_playwright() as playwright:
            admin = HubClient.admin(stack)
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
            print(f"stack and browser up after {time.monotonic() - setup:.0f} s", flush=True)
            for i in range(args.runs):
                name = f"athlete{i}"
                assert set_password(create_account(admin, name, "athletes"),
                                    PASSWORD).status_code == 302
                run = {"name": name}
                # the floor, with the model idle (an answer still being written would share it):
                # the model's own first token, and through the gateway
                key = (stack.data_dir / "secrets" / "embedded-llm-key").read_text().strip()
                direct = (f"{stack.llm_url}/v1/chat/completions",
                          {"Authorization": f"Bearer {key}"}, MODEL)
                if i == 0:
                    model_ttft(*direct, nonce="Warm-up. ")  # a cold llama-server's first answer
                floor["model_ttft"].append(model_ttft(*direct, nonce=f"Athlete {name}. "))
                token = admin.new_token(name, note="benchmark")
                floor["gateway_ttft"].append(model_ttft(
                    f"{stack.gateway}/v1/chat/completions",
                    {"Authorization": f"Bearer {token}"}, MODEL, nonce=f"Runner {name}. "))
                marks, page = first_login(stack, browser, name, args.locale)
                run["first"] = marks
                run["first"]["spawn"], seen = spawn_seconds(stack, name, 0)
                run["words"] = first_words(page, stack, name)
                page.context.close()
                if not args.no_returning:
                    response = admin.api("DELETE", f"/users/{name}/server")
                    assert response.status_code in (202, 204), response.text
                    deadline = time.monotonic() + 120
                    while admin.api("GET", f"/users/{name}").json()["servers"]:
                        assert time.monotonic() < deadline, f"{name}'s server did not stop"
                        time.sleep(0.5)
                    marks, page = first_login(stack, browser, name, args.locale)
                    run["returning"] = marks
                    run["returning"]["spawn"], _ = spawn_seconds(stack, name, seen)
                    page.context.close()
                runs.append(run)
                f, w = run["first"], run["words"]
                print(f"  {name}: first login ready after {f['ready']:.1f} s (spawn "
                      f"{f['spawn'] or float('nan'):.1f} s, JupyterLab page at "
                      f"{f['lab_page']:.1f} s, shell {f['shell']:.1f} s); first words "
                      f"{w['first_words']:.2f} s, answer {w['answer'] or float('nan'):.2f} s"
                      + (f"; returning ready after {run['returning']['ready']:.1f} s"
                         if "returning" in run else ""), flush=True)
            browser.close()
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    def med(kind: str, mark: str) -> float | None:
        return median([r[kind][mark] for r in runs if kind in r and mark in r[kind]])

    summary = {f"first_{m}_s": med("first", m)
               for m in ("lab_page", "spawn", "shell", "coach_tab", "welcome", "ready")}
    summary.update({f"returning_{m}_s": med("returning", m)
                    for m in ("lab_page", "spawn", "shell", "ready")})
    summary["first_words_s"] = med("words", "first_words")
    summary["answer_s"] = med("words", "answer")
    summary["model_ttft_s"] = median(floor["model_ttft"])
    summary["gateway_ttft_s"] = median(floor["gateway_ttft"])
    first = summary
    print()
    print("first login (s after the click on Sign in, medians):")
    print(f"  JupyterLab page requested {first['first_lab_page_s']}  (the hub's spawn took "
          f"{first['first_spawn_s']})")
    print(f"  shell drawn               {first['first_shell_s']}")
    print(f"  Coach's tab, welcome      {first['first_coach_tab_s']}, {first['first_welcome_s']}")
    print(f"  ready for typing          {first['first_ready_s']}")
    if first["returning_ready_s"] is not None:
        print(f"returning athlete: ready {first['returning_ready_s']} (spawn "
              f"{first['returning_spawn_s']})")
    print(f"first words {first['first_words_s']} s, whole answer {first['answer_s']} s; the model's "
          f"own first token {first['model_ttft_s']} s, through the gateway "
          f"{first['gateway_ttft_s']} s")
    summary["runs"] = len(runs)
    summary["elapsed_s"] = round(time.monotonic() - began, 1)
    summary["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    print(f"\ntook {summary['elapsed_s']:.0f} s (load average at the end "
          f"{summary['load_average_1m_at_end']:.2f}: other work on the machine skews the figures)")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
