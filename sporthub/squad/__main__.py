"""Run the squad service (the hub starts this as its managed service ``squad``)."""

import logging
import os

import uvicorn

from sporthub.settings import load_settings
from sporthub.squad.app import create_app


def main() -> None:
    logging.basicConfig(level=logging.INFO,
                        format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # athletes' health data and its database: the service's alone
    os.umask(0o077)
    settings = load_settings()
    uvicorn.run(create_app(settings), host=settings.service_bind_ip, port=settings.squad_port,
                access_log=False, proxy_headers=False, timeout_graceful_shutdown=3,
                log_level="info")


if __name__ == "__main__":
    main()
