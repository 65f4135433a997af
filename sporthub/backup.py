"""Backup and restore of a whole SportHub installation, as one archive.

The archive (a gzipped tar, written 0600) holds the hub's database, the gateway's usage ledger,
the account store, the secrets, the gateway's audit log and every person's home. It is taken
while SportHub runs: databases are copied with SQLite's online backup API or ``pg_dump`` (one
consistent snapshot each, never a file copy of a live database). A restore goes into an EMPTY
installation only: it never merges into, or overwrites, one that has data.

Layout, in this order (so a restore checks everything it can before it writes anything)::

    manifest.json                  what is inside and how it was taken
    secrets.tar | secrets.tar.enc  <data>/secrets/ (encrypted with a passphrase if asked)
    databases/<name>.sqlite|.pgdump  hub, ledger, accounts
    files/gateway-audit.jsonl
    homes/<user>/...               each person's home: <data>/users/<user>, or, when the hub
                                   runs as root, their system user's home (restored into the
                                   system user of the target's SPORTHUB_LOCAL_USER_PREFIX); in
                                   the docker profile, their named volume (restored into the
                                   volume of the target's SPORTHUB_DOCKER_NAME_PREFIX)

The docker profile's volumes are read and written through the engine's API only (Docker Engine
or podman, wherever the engine runs: the hub may itself be a container): a helper container of
the user image mounts the volume and is never started; the engine's archive endpoint streams
the volume as a tar (owners, modes and times as they are: UID 1000) and unpacks one into it. A
home is read file by file while its owner may be working, as in the local profile: each file is
whole, a file written during the backup may be in its state before or after.
"""

from __future__ import annotations

import base64
import grp
import io
import json
import os
import pwd
import shutil
import sqlite3
import stat
import subprocess
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from sqlalchemy import MetaData, create_engine, inspect, text
from sqlalchemy.engine import make_url

from sporthub.hub import localusers
from sporthub.hub.profiles import local, profile_of
from sporthub.settings import Settings, SettingsError

FORMAT = 1
# the profiles whose people's homes a backup reaches (their HOMES: folders on this machine, the
# engine's volumes; the k8s profile's are the cluster's), as archives name them
PROFILES = ("local", "docker")
MANIFEST = "manifest.json"
# scrypt at n=2**15, r=8: 32 MiB and a fraction of a second per guess; the parameters are kept
# in the manifest so a later version can raise them and still read old archives
SCRYPT = {"n": 2**15, "r": 8, "p": 1}


class BackupError(Exception):
    """Backup or restore cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class Database:
    name: str
    url: str
    setting: str  # the setting that points at it, for messages

    @property
    def kind(self) -> str:
        return "sqlite" if self.url.startswith("sqlite") else "postgresql"

    @property
    def member(self) -> str:
        return f"databases/{self.name}.{'sqlite' if self.kind == 'sqlite' else 'pgdump'}"

    @property
    def path(self) -> Path:
        return Path(make_url(self.url).database)


def hub_db_url(settings: Settings) -> str:
    return settings.hub_database_url


def databases(settings: Settings) -> list[Database]:
    return [
        Database("hub", hub_db_url(settings), "SPORTHUB_HUB_DB_URL"),
        Database("ledger", settings.ledger_url, "SPORTHUB_DB_URL"),
        Database("accounts", settings.accounts_url, "SPORTHUB_DATA_DIR"),
    ]


def homes_dir(settings: Settings) -> Path:
    return settings.data_dir / "users"


def system_users_own_homes() -> bool:
    """A hub run as root gives each person a system user whose home is theirs (localusers)."""
    return local.is_root()


def home_volumes(settings: Settings) -> bool:
    """People's homes are the container engine's volumes (:class:`Volumes`), not folders here."""
    return profile_of(settings).HOMES == "volumes"


def hub_user_names(settings: Settings) -> list[str]:
    """Everyone the hub knows, from its database; none if the hub never ran here."""
    hub_db = Database("hub", hub_db_url(settings), "SPORTHUB_HUB_DB_URL")
    if hub_db.kind == "sqlite" and not hub_db.path.exists():
        return []  # the hub never ran here (and connecting would create the file)
    engine = create_engine(hub_db.url)
    try:
        if not inspect(engine).has_table("users"):
            return []  # the hub never ran here: nobody has a home yet
        with engine.connect() as db:
            return sorted(db.execute(text("SELECT name FROM users")).scalars())
    finally:
        engine.dispose()


def local_homes(settings: Settings) -> dict[str, Path]:
    """Each person's home that exists, by hub name."""
    if not system_users_own_homes():
        root = homes_dir(settings)
        return {p.name: p for p in sorted(root.iterdir()) if p.is_dir()} if root.is_dir() else {}
    homes = {}
    for name in hub_user_names(settings):
        try:
            user = pwd.getpwnam(localusers.system_username(name, settings.local_user_prefix))
        except KeyError:
            continue  # never started a server: no system user, no home
        if Path(user.pw_dir).is_dir():
            homes[name] = Path(user.pw_dir)
    return homes


