"""``python -m client rehearse``: Katib's part, played on one CPU machine, with the cluster's own commands.

Order of events, as on a cluster after ``kubectl apply -f manifests/``:

1. The loopback hub (:mod:`client.rehearsal.hub`) serves tiny stand-ins under the real names, and is
   every pod's HTTP(S) proxy, so nothing leaves the machine (what tried is a finding).
2. Each Job of the set-up folder (the warm-cache Job) runs as its pods would (:mod:`client.rehearsal.pod`,
   :mod:`client.rehearsal.job`); the cache's ready marker must appear.
3. Per Experiment: the suggestion service the katib-config entry deploys (``python -m suggestion_service``
   with the entry's args and env) answers ``ValidateAlgorithmSettings`` and ``GetSuggestions`` over gRPC;
   trials are asked for as Katib's experiment controller asks (``min(parallel, max - completed) - active``),
   each runs as the trial Job Katib creates (substituted template, init containers, the collector's
   wrapping, the Job's retry rules), and its condition and observation follow Katib's trial controller
   (Job Complete + objective reported: Succeeded, else MetricsUnavailable; Job Failed: Failed, no
   observation). The Experiment ends on goal, ``maxFailedTrialCount``, ``maxTrialCount`` or the end of
   suggestions, in Katib's order (``status_util.go``).
4. ``--preempt``: the first pod of each Experiment's first trial gets SIGTERM (to the wrapper, as the
   kubelet sends it) once epoch 1 is reported, with the ``DisruptionTarget`` condition a preemption sets.
"""

from __future__ import annotations

import hashlib
import itertools
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

from client.errors import ClientError
from client.experiments import ExperimentDef, load_experiments
from client.rehearsal.account import (
    ExperimentAccount,
    RehearsalAccount,
    TrialAccount,
    resume_point,
    saved_on_signal,
)
from client.rehearsal.collector import observation_values, summarize
from client.rehearsal.job import JobOutcome, run_job
from client.rehearsal.pod import KATIB_TRIAL_LABEL, PodSetup, epochs_in, preempt_after_epoch
from client.rehearsal.pod_env import dockerfile_env
from client.rehearsal.setup import ClusterSetup, read_setup, service_args, service_env
from katib_model import ManifestError, TrialRecord
from katib_model.retry import retry_rules

REPO = Path(__file__).resolve().parents[2]
TRAINER_DOCKERFILE = REPO / "trainer_image" / "Dockerfile"
#: The trainer image's own folders (its Dockerfile's COPY destination and WORKDIR).
IMAGE_ROOT = "/opt/katib-surrogate"
IMAGE_WORKDIR = "/workspace"
READY_MARKER = ".katib-surrogate-cache-ready"
#: The setting a rehearsal points at the hub's copy of the ResNet-50 weights (issue 14's proposal).
WEIGHTS_URL_ENV = "TRAINER_RESNET50_WEIGHTS_URL"
TERMINAL = ("Succeeded", "Failed", "Killed", "MetricsUnavailable", "EarlyStopped")


@dataclass
class RehearsalOptions:
    """The ``rehearse`` flags."""

    manifests: Sequence[Path] = (Path("manifests"),)
    setup: Path = Path("manifests")
    experiments: Sequence[str] = ()
    max_trials: int | None = None
    parallel: int = 1
    preempt: bool = False
    workdir: Path = Path("runs/rehearsal")
    text_rows: int | None = 96
    image_rows: int | None = 16
    init_timeout: float = 60.0


@dataclass
class _Trial:
    name: str
    parameters: dict[str, str]
    condition: str = "Created"
    observation: dict[str, str] = field(default_factory=dict)
    start: datetime | None = None
    completion: datetime | None = None

    def record(self) -> TrialRecord:
        return TrialRecord(
            self.name, self.condition, self.parameters, self.observation, self.start, self.completion
        )


def select(definitions: list[ExperimentDef], names: Sequence[str]) -> list[ExperimentDef]:
    """The definitions named (all when ``names`` is empty); ClientError naming what exists."""
    if not names:
        return definitions
    known = {d.name: d for d in definitions}
    missing = [n for n in names if n not in known]
    if missing:
        raise ClientError(
            f"unknown experiment(s) {', '.join(missing)}; available: {', '.join(sorted(known))}"
        )
    return [known[n] for n in names]


