"""Numbered migrations, applied in order on every open. Never edit one that has shipped:
add the next number instead."""

from __future__ import annotations

M001_INITIAL = """
        CREATE TABLE sessions (
            id INTEGER PRIMARY KEY,
            created_utc TEXT NOT NULL,
            finished_utc TEXT,
            status TEXT NOT NULL DEFAULT 'running',
            config_json TEXT NOT NULL DEFAULT '{}'
        );
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL REFERENCES sessions(id),
            created_utc TEXT NOT NULL,
            started_utc TEXT,
            finished_utc TEXT,
            status TEXT NOT NULL DEFAULT 'pending',
            model TEXT NOT NULL,
            reasoning TEXT NOT NULL,
            attack TEXT NOT NULL,
            model_sha256 TEXT,
            saferlab_version TEXT,
            llama_cpp_version TEXT,
            n_items INTEGER NOT NULL,
            config_json TEXT NOT NULL,
            meters_json TEXT,
            error TEXT
        );
        CREATE INDEX runs_session ON runs(session_id);
        CREATE TABLE items (
            id TEXT PRIMARY KEY,
            key TEXT NOT NULL,
            suite TEXT NOT NULL,
            kind TEXT NOT NULL,
            category TEXT,
            prompt TEXT NOT NULL,
            item_json TEXT NOT NULL
        );
        CREATE TABLE run_items (
            run_id INTEGER NOT NULL REFERENCES runs(id),
            position INTEGER NOT NULL,
            item_id TEXT NOT NULL REFERENCES items(id),
            messages_json TEXT NOT NULL,
            PRIMARY KEY (run_id, position),
            UNIQUE (run_id, item_id)
        );
        CREATE TABLE generations (
            id INTEGER PRIMARY KEY,
            run_id INTEGER NOT NULL REFERENCES runs(id),
            item_id TEXT NOT NULL REFERENCES items(id),
            created_utc TEXT NOT NULL,
            messages_json TEXT NOT NULL,
            output TEXT NOT NULL,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            ttft_ms REAL,
            duration_ms REAL,
            finish_reason TEXT NOT NULL,
            error TEXT,
            UNIQUE (run_id, item_id)
        );
        CREATE TABLE verdicts (
            id INTEGER PRIMARY KEY,
            generation_id INTEGER NOT NULL REFERENCES generations(id),
            judge TEXT NOT NULL,
            meter TEXT NOT NULL,
            passed INTEGER,
            label TEXT NOT NULL,
            score REAL,
            detail_json TEXT NOT NULL DEFAULT '{}',
            error TEXT,
            created_utc TEXT NOT NULL
        );
        CREATE INDEX verdicts_generation ON verdicts(generation_id);
        CREATE TABLE file_hashes (
            path TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            checked_utc TEXT NOT NULL
        );
"""

M002_TURNS = """
        CREATE TABLE turns (
            id INTEGER PRIMARY KEY,
            generation_id INTEGER NOT NULL REFERENCES generations(id),
            turn INTEGER NOT NULL,
            actor TEXT NOT NULL,
            messages_json TEXT NOT NULL,
            output TEXT NOT NULL,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            duration_ms REAL,
            finish_reason TEXT NOT NULL,
            error TEXT,
            verdict_json TEXT,
            UNIQUE (generation_id, turn)
        );
        CREATE INDEX turns_generation ON turns(generation_id);
"""

M003_PARTS_AND_LABELS = """
        ALTER TABLE verdicts ADD COLUMN part TEXT NOT NULL DEFAULT 'full';
        CREATE TABLE labels (
            id INTEGER PRIMARY KEY,
            generation_id INTEGER NOT NULL REFERENCES generations(id),
            meter TEXT NOT NULL,
            passed INTEGER NOT NULL,
            label TEXT NOT NULL,
            labeller TEXT NOT NULL,
            note TEXT,
            created_utc TEXT NOT NULL,
            UNIQUE (generation_id, meter, labeller)
        );
"""

M004_ADAPTERS = """
        CREATE TABLE adapters (
            path TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            base_model TEXT,
            sha256 TEXT,
            registered_utc TEXT NOT NULL,
            last_used_utc TEXT
        );
"""

M005_TRAININGS = """
        CREATE TABLE trainings (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            created_utc TEXT NOT NULL,
            finished_utc TEXT,
            status TEXT NOT NULL DEFAULT 'running',
            model TEXT NOT NULL,
            model_sha256 TEXT,
            on_adapters TEXT,
            config_json TEXT NOT NULL,
            data_sha256 TEXT NOT NULL,
            n_examples INTEGER NOT NULL,
            steps INTEGER,
            duration_ms REAL,
            tokens_per_s REAL,
            peak_rss_mb REAL,
            final_loss REAL,
            adapter_path TEXT,
            adapter_sha256 TEXT,
            gguf_path TEXT,
            gguf_sha256 TEXT,
            result_json TEXT,
            error TEXT
        );
        CREATE TABLE training_examples (
            training_id INTEGER NOT NULL REFERENCES trainings(id),
            position INTEGER NOT NULL,
            kind TEXT NOT NULL,
            source TEXT NOT NULL,
            regime TEXT NOT NULL,
            messages_json TEXT NOT NULL,
            prompt_hash TEXT NOT NULL,
            PRIMARY KEY (training_id, position)
        );
        CREATE TABLE training_steps (
            training_id INTEGER NOT NULL REFERENCES trainings(id),
            step INTEGER NOT NULL,
            loss REAL,
            learning_rate REAL,
            tokens INTEGER,
            elapsed_ms REAL,
            created_utc TEXT NOT NULL,
            PRIMARY KEY (training_id, step)
        );
        ALTER TABLE adapters ADD COLUMN origin TEXT;
        ALTER TABLE adapters ADD COLUMN training_id INTEGER REFERENCES trainings(id);
        ALTER TABLE adapters ADD COLUMN on_adapters TEXT;
"""

M006_RESULT_CACHE = """
        ALTER TABLE generations ADD COLUMN cache_key TEXT;
        ALTER TABLE generations ADD COLUMN judges_key TEXT;
        ALTER TABLE generations ADD COLUMN cached INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX generations_cache ON generations(cache_key) WHERE cache_key IS NOT NULL;
"""

# Each is applied in one transaction together with its row in _migrations.
MIGRATIONS: list[tuple[str, str]] = [
    ("m001_initial", M001_INITIAL),
    ("m002_turns", M002_TURNS),
    ("m003_parts_and_labels", M003_PARTS_AND_LABELS),
    ("m004_adapters", M004_ADAPTERS),
    ("m005_trainings", M005_TRAININGS),
    ("m006_result_cache", M006_RESULT_CACHE),
]
