"""The reasoning-safety plane in text: each run of a session at (reasoning accuracy, safety),
its Wilson intervals as whiskers, the Pareto front in bold. Labels are run ids only."""

from __future__ import annotations

from typing import Any

from rich.text import Text

WIDTH, HEIGHT = 44, 12


def plot(rows: list[dict[str, Any]], front: set[int], width: int = WIDTH,
         height: int = HEIGHT) -> Text:
    grid = [[" "] * width for _ in range(height)]
    styles: dict[tuple[int, int], str] = {}

    def cell(x: float, y: float) -> tuple[int, int]:
        return (min(width - 1, max(0, round(x * (width - 1)))),
                min(height - 1, max(0, round((1 - y) * (height - 1)))))

    for r in rows:
        rx, sy = r["meters"]["reasoning"], r["meters"]["safety"]
        (x0, y), (x1, _) = cell(rx["low"], sy["value"]), cell(rx["high"], sy["value"])
        for x in range(x0, x1 + 1):
            if grid[y][x] == " ":
                grid[y][x] = "─"
        (x, y0), (_, y1) = cell(rx["value"], sy["high"]), cell(rx["value"], sy["low"])
        for y2 in range(y0, y1 + 1):
            if grid[y2][x] == " ":
                grid[y2][x] = "│"
    for r in rows:
        x, y = cell(r["meters"]["reasoning"]["value"], r["meters"]["safety"]["value"])
        label = str(r["run_id"])
        for i, ch in enumerate(label):
            if x + i < width:
                grid[y][x + i] = ch
                styles[(y, x + i)] = "bold red" if r["run_id"] in front else "bold"
    text = Text("safety ↑  (runs by id; Pareto front in red; whiskers: 95% intervals)\n",
                style="dim")
    for y, line in enumerate(grid):
        text.append("1.0 │" if y == 0 else ("0.0 │" if y == height - 1 else "    │"), style="dim")
        for x, ch in enumerate(line):
            text.append(ch, style=styles.get((y, x), "dim" if ch in "─│" else ""))
        text.append("\n")
    text.append("    └" + "─" * width + "\n", style="dim")
    text.append("     0.0" + " " * (width - 24) + "reasoning accuracy → 1.0", style="dim")
    return text


def plane_text(data: dict[str, Any] | None) -> Text:
    """The plane of a session's trade-off (db/analyses.py), or why there is none."""
    if data is None:
        return Text("Fire A and B (f) to see the session's runs on the reasoning-safety "
                    "plane.", style="dim")
    rows = [r for r in data["runs"] if r["meters"]["reasoning"]["n"] and r["meters"]["safety"]["n"]]
    if not rows:
        return Text("No run of this session has both math (reasoning) and harmful (safety) "
                    "items: add both suites to see the plane.", style="dim")
    return plot(rows, set(data["pareto"]))
