"""Run the gateway (the hub starts this as its managed service ``llm``)."""

import gc
import logging
import os

import uvicorn

from sporthub.gateway.app import create_app
from sporthub.settings import load_settings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s")
    # one line per health check would drown the request log
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # the ledger (and SQLite's journal next to it) and the audit log are the admin's alone
    os.umask(0o077)
    settings = load_settings()
    app = create_app(settings)
    # what is loaded at start lives as long as the process: keep it out of the collector's
    # full passes, which otherwise pause every request for tens of milliseconds
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        # loopback, except in k8s: there the proxy is another pod (the hub's network policy
        # admits only the proxy to this port)
        host=settings.service_bind_ip,
        port=settings.gateway_port,
        access_log=False,  # the ledger and our own log line say what happened, without tokens
        proxy_headers=False,
        # an open stream must not hold up a hub shutdown (a stuck service delays it by 28 s)
        timeout_graceful_shutdown=3,
        log_level="info",
    )


if __name__ == "__main__":
    main()
