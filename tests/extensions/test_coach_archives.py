"""Recordings as people export them, in ~/activities: a ``.fit.gz`` (Strava's bulk export) and a
``.zip`` of rides (Garmin's, Strava's). The Coach's ``/data`` summary reads what is inside, and
the squad sync sends them (the service reads them: tests/squad/test_squad_service.py). Real
recordings (sweat 0.25.0); no stack."""

from __future__ import annotations

import gzip
import io
import shutil
import zipfile
from datetime import date

import pytest

import sportlab
from sporthub_coach import athlete_data
from sporthub_coach.athlete_data import summarise
from sporthub_coach.squad_sync import SquadSync

POWER_RIDE = "4078723797.fit"  # power and heart rate
RIDES = ("4801048867.fit", "6449921903_ACTIVITY.fit")


def export_zip(activities, broken: bool = True) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for ride in RIDES:
            archive.write(activities / ride, f"activities/{ride}")
        archive.writestr("activities/notes.txt", "not a recording: ignored")
        if broken:
            archive.writestr("activities/cut.fit", (activities / POWER_RIDE).read_bytes()[:999])
    return out.getvalue()


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    # as if the server had just started: every row is read from the files here
    monkeypatch.setattr(athlete_data, "_cache", {})
    monkeypatch.setattr(athlete_data, "_peaks", {})


def test_the_summary_reads_a_gzipped_recording_and_the_rides_in_a_zip(tmp_path, activities):
    (tmp_path / f"{POWER_RIDE}.gz").write_bytes(gzip.compress((activities / POWER_RIDE)
                                                              .read_bytes()))
    (tmp_path / "garmin-export.zip").write_bytes(export_zip(activities))
    summary = summarise(tmp_path, today=date(2026, 12, 7))

    names = {f"{POWER_RIDE}.gz"} | {f"garmin-export.zip/activities/{r}" for r in RIDES}
    assert set(summary.files_used) == names
    # the gzipped ride's row is sportlab's on the plain file
    expected = sportlab.summarize_session(activities / POWER_RIDE).weighted_power_w
    line = next(x for x in summary.text.splitlines() if f"{POWER_RIDE}.gz:" in x)
    assert f"weighted power {expected:.0f} W" in line
    # each ride in the archive is a session of its own, named by its place in the archive
    for ride in RIDES:
        start = sportlab.summarize_session(activities / ride).start
        assert f"{start:%Y-%m-%d %H:%M} UTC garmin-export.zip/activities/{ride}:" in summary.text
    # the member it cannot read is named, the text file is no recording at all
    assert len(summary.unreadable) == 1
    assert summary.unreadable[0].startswith("garmin-export.zip (activities/cut.fit:")
    assert "notes.txt" not in summary.text


def test_a_zip_is_read_once_and_its_rows_come_from_the_cache_after(tmp_path, activities,
                                                                    monkeypatch):
    (tmp_path / "export.zip").write_bytes(export_zip(activities, broken=False))
    first = summarise(tmp_path)
    reads = []
    real = athlete_data.read_archive
    monkeypatch.setattr(athlete_data, "read_archive",
                        lambda *a, **k: reads.append(a) or real(*a, **k))
    again = summarise(tmp_path)
    assert reads == [] and again.text == first.text
    # without the cache (a new server): each archive is read once for all its rides, and
    # the same content under another name not at all
    shutil.copy(tmp_path / "export.zip", tmp_path / "copy.zip")
    with zipfile.ZipFile(tmp_path / "one-ride.zip", "w") as archive:
        archive.write(activities / POWER_RIDE, POWER_RIDE)
    monkeypatch.setattr(athlete_data, "_cache", {})
    monkeypatch.setattr(athlete_data, "_peaks", {})
    summary = summarise(tmp_path)
    assert sorted(p[0].name for p in reads) == ["copy.zip", "one-ride.zip"]
    # the copy's rides are the same rides: counted once
    assert len(summary.files_used) == 3 and "Same ride in several files" in summary.text


def test_an_archive_bomb_and_a_broken_zip_are_named_not_read(tmp_path):
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("ride.tcx", b"\0" * (50 * 2**20))  # 50 MB of nothing, 50 kB packed
    (tmp_path / "bomb.zip").write_bytes(bomb.getvalue())
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really")
    (tmp_path / "bomb.gpx.gz").write_bytes(gzip.compress(b"\0" * (50 * 2**20)))
    summary = summarise(tmp_path)
    assert summary.files_used == []
    found = " ".join(summary.unreadable)
    assert "bomb.zip (ride.tcx expands more than 200 times" in found
    assert "broken.zip (" in found and "bomb.gpx.gz (" in found


class NoService:
    """scan() asks the service nothing."""


def test_the_sync_sends_gzipped_recordings_and_zips(tmp_path, activities):
    folder = tmp_path / "activities"
    folder.mkdir()
    (folder / "ride.fit.gz").write_bytes(gzip.compress((activities / RIDES[0]).read_bytes()))
    (folder / "ride.tcx.gz").write_bytes(b"x")
    (folder / "export.zip").write_bytes(export_zip(activities))
    (folder / "photos.tar.gz").write_bytes(b"x")  # not a recording: not sent
    (folder / "notes.gz").write_bytes(b"x")
    wanted, skipped = SquadSync(tmp_path, NoService()).scan()
    assert sorted(wanted) == ["export.zip", "ride.fit.gz", "ride.tcx.gz"]
    assert skipped == {}


def test_a_big_export_is_hashed_once_not_at_every_question(tmp_path, activities, monkeypatch):
    (tmp_path / "season.zip").write_bytes(export_zip(activities, broken=False))
    monkeypatch.setattr(athlete_data, "_hashes", {})
    summarise(tmp_path)
    hashed = []
    real = athlete_data.hashlib.sha256
    monkeypatch.setattr(athlete_data.hashlib, "sha256", lambda *a: hashed.append(1) or real(*a))
    summarise(tmp_path)
    assert hashed == []  # same size and time: the hash is known
    (tmp_path / "season.zip").touch()  # changed (its time): hashed again, once
    summarise(tmp_path)
    assert hashed == [1]
