"""The local runs' SQLite store: experiments and trials, one transaction per state change (WAL mode).

An interrupted run loses nothing that finished: on the next run trials that were Running are put back
to Created (their processes killed if still alive) and run again with the same assignment.

Each finished trial keeps the CPU time (user + sys) its process used, the local runs' cost
(:mod:`client.process_usage`); a store written before that column existed gains it when opened, with
no value for its old trials (their cost falls back to ``train_seconds``, and the report says so).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from client.errors import ClientError
from client.experiments import ExperimentDef
from client.metrics import parse_value
from client.model import CREATED, RUNNING, SUCCEEDED, Experiment, Trial

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS experiments (
    name TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    task TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    body TEXT NOT NULL,
    max_trial_count INTEGER,
    parallel_trial_count INTEGER,
    condition TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    start_time TEXT,
    completion_time TEXT,
    notes TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS trials (
    experiment TEXT NOT NULL REFERENCES experiments(name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    seq INTEGER NOT NULL,
    parameters TEXT NOT NULL,
    condition TEXT NOT NULL,
    observation TEXT NOT NULL DEFAULT '{}',
    start_time TEXT,
    completion_time TEXT,
    exit_code INTEGER,
    message TEXT NOT NULL DEFAULT '',
    pid INTEGER,
    trial_dir TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    cpu_seconds REAL,
    PRIMARY KEY (experiment, name)
);
"""
# Columns added after schema 1 was first released: (table, column, SQL type), added when missing.
ADDED_COLUMNS = (("trials", "cpu_seconds", "REAL"),)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _dt(value: str | None) -> datetime | None:
    return None if not value else datetime.fromisoformat(value)


@dataclass
class StoredTrial:
    """A trial row: the model trial plus what the runner needs (observation strings, pid, dir)."""

    trial: Trial
    seq: int
    observation: dict[str, str]
    pid: int | None
    trial_dir: str
    attempts: int
    exit_code: int | None


