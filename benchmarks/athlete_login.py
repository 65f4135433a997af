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
import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PASSWORD = "long-enough-passphrase-42"
QUESTION = "How should I warm up before an interval session?"
MODEL = "smollm2-135m-instruct"
ANSWER_WAIT_S = 180  # past this the whole answer is reported as not measured, not as a failure
# a first JupyterLab on a busy 2-core machine is slow: wait, do not fail
TIMEOUT_MS = 300_000


def sign_in(browser, hub_url: str, name: str, locale: str) -> tuple[object, dict, float]:
    """Sign in through the form until JupyterLab's shell is drawn: the page, the moments (s
    after the click on Sign in) and the click's own moment."""
    context = browser.new_context(locale=locale, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{hub_url}/hub/login")
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
    return page, marks, start


def first_login(stack, browser, name: str, locale: str) -> tuple[dict, object]:
    """Sign in; the moments (s after the click) until the Coach is ready."""
    page, marks, start = sign_in(browser, stack.url, name, locale)
    page.locator("#jp-main-dock-panel .lm-TabBar-tab", has_text="coach").wait_for()
    marks["coach_tab"] = time.perf_counter() - start
    page.locator(".jp-chat-message").first.wait_for()
    marks["welcome"] = time.perf_counter() - start
    # ready for typing: the input is there and Jupyter AI has loaded the Coach into it
    page.locator(".jp-chat-input-container textarea").first.wait_for()
    page.locator(".jp-chat-input-container").get_by_text("Coach").first.wait_for()
    marks["ready"] = time.perf_counter() - start
    return marks, page


def plain_login(hub, browser, name: str, locale: str) -> dict:
    """The floor: sign in to the plain hub; the moments until JupyterLab's Launcher is ready
    (its cards drawn: the kernels are listed), as the Coach's chat is for an athlete."""
    page, marks, start = sign_in(browser, hub.url, name, locale)
    page.locator(".jp-LauncherCard").first.wait_for()
    marks["ready"] = time.perf_counter() - start
    page.context.close()
    return marks


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


def spawn_seconds(hub, name: str, seen: int) -> tuple[float | None, int]:
    """The hub's own measure of the spawn: its log's "User <name> took N seconds to start"."""
    found = re.findall(rf"User {re.escape(name)} took ([\d.]+) seconds to start", hub.log())
    return (float(found[seen]) if len(found) > seen else None), len(found)


def model_ttft(url: str, headers: dict, model: str, nonce: str = "", system: str = "") -> float:
    """Seconds to the first streamed token of the question, asked straight (no chat history),
    after ``system`` if given; ``nonce`` makes the prompt one llama-server has not cached."""
    import httpx

    messages = [{"role": "user", "content": f"{nonce}{QUESTION}"}]
    if system:
        messages.insert(0, {"role": "system", "content": f"{nonce}{system}"})
    body = {"model": model, "stream": True, "max_tokens": 32, "messages": messages}
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


@dataclass
class Session:
    """One benchmark's stack, plain hub and browser: each run is a new athlete."""

    stack: object
    plain: object
    admin: object
    browser: object
    locale: str

    def measure(self, i: int, direct: tuple, system: str, returning: bool) -> dict:
        from tests.support.stack import create_account, set_password

        name = f"athlete{i}"
        assert set_password(create_account(self.admin, name, "athletes"),
                            PASSWORD).status_code == 302
        run: dict = {"name": name, "plain_name": f"{self.plain.user_prefix}{i}"}
        # the floor of the first words, with the model idle (an answer still being written
        # would share it): the model's own first token on the question alone (a prompt it has
        # not cached), on the Coach's own prompt (the first time, then cached as the Coach's
        # will be: llama-server keeps a prompt's prefix, and the Coach's system prompt and
        # summary are the same for every new athlete), and through the gateway
        token = self.admin.new_token(name, note="benchmark")
        run["model"] = {
            "bare": model_ttft(*direct, nonce=f"Athlete {name}. "),
            "coach_prompt_cold": model_ttft(*direct, system=system),
            "coach_prompt": model_ttft(*direct, system=system),
            "gateway": model_ttft(f"{self.stack.gateway}/v1/chat/completions",
                                  {"Authorization": f"Bearer {token}"}, MODEL,
                                  nonce=f"Runner {name}. "),
        }
        # who goes first alternates: the load of the machine drifts within a run
        order = (self.plain_login, self.coach_login)
        order = order if i % 2 == 0 else order[::-1]
        seen = {login: login(run, "first", 0) for login in order}
        if returning:
            response = self.admin.api("DELETE", f"/users/{name}/server")
            assert response.status_code in (202, 204), response.text
            deadline = time.monotonic() + 120
            while self.admin.api("GET", f"/users/{name}").json()["servers"]:
                assert time.monotonic() < deadline, f"{name}'s server did not stop"
                time.sleep(0.5)
            self.plain.stop_server(run["plain_name"])
            for login in order:
                login(run, "returning", seen[login])
        return run

    def coach_login(self, run: dict, kind: str, seen: int) -> int:
        run[f"{kind}_load"] = load()
        marks, page = first_login(self.stack, self.browser, run["name"], self.locale)
        marks["spawn"], seen = spawn_seconds(self.stack, run["name"], seen)
        run[kind] = marks
        if kind == "first":
            run["words"] = first_words(page, self.stack, run["name"])
        page.context.close()
        return seen

    def plain_login(self, run: dict, kind: str, seen: int) -> int:
        run[f"plain_{kind}_load"] = load()
        marks = plain_login(self.plain, self.browser, run["plain_name"], self.locale)
        marks["spawn"], seen = spawn_seconds(self.plain, run["plain_name"], seen)
        run[f"plain_{kind}"] = marks
        return seen


def coach_system_prompt() -> str:
    """What the Coach sends before a new athlete's question (persona.py): its system prompt and
    the summary of an activities folder with no recordings yet."""
    from sporthub_coach.athlete_data import summarise
    from sporthub_coach.persona import SYSTEM_PROMPT

    with tempfile.TemporaryDirectory() as empty:
        return f"{SYSTEM_PROMPT}\n\n{summarise(Path(empty)).text}"


def load() -> float:
    return round(os.getloadavg()[0], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="athletes, each a first login")
    parser.add_argument("--locale", default="en-US", help="the browser's language")
    parser.add_argument("--no-returning", action="store_true",
                        help="skip the second login after a stop")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data and logs")
    parser.add_argument("--smoke", action="store_true", help="one run, for CI: it still runs")
    parser.add_argument("--profile", choices=("local", "docker"), default="local",
                        help="SportHub's profile (docker: the image must be built, make images)")
    parser.add_argument("--image", default="sporthub-singleuser:latest",
                        help="the docker profile's singleuser image")
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.no_returning = 1, True

    from playwright.sync_api import sync_playwright

    from benchmarks.support import plain_hub
    from tests.support.browser import CHROMIUM, FLAGS
    from tests.support.stack import HubClient, free_port, make_stack, started

    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install chromium")
    began = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="login-bench-"))
    print(f"athlete login benchmark: python {platform.python_version()}, {os.cpu_count()} cores "
          f"(load average {load():.2f}), {args.runs} runs, data in {tmp}", flush=True)
    plain_hub.ensure_venv()  # before anything is timed: a first run installs it
    system = coach_system_prompt()
    runs: list[dict] = []
    stopped: dict = {}
    try:
        setup = time.monotonic()
        with profile_settings(args.profile, args.image) as (settings, env):
            stack = make_stack(tmp / "stack", **settings)
            stack.env.update(env)
            stack.session = True  # a process group of its own, as `make up` has: for Ctrl-C
            with started(stack), \
                    plain_hub.running(tmp / "plain", PASSWORD, free_port) as plain, \
                    sync_playwright() as playwright:
                admin = HubClient.admin(stack)
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
                print(f"stack, plain hub and browser up after {time.monotonic() - setup:.0f} s",
                      flush=True)
                key = (stack.data_dir / "secrets" / "embedded-llm-key").read_text().strip()
                direct = (f"{stack.llm_url}/v1/chat/completions",
                          {"Authorization": f"Bearer {key}"}, MODEL)
                model_ttft(*direct, nonce="Warm-up. ")  # a cold llama-server's first answer
                session = Session(stack, plain, admin, browser, args.locale)
                for i in range(args.runs):
                    run = session.measure(i, direct, system, returning=not args.no_returning)
                    runs.append(run)
                    print(describe(run), flush=True)
                browser.close()
                stopped = ctrl_c(stack)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    summary = {"profile": args.profile, **summarise(runs), **stopped}
    print_summary(summary)
    summary["runs"] = len(runs)
    summary["elapsed_s"] = round(time.monotonic() - began, 1)
    summary["load_average_1m_at_end"] = load()
    print(f"\ntook {summary['elapsed_s']:.0f} s (load average at the end "
          f"{summary['load_average_1m_at_end']:.2f}: other work on the machine skews the figures)")
    print(json.dumps(summary))


