"""The quarterly report's charts as PNG bytes, drawn with matplotlib (Agg, no display) from a
quarter's facts: members over the last year, moderation actions per month and platform, ideas
in and out per month. Pure apart from the drawing: the same facts give the same pictures."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display; must come before anything imports pyplot

from matplotlib.figure import Figure  # noqa: E402 - after the backend is chosen

from flows.reports.render import CHARTS, platform_name  # noqa: E402

__all__ = ["PNG_MAGIC", "data_uri", "render_charts"]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_COLORS = {"discourse": "#2f6f9f", "discord": "#5865f2", "in": "#3a9a5b", "out": "#c0663a"}
# No "Software"/date metadata: the same facts make byte-identical files.
_METADATA = {"Software": None}


def _figure(title: str) -> tuple[Figure, Any]:
    fig = Figure(figsize=(7.0, 3.2), dpi=100, layout="constrained")
    ax = fig.subplots()
    ax.set_title(title, fontsize=11)
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def _png(fig: Figure, dpi: int) -> bytes:
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=dpi, metadata=_METADATA)
    return out.getvalue()


def _membership(facts: Mapping[str, Any]) -> Figure:
    series = list(facts.get("membership_series") or [])
    fig, ax = _figure("Working group members (start of each month)")
    labels = [str(p["at"])[:7] for p in series]
    values = [int(p["active"]) for p in series]
    ax.plot(range(len(values)), values, marker="o", color="#2f6f9f")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylim(bottom=0, top=max([*values, 1]) * 1.2)
    ax.yaxis.get_major_locator().set_params(integer=True)
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


def _moderation(facts: Mapping[str, Any]) -> Figure:
    months = list(facts.get("months") or [])
    rows = list(facts.get("moderation") or [])
    fig, ax = _figure("Moderation actions per month")
    if rows:
        _bars(ax, months, [(platform_name(r["platform"]), [int(r["months"].get(m, 0)) for m in months],
                            _COLORS.get(r["platform"], "#777777")) for r in rows])
        ax.legend(frameon=False, fontsize=8)
    else:
        _bars(ax, months, [("none", [0] * len(months), "#777777")])
        ax.text(0.5, 0.5, "No moderation actions recorded", transform=ax.transAxes,
                ha="center", va="center", color="#555555")
    return fig


def _ideas(facts: Mapping[str, Any]) -> Figure:
    flow = list(facts.get("ideas_flow") or [])
    months = [str(r["month"]) for r in flow]
    fig, ax = _figure("Ideas in and out per month")
    _bars(ax, months, [("in", [int(r["in"]) for r in flow], _COLORS["in"]),
                       ("closed", [int(r["out"]) for r in flow], _COLORS["out"])])
    ax.legend(frameon=False, fontsize=8)
    return fig


def render_charts(facts: Mapping[str, Any], *, dpi: int = 100) -> dict[str, bytes]:
    """``{"membership", "moderation", "ideas"}`` → PNG bytes (``dpi`` 100 ≈ 700×320 pixels)."""
    figures = {"membership": _membership, "moderation": _moderation, "ideas": _ideas}
    return {name: _png(figures[name](facts), dpi) for name in CHARTS}


def data_uri(png: bytes) -> str:
    """A ``data:`` URI of a PNG (the draft artifact shows the charts inline)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
