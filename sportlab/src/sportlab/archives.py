"""Recordings as people export them: gzip-compressed files and zip archives, with bomb limits.

Strava's bulk export holds ``activities/*.fit.gz``, ``*.gpx.gz`` and ``*.tcx.gz``; Garmin's and
Strava's exports are ``.zip`` files of activity files. :func:`sportlab.read_activity` reads a
``.fit.gz``, ``.gpx.gz`` or ``.tcx.gz`` directly, and :func:`read_archive` every recording in a
``.zip`` (members may themselves be ``.gz``), without unpacking by hand.

A small archive can expand to fill the disk or the memory (an "archive bomb"), so reading
stops with :class:`ArchiveLimitError` past any of :class:`ArchiveLimits`: the uncompressed size
of one recording, of the whole archive, the number of members, and the compression ratio. The
sizes are counted while decompressing, never taken from the archive's headers alone (which a
bomb can fake). The defaults are generous for real recordings: a 6-hour ride is about 3 MB as
FIT and 20 MB as TCX, XML compresses about 10-30 times, and a decade of daily training is
under 5 000 files.
"""

from __future__ import annotations

import gzip
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import pandas as pd

ACTIVITY_SUFFIXES = (".fit", ".gpx", ".tcx")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ArchiveLimits:
    """Limits against archive bombs (bytes are uncompressed bytes)."""

    #: largest uncompressed recording
    max_member_bytes: int = 256 * 1024 * 1024
    #: largest uncompressed total of a zip's recordings
    max_total_bytes: int = 4 * 1024 * 1024 * 1024
    #: most members a zip may list (files of any kind)
    max_members: int = 20_000
    #: largest uncompressed / compressed size of one member (real XML: 10-30)
    max_ratio: float = 200.0


DEFAULT_LIMITS = ArchiveLimits()


class ArchiveLimitError(ValueError):
    """An archive goes past one of :class:`ArchiveLimits`; the message names the limit."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(
            f"archive {str(path)!r} refused: {problem} (limits: sportlab.archives.ArchiveLimits)")


def inner_suffix(path: str | Path) -> str:
    """The recording's suffix of a name such as ``ride.fit.gz`` (``.fit``), lower-case."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def _copy_limited(source: IO[bytes], target: IO[bytes], compressed: int, what: str,
                  path: str | Path, limits: ArchiveLimits, budget: int) -> int:
    """Copy ``source`` to ``target`` counting bytes; refuse past the member size, the ratio to
    ``compressed`` or the remaining total ``budget``. Returns the bytes copied."""
    written = 0
    while chunk := source.read(_CHUNK):
        written += len(chunk)
        if written > limits.max_member_bytes:
            raise ArchiveLimitError(path, f"{what} expands past {limits.max_member_bytes} bytes")
        if written > budget:
            raise ArchiveLimitError(path, f"the archive expands past {limits.max_total_bytes} "
                                    "bytes in total")
        if written > 1_000_000 and written > limits.max_ratio * max(compressed, 1):
            raise ArchiveLimitError(path, f"{what} expands more than {limits.max_ratio:g} times "
                                    f"its compressed size of {compressed} bytes")
        target.write(chunk)
    return written


def read_gzipped(
    path: Path, reader: Callable[[Path], pd.DataFrame], limits: ArchiveLimits = DEFAULT_LIMITS
) -> pd.DataFrame:
    """Decompress ``path`` (``*.fit.gz`` ...) into a private temporary file within ``limits``
    and read it with ``reader`` (which gets a path with the recording's own suffix)."""
    with tempfile.TemporaryDirectory(prefix="sportlab-") as folder:
        target = Path(folder) / Path(path.name[: -len(".gz")]).name
        with gzip.open(path, "rb") as source, target.open("wb") as out:
            _copy_limited(source, out, path.stat().st_size, path.name, path, limits,
                          limits.max_member_bytes)
        return reader(target)


def read_archive(
    path: str | Path,
    *,
    limits: ArchiveLimits = DEFAULT_LIMITS,
    on_error: Literal["raise", "skip"] = "raise",
) -> dict[str, pd.DataFrame]:
    """Every recording in a ``.zip`` (``.fit``, ``.gpx``, ``.tcx``, each maybe ``.gz``), by its
    name in the archive, in archive order; other members (photos, CSV) are ignored.

    Each recording is read as :func:`sportlab.read_activity` reads a file. A member that
    cannot be read raises :class:`sportlab.ActivityReadError` naming it, or with
    ``on_error="skip"`` is left out with a warning. Past a limit (:class:`ArchiveLimits`):
    :class:`ArchiveLimitError`, whatever ``on_error``. :func:`iter_archive` gives the same one
    recording at a time.
    """
    return dict(iter_archive(path, limits=limits, on_error=on_error))


def iter_archive(
    path: str | Path,
    *,
    limits: ArchiveLimits = DEFAULT_LIMITS,
    on_error: Literal["raise", "skip"] = "raise",
) -> Iterator[tuple[str, pd.DataFrame]]:
    """:func:`read_archive` one recording at a time, ``(name in the archive, frame)``: a season's
    export need not be in memory all at once (a service summarising it keeps one frame)."""
    from sportlab.readers import ActivityReadError, read_activity

    path = Path(path)
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if not path.is_file():
        raise ActivityReadError(path, "file does not exist")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ActivityReadError(path, f"not a zip archive: {exc}") from exc
    with archive, tempfile.TemporaryDirectory(prefix="sportlab-") as folder:
        members = archive.infolist()
        if len(members) > limits.max_members:
            raise ArchiveLimitError(path, f"{len(members)} members, more than "
                                    f"{limits.max_members}")
        budget = limits.max_total_bytes
        for number, member in enumerate(members):
            name = member.filename
            if member.is_dir() or inner_suffix(name) not in ACTIVITY_SUFFIXES:
                continue
            if member.file_size > limits.max_member_bytes:  # the header alone already says so
                raise ArchiveLimitError(path, f"{name} is {member.file_size} bytes uncompressed")
            # A private name per member: archive paths may hold "..", which must not escape.
            # A .gz member is expanded here, so its recording's bytes (not the gzip's) count
            # towards the total; the ratio is to the bytes the zip stores.
            target = Path(folder) / f"{number}{inner_suffix(name)}"
            try:
                with archive.open(member) as stored, target.open("wb") as out:
                    gzipped = name.lower().endswith(".gz")
                    source = gzip.GzipFile(fileobj=stored) if gzipped else stored
                    try:
                        budget -= _copy_limited(source, out, member.compress_size, name, path,
                                                limits, budget)
                    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
                        raise ActivityReadError(target, f"not gzip: {exc}") from exc
                frame = read_activity(target, limits=limits)
            except ActivityReadError as exc:
                if on_error == "raise":
                    raise ActivityReadError(path, f"{name}: {exc.problem}") from exc
                warnings.warn(f"{path.name}: {name} left out: {exc.problem}", stacklevel=3)
                continue
            finally:
                target.unlink(missing_ok=True)
            yield name, frame


__all__ = [
    "ACTIVITY_SUFFIXES",
    "DEFAULT_LIMITS",
    "ArchiveLimitError",
    "ArchiveLimits",
    "inner_suffix",
    "iter_archive",
    "read_archive",
    "read_gzipped",
]
