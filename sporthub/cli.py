"""The ``sporthub`` command: run the hub on its embedded default, and prepare what it needs."""

from __future__ import annotations

import argparse
import getpass
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import httpx

from sporthub import admin, backup
from sporthub.llm import build
from sporthub.settings import Settings, SettingsError, load_settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SINGLEUSER_FILES = {
    "jupyter_server_config.py": Path("etc/jupyter/jupyter_server_config.py"),
    "ipython_config.py": Path("etc/ipython/ipython_config.py"),
    # no "would you like news?" pop-up: the hub's users are not the place to ask, and a
    # closed server often cannot reach the news feed anyway
    "overrides.json": Path("share/jupyter/lab/settings/overrides.json"),
}


def say(message: str) -> None:
    print(f"[sporthub] {message}", flush=True)


def prepare(settings: Settings) -> None:
    """Everything the hub needs before it starts; each step is quick when already done."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.admin_password_value()  # generated and stored now, so the banner can print it
    if settings.uses_embedded_llm:
        build.ensure_server(progress=say)
        build.model_file()
    if settings.profile == "local":
        install_singleuser_config()


def install_singleuser_config() -> None:
    """Put Jupyter AI's gateway configuration where every user server of this Python reads it."""
    source = Path(__file__).with_name("singleuser")
    for name, target in SINGLEUSER_FILES.items():
        destination = Path(sys.prefix) / target
        destination.parent.mkdir(parents=True, exist_ok=True)
        if not destination.exists() or destination.read_bytes() != (source / name).read_bytes():
            shutil.copyfile(source / name, destination)


def up(settings: Settings) -> int:
    prepare(settings)
    hub = subprocess.Popen(
        [sys.executable, "-m", "jupyterhub", "-f", str(PROJECT_ROOT / "jupyterhub_config.py")],
        cwd=settings.data_dir,
        env={**os.environ, **settings.as_environment()},
        # its own process group: a Ctrl-C reaches it once, from us, not twice
        start_new_session=True,
    )

    def forward(signum, frame):
        hub.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    say("starting JupyterHub, the LLM gateway and the language model ...")
    if wait_until_ready(settings, hub):
        say("")
        say(f"SportHub is running at {settings.public_url}")
        if settings.auth == "oidc":
            say("  sign in with the club's account (OpenID Connect); Ctrl-C stops everything")
            return hub.wait()
        say(f"  log in as: {settings.admin_user}")
        say(f"  password:  {settings.admin_password_value()}")
        say("  (stored in %s; Ctrl-C stops everything)" % (settings.secrets_dir / "admin-password")
            if settings.admin_password is None else "  Ctrl-C stops everything")
    return hub.wait()


def wait_until_ready(settings: Settings, hub: subprocess.Popen, timeout: float = 120) -> bool:
    url = f"{settings.public_url}hub/health"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and hub.poll() is None:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


MIN_PASSPHRASE = 12
# The secrets of the Compose stack (deploy/compose/): one file each, never inline in compose.yaml
# or .env. Mode 0644 where a container that runs as a non-root user must read the file (its
# bind mount shows the host file's mode); the directory itself is 0700, so on the host only
# root reads any of them. The hub mounts the whole directory as <data>/secrets.
STACK_SECRETS = {
    "postgres-password": 0o644,       # the postgres image reads it as uid 999
    "vllm-api-key": 0o600,            # vLLM and the hub's gateway, both root
    "gateway-metrics-token": 0o644,   # Prometheus (nobody) and the gateway
    "hub-metrics-token": 0o644,       # Prometheus and the hub (read:metrics only)
    "grafana-admin-password": 0o644,  # Grafana (uid 472)
}
PGPASS = "pgpass"  # libpq's password file for the hub and the ledger (PGPASSFILE)