@contextlib.contextmanager
def profile_settings(profile: str, image: str):
    """SportHub's settings and environment for ``profile``; for docker, the engine (podman's
    API is started if nothing answers, and stopped after) and a network and names of this
    run's own, removed after."""
    if profile == "local":
        yield {}, {}
        return
    import docker

    from sporthub.containers import engine as engines

    engine = engines.find(progress=print)
    client = docker.DockerClient(base_url=engine.docker_host, timeout=120)
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        engine.stop()
        raise SystemExit(f"{image} is not built on this engine: make images (or --image)")
    own = f"lb{uuid.uuid4().hex[:6]}"
    try:
        yield ({"profile": "docker", "ip": "0.0.0.0", "singleuser_image": image,
                "docker_network": own, "docker_name_prefix": own},
               {"DOCKER_HOST": engine.docker_host})
    finally:
        for container in client.containers.list(all=True, filters={"name": own}):
            container.remove(force=True)
        for volume in client.volumes.list(filters={"name": own}):
            volume.remove(force=True)
        for network in client.networks.list(names=[own]):
            network.remove()
        engine.stop()


def ctrl_c(stack) -> dict:
    """Ctrl-C on `make up` (SIGINT to its process group) with the last athlete's server running:
    seconds until every process of the stack is gone (issue 21: within 10 s)."""
    stack.descendants = stack.processes()
    at_load = load()
    seconds, alive = stack.interrupt(timeout=60)
    left = [" ".join(p.cmdline()[:3]) for p in alive if p.is_running()]
    print(f"Ctrl-C: every process gone after {seconds:.1f} s (load {at_load:.1f})"
          + (f"; still running after 60 s: {left}" if left else ""), flush=True)
    return {"ctrl_c_stop_s": round(seconds, 2), "ctrl_c_left": left, "ctrl_c_load": at_load}


