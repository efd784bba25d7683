"""Fine-tuning runs in the database: the engine's TrainingRecorder, and reading them back."""

from __future__ import annotations

import json
from typing import Any, Sequence

from saferlab.engine.errors import EXIT_USAGE, SaferlabError

from .store import Store, dumps, utc_now


class TrainingLog:
    """Keeps every training: its configuration and exact examples when it starts, the loss of
    each step as it goes, and what it made (or why it stopped) when it ends."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def start_training(self, config: dict[str, Any], examples: Sequence[dict[str, Any]],
                       data_sha256: str) -> int:
        from saferlab.engine.finetune.disjoint import content_hash

        spec = config["spec"]
        db = self.store.db
        with self.store.transaction():
            training_id = db["trainings"].insert({
                "name": spec["name"], "created_utc": utc_now(), "status": "running",
                "model": spec["model"], "model_sha256": config.get("base", {}).get("sha256"),
                "on_adapters": config.get("on_key"), "config_json": dumps(config),
                "data_sha256": data_sha256, "n_examples": len(examples),
            }).last_pk
            db["training_examples"].insert_all(
                {"training_id": training_id, "position": i, "kind": e["kind"],
                 "source": e["source"], "regime": e["regime"],
                 "messages_json": dumps(e["messages"]),
                 "prompt_hash": content_hash(next(m["content"] for m in e["messages"]
                                                  if m["role"] == "user"))}
                for i, e in enumerate(examples))
        return training_id

    def record_training_step(self, training_id: int, step: int, loss: float | None,
                             learning_rate: float | None, tokens: int,
                             elapsed_ms: float) -> None:
        with self.store.transaction():
            self.store.db.execute(
                "INSERT OR REPLACE INTO training_steps (training_id, step, loss, learning_rate, "
                "tokens, elapsed_ms, created_utc) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [training_id, step, loss, learning_rate, tokens, elapsed_ms, utc_now()])

    def finish_training(self, training_id: int, status: str, result: dict[str, Any]) -> None:
        with self.store.transaction():
            self.store.db.execute(
                # A resumed training adds to what its earlier parts recorded.
                "UPDATE trainings SET status = ?, finished_utc = ?, steps = COALESCE(?, steps), "
                "duration_ms = COALESCE(duration_ms, 0) + ?, tokens_per_s = COALESCE(?, "
                "tokens_per_s), peak_rss_mb = MAX(COALESCE(peak_rss_mb, 0), ?), final_loss = "
                "COALESCE(?, final_loss), adapter_path = ?, adapter_sha256 = ?, gguf_path = ?, "
                "gguf_sha256 = ?, result_json = ?, error = ? WHERE id = ?",
                [status, utc_now(), result.get("steps"), result.get("duration_ms", 0),
                 result.get("tokens_per_s"), result.get("peak_rss_mb", 0),
                 result.get("final_loss"), result.get("adapter_path"),
                 result.get("adapter_sha256"), result.get("gguf_path"),
                 result.get("gguf_sha256"),
                 dumps({k: v for k, v in result.items() if k != "registered"}),
                 result.get("error"), training_id])
            for adapter in result.get("registered", []):
                self.store._register_adapter(adapter)


def find_training(store: Store, target: str, unfinished_first: bool = False) -> dict[str, Any]:
    """A training by id (``7``, ``t7``) or by name (the newest of that name; with
    ``unfinished_first``, the newest interrupted one if there is one: what a resume means)."""
    t = target.strip()
    ident = t[1:] if t[:1].lower() == "t" and t[1:].isdigit() else t
    if ident.isdigit():
        rows = list(store.query("SELECT * FROM trainings WHERE id = ?", [int(ident)]))
    else:
        first = "status IN ('interrupted', 'running') DESC, " if unfinished_first else ""
        rows = list(store.query(f"SELECT * FROM trainings WHERE name = ? ORDER BY {first}id "
                                "DESC LIMIT 1", [t]))
    if not rows:
        raise SaferlabError(f"no training {target!r} in {store.path}", EXIT_USAGE)
    return rows[0]


def unfinished_training(store: Store, name: str, out: str | None) -> int | None:
    """The newest interrupted (or killed) training of ``name`` into ``out``, if any."""
    for row in store.query("SELECT id, config_json FROM trainings WHERE name = ? AND status IN "
                           "('interrupted', 'running') ORDER BY id DESC", [name]):
        if json.loads(row["config_json"])["spec"].get("out") == out:
            return row["id"]
    return None


def training_examples(store: Store, training_id: int) -> list[dict[str, Any]]:
    """The exact training set, in order, as the engine's Example dictionaries."""
    return [{"kind": r["kind"], "source": r["source"], "regime": r["regime"],
             "messages": json.loads(r["messages_json"])}
            for r in store.query("SELECT * FROM training_examples WHERE training_id = ? "
                                 "ORDER BY position", [training_id])]


def training_losses(store: Store, training_id: int) -> list[tuple[int, float | None]]:
    return [(r["step"], r["loss"]) for r in store.query(
        "SELECT step, loss FROM training_steps WHERE training_id = ? ORDER BY step",
        [training_id])]


def list_trainings(store: Store, limit: int | None = None) -> list[dict[str, Any]]:
    sql = ("SELECT id, name, status, model, on_adapters, n_examples, steps, duration_ms, "
           "tokens_per_s, peak_rss_mb, final_loss, data_sha256, adapter_path, created_utc "
           "FROM trainings ORDER BY id DESC")
    if limit:
        sql += f" LIMIT {int(limit)}"
    return list(store.query(sql))


def adapter_rows(store: Store) -> list[dict[str, Any]]:
    """Registered adapters with where each came from (the training that made it, if any)."""
    return list(store.query(
        "SELECT a.name, a.kind, a.origin, a.on_adapters AS on_adapters, a.base_model, a.sha256, "
        "a.path, a.training_id, t.data_sha256, a.registered_utc, a.last_used_utc "
        "FROM adapters a LEFT JOIN trainings t ON t.id = a.training_id ORDER BY a.name, a.kind"))
