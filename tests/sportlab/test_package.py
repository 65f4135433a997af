"""Package boundaries: light import, no hub-side dependency, lazy plotting modules."""

import subprocess
import sys

IMPORT_CHECK = """
import sys
import sportlab
assert "matplotlib" not in sys.modules, "import sportlab pulled in matplotlib"
assert "ipywidgets" not in sys.modules, "import sportlab pulled in ipywidgets"
assert not any(m == "sporthub" or m.startswith("sporthub.") for m in sys.modules)
sportlab.plots.pmc_chart  # first attribute access imports the module
assert "matplotlib" in sys.modules
print("ok")
"""


def test_import_is_light_and_never_touches_the_hub_package():
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_CHECK], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
