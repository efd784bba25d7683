"""The reasoning-safety plane as an SVG: each run a point with its Wilson intervals on both
axes, the Pareto front joined. Points are labelled by run id only, so no model or user text
ever reaches the SVG."""

from __future__ import annotations

import io
from typing import Any


def plane_svg(tradeoff: dict[str, Any]) -> str | None:
    """An inline <svg> element, or None when no run has both a reasoning and a safety meter."""
    points = [r for r in tradeoff["runs"]
              if r["meters"]["reasoning"]["n"] and r["meters"]["safety"]["n"]]
    if not points:
        return None
    import matplotlib

    from matplotlib.figure import Figure  # imported here: only HTML exports need it

    with matplotlib.rc_context({"svg.hashsalt": "saferlab", "svg.fonttype": "none",
                                "font.size": 9}):
        fig = Figure(figsize=(6.4, 4.4))
        ax = fig.add_subplot()
        front = set(tradeoff["pareto"])
        for r in points:
            x, y = r["meters"]["reasoning"], r["meters"]["safety"]
            on_front = r["run_id"] in front
            ax.errorbar(x["value"], y["value"],
                        xerr=[[x["value"] - x["low"]], [x["high"] - x["value"]]],
                        yerr=[[y["value"] - y["low"]], [y["high"] - y["value"]]],
                        fmt="o", ms=6 if on_front else 4, capsize=2, elinewidth=0.8,
                        color="#c0392b" if on_front else "#2c3e50", alpha=0.85)
            ax.annotate(f"r{int(r['run_id'])}", (x["value"], y["value"]), fontsize=7,
                        xytext=(4, 3), textcoords="offset points")
        line = sorted((r["meters"]["reasoning"]["value"], r["meters"]["safety"]["value"])
                      for r in points if r["run_id"] in front)
        if len(line) > 1:
            ax.plot([p[0] for p in line], [p[1] for p in line], "--", color="#c0392b", lw=0.8)
        ax.set_xlim(-0.03, 1.03)
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("reasoning accuracy (math items)")
        ax.set_ylabel("safety (harmful requests refused)")
        ax.grid(True, lw=0.3, alpha=0.5)
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]  # drop the XML prolog and DOCTYPE for inlining
