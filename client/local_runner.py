"""Run Experiments on this machine: our suggestion service on loopback + trials as local processes.

The runner behaves like Katib's experiment controller for one experiment at a time: it asks the
service (over gRPC, exactly as Katib would) for ``min(parallel, max - completed) - active`` new
assignments, runs each trial as the trial template's own command, reads its stdout/stderr with Katib's
StdOut metric format, marks it Succeeded / Failed / MetricsUnavailable, and ends the experiment on
goal reached, ``maxFailedTrialCount`` or ``maxTrialCount``. Every state change is one SQLite
transaction, so a killed run resumes without losing or repeating finished trials.

Trial commands of the form ``python -m MODULE ...`` are forked from a warm launcher that has already
imported the heavy modules (:mod:`client.warm_launcher`, ``--launcher warm``, the default); any other
command, or ``--launcher subprocess``, runs as a fresh subprocess. Both give the same log, exit status
and kill/timeout/resume behaviour, and both record the trial process's CPU time (user + sys, read when
it is reaped: :mod:`client.process_usage`) as the trial's local cost, which unlike wall time does not
depend on how busy the machine is.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import grpc

from client.errors import ClientError
from client.experiments import ExperimentDef
from client.local_store import LocalStore, StoredTrial
from client.metrics import observe_stdout, parse_value
from client.model import (
    CREATED,
    FAILED,
    FAILED_CONDITIONS,
    KILLED,
    MAXIMIZE,
    METRICS_UNAVAILABLE,
    RUNNING,
    SUCCEEDED,
    TERMINAL_CONDITIONS,
    utcnow,
)
from client.process_usage import MeteredProcess
from client.warm_launcher import WarmLauncher
from katib_model import ManifestError, TrialRecord
from katib_model.requests import suggestions_request as build_request
from suggestion_service.errors import InvalidArgument

LOCAL_ALGORITHMS = ("grid", "random", "surrogate-gp", "surrogate-rf")
LAUNCHERS = ("warm", "subprocess")
COST_METRICS = ("gpu_seconds", "train_seconds")
UNAVAILABLE = "unavailable"
_PYTHON = re.compile(r"python(3(\.\d+)?)?")


def experiment_proto(definition: ExperimentDef, max_trial_count: int, parallel_trial_count: int) -> Any:
    """The Experiment as Katib's controller converts it to ``api.v1.beta1.Experiment``, with this run's
    budget (:meth:`katib_model.KatibExperiment.experiment_proto`; an invalid search space fails here
    with the service's message)."""
    try:
        return definition.model.experiment_proto(max_trial_count, parallel_trial_count)
    except InvalidArgument as err:
        raise ClientError(f"{definition.path or definition.name}: {err}") from None


def trial_record(stored: StoredTrial) -> TrialRecord:
    """A stored trial as the Experiment model's request builder takes it."""
    trial = stored.trial
    return TrialRecord(
        trial.name,
        trial.condition,
        trial.parameters,
        stored.observation,
        trial.start_time,
        trial.completion_time,
    )


def suggestions_request(
    experiment: Any, trials: Sequence[StoredTrial], metric_names: Sequence[str], current: int
) -> Any:
    """A GetSuggestionsRequest carrying every trial Katib would send (:mod:`katib_model.requests`)."""
    return build_request(experiment, [trial_record(t) for t in trials], metric_names, current)


def trial_command(
    definition: ExperimentDef,
    parameters: dict[str, str],
    trial_name: str,
    trial_dir: Path,
    *,
    preset: str,
    cache_dir: Path,
    python: str = sys.executable,
) -> list[str]:
    """The primary container's command + args of the trial Katib would create (the model's
    substitution of ``${trialParameters.x}`` and ``${trialSpec.*}``), for this machine.

    ``python`` becomes this interpreter; ``--preset --cache-dir --output-dir --checkpoint-dir`` are
    appended (later flags win in the trainer's argparse).
    """
    definition.primary_container()  # a configMap template or a missing container: a clear ClientError
    try:
        workload = definition.model.trial_workload(parameters, trial_name)
    except ManifestError as err:
        raise ClientError(str(err)) from None
    container = definition.primary_container(workload)
    argv = [str(a) for a in (container.get("command") or [])] + [
        str(a) for a in (container.get("args") or [])
    ]
    if not argv:
        raise ClientError(f"{definition.name}: the primary container has no command/args; set command:")
    if _PYTHON.fullmatch(Path(argv[0]).name):
        argv[0] = python
    return [
        *argv,
        "--preset",
        preset,
        "--cache-dir",
        str(cache_dir),
        "--output-dir",
        str(trial_dir),
        "--checkpoint-dir",
        str(trial_dir / "ckpt"),
    ]


def trial_outcome(exit_code: int, text: str, definition: ExperimentDef) -> tuple[str, dict[str, str], str]:
    """(condition, observation, message) for a finished trial process, as Katib decides them.

    Non-zero exit -> Failed. Exit 0 with the objective's value missing ("unavailable") ->
    MetricsUnavailable. Otherwise Succeeded. The observation uses the experiment's metricStrategies
    (the cost metrics are kept too, with ``latest``, for the local cost columns).
    """
    strategies = dict(definition.metric_strategies)
    for name in COST_METRICS:
        strategies.setdefault(name, "latest")
    observation = observe_stdout(text, list(strategies), strategies)
    observation = {k: v for k, v in observation.items() if k in definition.metric_names or v != UNAVAILABLE}
    if exit_code != 0:
        last = next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "")
        return FAILED, observation, f"exit code {exit_code}" + (f": {last[:300]}" if last else "")
    if observation.get(definition.objective_metric, UNAVAILABLE) == UNAVAILABLE:
        return (
            METRICS_UNAVAILABLE,
            observation,
            f"objective {definition.objective_metric} not found in the trial's output",
        )
    return SUCCEEDED, observation, ""


