"""The report's matplotlib basics, shared by its figures (`steper.report.plots`): one style, figures
without pyplot state, and one colour and marker per method across every plot."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

DPI = 150
STYLE = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 9,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


def styled(fn: F) -> F:
    """Run a plot function under the report's matplotlib style (font sizes, grid)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper


def figure(nrows: int, ncols: int, width: float, height: float) -> tuple[Any, Any]:
    """A figure of nrows × ncols panels (each width × height inches) and its axes, always 2-D."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure registry

    fig = Figure(figsize=(width * ncols, height * nrows), dpi=DPI, layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def series_rank(name: str) -> tuple[int, str]:
    """Where a series goes in a legend: teacher, ICL, Vanilla-KD, StepER, then the rest."""
    order = ("Teacher", "ICL", "Vanilla-KD", "StepER")
    for i, o in enumerate(order):
        if name.startswith(o):
            return (i, name)
    return (len(order), name)


MARKERS = {"Teacher": "D", "Vanilla-KD": "s", "StepER": "o"}
FREE_COLORS = ("#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
FIXED_COLORS = {"Teacher": "#444444", "Vanilla-KD": "#1f77b4", "StepER (adaptive)": "#d62728"}


def series_colors(names: list[str]) -> dict[str, str]:
    """Fixed colours for teacher / Vanilla-KD / StepER (adaptive), distinct ones for the rest."""
    out: dict[str, str] = {}
    free = 0
    for name in names:
        fixed = next((c for k, c in FIXED_COLORS.items() if name == k or name.startswith(k + " (")), None)
        if name.startswith("StepER") and name != "StepER (adaptive)":
            fixed = None
        if fixed is None:
            fixed = FREE_COLORS[free % len(FREE_COLORS)]
            free += 1
        out[name] = fixed
    return out


def short_label(model: str) -> str:
    """A model name short enough for a point label (an HF id without its organisation)."""
    return model.rsplit("/", 1)[-1]
