"""sportlab: sports-science analysis for SportHub notebooks.

Readers for FIT/GPX/TCX recordings, training-load, heart-rate, power, running and HRV metrics,
plots, an ipywidgets dashboard and a synthetic team season. Formulas cite their references.
"""

from sportlab import archives, athlete, clock, datasets, metrics, plausible, resample
from sportlab.archives import ArchiveLimitError, read_archive
from sportlab.readers import ActivityReadError, read_activity, read_sessions
from sportlab.session import SessionSummary, summarize_session

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # plots and widgets pull in matplotlib/ipywidgets, squad httpx: imported when first used.
    if name in ("plots", "widgets", "squad"):
        import importlib

        return importlib.import_module(f"sportlab.{name}")
    raise AttributeError(f"module 'sportlab' has no attribute {name!r}")


__all__ = [
    "ActivityReadError",
    "ArchiveLimitError",
    "SessionSummary",
    "__version__",
    "archives",
    "athlete",
    "clock",
    "datasets",
    "metrics",
    "plausible",
    "read_activity",
    "read_archive",
    "read_sessions",
    "resample",
    "summarize_session",
]
