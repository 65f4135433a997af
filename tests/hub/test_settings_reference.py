"""docs/settings.md is generated from the settings model and cannot drift from it.

An admin reads the reference; the start reads the model. When someone adds or changes a setting
and forgets the reference, this fails and says how to write it again.
"""

import subprocess
import sys

import pytest
from pydantic import Field

from sporthub import settings_reference
from sporthub.settings import Settings


def test_docs_settings_md_is_what_the_settings_model_generates():
    written = settings_reference.DOCS_FILE.read_text(encoding="utf-8")
    assert written == settings_reference.render(), (
        "docs/settings.md differs from sporthub/settings.py: run `make settings-reference`")


def test_every_setting_has_a_description_and_appears_in_the_reference():
    text = settings_reference.render()
    for name, field in Settings.model_fields.items():
        assert field.description, f"SPORTHUB_{name.upper()} has no description"
        assert f"`SPORTHUB_{name.upper()}`" in text


def test_the_module_prints_the_reference():
    printed = subprocess.run([sys.executable, "-m", "sporthub.settings_reference"],
                             capture_output=True, text=True, check=True).stdout
    assert printed == settings_reference.render()


def test_a_setting_without_a_group_or_description_stops_the_generator(monkeypatch):
    fields = dict(Settings.model_fields)
    fields["new_knob"] = Field(default=1, description="a setting nobody grouped")
    fields["new_knob"].annotation = int
    monkeypatch.setattr(Settings, "model_fields", fields)
    with pytest.raises(ValueError, match="not in one: \\['new_knob'\\]"):
        settings_reference.render()
    monkeypatch.setattr(settings_reference, "GROUPS",
                        [*settings_reference.GROUPS, ("New", ["new_knob"])])
    assert "`SPORTHUB_NEW_KNOB` | integer | `1` | a setting nobody grouped |" in \
        settings_reference.render()
    fields["new_knob"] = Field(default=1)
    fields["new_knob"].annotation = int
    with pytest.raises(ValueError, match="SPORTHUB_NEW_KNOB has no description"):
        settings_reference.render()
