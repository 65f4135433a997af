"""Entry point of the ``usage`` service, started by the hub (``python -m sporthub.usage``)."""

from __future__ import annotations

import asyncio

from sporthub.settings import load_settings
from sporthub.usage.app import serve

if __name__ == "__main__":
    asyncio.run(serve(load_settings()))
