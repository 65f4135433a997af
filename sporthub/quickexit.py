"""Skip the interpreter's full garbage collection at exit, which makes stopping slow.

At exit CPython collects every object it still holds, repeatedly, while it tears modules down;
for a process with a large import graph (the hub, the usage page, ``sporthub up``) that took
seconds on a busy 2-core machine, one process after another, so Ctrl-C on `make up` took well
over the 10 s it may take. Freezing the heap as the first exit step (``gc.freeze``, run by
``atexit``) moves every object out of the collector's reach: the teardown only releases memory
the operating system takes back anyway. Exit statuses and exit handlers are untouched.
"""

from __future__ import annotations

import atexit
import gc

_enabled = False


def enable() -> None:
    """Freeze the heap when this process exits (idempotent)."""
    global _enabled
    if not _enabled:
        # registered early, so it runs late: every other exit handler has run by then
        atexit.register(gc.freeze)
        _enabled = True
