"""``python -m sporthub.containers``: build SportHub's images, or serve podman's Docker API.

    images [NAME ...] [--base debian]   build what the profile needs (or the named images)
    serve                               run podman's Docker-compatible API until Ctrl-C
"""

from __future__ import annotations

import argparse
import signal
import sys

from sporthub.containers import engine as engines
from sporthub.containers import images
from sporthub.hub.profiles import profile_of
from sporthub.settings import SettingsError, load_settings


def say(message: str) -> None:
    print(f"[sporthub images] {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sporthub.containers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("images", help="build the images the profile needs")
    build.add_argument("names", nargs="*", metavar="NAME",
                       help="singleuser, hub or llm; default: singleuser and hub, what the "
                            "docker and k8s profiles run (llm is compose.cpu.yaml's model)")
    build.add_argument("--base", choices=["default", "debian"], default="default",
                       help="default: the Dockerfiles' pinned Python image; debian: one made "
                            "here from Debian packages (no registry needed)")
    commands.add_parser("serve", help="run podman's Docker-compatible API (Ctrl-C stops it)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        if args.command == "serve":
            engine = engines.find(say)
            if engine.service is None:
                say(f"an engine already answers on {engine.socket}")
                return 0
            say(f"serving; for the hub: DOCKER_HOST={engine.docker_host}")
            # only signal here: the main thread is inside the service's wait(), which returns
            signal.signal(signal.SIGTERM, lambda *_: engine.service.terminate())
            try:
                engine.service.wait()
            except KeyboardInterrupt:
                engine.service.terminate()
                engine.service.wait()
            return 0
        unknown = set(args.names) - set(images.IMAGES)
        if unknown:
            parser.error(f"unknown image {', '.join(sorted(unknown))}: choose from "
                         f"{', '.join(images.IMAGES)}")
        # the docker and k8s profiles run the same two images; the local profile runs none, so
        # `make images` there is the first step towards the docker profile (the guide's first
        # command, typed before SPORTHUB_PROFILE=docker is set): it builds those, and says so
        names = args.names or list(images.PROFILE_IMAGES)
        if not args.names and not profile_of(settings).RUNS_CONTAINERS:
            say("the local profile runs no containers: building the docker profile's images "
                f"({', '.join(names)}); start with SPORTHUB_PROFILE=docker")
        engine = engines.find(say, serve=False)
        base = None if args.base == "default" else args.base
        for name in names:
            tag = settings.singleuser_image if name == "singleuser" else None
            images.build(engine, name, tag=tag, base=base, progress=say)
        return 0
    except SettingsError as e:
        print(f"sporthub: {e}", file=sys.stderr)
        return 2
    except engines.EngineError as e:
        print(f"sporthub: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