def trial_name(experiment: str, index: int) -> str:
    """``<experiment>-<8 characters>`` like Katib's generated names, but reproducible."""
    return f"{experiment}-{hashlib.sha1(f'{experiment}/{index}'.encode()).hexdigest()[:8]}"


def expected_epochs(argv: Sequence[str]) -> int | None:
    """The ``--num-epochs`` value of a trial command (None when absent or not a number)."""
    for flag, value in itertools.pairwise(argv):
        if flag == "--num-epochs" and value.isdigit():
            return int(value)
    return None


def experiment_verdict(
    definition: ExperimentDef, trials: Sequence[_Trial], max_trials: int, ended: bool
) -> tuple[str, str, str] | None:
    """``UpdateExperimentStatusCondition``: goal, then max failed, then max trials, then suggestions ended."""
    from client.metrics import parse_value

    goal = definition.goal
    maximize = definition.objective_type == "maximize"
    for t in trials:
        value = parse_value(t.observation.get(definition.objective_metric))
        if goal is None or t.condition != "Succeeded" or value is None:
            continue
        if (value >= goal) if maximize else (value <= goal):
            return "Succeeded", "ExperimentGoalReached", "Objective goal has reached"
    failed = sum(t.condition in ("Failed", "MetricsUnavailable") for t in trials)
    limit = definition.max_failed_trial_count
    if limit is not None and failed and failed >= limit:
        return "Failed", "ExperimentFailed", f"max failed count has reached ({failed} of {limit})"
    completed = sum(t.condition in TERMINAL for t in trials)
    if completed >= max_trials:
        return "Succeeded", "ExperimentMaxTrialsReached", f"max trial count has reached ({completed})"
    if ended and all(t.condition in TERMINAL for t in trials):
        return "Succeeded", "ExperimentSuggestionEndReached", "suggestion service has reached the end"
    return None


