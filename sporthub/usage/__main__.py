"""Entry point of the ``usage`` service, started by the hub (``python -m sporthub.usage``)."""

from __future__ import annotations

import asyncio

from sporthub import quickexit
from sporthub.settings import load_settings
from sporthub.usage.app import serve

if __name__ == "__main__":
    quickexit.enable()  # the hub waits for each service in turn when it stops
    asyncio.run(serve(load_settings()))
