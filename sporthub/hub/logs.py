"""What the hub must not write to its log, taken out of the record before any handler sees it."""

from __future__ import annotations

import logging

# JupyterHub 6.1 (jupyterhub/_xsrf_utils.py) logs this at INFO with "<session id>:<cookie_id>": the
# cookie_id is what every login cookie of that person carries, the session id ties their tokens to
# a browser. Neither belongs in a log file that more people read than the hub's data directory.
_XSRF_MESSAGE = "Setting new xsrf cookie for"


class ScrubXsrfId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith(_XSRF_MESSAGE) and record.args:
            record.args = ("[secret]", *tuple(record.args)[1:])
        return True


def scrub_hub_log() -> None:
    """Install the filter on the logger JupyterHub uses for that message (once)."""
    logger = logging.getLogger("tornado.application")
    if not any(isinstance(f, ScrubXsrfId) for f in logger.filters):
        logger.addFilter(ScrubXsrfId())