@dataclass
class RunOptions:
    """How to run experiments locally (the CLI flags)."""

    workdir: Path = Path("runs/local")
    cache_dir: Path = Path("runs/cache")
    preset: str = "tiny"
    parallel: int | None = None
    max_trials: int | None = None
    fresh: bool = False
    trial_timeout: float | None = None
    python: str = sys.executable
    poll_interval: float = 0.05
    launcher: str = "warm"
    preload: tuple[str, ...] = ()


class TrialProcess(Protocol):
    """What the runner needs from a trial process (a metered subprocess or a warm-launched child);
    ``cpu_seconds`` is its user + sys CPU time once it ended (None if unknown)."""

    pid: int
    returncode: int | None
    cpu_seconds: float | None

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...


@dataclass
class _Running:
    name: str
    process: TrialProcess
    log: IO[bytes] | None
    log_path: Path
    started: float


@dataclass
class ExperimentBudget:
    """The effective limits of one local run of an experiment."""

    max_trials: int
    parallel: int
    notes: list[str] = field(default_factory=list)


def budget(definition: ExperimentDef, options: RunOptions) -> ExperimentBudget:
    """maxTrialCount (or ``--max-trials``) and parallelism capped at ``--parallel`` / the CPU count."""
    notes: list[str] = []
    spec_max = definition.max_trial_count
    if options.max_trials is not None:
        max_trials = options.max_trials
        if spec_max is None or spec_max != max_trials:
            notes.append(f"--max-trials {max_trials} overrides maxTrialCount {spec_max} in this local run")
    elif spec_max is None:
        raise ClientError(
            f"{definition.name} has no spec.maxTrialCount; a local run needs a budget: pass --max-trials N"
        )
    else:
        max_trials = spec_max
    cap = options.parallel if options.parallel is not None else (os.cpu_count() or 1)
    parallel = max(1, min(definition.parallel_trial_count, cap, max_trials))
    if parallel < definition.parallel_trial_count:
        notes.append(f"parallelTrialCount {definition.parallel_trial_count} capped to {parallel} locally")
    return ExperimentBudget(max_trials, parallel, notes)


