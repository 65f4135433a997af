"""The squad's sharing test in the docker profile: the athlete's server is a container.

The same path as tests/squad's, with nothing shared but HTTP: the athlete's JupyterLab (in its
container, UID 1000, its own token) sends ``~/activities`` to the squad service over the
container network through the hub's proxy once the athlete says ``/share on`` to the Coach; the
scientist reads in a kernel of their own container with ``sportlab.squad.connect()`` (nothing
configured: the server's token and ``SQUAD_API_URL``); ``/share off``, and the scientist's next
read is 404 and the files and rows are gone from the service's storage.
"""

from __future__ import annotations

import json

import pytest

import sportlab
from tests.containers.test_docker_profile import container, inside
from tests.support.athletes import put_home_file
from tests.support.squad import say, stored_files, stored_rows, until

pytestmark = [pytest.mark.containers, pytest.mark.stack]

RIDE = "4078723797.fit"  # power and heart rate

# the scientist's notebook: the squad as sportlab.squad gives it, or the service's refusal
READ = """
import json
import sportlab
squad = sportlab.squad.connect()
try:
    sessions = squad.sessions({name!r})
    ride = squad.file({name!r}, {ride!r})
    print(json.dumps({{"athletes": list(squad.athletes()["name"]),
                      "files": list(sessions["file"]),
                      "weighted_power_w": float(sessions["weighted_power_w"].iloc[0]),
                      "max_power_w": float(ride["power_w"].max())}}))
except sportlab.squad.SquadError as e:
    print(json.dumps({{"status": e.status, "error": str(e)}}))
"""


def running(person) -> None:
    """The person's server, started again if an earlier test of the tier stopped it (the hub's
    restart removes every container)."""
    server = person.api("GET", f"/users/{person.name}").json()["servers"].get("", {})
    if not server.get("ready"):
        person.start_server(person.name, timeout=240)


def test_an_athlete_in_a_container_shares_and_the_scientist_reads_then_sharing_off_is_404(
        dstack, people, client, network, activities):
    athlete, scientist = people["athlete"], people["scientist"]
    for person in (athlete, scientist):
        running(person)
    name = athlete.name
    put_home_file(dstack, name, athlete.token, f"activities/{RIDE}",
                  (activities / RIDE).read_bytes())

    assert say(dstack, name, athlete.token, "/share on").startswith("Done: sharing is on")
    # sent by her container's sync, woken by the switch (the interval is 30 s)
    until(lambda: stored_rows(dstack, "squad_sessions", name) == 1, timeout=90,
          what="the ride to reach the squad from the athlete's container")
    seen = json.loads(inside(dstack, scientist, READ.format(name=name, ride=RIDE)))
    assert seen.get("athletes") == [name], seen
    assert seen["files"] == [RIDE]
    assert seen["weighted_power_w"] == pytest.approx(
        sportlab.summarize_session(activities / RIDE).weighted_power_w)
    assert seen["max_power_w"] == sportlab.read_activity(activities / RIDE)["power_w"].max()

    # her decision is recorded with the address it came from: her container's, on the network
    share = say(dstack, name, athlete.token, "/share")
    ip = container(client, athlete).attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
    assert f"share on ({name}, {ip})" in share
    assert f"UTC: {scientist.name}, sessions" in share  # and she sees the scientist's read

    assert say(dstack, name, athlete.token, "/share off").startswith("Done: sharing is off")
    gone = json.loads(inside(dstack, scientist, READ.format(name=name, ride=RIDE)))
    assert gone.get("status") == 404, gone
    for table in ("squad_files", "squad_sessions", "squad_wellness", "squad_refused"):
        assert stored_rows(dstack, table, name) == 0, table
    assert stored_files(dstack) == []
