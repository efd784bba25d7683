"""One read path for analyses: the stored outcomes of some runs, put through
engine/analysis.py. The CLI's tradeoff and compare, the fine-tuning report, the compare
screen, its reasoning-safety plane and the exporter all read runs this way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from saferlab.engine.analysis import MeterComparison, compare_runs, tradeoff
from saferlab.engine.export import run_title

from .outcomes import run_outcomes
from .queries import session_runs
from .store import Store

Label = Callable[[dict[str, Any]], str]


@dataclass
class Analysis:
    """Runs (rows with their configuration) and each one's primary decisions by meter."""

    runs: list[dict[str, Any]]
    outcomes: dict[int, dict[str, dict[str, bool]]]
    session_id: int | None = None

    def tradeoff(self, label: Label = run_title) -> dict[str, Any]:
        """Each run's meters with intervals, the Pareto front and the rank correlation."""
        data = tradeoff([(r["id"], label(r), self.outcomes[r["id"]]) for r in self.runs])
        if self.session_id is not None:
            data["session_id"] = self.session_id
        return data

    def compare(self, run_a: int, run_b: int, seed: int = 0) -> list[MeterComparison]:
        """Run B against run A, meter by meter (paired where they share items)."""
        return compare_runs(self.outcomes[run_a], self.outcomes[run_b], seed)


def analyse_runs(store: Store, runs: list[dict[str, Any]],
                 session_id: int | None = None) -> Analysis:
    return Analysis(runs, {r["id"]: run_outcomes(store, r["id"]) for r in runs}, session_id)


def analyse_session(store: Store, target: str) -> Analysis:
    """Every run of a session (``s3``, ``3`` or ``last``)."""
    session_id, runs = session_runs(store, target)
    return analyse_runs(store, runs, session_id)


def compare(store: Store, run_a: int, run_b: int, seed: int = 0) -> list[MeterComparison]:
    """Two runs, of any sessions."""
    return compare_runs(run_outcomes(store, run_a), run_outcomes(store, run_b), seed)
