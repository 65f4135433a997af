"""The squad service on a real stack (hub, proxy, squad service; SQLite, then PostgreSQL):
consent, reads, limits.

Athletes write with their own hub tokens through the proxy, as their JupyterLab's sync does;
staff read as ``sportlab.squad`` does. Real recordings (sweat 0.25.0's example rides).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import threading
import time
import uuid
import zipfile

import httpx
import psycopg
import pytest

import sportlab
from tests.support.fake_backend import KEY, MODEL, FakeBackend
from tests.support.squad import stored_files, stored_rows, wait_for_squad
from tests.support.stack import HubClient, make_stack, started

pytestmark = pytest.mark.stack

RIDE = "4078723797.fit"  # power and heart rate
SMALL_RIDE = "2020-06-01-16-52-40.fit"
MAX_FILE = 1_000_000  # the stack's own limits, small enough to reach in a test
MAX_FILES = 6
ADMIN_DSN = "host=127.0.0.1 dbname=test user=postgres"


def backends(fake) -> str:
    return (f'[{{"name": "fake", "url": "{fake.url}", "api_key": "{KEY}", '
            f'"models": ["{MODEL}"], "max_concurrency": 1}}]')


@pytest.fixture(scope="module")
def backend():
    """No model is needed here: the fake backend speaks the OpenAI protocol and starts at once."""
    fake = FakeBackend().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database(request):
    """The squad's database: SQLite (the local default), or the tables beside the ledger's in
    SPORTHUB_DB_URL's PostgreSQL database (the docker and k8s profiles), a new one here."""
    if request.param == "sqlite":
        yield {}
        return
    name = f"sporthub_squad_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    yield {"db_url": f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"}
    with psycopg.connect(ADMIN_DSN, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def hub(backend, database, tmp_path_factory):
    stack = make_stack(tmp_path_factory.mktemp("squad"), llm_backends=backends(backend),
                       # groups change during the tests: the service asks the hub every time
                       gateway_auth_cache_s="0",
                       squad_max_file_bytes=str(MAX_FILE),
                       squad_max_files=str(MAX_FILES), squad_max_total_bytes=str(3 * MAX_FILE),
                       **database)
    with started(stack) as stack:
        stack.admin = HubClient.admin(stack)
        wait_for_squad(stack)
        yield stack


class Person:
    def __init__(self, hub, name: str, *groups: str):
        self.hub, self.name = hub, name
        assert hub.admin.api("POST", f"/users/{name}").status_code == 201
        for group in groups:
            if hub.admin.api("GET", f"/groups/{group}").status_code == 404:
                assert hub.admin.api("POST", f"/groups/{group}").status_code == 201
            assert hub.admin.api("POST", f"/groups/{group}/users",
                                 json={"users": [name]}).status_code == 200
        self.token = hub.admin.new_token(name, note="tests")

    def call(self, method: str, path: str, headers: dict | None = None,
             **kwargs) -> httpx.Response:
        return httpx.request(method, f"{self.hub.url}/services/squad/api/{path}", timeout=60,
                             headers={"Authorization": f"token {self.token}", **(headers or {})},
                             **kwargs)

    def share(self, on: bool) -> httpx.Response:
        return self.call("PUT", "me/consent", json={"share": on})

    def upload(self, name: str, data: bytes) -> httpx.Response:
        return self.call("PUT", f"me/files/{name}", content=data)


def set_properties(hub, group: str, **properties) -> None:
    current = hub.admin.api("GET", f"/groups/{group}").json()["properties"]
    response = hub.admin.api("PUT", f"/groups/{group}/properties",
                             json={**current, **properties})
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def people(hub):
    return {"a": Person(hub, "sq-anna", "athletes"), "b": Person(hub, "sq-boris", "athletes"),
            "s": Person(hub, "sq-sofia", "scientists")}


def test_a_shares_b_does_not_and_the_scientist_reads_only_a(hub, people, activities):
    a, b, s = people["a"], people["b"], people["s"]
    assert a.call("GET", "me").json()["sharing"] is False  # private by default
    assert a.share(True).status_code == 200
    response = a.upload(RIDE, (activities / RIDE).read_bytes())
    assert response.status_code == 201, response.text
    # in the database the stack was given (PostgreSQL's has no such table unless the service
    # migrated it there)
    assert stored_rows(hub, "squad_files", "sq-anna") == 1
    # B does not share: the service stores nothing of theirs
    refused = b.upload(RIDE, (activities / RIDE).read_bytes())
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_sharing"

    listed = s.call("GET", "athletes")
    assert listed.status_code == 200
    assert [row["name"] for row in listed.json()] == ["sq-anna"]
    assert listed.json()[0]["sessions"] == 1 and listed.json()[0]["last_sync"]
    sessions = s.call("GET", "athletes/sq-anna/sessions").json()
    expected = sportlab.summarize_session(activities / RIDE).to_dict()
    assert sessions[0]["file"] == RIDE
    assert sessions[0]["weighted_power_w"] == pytest.approx(expected["weighted_power_w"])
    assert sessions[0]["weighted_power_w"] == pytest.approx(
        sportlab.metrics.weighted_power(sportlab.read_activity(activities / RIDE)["power_w"]))
    assert s.call("GET", f"athletes/sq-anna/files/{RIDE}").content == \
        (activities / RIDE).read_bytes()
    csv_text = s.call("GET", "athletes/sq-anna/sessions", params={"format": "csv"}).text
    assert csv_text.splitlines()[0].startswith("file,start,date,sport")
    assert RIDE in csv_text.splitlines()[1]
    # B shares nothing: 404, the same as an account that does not exist
    for path in ("athletes/sq-boris/sessions", "athletes/sq-boris/wellness",
                 "athletes/nobody/sessions"):
        assert s.call("GET", path).status_code == 404, path


def test_athletes_and_the_admin_get_403_on_staff_endpoints_and_nobody_writes_as_another(
        hub, people):
    a, b = people["a"], people["b"]
    for person in (a, b):
        for path in ("athletes", "athletes/sq-anna/sessions", "athletes/sq-anna/wellness",
                     f"athletes/sq-anna/files/{RIDE}"):
            response = person.call("GET", path)
            assert response.status_code == 403, (person.name, path)
            assert response.json()["error"]["code"] == "not_staff"
    admin = httpx.get(f"{hub.url}/services/squad/api/athletes", timeout=30,
                      headers={"Authorization": f"token {hub.admin.token}"})
    assert admin.status_code == 403  # the admin is not staff unless in a staff group
    assert a.call("PUT", "athletes/sq-boris/files/x.fit", content=b"x").status_code == 403
    assert a.call("DELETE", f"athletes/sq-boris/files/{RIDE}").status_code == 403
    assert httpx.get(f"{hub.url}/services/squad/api/me", timeout=30).status_code == 401
    plain = Person(hub, "sq-plain")  # in no group: no squad scope
    assert plain.call("GET", "me").status_code == 403


def test_wellness_rows_come_from_the_log_in_sportlabs_columns(hub, people):
    a, s = people["a"], people["s"]
    log = ("date,rpe,minutes,sleep_h,resting_hr,rmssd_ms,sleep_quality,stress,fatigue,soreness\n"
           "2026-03-02,6,75,7.5,48,62,2,3,3,2\n2026-03-03,,,8,47,70,,,,\n")
    assert a.upload("log.csv", log.encode()).status_code == 201
    rows = s.call("GET", "athletes/sq-anna/wellness").json()
    assert [r["date"] for r in rows] == ["2026-03-02", "2026-03-03"]
    assert rows[0]["rmssd_ms"] == 62 and rows[1]["rpe"] is None
    assert list(rows[0]) == list(sportlab.athlete.LOG_HEADER)


def test_the_athlete_sees_every_read_and_the_consent_record(hub, people):
    a, s = people["a"], people["s"]
    s.call("GET", "athletes/sq-anna/sessions")
    me = a.call("GET", "me").json()
    reads = [(r["reader"], r["what"]) for r in me["reads"]]
    assert ("sq-sofia", "sessions") in reads and ("sq-sofia", f"file {RIDE}") in reads
    assert ("sq-sofia", "athletes list") in reads
    assert all(r["address"] == "127.0.0.1" and r["at"] for r in me["reads"])
    record = me["consent_record"]
    assert record[0]["change"] == "share on" and record[0]["by"] == "sq-anna"
    assert record[0]["address"] == "127.0.0.1" and record[0]["at"].endswith("+00:00")
    assert {f["name"] for f in me["stored"]["files"]} == {RIDE, "log.csv"}
    # nobody else's reads are shown to A, and B sees no read of A's
    assert people["b"].call("GET", "me").json()["reads"] == []


def test_hostile_files_are_refused_with_a_named_reason_and_nothing_half_stored(
        hub, people, activities):
    a = people["a"]
    before = stored_files(hub)
    ride = (activities / RIDE).read_bytes()
    cases = {
        "empty.fit": (b"", 422, "empty"),
        "cut.fit": (ride[: len(ride) // 3], 422, "not a readable recording"),
        "notes.txt": (b"hello", 400, "only FIT, GPX and TCX"),
        ".hidden.fit": (ride, 400, "not a plain file name"),
    }
    for name, (data, status, reason) in cases.items():
        response = a.upload(name, data)
        assert response.status_code == status, (name, response.text)
        assert reason in response.json()["error"]["message"], (name, response.text)
    # larger than the limit, announced: refused by its length (the 200 MB file of the issue
    # is the sync's test: refused there by size, never read)
    big = a.call("PUT", "me/files/big.fit", content=b"\0" * (MAX_FILE + 1))
    assert big.status_code == 413 and big.json()["error"]["code"] == "file_too_large"

    # too large while streaming (no length announced): cut off at the limit
    def chunks():
        for _ in range(MAX_FILE // 65536 + 2):
            yield b"\0" * 65536

    streamed = a.call("PUT", "me/files/stream.fit", content=chunks())
    assert streamed.status_code == 413 and streamed.json()["error"]["code"] == "file_too_large"
    assert stored_files(hub) == before
    assert list((hub.data_dir / "squad" / ".staging").iterdir()) == []
    assert stored_rows(hub, "squad_files", "sq-anna") == 2
    # what was refused for its content is noted, with the reason (the sync sends it no more)
    noted = {r["name"]: r["reason"] for r in a.call("GET", "me").json()["refused"]}
    assert set(noted) == {"empty.fit", "cut.fit"} and "empty" in noted["empty.fit"]


def test_more_files_than_the_limit_are_refused_with_429(hub, people, activities):
    a = people["a"]
    small = (activities / SMALL_RIDE).read_bytes()
    stored = stored_rows(hub, "squad_files", "sq-anna")
    statuses = [a.upload(f"copy-{i}.fit", small).status_code for i in range(MAX_FILES + 2)]
    assert statuses == [201] * (MAX_FILES - stored) + [429] * (stored + 2)
    assert stored_rows(hub, "squad_files", "sq-anna") == MAX_FILES
    # a changed file replaces its old copy: no new place needed
    assert a.upload("copy-0.fit", small).status_code == 201
    for i in range(MAX_FILES - stored):
        assert a.call("DELETE", f"me/files/copy-{i}.fit").status_code == 204
    assert stored_rows(hub, "squad_sessions", "sq-anna") == 1


def test_sharing_off_deletes_files_and_rows_at_once_and_reads_are_404(hub, people, activities):
    a, s = people["a"], people["s"]
    assert stored_rows(hub, "squad_files", "sq-anna") == 2
    assert a.share(False).status_code == 200
    for path in ("athletes/sq-anna/sessions", "athletes/sq-anna/wellness",
                 f"athletes/sq-anna/files/{RIDE}"):
        assert s.call("GET", path).status_code == 404, path
    assert s.call("GET", "athletes").json() == []
    # the files refused earlier (empty.fit, cut.fit) were noted: the notes go too
    for table in ("squad_files", "squad_sessions", "squad_wellness", "squad_refused"):
        assert stored_rows(hub, table, "sq-anna") == 0, table
    assert stored_files(hub) == []
    # the decision stays on record, with its time and address
    record = a.call("GET", "me").json()["consent_record"]
    assert [e["change"] for e in record] == ["share on", "share off"]
    assert stored_rows(hub, "squad_consent_events", "sq-anna") == 2
    assert a.upload(RIDE, (activities / RIDE).read_bytes()).status_code == 409


def test_an_upload_in_flight_when_sharing_goes_off_is_not_kept(hub, people, activities):
    """The athlete's server is half-way through sending a ride when the athlete switches
    sharing off (on the hub page, in the Coach): the rest of the upload arrives after the
    switch-off, and nothing of it may be kept or reach the staff."""
    ula, s = Person(hub, "sq-ula", "athletes"), people["s"]
    assert ula.share(True).status_code == 200
    ride = (activities / RIDE).read_bytes()
    release = threading.Event()

    def body():
        yield ride[: len(ride) // 2]
        assert release.wait(60)
        yield ride[len(ride) // 2:]

    answer: dict[str, httpx.Response] = {}
    sending = threading.Thread(target=lambda: answer.setdefault(
        "upload", ula.call("PUT", f"me/files/{RIDE}", content=body())))
    sending.start()
    staging = hub.data_dir / "squad" / ".staging"
    deadline = time.monotonic() + 30
    # in flight: the service has the first half in its staging file
    while not any(p.stat().st_size for p in staging.iterdir()):
        assert time.monotonic() < deadline, "the upload never reached the service"
        time.sleep(0.05)
    assert ula.share(False).status_code == 200
    release.set()
    sending.join(60)
    refused = answer["upload"]
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "not_sharing"
    assert s.call("GET", "athletes/sq-ula/sessions").status_code == 404
    assert "sq-ula" not in [row["name"] for row in s.call("GET", "athletes").json()]
    for table in ("squad_files", "squad_sessions", "squad_wellness"):
        assert stored_rows(hub, table, "sq-ula") == 0, table
    assert ula.call("GET", "me").json()["stored"]["files"] == []
    assert list(staging.iterdir()) == []


def test_gzipped_recordings_and_zips_are_read_inside(hub, people, activities):
    """A ``.fit.gz`` (Strava's bulk export) and a ``.zip`` of rides (Garmin's export): one
    session row per recording inside, read with sportlab; bombs refused whole."""
    zora, s = Person(hub, "sq-zora", "athletes"), people["s"]
    assert zora.share(True).status_code == 200
    ride = (activities / RIDE).read_bytes()
    assert zora.upload(f"{RIDE}.gz", gzip.compress(ride)).status_code == 201
    members = ("4801048867.fit", "6449921903_ACTIVITY.fit")
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as archive:
        for member in members:
            archive.write(activities / member, f"activities/{member}")
        archive.writestr("activities/notes.txt", "not a recording")
        archive.writestr("activities/cut.fit", ride[:999])
    stored = zora.upload("export.zip", packed.getvalue())
    assert stored.status_code == 201, stored.text
    problems = stored.json()["problems"]
    assert len(problems) == 1 and problems[0].startswith("activities/cut.fit left out: ")

    sessions = {row["file"]: row for row in s.call("GET", "athletes/sq-zora/sessions").json()}
    assert set(sessions) == {f"{RIDE}.gz", *(f"export.zip/activities/{m}" for m in members)}
    assert sessions[f"{RIDE}.gz"]["weighted_power_w"] == pytest.approx(
        sportlab.summarize_session(activities / RIDE).weighted_power_w)
    for member in members:
        assert sessions[f"export.zip/activities/{member}"]["start"] == \
            sportlab.summarize_session(activities / member).to_dict()["start"]
    # the scientist opens a recording by its row's name, inside the archive too
    squad = sportlab.squad.connect(f"{hub.url}/services/squad/api", s.token)
    inside = squad.file("sq-zora", f"export.zip/activities/{members[0]}")
    plain = sportlab.read_activity(activities / members[0])
    assert len(inside) == len(plain) and inside.index[0] == plain.index[0]
    assert squad.file("sq-zora", f"{RIDE}.gz")["power_w"].max() == \
        sportlab.read_activity(activities / RIDE)["power_w"].max()

    # a bomb: small, but it would expand past the largest file the squad stores
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("ride.tcx", b"\0" * (4 * MAX_FILE))
    refused = zora.upload("bomb.zip", bomb.getvalue())
    assert refused.status_code == 422 and "uncompressed" in refused.json()["error"]["message"]
    gz_bomb = zora.upload("bomb.gpx.gz", gzip.compress(b"\0" * (4 * MAX_FILE)))
    assert gz_bomb.status_code == 422 and "expands" in gz_bomb.json()["error"]["message"]
    assert stored_rows(hub, "squad_files", "sq-zora") == 2

    # the archive's rows go with it
    assert zora.call("DELETE", "me/files/export.zip").status_code == 204
    assert [r["file"] for r in s.call("GET", "athletes/sq-zora/sessions").json()] == \
        [f"{RIDE}.gz"]
    assert zora.share(False).status_code == 200
    assert stored_rows(hub, "squad_sessions", "sq-zora") == 0


def test_two_squads_and_club_wide_staff(hub, activities):
    # squad staff: scientists marked squad_read true; the head coach's group is club-wide
    set_properties(hub, "scientists", squad_read=True)
    ride = (activities / SMALL_RIDE).read_bytes()
    red, blue = Person(hub, "sq-red", "athletes", "team-red"), \
        Person(hub, "sq-blue", "athletes", "team-blue")
    coach_red = Person(hub, "sq-coach-red", "scientists", "team-red")
    coach_blue = Person(hub, "sq-coach-blue", "scientists", "team-blue")
    head = Person(hub, "sq-head", "scientists", "head-coaches")
    set_properties(hub, "head-coaches", squad_read="club")
    for athlete in (red, blue):
        assert athlete.share(True).status_code == 200
        assert athlete.upload(SMALL_RIDE, ride).status_code == 201

    def seen(staff: Person) -> list[str]:
        return [row["name"] for row in staff.call("GET", "athletes").json()]

    assert seen(coach_red) == ["sq-red"]
    assert seen(coach_blue) == ["sq-blue"]
    assert seen(head) == ["sq-blue", "sq-red"]
    assert coach_red.call("GET", "athletes/sq-blue/sessions").status_code == 404
    assert head.call("GET", "athletes/sq-blue/sessions").status_code == 200


def test_a_minor_shares_only_after_the_admin_records_the_guardians_consent(hub, people):
    minor = Person(hub, "sq-mila", "athletes", "juniors")
    set_properties(hub, "juniors", squad_minor=True)
    refused = minor.share(True)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "guardian_consent_needed"
    assert minor.call("GET", "me").json()["minor"] is True
    guardian = {"guardian": "Olga Petrova (mother)"}
    # not the minor, not staff: only an admin records it
    assert minor.call("PUT", "athletes/sq-mila/guardian", json=guardian).status_code == 403
    assert people["s"].call("PUT", "athletes/sq-mila/guardian", json=guardian).status_code == 403
    recorded = httpx.put(f"{hub.url}/services/squad/api/athletes/sq-mila/guardian", json=guardian,
                         headers={"Authorization": f"token {hub.admin.token}"}, timeout=30)
    assert recorded.status_code == 200, recorded.text
    assert recorded.json()["guardian"]["name"] == "Olga Petrova (mother)"
    assert minor.share(True).status_code == 200
    record = minor.call("GET", "me").json()["consent_record"]
    assert [(e["change"], e["by"]) for e in record] == [
        ("guardian consent", hub.admin_user), ("share on", "sq-mila")]


def test_bad_requests_get_openai_style_errors(hub, people):
    a = people["a"]
    for body in ({"share": "yes"}, {"share": 1}, {}):
        response = a.call("PUT", "me/consent", json=body)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_share"
    assert a.call("PUT", "me/consent", content=b"{not json").status_code == 400
    assert a.call("GET", "nothing-here").json()["error"]["type"] == "not_found_error"


def test_the_athletes_profile_gives_the_squad_rows_if_tss_and_zones(hub, activities):
    """issue 22 item 5: the athlete's own FTP and HRmax (profile.toml), not sportlab's
    estimates from the recording: a new profile re-summarises the rides already shared, a
    ride shared after it is summarised with it, an invalid one is refused by name, and its
    removal goes back to the estimates."""
    from sportlab.athlete import Profile, Threshold

    pia = Person(hub, "sq-pia", "athletes")
    # a club-wide reader of its own: the tests before change who the scientists may read
    s = Person(hub, "sq-pia-coach", "scientists", "sq-club-staff")
    set_properties(hub, "sq-club-staff", squad_read="club")
    log_start = len(hub.log())
    assert pia.share(True).status_code == 200
    assert pia.upload(RIDE, (activities / RIDE).read_bytes()).status_code == 201

    def row(file: str) -> dict:
        response = s.call("GET", "athletes/sq-pia/sessions")
        assert response.status_code == 200, response.text
        rows = response.json()
        return next(r for r in rows if r["file"] == file)

    before = row(RIDE)
    assert before["intensity"] is None and before["stress_score"] is None
    assert before["time_in_power_zones_s"] == {}
    assert before["thresholds"]["hr_max_bpm"]["source"].startswith("estimate")

    stored = pia.upload("profile.toml", b"ftp_w = 265\n[hr_max_bpm]\nvalue = 195\n"
                        b"measured = 2026-03-01\n")
    assert stored.status_code == 201, stored.text
    profile = Profile(ftp_w=Threshold(265.0), hr_max_bpm=Threshold(195.0))
    expected = sportlab.summarize_session(activities / RIDE, profile).to_dict()
    after = row(RIDE)
    assert expected["intensity"] and expected["stress_score"]
    assert after["intensity"] == pytest.approx(expected["intensity"])
    assert after["stress_score"] == pytest.approx(expected["stress_score"])
    assert after["time_in_power_zones_s"] == pytest.approx(expected["time_in_power_zones_s"])
    assert after["trimp_edwards"] == pytest.approx(expected["trimp_edwards"])
    assert after["thresholds"]["ftp_w"]["source"] == "profile.toml"
    assert after["thresholds"]["hr_max_bpm"]["value"] == 195.0
    # a ride shared after the profile is summarised with it
    assert pia.upload(SMALL_RIDE, (activities / SMALL_RIDE).read_bytes()).status_code == 201
    assert row(SMALL_RIDE)["thresholds"]["hr_max_bpm"]["value"] == 195.0

    # invalid: a named problem, not a 500; the copy stored before stays in use
    for bad, named in ((b"ftp_w = 5000\n", "ftp_w"), (b"ftp = 265\n", "ftp: unknown key"),
                       (b"ftp_w = [\n", "not a valid TOML file")):
        refused = pia.upload("profile.toml", bad)
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "invalid_profile" and error["message"].startswith("profile.toml")
        assert named in error["message"], error["message"]
    assert row(RIDE)["intensity"] == pytest.approx(expected["intensity"])
    assert list((hub.data_dir / "squad" / ".staging").iterdir()) == []
    assert "Traceback" not in hub.log()[log_start:]  # refused with its reason, not a crash
    assert "profile.toml refused: profile.toml: ftp_w" in hub.log()[log_start:]
    # the last refusal is noted for her (and her server) to read: the content it saw, and why
    refusals = pia.call("GET", "me").json()["refused"]
    assert [(r["name"], r["sha256"]) for r in refusals] == [
        ("profile.toml", hashlib.sha256(b"ftp_w = [\n").hexdigest())]
    assert refusals[0]["reason"].startswith("not a valid TOML file"), refusals

    # the profile is the athlete's data like the rest: in "me", and its removal is undone
    assert "profile.toml" in {f["name"] for f in pia.call("GET", "me").json()["stored"]["files"]}
    assert pia.call("DELETE", "me/files/profile.toml").status_code == 204
    assert pia.call("GET", "me").json()["refused"] == []  # the note went with the file
    gone = row(RIDE)
    assert gone["intensity"] is None and gone["time_in_power_zones_s"] == {}
    assert gone["thresholds"]["hr_max_bpm"]["source"].startswith("estimate")
    assert pia.share(False).status_code == 200