# -- backup ---------------------------------------------------------------------------------


def backup(settings: Settings, archive: Path, passphrase: str | None = None) -> dict:
    """Write the archive; returns its manifest. The file appears only when it is complete."""
    if profile_of(settings).HOMES == "cluster":
        # homes live in the cluster's volumes there; an archive without them would look
        # complete and is not
        raise BackupError(f"backup of the {settings.profile!r} profile's home volumes is not "
                          f"implemented; SPORTHUB_PROFILE={' or '.join(PROFILES)} is supported")
    archive = archive.resolve()
    if archive.exists():
        raise BackupError(f"{archive} exists already; choose a new file name")
    if archive.is_relative_to(settings.data_dir.resolve()):
        raise BackupError(f"write the archive outside the data directory {settings.data_dir}")
    # the engine answers and has the image, before anything is dumped
    volumes = Volumes(settings) if home_volumes(settings) else None
    with tempfile.TemporaryDirectory(prefix="sporthub-backup-", dir=archive.parent) as tmp:
        tmp = Path(tmp)
        dbs = {}
        for db in databases(settings):
            dump = tmp / db.member.replace("/", "-")
            if _dump(db, dump):
                dbs[db.name] = {"kind": db.kind, "member": db.member, "file": dump}
        secrets = _pack_dir(settings.secrets_dir)
        encryption = None
        if passphrase is not None:
            salt = os.urandom(16)
            secrets = Fernet(_key(passphrase, salt, SCRYPT)).encrypt(secrets)
            encryption = {"kdf": "scrypt", **SCRYPT,
                          "salt": base64.b64encode(salt).decode(), "cipher": "fernet"}
        homes = volumes.homes() if volumes else local_homes(settings)
        audit = settings.audit_log_path
        manifest = {
            "format": FORMAT,
            "created_at": datetime.now(UTC).isoformat(),
            "profile": settings.profile,
            "databases": {n: {"kind": d["kind"], "member": d["member"]} for n, d in dbs.items()},
            "secrets": {"member": "secrets.tar.enc" if encryption else "secrets.tar",
                        "encryption": encryption},
            "files": ["files/gateway-audit.jsonl"] if audit.exists() else [],
            "homes": sorted(homes),
        }
        if volumes:
            manifest["home_volumes"] = homes
        # written inside the private (0700) temporary folder, created there exclusively, then
        # linked to its name: nobody else can have created the file first, and an archive (or
        # a symlink) that appeared at that name meanwhile is never overwritten
        partial = tmp / "archive.partial"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w:gz") as tar:
            _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=2).encode())
            _add_bytes(tar, manifest["secrets"]["member"], secrets)
            for d in dbs.values():
                tar.add(d["file"], arcname=d["member"])
            if audit.exists():
                tar.add(audit, arcname="files/gateway-audit.jsonl")
            for name, home in homes.items():
                if volumes:
                    volumes.archive(home, tar, f"homes/{name}")
                else:
                    add_home(tar, home, f"homes/{name}")
        try:
            os.link(partial, archive)
        except FileExistsError:
            raise BackupError(f"{archive} appeared while the backup was written; choose a new "
                              "file name") from None
    return manifest


