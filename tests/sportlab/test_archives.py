"""Recordings as people export them (.fit.gz, .gpx.gz, .tcx.gz, .zip) read directly, and
archive bombs refused by name."""

import gzip
import zipfile

import pandas as pd
import pytest

from sportlab import ActivityReadError, ArchiveLimitError, read_activity, read_archive
from sportlab.archives import ArchiveLimits

FILES = ["4078723797.fit", "activity_5039744860.gpx", "activity_5039744860.tcx"]


def gzipped(source, target):
    target.write_bytes(gzip.compress(source.read_bytes()))
    return target


@pytest.mark.parametrize("name", FILES)
def test_gzipped_recordings_read_as_the_plain_file(activities, tmp_path, name):
    packed = gzipped(activities / name, tmp_path / f"{name}.gz")
    frame = read_activity(packed)
    pd.testing.assert_frame_equal(frame, read_activity(activities / name))
    assert frame.attrs == read_activity(activities / name).attrs


def test_a_zip_export_gives_every_recording_by_name(activities, tmp_path):
    export = tmp_path / "export.zip"
    with zipfile.ZipFile(export, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.write(activities / FILES[0], "activities/1.fit")
        archive.writestr("activities/2.gpx.gz",
                         gzip.compress((activities / FILES[1]).read_bytes()))
        archive.write(activities / FILES[2], "activities/3.TCX")
        archive.writestr("activities.csv", "id,name\n1,ride\n")
        archive.writestr("media/photo.jpg", b"\xff\xd8\xff")
        archive.writestr("../../outside.gpx", (activities / FILES[1]).read_bytes())
    frames = read_archive(export)
    assert list(frames) == ["activities/1.fit", "activities/2.gpx.gz", "activities/3.TCX",
                            "../../outside.gpx"]
    for member, name in zip(frames, [*FILES, FILES[1]], strict=True):
        pd.testing.assert_frame_equal(frames[member], read_activity(activities / name))
    assert not (tmp_path.parent / "outside.gpx").exists()
    with pytest.raises(ActivityReadError, match=r"read_archive"):
        read_activity(export)


@pytest.mark.parametrize("broken", ["broken.fit", "broken.fit.gz"])  # not FIT; not gzip
def test_an_unreadable_member_is_named_or_skipped(activities, tmp_path, broken):
    export = tmp_path / "export.zip"
    with zipfile.ZipFile(export, "w") as archive:
        archive.writestr(broken, b"not a fit file at all")
        archive.write(activities / FILES[1], "ok.gpx")
    with pytest.raises(ActivityReadError, match=rf"export.zip.*{broken}"):
        read_archive(export)
    with pytest.warns(UserWarning, match=f"{broken} left out"):
        assert list(read_archive(export, on_error="skip")) == ["ok.gpx"]
    (tmp_path / "no.zip").write_bytes(b"PK nothing")
    with pytest.raises(ActivityReadError, match="not a zip"):
        read_archive(tmp_path / "no.zip")


def test_a_gzip_bomb_is_refused_by_its_ratio(tmp_path):
    bomb = tmp_path / "bomb.gpx.gz"
    bomb.write_bytes(gzip.compress(b" " * (20 * 1024 * 1024)))  # 20 MB from ~20 kB
    assert bomb.stat().st_size < 100_000
    with pytest.raises(ArchiveLimitError, match=r"bomb.gpx.gz expands more than 200 times"):
        read_activity(bomb)


def test_zip_limits_on_size_members_and_total(activities, tmp_path):
    export = tmp_path / "export.zip"
    with zipfile.ZipFile(export, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for i in range(4):
            archive.write(activities / FILES[1], f"{i}.gpx")
    size = (activities / FILES[1]).stat().st_size
    with pytest.raises(ArchiveLimitError, match="4 members, more than 3"):
        read_archive(export, limits=ArchiveLimits(max_members=3))
    with pytest.raises(ArchiveLimitError, match="uncompressed"):
        read_archive(export, limits=ArchiveLimits(max_member_bytes=size - 1))
    with pytest.raises(ArchiveLimitError, match="in total"):
        read_archive(export, limits=ArchiveLimits(max_total_bytes=3 * size))
    assert len(read_archive(export, limits=ArchiveLimits(max_total_bytes=4 * size))) == 4
    small = ArchiveLimits(max_member_bytes=1000)
    with pytest.raises(ArchiveLimitError, match="expands past 1000 bytes"):
        read_activity(gzipped(activities / FILES[1], tmp_path / "x.gpx.gz"), limits=small)


def test_gzipped_members_count_their_expanded_size_towards_the_total(activities, tmp_path):
    # Strava's export is a zip of .gz files: the total limit counted only the gzip bytes, so a
    # zip of many compressed members expanded far past max_total_bytes without an error.
    export = tmp_path / "export.zip"
    plain = (activities / FILES[1]).read_bytes()
    with zipfile.ZipFile(export, "w") as archive:
        for i in range(4):
            archive.writestr(f"activities/{i}.gpx.gz", gzip.compress(plain))
    assert export.stat().st_size < 2 * len(plain)  # the gzip layer makes it small
    with pytest.raises(ArchiveLimitError, match="in total"):
        read_archive(export, limits=ArchiveLimits(max_total_bytes=3 * len(plain)))
    with pytest.raises(ArchiveLimitError, match="0.gpx.gz expands past"):
        read_archive(export, limits=ArchiveLimits(max_member_bytes=len(plain) - 1))
    frames = read_archive(export, limits=ArchiveLimits(max_total_bytes=4 * len(plain)))
    assert list(frames) == [f"activities/{i}.gpx.gz" for i in range(4)]
    pd.testing.assert_frame_equal(frames["activities/3.gpx.gz"], read_activity(activities / FILES[1]))


def test_iter_archive_gives_one_recording_at_a_time(activities, tmp_path, monkeypatch):
    import sportlab.readers
    from sportlab.archives import iter_archive

    export = tmp_path / "export.zip"
    with zipfile.ZipFile(export, "w") as archive:
        archive.write(activities / FILES[0], "1.fit")
        archive.write(activities / FILES[1], "2.gpx")
    read = []
    real = sportlab.readers.read_activity
    monkeypatch.setattr(sportlab.readers, "read_activity",
                        lambda path, **kw: read.append(path) or real(path, **kw))
    recordings = iter_archive(export)
    name, frame = next(recordings)
    assert name == "1.fit" and len(read) == 1  # the second is not read yet
    pd.testing.assert_frame_equal(frame, real(activities / FILES[0]))
    assert [n for n, _ in recordings] == ["2.gpx"] and len(read) == 2
    assert list(read_archive(export)) == ["1.fit", "2.gpx"]