class LocalStore:
    """SQLite store at ``path`` (created with its folder)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            with self._tx() as cur:
                for statement in filter(str.strip, SCHEMA.split(";")):
                    cur.execute(statement)
                for table, column, sql_type in ADDED_COLUMNS:
                    if column not in {r[1] for r in cur.execute(f"PRAGMA table_info({table})")}:
                        cur.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")
                row = cur.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                if row is None:
                    cur.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
                elif int(row[0]) != SCHEMA_VERSION:
                    raise ClientError(
                        f"{self.path} has store schema {row[0]}, this client uses {SCHEMA_VERSION}; "
                        "pass a new --store path"
                    )
        except sqlite3.DatabaseError as err:
            raise ClientError(
                f"cannot open the local store {self.path}: {err}; pass another --store"
            ) from None

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT)."""
        cur = self.db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")

    # --- experiments ---------------------------------------------------------------------------------
    def ensure_experiment(
        self, definition: ExperimentDef, max_trial_count: int | None, parallel_trial_count: int
    ) -> str:
        """Register an experiment (or check the stored one matches); returns its stored condition.

        Raising the trial budget of a finished experiment re-opens it (like a Katib restart).
        """
        spec_hash = definition.spec_hash()
        with self._tx() as cur:
            row = cur.execute(
                "SELECT spec_hash, condition, max_trial_count FROM experiments WHERE name=?",
                (definition.name,),
            ).fetchone()
            if row is None:
                cur.execute(
                    "INSERT INTO experiments (name, namespace, task, algorithm, spec_hash, body, "
                    "max_trial_count, parallel_trial_count, condition) VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        definition.name,
                        definition.namespace,
                        definition.task,
                        definition.algorithm,
                        spec_hash,
                        json.dumps(definition.body, sort_keys=True),
                        max_trial_count,
                        parallel_trial_count,
                        CREATED,
                    ),
                )
                return CREATED
            stored_hash, condition, stored_max = row
            if stored_hash != spec_hash:
                raise ClientError(
                    f"experiment {definition.name} in {self.path} was run with a different spec; "
                    "pass --fresh to start it over or use another --store"
                )
            reopen = condition == SUCCEEDED and (max_trial_count or 0) > (stored_max or 0)
            cur.execute(
                "UPDATE experiments SET max_trial_count=?, parallel_trial_count=?, body=? WHERE name=?",
                (
                    max_trial_count,
                    parallel_trial_count,
                    json.dumps(definition.body, sort_keys=True),
                    definition.name,
                ),
            )
            if reopen:
                cur.execute(
                    "UPDATE experiments SET condition=?, reason='', completion_time=NULL WHERE name=?",
                    (RUNNING, definition.name),
                )
                return RUNNING
            return str(condition)

    def set_experiment_state(
        self,
        name: str,
        condition: str,
        reason: str = "",
        message: str = "",
        start_time: datetime | None = None,
        completion_time: datetime | None = None,
    ) -> None:
        """Record an experiment condition change (start time is only set once)."""
        with self._tx() as cur:
            cur.execute(
                "UPDATE experiments SET condition=?, reason=?, message=?, "
                "start_time=COALESCE(start_time, ?), completion_time=? WHERE name=?",
                (condition, reason, message, _iso(start_time), _iso(completion_time), name),
            )

    def set_notes(self, name: str, notes: Sequence[str]) -> None:
        """Replace the experiment's notes (e.g. a --max-trials cap)."""
        with self._tx() as cur:
            cur.execute("UPDATE experiments SET notes=? WHERE name=?", (json.dumps(list(notes)), name))

    def delete_experiment(self, name: str) -> None:
        """Forget an experiment and its trials."""
        with self._tx() as cur:
            cur.execute("DELETE FROM trials WHERE experiment=?", (name,))
            cur.execute("DELETE FROM experiments WHERE name=?", (name,))

    def experiment_names(self) -> list[str]:
        """Stored experiment names."""
        return [r[0] for r in self.db.execute("SELECT name FROM experiments ORDER BY task, algorithm, name")]

    # --- trials ----------------------------------------------------------------------------------------
    def add_trials(self, experiment: str, assignments: Sequence[tuple[str, dict[str, str]]]) -> None:
        """Record new assignments (condition Created) in one transaction."""
        with self._tx() as cur:
            (seq,) = cur.execute(
                "SELECT COALESCE(MAX(seq), -1) FROM trials WHERE experiment=?", (experiment,)
            ).fetchone()
            for name, params in assignments:
                seq += 1
                cur.execute(
                    "INSERT INTO trials (experiment, name, seq, parameters, condition) VALUES (?,?,?,?,?)",
                    (experiment, name, seq, json.dumps(params, sort_keys=True), CREATED),
                )

    def mark_running(
        self, experiment: str, trial: str, start_time: datetime, pid: int, trial_dir: str
    ) -> None:
        """A trial's process started."""
        with self._tx() as cur:
            cur.execute(
                "UPDATE trials SET condition=?, start_time=?, pid=?, trial_dir=?, attempts=attempts+1, "
                "completion_time=NULL, exit_code=NULL, cpu_seconds=NULL WHERE experiment=? AND name=?",
                (RUNNING, _iso(start_time), pid, trial_dir, experiment, trial),
            )

    def finish_trial(
        self,
        experiment: str,
        trial: str,
        condition: str,
        observation: dict[str, str],
        completion_time: datetime,
        exit_code: int | None,
        message: str = "",
        cpu_seconds: float | None = None,
    ) -> None:
        """A trial reached a terminal condition; ``cpu_seconds`` is its process's CPU time, if known."""
        with self._tx() as cur:
            cur.execute(
                "UPDATE trials SET condition=?, observation=?, completion_time=?, exit_code=?, message=?, "
                "cpu_seconds=?, pid=NULL WHERE experiment=? AND name=?",
                (
                    condition,
                    json.dumps(observation, sort_keys=True),
                    _iso(completion_time),
                    exit_code,
                    message,
                    cpu_seconds,
                    experiment,
                    trial,
                ),
            )

    def reset_interrupted(self, experiment: str) -> list[str]:
        """Trials left Running by a killed run: kill their process if still alive, set them back to Created."""
        rows = self.db.execute(
            "SELECT name, pid, trial_dir FROM trials WHERE experiment=? AND condition=?",
            (experiment, RUNNING),
        ).fetchall()
        for _name, pid, trial_dir in rows:
            if pid:
                _kill_orphan(int(pid), trial_dir)
        with self._tx() as cur:
            cur.execute(
                "UPDATE trials SET condition=?, start_time=NULL, pid=NULL, cpu_seconds=NULL "
                "WHERE experiment=? AND condition=?",
                (CREATED, experiment, RUNNING),
            )
        return [r[0] for r in rows]

    def trials(self, experiment: str) -> list[StoredTrial]:
        """The experiment's trials in assignment order."""
        rows = self.db.execute(
            "SELECT name, seq, parameters, condition, observation, start_time, completion_time, exit_code, "
            "message, pid, trial_dir, attempts, cpu_seconds FROM trials WHERE experiment=? ORDER BY seq",
            (experiment,),
        ).fetchall()
        out = []
        for (
            name,
            seq,
            params,
            condition,
            obs,
            start,
            end,
            exit_code,
            message,
            pid,
            trial_dir,
            attempts,
            cpu,
        ) in rows:
            observation = json.loads(obs)
            metrics = {
                k: v for k, v in ((k, parse_value(s)) for k, s in observation.items()) if v is not None
            }
            trial = Trial(
                name=name,
                parameters=json.loads(params),
                condition=condition,
                metrics=metrics,
                start_time=_dt(start),
                completion_time=_dt(end),
                gpus=0.0,
                message=message,
                cpu_seconds=cpu,
            )
            out.append(StoredTrial(trial, seq, observation, pid, trial_dir, attempts, exit_code))
        return out

    def load(self, names: Sequence[str] | None = None) -> list[Experiment]:
        """Stored experiments (all, or ``names``) as model objects with their trials."""
        rows = self.db.execute(
            "SELECT name, body, max_trial_count, parallel_trial_count, condition, reason, start_time, "
            "completion_time, notes FROM experiments ORDER BY task, algorithm, name"
        ).fetchall()
        out = []
        for name, body, max_trials, parallel, condition, reason, start, end, notes in rows:
            if names is not None and name not in names:
                continue
            definition = ExperimentDef.from_body(json.loads(body), str(self.path))
            model = definition.to_model(source="local")
            model.max_trial_count = max_trials
            model.parallel_trial_count = parallel
            model.condition = condition
            model.reason = reason
            model.start_time = _dt(start)
            model.completion_time = _dt(end)
            model.notes = json.loads(notes)
            model.trials = [s.trial for s in self.trials(name)]
            out.append(model)
        return out


def _is_trial_process(pid: int, trial_dir: str) -> bool:
    """True when ``pid`` is still the trial's process: its command line names the trial folder
    (subprocess launches) or its stdout is a file in the trial folder (warm-launched forks)."""
    if not trial_dir:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    if trial_dir in cmdline:
        return True
    try:
        stdout = os.readlink(f"/proc/{pid}/fd/1")
    except OSError:
        return False
    return Path(stdout).parent == Path(trial_dir)


def _kill_orphan(pid: int, trial_dir: str) -> None:
    """Kill a trial process a killed runner left behind (only if it is still that trial's process)."""
    if not _is_trial_process(pid, trial_dir):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    for _ in range(100):
        if not Path(f"/proc/{pid}").exists():
            return
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().split(")")[-1].split()[0] == "Z":
                    return
        except OSError:
            return
        time.sleep(0.02)
