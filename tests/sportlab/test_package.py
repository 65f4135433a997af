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


def test_no_sportlab_module_imports_the_hub_package():
    # The import check above only sees what `import sportlab` loads; squad, plots and widgets
    # are imported on first use, so every source file is read too.
    import ast
    from pathlib import Path

    import sportlab

    for path in Path(sportlab.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n == "sporthub" or n.startswith("sporthub.") for n in names), path


# Helpers that put data in shape rather than compute a sports-science quantity.
NOT_METRICS = {"as_daily", "power_series", "to_1hz"}


def test_every_metric_names_its_reference_in_its_docstring():
    import inspect
    import re

    import sportlab.metrics
    from sportlab.athlete import hooper_index

    functions = [getattr(sportlab.metrics, name) for name in sportlab.metrics.__all__
                 if name not in NOT_METRICS] + [hooper_index]
    for function in functions:
        if inspect.isclass(function) or not callable(function):
            continue
        doc = inspect.getdoc(function) or ""
        # A paper or book (a year in a citation) or, for a peer program's method, its address.
        assert re.search(r"\b(19|20)\d\d\b|https://", doc), function.__name__
