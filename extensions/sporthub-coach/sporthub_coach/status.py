"""``GET /user/<name>/sporthub/status``: where this person stands with the shared model.

JupyterLab's status bar polls it. It asks the gateway's ``GET /queue`` with the server's own
hub token (the gateway answers with this person's requests and budget) and condenses it to
``{state, position, eta_s, eta_more_than_s, budget: {used, limit, resets_at}}`` with ``state`` one
of ``idle``, ``waiting``, ``answering``, ``over_budget`` or ``unavailable`` (gateway or model
unreachable). ``demo`` is true when the model is a demo model (the status bar shows "AI (demo model)").
``eta_more_than_s`` is set (seconds) when the gateway has no honest number for the
wait: the status bar then says "more than N minutes". New fields are added, none renamed: the
status bar of an older build reads the ones it knows.
"""

from __future__ import annotations

import json
import os

import httpx
from jupyter_server.base.handlers import APIHandler
from tornado import web

TIMEOUT_S = 5


def queue_url() -> str | None:
    """The gateway's /queue, next to the OpenAI base URL the hub gives every server."""
    base = os.environ.get("OPENAI_API_BASE", "").rstrip("/")
    return base.removesuffix("/v1") + "/queue" if base else None


def condense(queue: dict) -> dict:
    """The gateway's answer as the status bar needs it."""
    budget = queue.get("budget") or {}
    status = {"state": "idle", "position": None, "eta_s": None, "eta_more_than_s": None,
              "budget": {"used": budget.get("used_tokens"), "limit": budget.get("limit_tokens"),
                         "resets_at": budget.get("resets_at")}}
    requests = queue.get("requests") or []
    if any(r.get("state") == "running" for r in requests):
        status["state"] = "answering"
    elif requests:
        first = min(requests, key=lambda r: r.get("position") or 0)
        status.update(state="waiting", position=first.get("position"), eta_s=first.get("eta_s"),
                      eta_more_than_s=first.get("eta_more_than_s"))
    elif (status["budget"]["limit"] is not None and status["budget"]["used"] is not None
          and status["budget"]["used"] >= status["budget"]["limit"]):
        status["state"] = "over_budget"
    return status


class StatusHandler(APIHandler):
    @web.authenticated
    async def get(self):
        url, token = queue_url(), os.environ.get("JUPYTERHUB_API_TOKEN")
        status = {"state": "unavailable", "position": None, "eta_s": None,
                  "eta_more_than_s": None, "budget": {"used": None, "limit": None, "resets_at": None}}
        if url and token:
            try:
                async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
                    response = await client.get(url, headers={"Authorization": f"Bearer {token}"})
                    health = await client.get(url.removesuffix("/queue") + "/health")
                if response.status_code == 200:
                    status = condense(response.json())
                    if status["state"] == "idle" and health.status_code != 200:
                        status["state"] = "unavailable"  # no model up: say so before they ask
                else:
                    self.log.warning("SportHub status: the gateway answered %s",
                                     response.status_code)
            except (httpx.HTTPError, ValueError) as e:
                self.log.warning("SportHub status: the gateway is unreachable (%s)",
                                 type(e).__name__)
        # the model is a demo (embedded, or marked by the admin): the status bar says so
        status["demo"] = os.environ.get("LLM_GATEWAY_DEMO") == "1"
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(status))
