"""The AI-coach notebook runs against the real stack: %%ai and a plain call, through the gateway."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.stack

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "05-ask-the-ai-coach.ipynb"
MODEL = "smollm2-135m-instruct"


def test_the_coach_notebook_asks_the_shared_model_with_the_users_token(stack, admin, monkeypatch):
    assert admin.api("POST", "/users/coachee").status_code == 201
    assert admin.api("POST", "/groups/athletes/users",
                     json={"users": ["coachee"]}).status_code == 200
    token = admin.new_token("coachee", note="notebook kernel")
    # what the hub's spawner gives every user server (and so every kernel)
    monkeypatch.setenv("OPENAI_API_BASE", f"{stack.gateway}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", token)
    monkeypatch.setenv("LLM_GATEWAY_MODEL", MODEL)
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    book = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(c.get("outputs") for c in book.cells if c.cell_type == "code")
    NotebookClient(book, kernel_name="python3", timeout=300,
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()

    magic = next(c for c in book.cells if c.source.startswith("%%ai coach"))
    shown = [o for o in magic.outputs if o["output_type"] in ("display_data", "execute_result")]
    assert shown and shown[0]["data"].get("text/markdown", "").strip(), magic.outputs
    summary = json.loads(book.cells[-1].outputs[-1]["text"].strip().splitlines()[-1])
    assert summary["answer_chars"] > 0
    # both questions went through the gateway as this user and were counted against their budget
    rows = [r for r in stack.ledger_rows() if r["user"] == "coachee"]
    assert [r["outcome"] for r in rows] == ["ok", "ok"]
    used = sum(r["prompt_tokens"] + r["completion_tokens"] for r in rows)
    assert used > 0 and summary["tokens_used_today"] == used