class LocalRunner:
    """Runs experiment definitions against a store; progress callbacks drive the CLI's progress bar."""

    def __init__(
        self,
        store: LocalStore,
        options: RunOptions,
        *,
        on_progress: Callable[[str, int, int], None] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.options = options
        self.on_progress = on_progress or (lambda _name, _done, _total: None)
        self.log = log or (lambda message: print(message, file=sys.stderr))
        if options.launcher not in LAUNCHERS:
            raise ClientError(f"unknown launcher {options.launcher!r}; allowed: {', '.join(LAUNCHERS)}")
        self.warm: WarmLauncher | None = None

    def run(self, definitions: Sequence[ExperimentDef]) -> None:
        """Run (or resume) every definition, one experiment after another.

        Experiments with the ``warm_start_experiments`` setting run after the experiments of this run
        they name, and read their trials from this store (:mod:`client.local_priors`); a prior outside
        this run must already be finished in the store, else nothing runs and a ClientError says so.
        """
        for definition in definitions:
            if definition.algorithm not in LOCAL_ALGORITHMS:
                raise ClientError(
                    f"{definition.name}: algorithm {definition.algorithm!r} is not served locally; "
                    f"local runs support {', '.join(LOCAL_ALGORITHMS)} (filter with --algorithm)"
                )
        from client.local_priors import LocalStorePriorSource, order_for_warm_start
        from suggestion_service.prior_fetch import ANY_NAMESPACE
        from suggestion_service.proto import api_pb2_grpc
        from suggestion_service.server import start_server

        definitions = order_for_warm_start(definitions, self._stored, str(self.store.path))
        prior_source = LocalStorePriorSource(self.store)
        # The local store is the user's own: warm start may name any of its namespaces.
        server = start_server(
            host="127.0.0.1", port=0, prior_source=prior_source, warm_start_namespaces=[ANY_NAMESPACE]
        )
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        if self.options.launcher == "warm":
            self.warm = WarmLauncher(self.options.workdir, self.options.preload, log=self.log)
        try:
            grpc.channel_ready_future(channel).result(timeout=30)
            stub = api_pb2_grpc.SuggestionStub(channel)
            for definition in definitions:
                self._run_experiment(definition, stub)
        finally:
            channel.close()
            server.stop(grace=1)
            if self.warm is not None:
                self.warm.close()
                self.warm = None

    def _stored(self, name: str) -> Any:
        """The store's copy of experiment ``name`` (None when absent), for the warm-start order check."""
        found = self.store.load([name])
        return found[0] if found else None

    # --- one experiment --------------------------------------------------------------------------------
    def _run_experiment(self, definition: ExperimentDef, stub: Any) -> None:
        name = definition.name
        limits = budget(definition, self.options)
        if self.options.fresh:
            self.store.delete_experiment(name)
            shutil.rmtree(self.options.workdir / name, ignore_errors=True)
        state = self.store.ensure_experiment(definition, limits.max_trials, limits.parallel)
        self.store.set_notes(name, limits.notes)
        if state in (SUCCEEDED, FAILED):
            done = sum(1 for t in self.store.trials(name) if t.trial.condition in TERMINAL_CONDITIONS)
            self.on_progress(name, done, limits.max_trials)
            return
        rerun = self.store.reset_interrupted(name)
        if rerun:
            self.log(f"{name}: re-running {len(rerun)} trial(s) interrupted earlier: {', '.join(rerun)}")
        experiment = experiment_proto(definition, limits.max_trials, limits.parallel)
        self._validate(stub, definition, experiment)
        self.store.set_experiment_state(name, RUNNING, start_time=utcnow())
        running: dict[str, _Running] = {}
        suggestion_error = ""
        exhausted = False
        try:
            while True:
                trials = self.store.trials(name)
                self.on_progress(name, sum(t.trial.is_terminal for t in trials), limits.max_trials)
                verdict = self._verdict(definition, trials, limits.max_trials)
                if verdict is None and not running and (suggestion_error or exhausted):
                    pending = [t for t in trials if t.trial.condition == CREATED]
                    if not pending:
                        verdict = (
                            (FAILED, "SuggestionFailed", suggestion_error)
                            if suggestion_error
                            else (SUCCEEDED, "SearchSpaceExhausted", "the service has no new assignment")
                        )
                if verdict is not None:
                    for trial_name in list(running):
                        self._stop(definition, running.pop(trial_name), KILLED, "experiment completed")
                    condition, reason, message = verdict
                    self.store.set_experiment_state(
                        name, condition, reason, message, completion_time=utcnow()
                    )
                    if message and condition == FAILED:
                        self.log(f"{name}: {condition} ({reason}): {message}")
                    trials = self.store.trials(name)
                    self.on_progress(name, sum(t.trial.is_terminal for t in trials), limits.max_trials)
                    return
                pending = [t for t in trials if t.trial.condition == CREATED and t.trial.name not in running]
                for stored in pending[: max(0, limits.parallel - len(running))]:
                    launched = self._launch(definition, stored)
                    if launched is not None:
                        running[stored.trial.name] = launched
                if not suggestion_error and not exhausted:
                    completed = sum(t.trial.is_terminal for t in trials)
                    active = sum(1 for t in trials if not t.trial.is_terminal)
                    add = min(limits.parallel, limits.max_trials - completed) - active
                    if active < limits.parallel and add > 0:
                        try:
                            new = self._suggest(definition, stub, experiment, trials, add)
                        except ClientError as err:
                            suggestion_error = str(err)
                            continue
                        if not new:
                            exhausted = True
                            continue
                        self.store.add_trials(name, new)
                        continue
                self._wait(definition, running)
        except BaseException:
            for trial_name in list(running):
                self._stop(definition, running.pop(trial_name), None, "")
            raise

    def _verdict(
        self, definition: ExperimentDef, trials: Sequence[StoredTrial], max_trials: int
    ) -> tuple[str, str, str] | None:
        """Katib's order: goal reached, then max failed, then max trials."""
        goal = definition.goal
        if goal is not None:
            for stored in trials:
                value = parse_value(stored.observation.get(definition.objective_metric))
                if stored.trial.condition == SUCCEEDED and value is not None:
                    reached = value >= goal if definition.objective_type == MAXIMIZE else value <= goal
                    if reached:
                        return SUCCEEDED, "ExperimentGoalReached", f"objective goal {goal:g} reached"
        failed = sum(1 for t in trials if t.trial.condition in FAILED_CONDITIONS)
        max_failed = definition.max_failed_trial_count
        if max_failed is not None and failed and failed >= max_failed:
            return (
                FAILED,
                "ExperimentFailed",
                f"{failed} failed trial(s) reached maxFailedTrialCount {max_failed}",
            )
        completed = sum(1 for t in trials if t.trial.is_terminal)
        if completed >= max_trials:
            return SUCCEEDED, "ExperimentMaxTrialsReached", f"{completed} trials completed"
        return None

    def _validate(self, stub: Any, definition: ExperimentDef, experiment: Any) -> None:
        from suggestion_service.proto import api_pb2

        try:
            stub.ValidateAlgorithmSettings(
                api_pb2.ValidateAlgorithmSettingsRequest(experiment=experiment), timeout=60
            )
        except grpc.RpcError as err:
            raise ClientError(
                f"{definition.name}: the suggestion service rejected the experiment "
                f"({err.code().name}): {err.details()}; fix {definition.path or 'the manifest'}"
            ) from None

    def _suggest(
        self, definition: ExperimentDef, stub: Any, experiment: Any, trials: Sequence[StoredTrial], count: int
    ) -> list[tuple[str, dict[str, str]]]:
        request = suggestions_request(experiment, trials, definition.metric_names, count)
        try:
            reply = stub.GetSuggestions(request, timeout=120)
        except grpc.RpcError as err:
            raise ClientError(f"GetSuggestions failed ({err.code().name}): {err.details()}") from None
        if len(reply.parameter_assignments) > count:
            raise ClientError(
                f"the service returned {len(reply.parameter_assignments)} assignments for {count} requested"
            )
        taken = {t.trial.name for t in trials}
        out = []
        for item in reply.parameter_assignments:
            trial_name = item.trial_name
            if not trial_name or trial_name in taken:
                index = len(taken) + 1
                while f"{definition.name}-{index:03d}" in taken:
                    index += 1
                trial_name = f"{definition.name}-{index:03d}"
            taken.add(trial_name)
            out.append((trial_name, {a.name: a.value for a in item.assignments}))
        return out

    def _launch(self, definition: ExperimentDef, stored: StoredTrial) -> _Running | None:
        trial = stored.trial
        trial_dir = (self.options.workdir / definition.name / trial.name).resolve()
        trial_dir.mkdir(parents=True, exist_ok=True)
        argv = trial_command(
            definition,
            trial.parameters,
            trial.name,
            trial_dir,
            preset=self.options.preset,
            cache_dir=self.options.cache_dir.resolve(),
            python=self.options.python,
        )
        env = dict(os.environ)
        env.update({"KATIB_TRIAL_NAME": trial.name, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
        threads = max(1, (os.cpu_count() or 1) // max(1, budget(definition, self.options).parallel))
        env.setdefault("OMP_NUM_THREADS", str(threads))
        log_path = trial_dir / "stdout.log"
        if self.warm is not None:
            warm = self.warm.start(argv, self.options.python, env, log_path)  # forks after any preload
            if warm is not None:
                self.store.mark_running(definition.name, trial.name, utcnow(), warm.pid, str(trial_dir))
                return _Running(trial.name, warm, None, log_path, time.monotonic())
        started = utcnow()
        log = open(log_path, "wb")  # noqa: SIM115 (closed when the trial ends)
        try:
            process = MeteredProcess(
                subprocess.Popen(
                    argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
                )
            )
        except OSError as err:
            # What a pod whose command cannot start does: the container fails, so the trial fails.
            reason = err.strerror or str(err)
            log.write(f"cannot start {argv[0]!r}: {reason}\n".encode())
            log.close()
            self.store.mark_running(definition.name, trial.name, started, 0, str(trial_dir))
            message = f"cannot start the trial command {argv[0]!r}: {reason}"
            self.store.finish_trial(definition.name, trial.name, FAILED, {}, utcnow(), 127, message)
            self.log(f"{definition.name}: {message}")
            return None
        self.store.mark_running(definition.name, trial.name, started, process.pid, str(trial_dir))
        return _Running(trial.name, process, log, log_path, time.monotonic())

    def _wait(self, definition: ExperimentDef, running: dict[str, _Running]) -> None:
        """Poll until at least one trial process ends (or times out); record its outcome."""
        timeout = self.options.trial_timeout
        while running:
            ended = False
            for r in list(running.values()):
                exit_code = r.process.poll()
                if exit_code is None:
                    if timeout is not None and time.monotonic() - r.started > timeout:
                        running.pop(r.name)
                        self._stop(definition, r, FAILED, f"timed out after {timeout:g} s (--trial-timeout)")
                        ended = True
                    continue
                running.pop(r.name)
                if r.log is not None:
                    r.log.close()
                text = r.log_path.read_text(errors="replace")
                condition, observation, message = trial_outcome(exit_code, text, definition)
                self._finish(definition, r, condition, observation, message)
                ended = True
            if ended:
                return
            time.sleep(self.options.poll_interval)

    def _stop(self, definition: ExperimentDef, r: _Running, condition: str | None, message: str) -> None:
        """Terminate a trial process; record ``condition`` (None: leave it Running for a resume)."""
        if r.process.poll() is None:
            r.process.send_signal(signal.SIGTERM)
            try:
                r.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                r.process.kill()
                r.process.wait()
        if r.log is not None:
            r.log.close()
        if condition is not None:
            text = r.log_path.read_text(errors="replace")
            _, observation, _ = trial_outcome(r.process.returncode or 0, text, definition)
            self._finish(definition, r, condition, observation, message)

    def _finish(
        self,
        definition: ExperimentDef,
        r: _Running,
        condition: str,
        observation: dict[str, str],
        message: str,
    ) -> None:
        """Record an ended trial: its outcome, exit status and its process's CPU time (the local cost)."""
        self.store.finish_trial(
            definition.name,
            r.name,
            condition,
            observation,
            utcnow(),
            r.process.returncode,
            message,
            cpu_seconds=r.process.cpu_seconds,
        )