def add_home(tar: tarfile.TarFile, home: Path, arcname: str) -> None:
    """A person's home into the archive, walked by file descriptors and never through a link.

    The person owns everything in it and may swap a folder for a symlink (to /root, say) while
    the walk runs; ``tarfile.add`` would then follow it. ``os.fwalk`` checks that each folder it
    enters is the one it listed, and every file is opened without following a link."""
    try:
        top = os.open(home, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as e:
        raise BackupError(f"{home} is not a folder one can back up: {e.strerror}") from None
    try:
        tar.addfile(_info(tar, arcname, os.fstat(top)))
        for folder, dirs, files, fd in os.fwalk(".", dir_fd=top, follow_symlinks=False):
            for name in sorted(dirs + files):
                _add_entry(tar, fd, name, f"{arcname}/{os.path.normpath(folder)}/{name}"
                           .replace("/./", "/"))
    finally:
        os.close(top)


def _add_entry(tar: tarfile.TarFile, folder: int, name: str, arcname: str) -> None:
    st = os.stat(name, dir_fd=folder, follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        tar.addfile(_info(tar, arcname, st))
    elif stat.S_ISLNK(st.st_mode):
        info = _info(tar, arcname, st)
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(name, dir_fd=folder)
        tar.addfile(info)
    elif stat.S_ISREG(st.st_mode):
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
        except OSError:
            return  # swapped for a link (or gone) since it was listed: not followed
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode):
                tar.addfile(_info(tar, arcname, st), f)
    # sockets, FIFOs and devices have no content to keep


def _info(tar: tarfile.TarFile, arcname: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tar.tarinfo(arcname)
    info.mode, info.uid, info.gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
    info.mtime = int(st.st_mtime)
    info.type = tarfile.DIRTYPE if stat.S_ISDIR(st.st_mode) else tarfile.REGTYPE
    info.size = st.st_size if stat.S_ISREG(st.st_mode) else 0
    for attr, lookup, key in (("uname", pwd.getpwuid, st.st_uid), ("gname", grp.getgrgid, st.st_gid)):
        try:
            setattr(info, attr, lookup(key)[0])
        except KeyError:
            pass
    return info


def _dump(db: Database, target: Path) -> bool:
    """One consistent copy of a live database; False if it does not exist (yet)."""
    if db.kind == "sqlite":
        if not db.path.exists():
            return False
        # the online backup API copies a consistent snapshot while the hub keeps writing
        with closing(sqlite3.connect(f"{db.path.resolve().as_uri()}?mode=ro", uri=True)) as source, \
                closing(sqlite3.connect(target)) as copy:
            source.backup(copy)
        return True
    # pg_dump reads one snapshot in one transaction; the custom format restores with pg_restore
    _pg("pg_dump", db.url, "--format=custom", "--no-owner", "--no-privileges",
        f"--file={target}")
    return True


def _pack_dir(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        if directory.is_dir():
            for path in sorted(directory.iterdir()):
                tar.add(path, arcname=path.name)
    return buffer.getvalue()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o600, int(datetime.now(UTC).timestamp())
    tar.addfile(info, io.BytesIO(data))


def _key(passphrase: str, salt: bytes, params: dict) -> bytes:
    kdf = Scrypt(salt=salt, length=32, n=params["n"], r=params["r"], p=params["p"])
    return base64.urlsafe_b64encode(kdf.derive(passphrase.encode()))


# -- restore --------------------------------------------------------------------------------


def restore(settings: Settings, archive: Path, passphrase: str | None = None) -> dict:
    """Restore the archive into this (empty) installation; returns the archive's manifest."""
    targets = {db.name: db for db in databases(settings)}
    data_dir = settings.data_dir.resolve()
    with tarfile.open(archive, mode="r:gz") as tar:
        manifest = _read_manifest(tar)
        if manifest["profile"] != settings.profile:
            raise BackupError(f"the archive is of the {manifest['profile']!r} profile, this "
                              f"installation's is {settings.profile!r} (SPORTHUB_PROFILE): "
                              "restore into the same profile")
        _check_empty(data_dir, [targets[n] for n in manifest["databases"]])
        volumes = Volumes(settings) if home_volumes(settings) else None
        if volumes:
            volumes.check_empty(manifest["homes"])
        for name, entry in manifest["databases"].items():
            if entry["kind"] != targets[name].kind:
                raise BackupError(
                    f"the archive's {name} database is {entry['kind']}, this installation's is "
                    f"{targets[name].kind} ({targets[name].setting}); restore into the same kind")
        secrets = _read_member(tar, manifest["secrets"]["member"])
        encryption = manifest["secrets"]["encryption"]
        if encryption:
            if passphrase is None:
                raise BackupError("the archive's secrets are encrypted: give the passphrase "
                                  "(--passphrase-file, or type it when asked)")
            salt = base64.b64decode(encryption["salt"])
            try:
                secrets = Fernet(_key(passphrase, salt, encryption)).decrypt(secrets)
            except InvalidToken:
                raise BackupError("wrong passphrase for the archive's secrets") from None
        # everything is checked: from here on, a failure removes what was written
        restored: list[Database] = []
        try:
            data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            settings.secrets_dir.resolve().mkdir(mode=0o700)
            with tarfile.open(fileobj=io.BytesIO(secrets)) as inner:
                inner.extractall(settings.secrets_dir.resolve(), filter="tar")
            with tempfile.TemporaryDirectory(prefix="sporthub-restore-", dir=data_dir) as tmp:
                for member in tar:
                    if member.name.startswith("databases/"):
                        name = Path(member.name).stem
                        dump = Path(tmp) / Path(member.name).name
                        _write(tar, member, dump)
                        _load(targets[name], dump)
                        restored.append(targets[name])
                    elif member.name.startswith("files/"):
                        _write(tar, member, data_dir / Path(member.name).name)
                    elif member.name.startswith("homes/") and volumes:
                        volumes.spool(tar, member, Path(tmp))
                    elif member.name.startswith("homes/"):
                        _restore_home_member(tar, member, settings)
                if volumes:
                    volumes.fill_spooled()
            if "hub" in manifest["databases"]:
                _no_servers_running(targets["hub"].url)
        except BaseException:
            _undo(data_dir, [db for db in restored if db.kind == "postgresql"])
            if volumes:
                volumes.remove_created()
            raise
    return manifest


def _restore_home_member(tar: tarfile.TarFile, member: tarfile.TarInfo,
                         settings: Settings) -> None:
    """A file of a person's home, into <data>/users/, or their system user's home, theirs."""
    if not system_users_own_homes():
        member.name = "users/" + member.name.removeprefix("homes/")
        tar.extract(member, settings.data_dir.resolve(), filter="tar")
        return
    name, _, rest = member.name.removeprefix("homes/").partition("/")
    user = localusers.ensure_system_user(
        localusers.system_username(name, settings.local_user_prefix), name)
    if not rest:
        return  # the home itself: ensure_system_user made it, 0700 and theirs
    member.name = rest
    home = Path(user.pw_dir)
    tar.extract(member, home, filter="tar")
    target = home / rest
    # the archive's owner may be another machine's uid: the person's system user owns it here
    os.lchown(target, user.pw_uid, user.pw_gid)


def manifest_of(archive: Path) -> dict:
    """What an archive holds, read from its first member only."""
    with tarfile.open(archive, mode="r:gz") as tar:
        return _read_manifest(tar)


def _read_manifest(tar: tarfile.TarFile) -> dict:
    first = tar.next()
    if first is None or first.name != MANIFEST:
        raise BackupError("not a SportHub backup (no manifest.json at its start)")
    manifest = json.loads(tar.extractfile(first).read())
    if manifest.get("format") != FORMAT:
        raise BackupError(f"archive format {manifest.get('format')} is not {FORMAT}")
    if manifest.get("profile") not in PROFILES:
        raise BackupError(f"restoring a {manifest.get('profile')!r} backup is not implemented")
    return manifest


def _read_member(tar: tarfile.TarFile, name: str) -> bytes:
    member = tar.next()
    if member is None or member.name != name:
        raise BackupError(f"the archive is damaged: expected {name}")
    return tar.extractfile(member).read()


def _check_empty(data_dir: Path, dbs: list[Database]) -> None:
    if data_dir.exists() and any(data_dir.iterdir()):
        found = ", ".join(sorted(p.name for p in data_dir.iterdir())[:5])
        raise BackupError(f"{data_dir} is not empty ({found}); restore only into an empty "
                          "installation (a new SPORTHUB_DATA_DIR)")
    for db in dbs:
        if db.kind == "postgresql":
            engine = create_engine(db.url)
            try:
                tables = inspect(engine).get_table_names()
            finally:
                engine.dispose()
            if tables:
                raise BackupError(f"the {db.name} database ({db.setting}) has tables already; "
                                  "restore only into empty databases")


def _write(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(tar.extractfile(member), out)


def _load(db: Database, dump: Path) -> None:
    if db.kind == "sqlite":
        db.path.parent.mkdir(parents=True, exist_ok=True)
        dump.rename(db.path)
        return
    _pg("pg_restore", db.url, "--no-owner", "--no-privileges", "--exit-on-error",
        "--single-transaction", str(dump))


def _no_servers_running(url: str) -> None:
    """A restored installation runs no user servers yet: forget the ones the backup saw running.

    Otherwise the hub would poll the old processes or containers recorded in the snapshot (on the
    same machine, possibly still alive and belonging to the original installation)."""
    from jupyterhub import orm  # the hub's own model of its database; loaded only when needed

    session = orm.new_session_factory(url)()
    try:
        for spawner in session.query(orm.Spawner).filter(orm.Spawner.server_id.is_not(None)):
            spawner.server = None
            spawner.state = {}
        session.commit()
    finally:
        session.get_bind().dispose()
        session.close()


def _undo(data_dir: Path, dbs: list[Database]) -> None:
    """Back to the empty installation the restore started from."""
    for path in data_dir.iterdir() if data_dir.is_dir() else []:
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    for db in dbs:
        engine = create_engine(db.url)
        try:
            metadata = MetaData()
            metadata.reflect(engine)
            metadata.drop_all(engine)
        finally:
            engine.dispose()


# -- the docker profile's homes: the engine's named volumes ----------------------------------

# where a helper container mounts a volume; a path the image does not have, so that an empty
# volume stays empty (an engine copies an image's directory into a new volume mounted on it)
MOUNT = "/sporthub-volume"
HELPER_LABEL = "org.sporthub.role"
# a helper lists or chowns the top of one volume: seconds even on a loaded machine
HELPER_TIMEOUT_S = 120
HELPER_POLL_S = 0.1


class Volumes:
    """The people's home volumes, read and written through the engine's API only."""

    def __init__(self, settings: Settings):
        from sporthub.hub.profiles import docker as spawners  # the docker SDK: this profile only

        self.settings = settings
        self.spawners = spawners
        self.created: list[str] = []
        self.spools: dict[str, tarfile.TarFile] = {}
        self.root_modes: dict[str, int] = {}  # each spooled home's own mode, from the archive
        self.open_spools = ExitStack()
        try:
            self.client = spawners.engine_client()
        except SettingsError as e:
            raise BackupError(str(e)) from None
        try:
            self.client.images.get(settings.singleuser_image)
        except self.errors.ImageNotFound:
            # the helper that mounts a volume is a container of the user image
            raise BackupError(f"SPORTHUB_SINGLEUSER_IMAGE={settings.singleuser_image} is not "
                              "built on this engine: run `make images`") from None

    @property
    def errors(self):
        return self.spawners.docker.errors

    def volume(self, name: str) -> str:
        return self.spawners.home_volume(self.settings.docker_name_prefix, name)

    def homes(self) -> dict[str, str]:
        """Each person's home volume that exists, by hub name."""
        homes = {}
        for name in hub_user_names(self.settings):
            try:
                homes[name] = self.client.volumes.get(self.volume(name)).name
            except self.errors.NotFound:
                continue  # never started a server: no volume yet
        return homes

    @contextmanager
    def mounted(self, volume: str, read_only: bool) -> Iterator:
        """A container that mounts the volume at MOUNT, created and never started."""
        helper = self.client.containers.create(
            self.settings.singleuser_image, name=f"{volume}-backup-{uuid.uuid4().hex[:8]}",
            network_disabled=True, labels={HELPER_LABEL: "backup"},
            user=f"{self.spawners.UID}:{self.spawners.UID}",
            volumes={volume: {"bind": MOUNT, "mode": "ro" if read_only else "rw"}})
        try:
            yield helper
        finally:
            helper.remove(force=True, v=False)

    def run_in(self, volume: str, command: list[str], read_only: bool,
               capabilities: tuple[str, ...]) -> str:
        """Run ``command`` as root with only ``capabilities`` in a helper container mounting the
        volume at MOUNT, no network; returns its output.

        Not the SDK's ``containers.run``: it blocks on a followed log (json-file, which podman
        reports too) and on the engine's wait, with no time limit, and podman 4.3's API service
        can leave either blocked after the helper has finished (a CI run's ``sporthub restore``
        was killed after 300 s; 1 run in 180 here). Here the helper's state is read until it
        has exited, within HELPER_TIMEOUT_S, and its output fetched once it has."""
        helper = self.client.containers.create(
            self.settings.singleuser_image, command, name=f"{volume}-helper-{uuid.uuid4().hex[:8]}",
            network_disabled=True, labels={HELPER_LABEL: "backup"}, user="0:0",
            cap_drop=["ALL"], cap_add=list(capabilities), security_opt=["no-new-privileges"],
            volumes={volume: {"bind": MOUNT, "mode": "ro" if read_only else "rw"}})
        what = " ".join(command)
        try:
            helper.start()
            status = self._exit_status(helper, what)
            if status != 0:
                said = helper.logs(stdout=False, stderr=True).decode(errors="replace").strip()
                raise BackupError(f"`{what}` on the volume {volume} failed "
                                  f"(exit status {status}): {said}")
            return helper.logs(stdout=True, stderr=False).decode(errors="replace")
        finally:
            helper.remove(force=True, v=False)

    def _exit_status(self, helper, what: str) -> int:
        deadline = time.monotonic() + HELPER_TIMEOUT_S
        while True:
            try:
                helper.reload()
            except self.errors.APIError as e:
                # podman 4.3 answers 500 ("read /proc/<pid>/cgroup: no such process") when
                # asked at the moment the helper's process ends: asked again, it has exited
                if e.status_code != 500 or time.monotonic() > deadline:
                    raise
                time.sleep(HELPER_POLL_S)
                continue
            state = helper.attrs["State"]
            if state["Status"] in ("exited", "dead"):
                return state["ExitCode"]
            if time.monotonic() > deadline:
                raise BackupError(f"the container engine's helper for `{what}` did not finish "
                                  f"within {HELPER_TIMEOUT_S} s (state {state['Status']!r})")
            time.sleep(HELPER_POLL_S)

    def own_root(self, volume: str, mode: int) -> None:
        """The volume's top folder becomes the person's (UID 1000) with ``mode``.

        An archive's "." entry cannot do it: Docker Engine's upload skips "." for a folder that
        exists (moby's Unpack), so a restored or moved home stayed root's 0755 and its person
        could not create a file in it (podman applies it)."""
        uid = self.spawners.UID
        self.run_in(volume, ["sh", "-c", f"chown {uid}:{uid} {MOUNT} && chmod {mode:o} {MOUNT}"],
                    read_only=False, capabilities=("CHOWN", "FOWNER"))

    def archive(self, volume: str, tar: tarfile.TarFile, prefix: str) -> None:
        """Copy the volume into ``tar`` under ``prefix``, member by member, streaming."""
        with self.mounted(volume, read_only=True) as helper:
            chunks, _ = helper.get_archive(MOUNT)
            reader = _ChunkReader(chunks)
            with tarfile.open(fileobj=reader, mode="r|") as inner:
                top = None
                for member in inner:
                    # the engine names the members after the mount point: MOUNT's last part
                    top = top or member.name.split("/", 1)[0]
                    member.name = _rebase(member.name, top, prefix)
                    if member.islnk():
                        member.linkname = _rebase(member.linkname, top, prefix)
                    tar.addfile(member, inner.extractfile(member) if member.isreg() else None)
            reader.drain()

    def is_empty(self, volume: str) -> bool:
        # listed inside a helper rather than read from the engine's archive: an archive left
        # unread (a home of gigabytes) keeps Docker Engine writing, and the helper's removal
        # then waits for it (the API call timed out)
        found = self.run_in(volume, ["find", MOUNT, "-mindepth", "1", "-maxdepth", "1",
                                     "-print", "-quit"],
                            read_only=True, capabilities=("DAC_READ_SEARCH",))
        return not found.strip()

    def check_empty(self, names: Iterable[str]) -> None:
        for name in names:
            volume = self.volume(name)
            try:
                self.client.volumes.get(volume)
            except self.errors.NotFound:
                continue
            if not self.is_empty(volume):
                raise BackupError(f"the volume {volume} (home of {name}) is not empty; restore "
                                  "only into an empty installation (another "
                                  "SPORTHUB_DOCKER_NAME_PREFIX, or remove the volume)")

    def spool(self, tar: tarfile.TarFile, member: tarfile.TarInfo, tmp: Path) -> None:
        """Keep a member of homes/<name>/ in a tar of that person's, named as in the volume."""
        name, _, rest = member.name.removeprefix("homes/").partition("/")
        if name not in self.spools:
            # open across calls, one per person; the ExitStack closes them all
            spool = tarfile.open(tmp / f"volume-{len(self.spools)}.tar", mode="w")  # noqa: SIM115
            self.spools[name] = self.open_spools.enter_context(spool)
        member.name = rest or "."
        if not rest:
            self.root_modes[name] = stat.S_IMODE(member.mode)
        if member.islnk():
            member.linkname = member.linkname.removeprefix(f"homes/{name}/")
        self.spools[name].addfile(member, tar.extractfile(member) if member.isreg() else None)

    def fill_spooled(self) -> None:
        """Create each spooled person's volume and unpack their files into it."""
        self.open_spools.close()
        for name, out in self.spools.items():
            spool = Path(out.name)
            volume = self.volume(name)
            try:
                self.client.volumes.get(volume)
            except self.errors.NotFound:
                self.client.volumes.create(volume, labels={HELPER_LABEL: "home"})
                self.created.append(volume)
            with self.mounted(volume, read_only=False) as helper, spool.open("rb") as data:
                if not helper.put_archive(MOUNT, data):
                    raise BackupError(f"the engine refused to fill the volume {volume}")
            self.own_root(volume, self.root_modes.get(name, 0o755))

    def remove_created(self) -> None:
        """Undo a restore: the volumes it created go again."""
        self.open_spools.close()
        for volume in self.created:
            try:
                self.client.volumes.get(volume).remove(force=True)
            except self.errors.NotFound:
                pass
        self.created = []


# -- from the local profile to the docker profile --------------------------------------------


class _OwnedByUid1000(tarfile.TarFile):
    """A tar whose members all belong to the container's user (UID 1000), whoever owned the
    files on the host (the person's system user, or the hub's own user)."""

    def addfile(self, tarinfo, fileobj=None):
        tarinfo.uid = tarinfo.gid = self.uid
        tarinfo.uname = tarinfo.gname = ""
        super().addfile(tarinfo, fileobj)


def move_homes(settings: Settings) -> dict[str, str]:
    """Copy each person's home of the local profile into their docker-profile volume.

    Run once, with the docker profile's settings, on the machine the local profile ran on (the
    same data directory and SPORTHUB_LOCAL_USER_PREFIX), before people start their containers: a
    person with no volume would start with an empty home, their files left in the old one. The
    old homes stay as they are (removed by the admin once people found their files). Refuses,
    before writing anything, a volume that already has files. Returns {name: volume}."""
    if not home_volumes(settings):
        raise BackupError("run it with SPORTHUB_PROFILE=docker (the profile the homes move to), "
                          "on the machine and data directory of the local profile")
    homes = local_homes(settings)
    volumes = Volumes(settings)
    volumes.check_empty(homes)
    moved = {}
    with tempfile.TemporaryDirectory(prefix="sporthub-move-") as tmp:
        for name, home in homes.items():
            spool = Path(tmp) / "home.tar"
            with _OwnedByUid1000.open(spool, "w") as tar:
                tar.uid = volumes.spawners.UID
                add_home(tar, home, ".")
            volume = volumes.volume(name)
            try:
                volumes.client.volumes.get(volume)
            except volumes.errors.NotFound:
                volumes.client.volumes.create(volume, labels={HELPER_LABEL: "home"})
            with volumes.mounted(volume, read_only=False) as helper, spool.open("rb") as data:
                if not helper.put_archive(MOUNT, data):
                    raise BackupError(f"the engine refused to fill the volume {volume}")
            volumes.own_root(volume, stat.S_IMODE(os.stat(home).st_mode))
            spool.unlink()
            moved[name] = volume
    return moved


def _rebase(name: str, top: str, prefix: str) -> str:
    """``<top>/a/b`` (as the engine names it) to ``<prefix>/a/b``."""
    rest = name.removeprefix(top).strip("/")
    return f"{prefix}/{rest}" if rest else prefix


class _ChunkReader(io.RawIOBase):
    """A file to read from the engine's stream of byte chunks (tarfile reads files)."""

    def __init__(self, chunks: Iterable[bytes]):
        self.chunks = iter(chunks)
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.pending:
            chunk = next(self.chunks, None)
            if chunk is None:
                return 0
            self.pending = chunk
        size = min(len(buffer), len(self.pending))
        buffer[:size], self.pending = self.pending[:size], self.pending[size:]
        return size

    def drain(self) -> None:
        """Read what tarfile left after the end marker (its padding): the engine's answer is
        then complete, not cut off by the helper's removal."""
        for _ in self.chunks:
            pass


# -- helpers --------------------------------------------------------------------------------


def _pg(program: str, url: str, *args: str) -> None:
    """Run pg_dump/pg_restore on a SQLAlchemy URL; the password goes by environment, never argv."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = parsed.password
    libpq = parsed.set(drivername="postgresql", password=None).render_as_string(
        hide_password=False)
    if shutil.which(program) is None:
        raise BackupError(f"{program} is not installed (Debian: postgresql-client)")
    result = subprocess.run([program, f"--dbname={libpq}", *args], check=False, env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise BackupError(f"{program} failed: {result.stderr.strip()[-2000:]}")