def describe(run: dict) -> str:
    f, p, w, m = run["first"], run["plain_first"], run["words"], run["model"]
    text = (f"  {run['name']} (load {run['first_load']:.1f}): first login ready after "
            f"{f['ready']:.1f} s (spawn {f['spawn'] or float('nan'):.1f} s, JupyterLab page at "
            f"{f['lab_page']:.1f} s, shell {f['shell']:.1f} s), plain JupyterLab "
            f"{p['ready']:.1f} s (spawn {p['spawn'] or float('nan'):.1f} s, load "
            f"{run['plain_first_load']:.1f}); first words {w['first_words']:.2f} s, answer "
            f"{w['answer'] or float('nan'):.2f} s; the model's own first token "
            f"{m['coach_prompt']:.2f} s on the Coach's prompt (cached; "
            f"{m['coach_prompt_cold']:.2f} s the first time), {m['bare']:.2f} s on the "
            f"question alone, {m['gateway']:.2f} s through the gateway")
    if "returning" in run:
        text += (f"; returning ready after {run['returning']['ready']:.1f} s (load "
                 f"{run['returning_load']:.1f}), plain {run['plain_returning']['ready']:.1f} s")
    return text


def summarise(runs: list[dict]) -> dict:
    """Medians over the runs, and the ratios the issue sets targets for."""
    def med(kind: str, mark: str) -> float | None:
        return median([r[kind][mark] for r in runs if kind in r and mark in r[kind]])

    summary: dict = {}
    for kind, marks in (("first", ("lab_page", "spawn", "shell", "coach_tab", "welcome",
                                   "ready")),
                        ("returning", ("lab_page", "spawn", "shell", "ready")),
                        ("plain_first", ("lab_page", "spawn", "shell", "ready")),
                        ("plain_returning", ("lab_page", "spawn", "shell", "ready"))):
        summary.update({f"{kind}_{m}_s": med(kind, m) for m in marks})
    summary["first_words_s"] = med("words", "first_words")
    summary["answer_s"] = med("words", "answer")
    for floor in ("bare", "coach_prompt_cold", "coach_prompt", "gateway"):
        summary[f"model_ttft_{floor}_s"] = med("model", floor)
    summary["load_average_1m_median"] = median([r[k] for r in runs for k in r
                                                if k.endswith("load")])

    def ratio(a: str, b: str) -> float | None:
        return round(summary[a] / summary[b], 2) if summary[a] and summary[b] else None

    # targets: login to the Coach <= 1.5x the plain JupyterLab's; first words <= 1.2x the
    # model's own first token + 0.5 s
    summary["first_login_ratio"] = ratio("first_ready_s", "plain_first_ready_s")
    summary["returning_login_ratio"] = ratio("returning_ready_s", "plain_returning_ready_s")
    summary["first_words_ratio"] = ratio("first_words_s", "model_ttft_coach_prompt_s")
    words, model = summary["first_words_s"], summary["model_ttft_coach_prompt_s"]
    summary["first_words_target_s"] = round(1.2 * model + 0.5, 3) if model else None
    summary["first_words_within_target"] = (words <= summary["first_words_target_s"]
                                            if words and model else None)
    return summary


