"""Sharing from the athlete's own JupyterLab, end to end, on a real stack.

The athlete's server (as the athlete, with its own token) sends ``~/activities`` to the squad
service; the athlete switches sharing with the Coach's ``/share`` and on the hub's ``/hub/my-data``
page; the scientist reads with ``sportlab.squad`` and runs notebook 06 headless against it.
Real recordings (sweat 0.25.0), a generated daily log, and hostile files put straight into the
home (as root, the way a person's own tools would leave them).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import tempfile
import time
import zipfile
from datetime import date, timedelta
from pathlib import Path

import httpx
import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

import sportlab
from tests.extensions.test_coach_data import interface
from tests.squad.test_squad_service import backends
from tests.support.athletes import PASSWORD, account, athlete, put_home_file, recordings
from tests.support.fake_backend import FakeBackend
from tests.support.squad import say, stored_files, stored_rows, until, wait_for_squad
from tests.support.stack import HubClient, make_stack, started

pytestmark = pytest.mark.stack

RIDES = ("4078723797.fit", "4801048867.fit")
NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "06-squad-monitoring.ipynb"
MAX_FILES = 40
SYNC_INTERVAL_S = 2


@pytest.fixture(scope="module")
def backend():
    """No model is needed here: the fake backend speaks the OpenAI protocol and starts at once."""
    fake = FakeBackend().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def hub(backend, tmp_path_factory):
    stack = make_stack(tmp_path_factory.mktemp("squad-sync"), llm_backends=backends(backend),
                       squad_sync_interval_s=str(SYNC_INTERVAL_S),
                       squad_max_files=str(MAX_FILES), squad_max_file_bytes=str(8 * 2**20))
    with started(stack) as stack:
        stack.admin = HubClient.admin(stack)
        wait_for_squad(stack)
        yield stack


def daily_log(last: date, days: int = 42, seed: int = 0) -> str:
    """A plausible log: RPE, minutes, sleep, resting HR, rMSSD and the Hooper items."""
    rng = np.random.default_rng(seed)
    lines = ["date,rpe,minutes,sleep_h,resting_hr,rmssd_ms,sleep_quality,stress,fatigue,soreness"]
    for i in range(days):
        day = last - timedelta(days=days - 1 - i)
        rest = i % 7 == 6
        rpe = "" if rest else int(rng.integers(3, 9))
        minutes = "" if rest else int(rng.integers(40, 120))
        lines.append(f"{day},{rpe},{minutes},{rng.uniform(6, 9):.1f},{int(rng.integers(44, 52))},"
                     f"{int(rng.integers(50, 80))},{int(rng.integers(1, 5))},"
                     f"{int(rng.integers(1, 5))},{int(rng.integers(1, 6))},{int(rng.integers(1, 5))}")
    return "\n".join(lines) + "\n"


def squad_as(hub, token: str) -> sportlab.squad.Squad:
    return sportlab.squad.connect(f"{hub.url}/services/squad/api", token)


@pytest.fixture(scope="module")
def team(hub, activities):
    # the log ends on the latest ride's day: the notebook looks at each athlete as of then
    last = max(sportlab.summarize_session(activities / ride).date for ride in RIDES)
    # the scientist first: the service knows the groups as they were when it last asked
    # (SPORTHUB_GATEWAY_AUTH_CACHE_S), and the athletes' servers ask it as soon as they start
    tokens = {"sofia": account(hub, "sy-sofia", "scientists")}
    for who, seed in (("anna", 1), ("boris", 2)):
        log = daily_log(last, seed=seed).encode()
        tokens[who] = athlete(hub, f"sy-{who}",
                              {**recordings(activities, RIDES), "activities/log.csv": log})
    return tokens


def test_share_on_in_the_coach_sends_the_files_and_the_scientist_sees_only_the_sharer(
        hub, team, activities):
    assert "off" in say(hub, "sy-anna", team["anna"], "/share")
    reply = say(hub, "sy-anna", team["anna"], "/share on")
    assert reply.startswith("Done: sharing is on")
    squad = squad_as(hub, team["sofia"])
    until(lambda: len(squad.sessions("sy-anna")) == 2, what="anna's rides to arrive")
    assert list(squad.athletes()["name"]) == ["sy-anna"]
    sessions = squad.sessions()
    ride = sessions[sessions["file"] == RIDES[0]].iloc[0]
    assert ride["weighted_power_w"] == pytest.approx(
        sportlab.summarize_session(activities / RIDES[0]).weighted_power_w)
    assert len(squad.wellness("sy-anna")) == 42
    frame = squad.file("sy-anna", RIDES[0])
    assert frame["power_w"].max() == sportlab.read_activity(activities / RIDES[0])["power_w"].max()
    with pytest.raises(sportlab.squad.SquadError, match="404"):
        squad.sessions("sy-boris")
    # boris never shared: nothing of his reached the service
    assert stored_rows(hub, "squad_files", "sy-boris") == 0


def test_a_change_and_a_removal_in_the_home_follow_within_the_interval(hub, team, activities):
    squad = squad_as(hub, team["sofia"])
    put_home_file(hub, "sy-anna", team["anna"], "activities/6449921903_ACTIVITY.fit",
                  (activities / "6449921903_ACTIVITY.fit").read_bytes())
    until(lambda: len(squad.sessions("sy-anna")) == 3, what="the new ride")
    response = httpx.delete(f"{hub.url}/user/sy-anna/api/contents/activities/"
                            "6449921903_ACTIVITY.fit", timeout=30,
                            headers={"Authorization": f"token {team['anna']}"})
    assert response.status_code == 204
    until(lambda: len(squad.sessions("sy-anna")) == 2, what="the removed ride to go")


def test_exports_as_people_have_them_are_sent_and_read_inside(hub, team, activities):
    """A ride gzip-compressed (Strava's bulk export) and a .zip of rides (Garmin's export),
    dropped into ~/activities: the sync sends them, the service reads each ride inside."""
    squad = squad_as(hub, team["sofia"])
    put_home_file(hub, "sy-anna", team["anna"], "activities/6449921903_ACTIVITY.fit.gz",
                  gzip.compress((activities / "6449921903_ACTIVITY.fit").read_bytes()))
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(activities / "6471559601_ACTIVITY.fit", "rides/6471559601_ACTIVITY.fit")
    put_home_file(hub, "sy-anna", team["anna"], "activities/garmin.zip", packed.getvalue())
    until(lambda: len(squad.sessions("sy-anna")) == 4, what="the rides in the exports")
    files = set(squad.sessions("sy-anna")["file"])
    assert {"6449921903_ACTIVITY.fit.gz", "garmin.zip/rides/6471559601_ACTIVITY.fit"} <= files
    for name in ("6449921903_ACTIVITY.fit.gz", "garmin.zip"):
        response = httpx.delete(f"{hub.url}/user/sy-anna/api/contents/activities/{name}",
                                timeout=30, headers={"Authorization": f"token {team['anna']}"})
        assert response.status_code == 204
    until(lambda: len(squad.sessions("sy-anna")) == 2, what="the removed exports to go")


def test_the_athletes_thresholds_follow_and_the_scientist_sees_if_and_tss(hub, team, activities):
    """issue 22 item 5: profile.toml in ~/activities goes to the squad with the recordings;
    the scientist's rows then carry IF, TSS and power zones from the athlete's own FTP."""
    squad = squad_as(hub, team["sofia"])

    def ride() -> dict:
        sessions = squad.sessions("sy-anna")
        return sessions[sessions["file"] == RIDES[0]].iloc[0]

    def no_intensity() -> bool:
        value = ride()["intensity"]
        return value is None or bool(np.isnan(value))  # None, or NaN beside numbers

    assert no_intensity()
    put_home_file(hub, "sy-anna", team["anna"], "activities/profile.toml", b"ftp_w = 250\n")
    until(lambda: not no_intensity(), what="the rows summarised with her FTP")
    expected = sportlab.summarize_session(
        activities / RIDES[0], sportlab.athlete.Profile(ftp_w=sportlab.athlete.Threshold(250.0)))
    assert ride()["intensity"] == pytest.approx(expected.intensity)
    assert ride()["stress_score"] == pytest.approx(expected.stress_score)

    # an invalid profile: refused once per change of the file (not every sync), its reason
    # named in /share and on the hub's page; the copy before stays in use
    log_start = len(hub.log())

    def refusals() -> int:
        return hub.log()[log_start:].count("sy-anna: profile.toml refused:")

    put_home_file(hub, "sy-anna", team["anna"], "activities/profile.toml", b"ftp_w = 5000\n")
    until(lambda: refusals() == 1, what="the invalid profile to be refused")
    time.sleep(5 * SYNC_INTERVAL_S)  # five syncs more: the same file is not sent again
    assert refusals() == 1
    reply = say(hub, "sy-anna", team["anna"], "/share", chat_file="profile.chat")
    assert "- profile.toml: ftp_w: 5000 is outside the range" in reply
    assert refusals() == 1  # nor by the sync /share runs
    assert ride()["intensity"] == pytest.approx(expected.intensity)
    browser = HubClient(hub)
    assert browser.login("sy-anna", PASSWORD).status_code == 302
    page = browser.http.get("/hub/my-data")
    assert 'id="sporthub-refused"' in page.text and 'data-file="profile.toml"' in page.text
    assert "ftp_w: 5000 is outside the range" in page.text
    # changed, and still invalid: refused once more, with its new reason
    put_home_file(hub, "sy-anna", team["anna"], "activities/profile.toml", b"ftp_w = 9000\n")
    until(lambda: refusals() == 2, what="the changed profile to be refused")
    time.sleep(3 * SYNC_INTERVAL_S)
    assert refusals() == 2
    assert "ftp_w: 9000" in say(hub, "sy-anna", team["anna"], "/share", chat_file="profile.chat")

    response = httpx.delete(f"{hub.url}/user/sy-anna/api/contents/activities/profile.toml",
                            timeout=30, headers={"Authorization": f"token {team['anna']}"})
    assert response.status_code == 204
    until(no_intensity, what="her rows back to sportlab's estimates")
    # and the refusal went with the file
    until(lambda: squad_as(hub, team["anna"])._get("me").json()["refused"] == [],
          what="the refusal to go with the file")
    assert 'id="sporthub-refused"' not in browser.http.get("/hub/my-data").text


def test_hostile_files_in_the_home_are_skipped_with_their_reasons(hub, team, activities):
    user = hub.system_user("sy-anna")
    folder = Path(user.pw_dir) / "activities"
    # outside her home, and readable by her: only the sync's own rule keeps it out
    outside = Path(tempfile.mkdtemp(prefix="squad-outside-"))
    outside.chmod(0o755)
    secret = outside / "not-annas.fit"
    secret.write_bytes((activities / "6471559601_ACTIVITY.fit").read_bytes())
    secret.chmod(0o644)
    # "never read", seen by the file system: its last read set in 1970, which any read moves
    # (relatime updates an access time older than the file's change) - first proven here
    probe = outside / "probe"
    probe.write_bytes(b"x")
    for path in (probe, secret):
        os.utime(path, (0, path.stat().st_mtime))
    probe.read_bytes()
    assert probe.stat().st_atime > 0, "no access times here (noatime): nothing would be proven"
    ride = (activities / RIDES[0]).read_bytes()
    made = {"empty.fit": b"", "cut.fit": ride[: len(ride) // 2],
            "copy-00000.fit": (activities / "2020-06-01-16-52-40.fit").read_bytes()}
    for name, data in made.items():
        (folder / name).write_bytes(data)
    with open(folder / "huge.gpx", "wb") as f:  # 200 MB, sparse: refused by size, never read
        f.truncate(200 * 2**20)
    for path in [*(folder / n for n in made), folder / "huge.gpx"]:
        os.chown(path, user.pw_uid, user.pw_gid)
    (folder / "elsewhere.fit").symlink_to(secret)
    # 10,000 recordings (links to one small ride): the squad keeps MAX_FILES, the rest are named
    for i in range(1, 10_000):
        (folder / f"copy-{i:05d}.fit").hardlink_to(folder / "copy-00000.fit")

    text = say(hub, "sy-anna", team["anna"], "/share", chat_file="hostile.chat")
    assert "empty.fit: empty file (0 bytes)" in text
    assert re.search(r"cut\.fit: truncated FIT file: its header announces \d+ bytes", text)
    assert "elsewhere.fit: a link pointing outside your home: not read" in text
    assert "huge.gpx: larger than the squad's limit" in text
    assert re.search(r"you already share 40 files, the most the squad keeps \(40\)", text)
    assert re.search(r"and \d+ more not sent: the squad's limit per athlete is reached", text)
    names = {f["name"] for f in squad_as(hub, team["anna"])._get("me").json()["stored"]["files"]}
    assert len(names) == MAX_FILES
    assert not names & {"empty.fit", "cut.fit", "elsewhere.fit", "huge.gpx"}
    assert "not-annas.fit" not in stored_files(hub)
    assert secret.stat().st_atime == 0  # not opened by the scans, nor by the /share above
    assert list((hub.data_dir / "squad" / ".staging").iterdir()) == []

    # the copies go again: the service follows, down to the rides and the log
    for path in folder.glob("copy-*.fit"):
        path.unlink()
    until(lambda: stored_rows(hub, "squad_files", "sy-anna") == 3, timeout=120,
          what="the removed copies to go from the squad")


def test_the_athlete_sees_the_scientists_reads_in_the_coach_and_on_my_data(hub, team):
    squad = squad_as(hub, team["sofia"])
    squad.sessions("sy-anna")
    text = say(hub, "sy-anna", team["anna"], "/share")
    assert re.search(r"UTC: sy-sofia, sessions", text)
    assert "share on (sy-anna, 127.0.0.1)" in text
    # the Coach's own words follow the interface: Russian once her JupyterLab is
    interface(hub, "sy-anna", team["anna"], "ru-RU,ru;q=0.9")
    russian = say(hub, "sy-anna", team["anna"], "/share вкл", chat_file="ru.chat")
    assert russian.startswith("Готово: доступ открыт")
    state = say(hub, "sy-anna", team["anna"], "/share статус", chat_file="ru.chat")
    assert "Команды: `/share вкл`" in state

    browser = HubClient(hub)
    assert browser.login("sy-anna", PASSWORD).status_code == 302
    home = browser.http.get("/hub/home")
    assert 'id="sporthub-my-data-link"' in home.text
    page = browser.http.get("/hub/my-data")
    assert page.status_code == 200
    assert 'data-sharing="on"' in page.text and 'data-reader="sy-sofia"' in page.text
    ru = browser.http.get("/hub/my-data", params={"lang": "ru"})
    assert "Мои тренировочные данные" in ru.text and "Кто смотрел ваши данные" in ru.text
    assert "Мои данные" in ru.text  # the top bar's link, in Russian


def test_the_squad_notebook_runs_headless_against_the_squad(hub, team, activities, monkeypatch):
    """Both athletes share (boris from the hub page); the scientist's notebook sees both."""
    browser = HubClient(hub)
    assert browser.login("sy-boris", PASSWORD).status_code == 302
    turned = browser.http.post("/hub/my-data", data={
        "share": "on", "_xsrf": browser.http.cookies.get("_xsrf", path="/hub/")})
    assert turned.status_code == 200 and 'data-sharing="on"' in turned.text
    squad = squad_as(hub, team["sofia"])
    until(lambda: len(squad.sessions("sy-boris")) == 2, what="boris's rides")
    until(lambda: len(squad.wellness("sy-boris")) == 42, what="boris's log")

    monkeypatch.setenv("SQUAD_API_URL", f"{hub.url}/services/squad/api")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", team["sofia"])
    book = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(c.get("outputs") for c in book.cells if c.cell_type == "code")
    NotebookClient(book, kernel_name="python3", timeout=180,
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    out = [o["text"] for o in book.cells[-1].outputs if o.get("name") == "stdout"]
    summary = json.loads(out[-1])
    assert summary["athletes"] == ["sy-anna", "sy-boris"] and summary["sessions"] == 4
    expected = sportlab.summarize_session(activities / RIDES[0]).weighted_power_w
    assert summary["weighted_power_w"][f"sy-anna/{RIDES[0]}"] == pytest.approx(expected)
    rows = {r["athlete"]: r for r in summary["table"]}
    # the notebook's 7-day load is the log's session RPE over its last 7 days (Foster 2001)
    log = squad.wellness("sy-boris")
    last7 = log[log["date"] > log["date"].max() - np.timedelta64(7, "D")]
    assert rows["sy-boris"]["load_source"] == "session RPE"
    assert rows["sy-boris"]["load_7d"] == pytest.approx(
        float((last7["rpe"] * last7["minutes"]).sum()))
    monotony = sportlab.metrics.monotony(
        squad.wellness("sy-boris").assign(load=lambda f: (f["rpe"] * f["minutes"]).fillna(0))
        .groupby("date")["load"].sum().asfreq("D", fill_value=0.0)).iloc[-1]
    assert rows["sy-boris"]["monotony"] == pytest.approx(monotony)
    assert all(isinstance(r["flags"], list) for r in rows.values())


def test_share_off_on_the_hub_page_deletes_everything_at_once(hub, team):
    browser = HubClient(hub)
    assert browser.login("sy-anna", PASSWORD).status_code == 302
    off = browser.http.post("/hub/my-data", data={
        "share": "off", "_xsrf": browser.http.cookies.get("_xsrf", path="/hub/")})
    assert off.status_code == 200 and 'data-sharing="off"' in off.text
    for table in ("squad_files", "squad_sessions", "squad_wellness"):
        assert stored_rows(hub, table, "sy-anna") == 0
    with pytest.raises(sportlab.squad.SquadError, match="404"):
        squad_as(hub, team["sofia"]).sessions("sy-anna")
    record = squad_as(hub, team["anna"])._get("me").json()["consent_record"]
    assert record[-1]["change"] == "share off" and record[-1]["address"] == "127.0.0.1"
    # and her server stops sending: nothing comes back after two sync intervals
    time.sleep(5)
    assert stored_rows(hub, "squad_files", "sy-anna") == 0