class Rehearsal:
    """One rehearsal run (see the module docstring); ``log`` gets progress lines."""

    def __init__(self, options: RehearsalOptions, log: Callable[[str], None] | None = None) -> None:
        self.options = options
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.cluster = options.workdir / "cluster"
        self.hub: Any = None

    # --- set-up ---------------------------------------------------------------------------------
    def _standins(self) -> Path:
        from client.rehearsal.standins import build_standins

        root = self.options.workdir / f"hub-{self.options.text_rows}-{self.options.image_rows}"
        stamp = root / ".built"
        if not stamp.is_file():
            self.log(f"rehearsal: building the hub's stand-ins in {root}")
            shutil.rmtree(root, ignore_errors=True)
            build_standins(root, self.options.text_rows, self.options.image_rows)
            stamp.write_text("ok\n")
        return root

    def _overrides(self) -> dict[str, str]:
        from client.rehearsal.standins import RESNET50_PATH

        url = self.hub.url
        return {
            "HF_ENDPOINT": url,
            "HTTP_PROXY": url,
            "HTTPS_PROXY": url,
            "http_proxy": url,
            "https_proxy": url,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            WEIGHTS_URL_ENV: f"{url}/{RESNET50_PATH}",
        }

    def _setup(self, name: str, pod_dir: Path, container: dict[str, Any], **katib: Any) -> PodSetup:
        image = str(container.get("image") or "")
        image_env = dockerfile_env(TRAINER_DOCKERFILE) if "/trainer:" in image else {}
        return PodSetup(
            name=name,
            pod_dir=pod_dir,
            claims_dir=self.cluster / "volumes",
            image_env=image_env,
            image_paths={IMAGE_ROOT: REPO / "trainer_image", IMAGE_WORKDIR: pod_dir / "workspace"},
            overrides=self._overrides(),
            init_timeout=self.options.init_timeout,
            **katib,
        )

    def _run_setup_job(self, job: dict[str, Any]) -> tuple[str, JobOutcome, bool]:
        name = str(job["metadata"]["name"])
        pod_spec = job["spec"]["template"]["spec"]
        self.log(
            f"rehearsal: Job {name}: running {' '.join(map(str, pod_spec['containers'][0].get('command') or []))[:160]}"
        )

        def setup_for(index: int, deadline: float | None) -> PodSetup:
            pod = f"{name}-{index}"
            setup = self._setup(pod, self.cluster / "jobs" / pod, pod_spec["containers"][0])
            setup.deadline = deadline
            setup.namespace = str(job["metadata"].get("namespace") or "default")
            return setup

        outcome = run_job(pod_spec, retry_rules(job), setup_for)
        ready = any((self.cluster / "volumes").glob(f"*/{READY_MARKER}"))
        self.log(
            f"rehearsal: Job {name}: {outcome.condition} {outcome.reason} after {len(outcome.pods)} pod(s)"
        )
        return name, outcome, ready

    # --- one experiment -------------------------------------------------------------------------
    def _service(self, definition: ExperimentDef, cluster: ClusterSetup, notes: list[str]) -> Any:
        from suggestion_service.process import ServiceProcess

        entry = cluster.suggestions.get(definition.algorithm)
        if entry is None:
            raise ClientError(
                f"{definition.name}: algorithm {definition.algorithm!r} has no katib-config entry in {self.options.setup}"
            )
        try:
            args = service_args(entry)
        except ClientError:
            if definition.algorithm not in ("grid", "random"):
                raise
            notes.append(
                f"katib-config deploys {entry.get('image')} for {definition.algorithm}; the rehearsal asks "
                "this project's service, which implements it with Katib's semantics"
            )
            return ServiceProcess(log_level="WARNING")
        return ServiceProcess(*args, log_level="WARNING", env=service_env(entry, definition.namespace))

    def _run_trial(self, definition: ExperimentDef, trial: _Trial, preempt: bool) -> TrialAccount:
        model = definition.model
        try:
            workload = model.trial_workload(trial.parameters, trial.name)
        except ManifestError as err:
            raise ClientError(str(err)) from None
        pod_spec = workload["spec"]["template"]["spec"]
        primary = model.trial_template.primary_container(workload)
        labels = {
            **((workload["spec"]["template"].get("metadata") or {}).get("labels") or {}),
            "katib.kubeflow.org/experiment": definition.name,
            KATIB_TRIAL_LABEL: trial.name,
        }
        trial_dir = self.cluster / "trials" / definition.name / trial.name

        def setup_for(index: int, deadline: float | None) -> PodSetup:
            setup = self._setup(
                f"{trial.name}-{index}", trial_dir / f"pod-{index}", primary,
                labels=labels, namespace=definition.namespace, primary=str(primary.get("name")),
                collector=model.collector, metric_names=model.metric_names,
            )  # fmt: skip
            setup.deadline = deadline
            if preempt and index == 0:
                setup.preempt = preempt_after_epoch(1)
            return setup

        argv = [str(a) for a in (primary.get("command") or []) + (primary.get("args") or [])]
        self.log(
            f"rehearsal: {trial.name}: {', '.join(f'{k}={v}' for k, v in trial.parameters.items())}"
            + (" (to be preempted)" if preempt else "")
        )
        job = run_job(pod_spec, model.retry_rules, setup_for)
        reported = [p for p in job.pods if p.reported is not None]
        logs = [log for p in reported for log in p.reported or []]
        strategies = model.metric_strategies
        if job.succeeded:
            summaries = summarize(logs, strategies)
            trial.observation = observation_values(summaries, strategies)
            available = summaries[model.objective_metric].latest != "unavailable"
            trial.condition, reason = (
                ("Succeeded", "TrialSucceeded") if available else ("MetricsUnavailable", "MetricsUnavailable")
            )
        else:
            trial.condition, reason = "Failed", f"TrialFailed. Job reason: {job.reason}"
        trial.completion = datetime.now(UTC)
        resume = saved = None
        for before, after in zip(job.pods, job.pods[1:], strict=False):
            if before.preempted:
                output = after.metrics_path if after.metrics_path is not None else after.log_path
                resume = resume_point(output.read_text(errors="replace")) if output.is_file() else None
                stopped = before.metrics_path if before.metrics_path is not None else before.log_path
                saved = saved_on_signal(stopped.read_text(errors="replace")) if stopped.is_file() else None
        epochs = [e for p in reported for e in epochs_in(p.metrics_path)]
        account = TrialAccount(
            trial.name, dict(trial.parameters), trial.condition, reason, job, expected_epochs(argv), epochs,
            trial.observation.get(model.objective_metric, "-"), resume, saved,
        )  # fmt: skip
        self.log(f"rehearsal: {trial.name}: {trial.condition} ({reason}) after {len(job.pods)} pod(s)")
        return account

    def _run_experiment(self, definition: ExperimentDef, cluster: ClusterSetup) -> ExperimentAccount:
        from suggestion_service.proto import api_pb2_grpc

        account = ExperimentAccount(definition.name, definition.algorithm)
        max_trials = self.options.max_trials or definition.max_trial_count
        if max_trials is None:
            raise ClientError(f"{definition.name} has no maxTrialCount; pass --max-trials N")
        if self.options.max_trials is not None:
            account.notes.append(f"--max-trials {max_trials} (maxTrialCount {definition.max_trial_count})")
        parallel = max(1, min(definition.parallel_trial_count, self.options.parallel, max_trials))
        if parallel < definition.parallel_trial_count:
            account.notes.append(
                f"parallelTrialCount {definition.parallel_trial_count} run as {parallel} (--parallel)"
            )
        service = self._service(definition, cluster, account.notes)
        channel = grpc.insecure_channel(f"127.0.0.1:{service.port}")
        try:
            stub = api_pb2_grpc.SuggestionStub(channel)
            experiment = definition.model.experiment_proto(max_trials, parallel)
            try:
                stub.ValidateAlgorithmSettings(
                    definition.model.validation_request(
                        max_trial_count=max_trials, parallel_trial_count=parallel
                    ),
                    timeout=60,
                )
            except grpc.RpcError as err:
                account.condition, account.reason, account.message = (
                    "Failed",
                    "ValidationFailed",
                    str(err.details()),
                )
                return account
            self._loop(definition, stub, experiment, max_trials, parallel, account)
        finally:
            channel.close()
            service.stop()
        return account

    def _loop(
        self,
        definition: ExperimentDef,
        stub: Any,
        experiment: Any,
        max_trials: int,
        parallel: int,
        account: ExperimentAccount,
    ) -> None:
        trials: list[_Trial] = []
        running: dict[Future[TrialAccount], _Trial] = {}
        ended = False
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            while True:
                verdict = experiment_verdict(definition, trials, max_trials, ended)
                if verdict is not None and not running:
                    account.condition, account.reason, account.message = verdict
                    return
                completed = sum(t.condition in TERMINAL for t in trials)
                add = min(parallel, max_trials - completed) - len(running)
                if verdict is None and not ended and add > 0:
                    request = definition.model.suggestions_request(
                        experiment, [t.record() for t in trials], add
                    )
                    try:
                        reply = stub.GetSuggestions(request, timeout=120)
                    except grpc.RpcError as err:  # Katib retries; a rehearsal reports it
                        account.condition, account.reason = "Failed", "SuggestionFailed"
                        account.message = f"GetSuggestions: {err.code().name}: {err.details()}"
                        ended = True
                        if not running:
                            return
                        continue
                    if not reply.parameter_assignments:
                        ended = True
                    for item in reply.parameter_assignments:
                        name = item.trial_name or trial_name(definition.name, len(trials))
                        trial = _Trial(
                            name,
                            {a.name: a.value for a in item.assignments},
                            "Running",
                            start=datetime.now(UTC),
                        )
                        trials.append(trial)
                        preempt = self.options.preempt and len(trials) == 1
                        running[pool.submit(self._run_trial, definition, trial, preempt)] = trial
                    continue
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in done:
                    trial = running.pop(future)
                    result = future.result()
                    if verdict is not None:  # Katib would have deleted it when the Experiment ended
                        trial.condition = result.condition = "Killed"
                    account.trials.append(result)

    # --- everything -----------------------------------------------------------------------------
    def run(self) -> RehearsalAccount:
        """Run the rehearsal and return its account."""
        from client.rehearsal.hub import LoopbackHub

        started = time.monotonic()
        definitions: list[ExperimentDef] = []
        for path in self.options.manifests:
            definitions += load_experiments(path)
        definitions = select(definitions, self.options.experiments)
        cluster = read_setup(self.options.setup)
        shutil.rmtree(self.cluster, ignore_errors=True)
        account = RehearsalAccount(skipped_jobs=dict(cluster.skipped))
        with LoopbackHub(self._standins()) as hub:
            self.hub = hub
            for job in cluster.jobs:
                account.jobs.append(self._run_setup_job(job))
            if all(job.succeeded and ready for _, job, ready in account.jobs):
                for definition in definitions:
                    self.log(f"rehearsal: Experiment {definition.name} ({definition.algorithm})")
                    account.experiments.append(self._run_experiment(definition, cluster))
            else:
                self.log(
                    "rehearsal: the cache is not ready; every trial would wait for it, so no Experiment runs"
                )
            account.egress = hub.egress()
        account.seconds = time.monotonic() - started
        return account