def make_secrets(directory: Path) -> int:
    """Generate what the Compose stack needs; a file that exists is kept as it is."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    for name, mode in STACK_SECRETS.items():
        if _write_new(directory / name, secrets.token_urlsafe(32), mode):
            say(f"created {directory / name}")
    password = (directory / "postgres-password").read_text().strip()
    if _write_new(directory / PGPASS, f"postgres:5432:*:sporthub:{password}", 0o600):
        say(f"created {directory / PGPASS}")
    say(f"the stack's secrets are in {directory} (existing files were kept)")
    return 0


def _write_new(path: Path, value: str, mode: int) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        # no newline: a Kubernetes secretKeyRef hands the bytes as they are to an environment
        f.write(value)
    os.chmod(path, mode)  # whatever the umask
    return True


def passphrase(file: Path | None, ask: bool, confirm: bool) -> str | None:
    """From a file (first line) or typed at the terminal; never from the command line."""
    if file is not None:
        lines = file.read_text().splitlines()
        value = lines[0] if lines else ""
    elif ask:
        if not sys.stdin.isatty():
            raise backup.BackupError("no terminal to ask for the passphrase: use --passphrase-file")
        value = getpass.getpass("passphrase: ")
        if confirm and getpass.getpass("passphrase again: ") != value:
            raise backup.BackupError("the two passphrases differ")
    else:
        return None
    if confirm and len(value) < MIN_PASSPHRASE:
        raise backup.BackupError(f"choose a passphrase of at least {MIN_PASSPHRASE} characters")
    return value


def run_backup(settings: Settings, args) -> int:
    secret = passphrase(args.passphrase_file, args.encrypt, confirm=True)
    manifest = backup.backup(settings, args.archive, secret)
    say(f"backup written to {args.archive} (0600): databases "
        f"{', '.join(manifest['databases'])}; {len(manifest['homes'])} homes; secrets "
        f"{'encrypted' if secret else 'NOT encrypted: keep the archive as safe as the server'}")
    return 0


def run_restore(settings: Settings, args) -> int:
    encrypted = backup.manifest_of(args.archive)["secrets"]["encryption"] is not None
    secret = passphrase(args.passphrase_file, encrypted, confirm=False)
    manifest = backup.restore(settings, args.archive, secret)
    say(f"restored the backup of {manifest['created_at']} into {settings.data_dir}: databases "
        f"{', '.join(manifest['databases'])}; {len(manifest['homes'])} homes. Start SportHub.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sporthub", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="prepare and run the hub (Ctrl-C stops it)")
    commands.add_parser("prepare", help="build and install what the hub needs, then exit")
    users = commands.add_parser("users", help="accounts of the running hub (invite links)")
    users_commands = users.add_subparsers(dest="users_command", required=True)
    add = users_commands.add_parser("add", help="create an account and print its invite link")
    add.add_argument("name")
    add.add_argument("--group", help="athletes, scientists, priority or another hub group")
    again = users_commands.add_parser("invite", help="a new link for an account (resets it)")
    again.add_argument("name")
    imp = users_commands.add_parser("import", help="create accounts from a CSV username,group")
    imp.add_argument("file", type=Path)
    users_commands.add_parser("list", help="accounts, their groups and whether they set a password")
    usage = commands.add_parser("usage", help="language model usage per user, from the ledger")
    usage.add_argument("--since", default="7d", help="how far back: 7d, 12h, 30m (default 7d)")
    keys = commands.add_parser("secrets", help="generate the Compose stack's secret files")
    keys.add_argument("directory", type=Path, nargs="?", default=Path("secrets"),
                      help="where (default ./secrets, beside compose.yaml)")
    save = commands.add_parser("backup", help="one archive of everything, while SportHub runs")
    save.add_argument("archive", type=Path, help="the file to write (must not exist)")
    save.add_argument("--encrypt", action="store_true",
                      help="encrypt the secrets with a passphrase, asked for at the terminal")
    save.add_argument("--passphrase-file", type=Path,
                      help="encrypt the secrets with the passphrase in this file (first line)")
    load = commands.add_parser("restore", help="restore an archive into an EMPTY installation")
    load.add_argument("archive", type=Path)
    load.add_argument("--passphrase-file", type=Path,
                      help="the passphrase of encrypted secrets (else asked at the terminal)")
    args = parser.parse_args(argv)
    if args.command == "secrets":
        # no settings: this runs before any installation exists
        return make_secrets(args.directory)
    try:
        settings = load_settings()
        if args.command == "prepare":
            prepare(settings)
            return 0
        if args.command == "users":
            if args.users_command == "add":
                return admin.add(settings, args.name, args.group)
            if args.users_command == "invite":
                return admin.invite(settings, args.name)
            if args.users_command == "import":
                return admin.import_csv(settings, args.file)
            return admin.list_users(settings)
        if args.command == "usage":
            return admin.usage(settings, args.since)
        if args.command in ("backup", "restore"):
            try:
                return (run_backup if args.command == "backup" else run_restore)(settings, args)
            except (OSError, tarfile.TarError) as e:
                raise backup.BackupError(f"{args.archive}: {e}") from None
        return up(settings)
    except (SettingsError, build.BuildError) as e:
        print(f"sporthub: {e}", file=sys.stderr)
        return 2
    except (admin.AdminError, backup.BackupError) as e:
        print(f"sporthub: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
