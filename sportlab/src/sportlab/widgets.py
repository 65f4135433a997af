"""An ipywidgets dashboard to browse a team season by athlete, date range and metric."""

from __future__ import annotations

import ipywidgets as widgets
import pandas as pd
from IPython import get_ipython
from IPython.display import display
from matplotlib.figure import Figure

from sportlab import plots
from sportlab.metrics.load import acwr, as_daily, monotony, pmc, strain

METRICS = ("PMC", "ACWR (EWMA)", "ACWR (rolling)", "Monotony & strain", "Daily load")


class Dashboard(widgets.VBox):
    """Athlete picker, date range, metric and load-column choosers above a chart.

    Metrics are computed on the athlete's whole season and only then cut to the date range, so
    CTL and the chronic load are warmed up at the start of the window.
    """

    def __init__(self, sessions: pd.DataFrame, load_column: str = "load") -> None:
        required = {"date", "athlete", load_column}
        missing = required - set(sessions.columns)
        if missing:
            raise ValueError(f"sessions need columns {sorted(missing)}")
        self.sessions = sessions
        dates = pd.date_range(sessions["date"].min(), sessions["date"].max(), freq="D")
        self._dates = dates
        self.athlete = widgets.Dropdown(
            options=sorted(sessions["athlete"].unique()), description="Athlete"
        )
        self.metric = widgets.Dropdown(options=METRICS, description="Metric")
        numeric = [
            c
            for c in ("load", "trimp", "stress_score", "duration_min")
            if c in sessions and sessions[c].notna().any()
        ]
        self.load_column = widgets.Dropdown(options=numeric, value=load_column, description="Load")
        labels = [d.strftime("%Y-%m-%d") for d in dates]
        self.date_range = widgets.SelectionRangeSlider(
            options=list(zip(labels, dates, strict=True)),
            index=(0, len(dates) - 1),
            description="Dates",
            layout=widgets.Layout(width="95%"),
        )
        self.output = widgets.Output()
        self.figure: Figure | None = None
        for control in (self.athlete, self.metric, self.load_column, self.date_range):
            control.observe(self._on_change, names="value")
        controls = widgets.HBox([self.athlete, self.metric, self.load_column])
        super().__init__([controls, self.date_range, self.output])
        self.refresh()

    def _on_change(self, _change: object) -> None:
        self.refresh()

    def daily_load(self) -> pd.Series:
        """The selected athlete's daily load over the whole season (rest days 0)."""
        rows = self.sessions[self.sessions["athlete"] == self.athlete.value]
        by_day = rows.groupby("date")[self.load_column.value].sum()
        return as_daily(by_day.reindex(self._dates, fill_value=0.0))

    def refresh(self) -> Figure:
        """Recompute and redraw the chart for the current selection; returns the figure."""
        daily = self.daily_load()
        start, end = self.date_range.value
        window = slice(start, end)
        figure = Figure(figsize=(10, 4), layout="constrained")
        ax = figure.add_subplot()
        title = f"{self.athlete.value}: {self.metric.value} ({self.load_column.value})"
        metric = self.metric.value
        if metric == "PMC":
            plots.pmc_chart(pmc(daily).loc[window], ax=ax, title=title)
        elif metric.startswith("ACWR"):
            ratio = acwr(daily, method="ewma") if "EWMA" in metric else acwr(daily)
            plots.acwr_chart(ratio.loc[window], ax=ax, title=title)
        elif metric == "Monotony & strain":
            ax.plot(monotony(daily).loc[window], color="tab:blue", label="monotony")
            ax.set_ylabel("monotony")
            strain_ax = ax.twinx()
            strain_ax.plot(strain(daily).loc[window], color="tab:red", label="strain")
            strain_ax.set_ylabel("strain (AU)")
            ax.set_title(title)
        else:
            ax.bar(daily.loc[window].index, daily.loc[window].to_numpy(), color="tab:gray")
            ax.set_ylabel(f"daily {self.load_column.value}")
            ax.set_title(title)
        self.figure = figure
        # Outside IPython there is no frontend to show it; printing a repr would only be noise.
        if get_ipython() is not None:
            self.output.clear_output(wait=True)
            with self.output:
                display(figure)
        return figure


def dashboard(season_df: pd.DataFrame, load_column: str = "load") -> Dashboard:
    """Build the dashboard for a sessions table (e.g. ``team_season().sessions``).

    Needs columns ``date``, ``athlete`` and the load column. Constructing it needs no browser;
    in JupyterLab, show it by making it the last expression of a cell.
    """
    return Dashboard(season_df, load_column=load_column)