def print_summary(s: dict) -> None:
    print()
    print(f"profile {s['profile']}; medians (load average 1 min, median of the moments "
          f"measured: {s['load_average_1m_median']})")
    print("first login (s after the click on Sign in):")
    print(f"  SportHub: JupyterLab page requested {s['first_lab_page_s']} (the hub's spawn took "
          f"{s['first_spawn_s']}), shell {s['first_shell_s']}, Coach's tab "
          f"{s['first_coach_tab_s']}, welcome {s['first_welcome_s']}, ready for typing "
          f"{s['first_ready_s']}")
    print(f"  plain JupyterLab: page requested {s['plain_first_lab_page_s']} (spawn "
          f"{s['plain_first_spawn_s']}), shell {s['plain_first_shell_s']}, Launcher ready "
          f"{s['plain_first_ready_s']}")
    print(f"  ratio {s['first_login_ratio']} (target <= 1.5)"
          + ("; the floor is a local process: there is no plain JupyterLab image to spawn"
             if s["profile"] == "docker" else ""))
    if s["returning_ready_s"] is not None:
        print(f"returning: SportHub ready {s['returning_ready_s']} (spawn "
              f"{s['returning_spawn_s']}), plain {s['plain_returning_ready_s']} (spawn "
              f"{s['plain_returning_spawn_s']}): ratio {s['returning_login_ratio']}")
    print(f"first words {s['first_words_s']} s (whole answer {s['answer_s']} s); the model's own "
          f"first token {s['model_ttft_coach_prompt_s']} s on the Coach's prompt (cached, as the "
          f"Coach's is; {s['model_ttft_coach_prompt_cold_s']} s the first time) "
          f"({s['model_ttft_bare_s']} s on the question alone, {s['model_ttft_gateway_s']} s "
          f"through the gateway): ratio {s['first_words_ratio']}, target <= "
          f"{s['first_words_target_s']} s (1.2x + 0.5 s): "
          f"{'met' if s['first_words_within_target'] else 'not met'}")
    if "ctrl_c_stop_s" in s:
        print(f"Ctrl-C on the stack ({s['profile']} profile): every process gone after "
              f"{s['ctrl_c_stop_s']} s (target <= 10 s; load {s['ctrl_c_load']})")


if __name__ == "__main__":
    main()
