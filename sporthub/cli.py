"""The ``sporthub`` command: run the hub on its embedded default, and prepare what it needs."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from sporthub import admin
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
    elif settings.profile == "docker":
        from sporthub.hub import spawners  # the docker SDK only for this profile

        spawners.check(settings)


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
    args = parser.parse_args(argv)
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
        return up(settings)
    except (SettingsError, build.BuildError) as e:
        print(f"sporthub: {e}", file=sys.stderr)
        return 2
    except admin.AdminError as e:
        print(f"sporthub: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
