"""The quarterly report's charts as PNG bytes, drawn with matplotlib (Agg, no display) from a
quarter's facts: members over the last year, moderation actions per month and platform, ideas
in and out per month. Pure apart from the drawing: the same facts (and ``now``) give the same
pictures. With ``now`` (a draft of a quarter not yet over), months after it are not plotted; an
empty chart says so in the picture."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flows.reports.render import CHARTS, platform_name

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["PNG_MAGIC", "chart_figures", "data_uri", "render_charts"]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_COLORS = {"discourse": "#2f6f9f", "discord": "#5865f2", "in": "#3a9a5b", "out": "#c0663a"}
# No "Software"/date metadata: the same facts make byte-identical files.
_METADATA = {"Software": None}
_GREY = "#555555"


def _empty(ax: Any, text: str) -> None:
    """Say in the picture that there is nothing to plot."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color=_GREY)


def _past(months: list[str], now: datetime | None) -> list[str]:
    """``months`` (``YYYY-MM``) up to ``now``'s month: a month still to come has no figures."""
    return months if now is None else [m for m in months if m <= f"{now:%Y-%m}"]


def _figure(title: str) -> tuple[Figure, Any]:
    # Every process that loads the flows (gateway, inbox worker, runner) would otherwise carry
    # matplotlib, about 70 MiB and 2.5 s each (bench/startup.py), for charts drawn once a quarter.
    import matplotlib  # lazy: start-up: matplotlib (70 MiB, 2.5 s), for charts drawn once a quarter

    matplotlib.use("Agg")  # no display
    from matplotlib.figure import Figure  # lazy: start-up: matplotlib, as above

    fig = Figure(figsize=(7.0, 3.2), dpi=100, layout="constrained")
    ax = fig.subplots()
    ax.set_title(title, fontsize=11)
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def _png(fig: Figure, dpi: int) -> bytes:
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=dpi, metadata=_METADATA)
    return out.getvalue()


def _membership(facts: Mapping[str, Any], now: datetime | None) -> Figure:
    series = list(facts.get("membership_series") or [])
    if now is not None:  # a count at a moment still to come is not a count
        series = [p for p in series if str(p["at"])[:10] <= f"{now:%Y-%m-%d}"]
    fig, ax = _figure("Working group members (start of each month)")
    labels = [str(p["at"])[:7] for p in series]
    values = [int(p["active"]) for p in series]
    ax.plot(range(len(values)), values, marker="o", color="#2f6f9f")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylim(bottom=0, top=max([*values, 1]) * 1.2)
    ax.yaxis.get_major_locator().set_params(integer=True)
    if not any(values):
        _empty(ax, "No working group members in this period")
    return fig


def _bars(ax: Any, months: list[str], groups: list[tuple[str, list[int], str]]) -> None:
    width = 0.8 / max(1, len(groups))
    for i, (label, values, color) in enumerate(groups):
        xs = [x - 0.4 + width * (i + 0.5) for x in range(len(months))]
        ax.bar(xs, values, width=width, label=label, color=color)
    ax.set_xticks(range(len(months)), months, fontsize=9)
    top = max([v for _, values, _ in groups for v in values] + [1])
    ax.set_ylim(0, top * 1.25)
    ax.yaxis.get_major_locator().set_params(integer=True)


def _moderation(facts: Mapping[str, Any], now: datetime | None) -> Figure:
    months = _past(list(facts.get("months") or []), now)
    rows = list(facts.get("moderation") or [])
    fig, ax = _figure("Moderation actions per month")
    groups = [
        (
            platform_name(r["platform"]),
            [int(r["months"].get(m, 0)) for m in months],
            _COLORS.get(r["platform"], "#777777"),
        )
        for r in rows
    ]
    if any(v for _, values, _ in groups for v in values):
        _bars(ax, months, groups)
        ax.legend(frameon=False, fontsize=8)
    else:
        _bars(ax, months, [("none", [0] * len(months), "#777777")])
        _empty(ax, "No moderation actions this quarter")
    return fig


def _ideas(facts: Mapping[str, Any], now: datetime | None) -> Figure:
    months = _past([str(r["month"]) for r in facts.get("ideas_flow") or []], now)
    flow = [r for r in facts.get("ideas_flow") or [] if str(r["month"]) in months]
    fig, ax = _figure("Ideas in and out per month")
    groups = [
        ("in", [int(r["in"]) for r in flow], _COLORS["in"]),
        ("closed", [int(r["out"]) for r in flow], _COLORS["out"]),
    ]
    _bars(ax, months, groups)
    if any(v for _, values, _ in groups for v in values):
        ax.legend(frameon=False, fontsize=8)
    else:
        _empty(ax, "No ideas filed or closed this quarter")
    return fig


def chart_figures(facts: Mapping[str, Any], *, now: datetime | None = None) -> dict[str, Figure]:
    """``{"membership", "moderation", "ideas"}`` → the matplotlib figure (not drawn yet).
    ``now``: leave out the months after it (a quarter not over yet)."""
    figures = {"membership": _membership, "moderation": _moderation, "ideas": _ideas}
    return {name: figures[name](facts, now) for name in CHARTS}


def render_charts(facts: Mapping[str, Any], *, dpi: int = 100, now: datetime | None = None) -> dict[str, bytes]:
    """``{"membership", "moderation", "ideas"}`` → PNG bytes (``dpi`` 100 ≈ 700×320 pixels);
    ``now`` as for :func:`chart_figures`."""
    return {name: _png(fig, dpi) for name, fig in chart_figures(facts, now=now).items()}


def data_uri(png: bytes) -> str:
    """A ``data:`` URI of a PNG (the draft artifact shows the charts inline)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
