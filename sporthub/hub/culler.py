"""Run JupyterHub's idle culler as a hub-managed service that stops at once on SIGTERM/SIGINT.

The culler (``jupyterhub_idle_culler``) has no signal handling of its own: it relies on
KeyboardInterrupt, which a busy culler (a cull in flight, waiting on the hub that is itself shutting
down) does not see promptly, and SIGTERM's default ends it without a word. The hub stops its
services one after another when it shuts down, so one slow service delays the whole stop (measured
before: tens of seconds for `make up`'s Ctrl-C). Here both signals end the process at once: the
culler keeps no state, and the next start culls again from the hub's own records.
"""

from __future__ import annotations

import os
import signal
import sys

from jupyterhub_idle_culler import main as culler_main


def _stop(signum, frame) -> None:
    print(f"idle culler: stopping on {signal.Signals(signum).name}", file=sys.stderr, flush=True)
    os._exit(0)


def main() -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stop)
    culler_main()


if __name__ == "__main__":
    main()
