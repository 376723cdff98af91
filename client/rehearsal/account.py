"""The rehearsal's account: per Job and per trial, what happened and what it means for a cluster run.

Per trial: Katib's condition; the epochs Katib's collector saw (the ``epoch`` values on the metric
lines of the pods whose collector reported); the pods, each with its exit codes and what the Job's
``podFailurePolicy`` made of it; retries; and, after a preemption, the point the retry pod resumed
from (the trainer's ``continuing at epoch E step S`` line). ``findings`` lists what would go wrong
on a cluster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from client.rehearsal.job import JobOutcome

_RESUME = re.compile(r"continuing at epoch (\d+) step (\d+)")
#: The trainer's own line when a signal made it save a checkpoint and stop (trainer/engine.py): mid-epoch
#: ("at epoch E step S") or, when the signal came as an epoch ended, "after epoch E".
_SAVED_ON_SIGNAL = re.compile(r"saved checkpoint (?:at epoch \d+ step \d+|after epoch \d+)")


def resume_point(text: str) -> tuple[int, int] | None:
    """(epoch, step) from the trainer's resume line in a pod's output (None: it started afresh)."""
    found = _RESUME.search(text)
    return None if found is None else (int(found.group(1)), int(found.group(2)))


def saved_on_signal(text: str) -> bool:
    """Whether a preempted pod's output shows the trainer saving a checkpoint as it was stopped."""
    return _SAVED_ON_SIGNAL.search(text) is not None


def epoch_span(epochs: list[int], expected: int | None) -> str:
    """``1-3 of 3``, ``3 of 3 (missing 1-2)`` or ``-``."""
    seen = sorted(set(epochs))
    if not seen:
        return "-" if expected is None else f"none of {expected}"
    text = f"{seen[0]}-{seen[-1]}" if seen == list(range(seen[0], seen[-1] + 1)) else ",".join(map(str, seen))
    if expected is None:
        return text
    missing = [e for e in range(1, expected + 1) if e not in seen]
    return f"{text} of {expected}" + (f" (missing {','.join(map(str, missing))})" if missing else "")


@dataclass
class TrialAccount:
    """One trial of a rehearsal."""

    name: str
    parameters: dict[str, str]
    condition: str
    reason: str
    job: JobOutcome
    expected_epochs: int | None
    epochs_seen: list[int]
    objective: str
    resume: tuple[int, int] | None = None  # (1-based epoch, step) the pod after a preemption resumed at
    #: Whether the preempted pod's trainer saved a checkpoint on the signal (None: not known). An epoch of
    #: one step has no point inside it, so a resume "at step 0" alone does not show a lost signal.
    saved_on_signal: bool | None = None

    @property
    def retries(self) -> int:
        """Pods after the first."""
        return max(0, len(self.job.pods) - 1)

    @property
    def preempted(self) -> bool:
        """Whether a pod of this trial was preempted."""
        return any(p.preempted for p in self.job.pods)

    def epoch_gap(self) -> bool:
        """Whether Katib's view misses an epoch of the expected ones."""
        if self.expected_epochs is None:
            return False
        return sorted(set(self.epochs_seen)) != list(range(1, self.expected_epochs + 1))

    def findings(self) -> list[str]:
        """What this trial shows would go wrong on a cluster."""
        out = []
        if self.preempted:
            if self.resume is None:
                out.append(f"{self.name}: preempted, but the next pod did not resume from a checkpoint")
            elif self.saved_on_signal is False or (self.saved_on_signal is None and self.resume[1] == 0):
                out.append(
                    f"{self.name}: preempted mid-epoch, but resumed at the start of epoch {self.resume[0]}: "
                    "no checkpoint was written on SIGTERM (the signal did not reach the trainer)"
                )
        expected = self.expected_epochs
        if self.condition == "Succeeded" and expected is not None and self.epoch_gap():
            out.append(f"{self.name}: Katib's collector saw epochs {epoch_span(self.epochs_seen, expected)}")
        return out


@dataclass
class ExperimentAccount:
    """One Experiment of a rehearsal."""

    name: str
    algorithm: str
    condition: str = "Running"
    reason: str = ""
    message: str = ""
    trials: list[TrialAccount] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def findings(self) -> list[str]:
        """A failed Experiment, plus its trials' findings."""
        out = (
            [f"{self.name}: Experiment {self.condition} ({self.reason}): {self.message}"]
            if self.condition == "Failed"
            else []
        )
        return out + [f for t in self.trials for f in t.findings()]


@dataclass
class RehearsalAccount:
    """Everything a rehearsal ran."""

    jobs: list[tuple[str, JobOutcome, bool]] = field(default_factory=list)  # (name, outcome, ready marker)
    skipped_jobs: dict[str, str] = field(default_factory=dict)  # Job name -> why it was not rehearsed
    experiments: list[ExperimentAccount] = field(default_factory=list)
    egress: list[tuple[str, str, int]] = field(default_factory=list)
    seconds: float = 0.0

    def findings(self) -> list[str]:
        """Everything that would go wrong on a cluster; empty when the rehearsal passed."""
        out = []
        for name, job, ready in self.jobs:
            if not job.succeeded:
                out.append(f"Job {name}: {job.condition} ({job.reason}): {job.message}; {_last_line(job)}")
            elif not ready:
                out.append(f"Job {name}: completed but the ready marker was not written")
        for experiment in self.experiments:
            out += experiment.findings()
        out += [f"egress refused: {method} {url}" for method, url, _ in self.egress]
        return out


def _last_line(job: JobOutcome) -> str:
    if not job.pods:
        return ""
    pod = job.pods[-1]
    for path in (pod.metrics_path, pod.log_path):
        if path is not None and path.is_file():
            lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
            if lines:
                return f"last line of {path}: {lines[-1][:300]}"
    return pod.message


def _pods(job: JobOutcome) -> str:
    parts = []
    for index, pod in enumerate(job.pods):
        codes = ",".join(f"{n}={c}" for n, c in pod.exit_codes.items())
        what = "preempted " if pod.preempted else ""
        action = f" -> {job.actions[index]}" if index < len(job.actions) else ""
        parts.append(f"{what}{codes}{action}")
    return "; ".join(parts)


def render(account: RehearsalAccount) -> str:
    """The account as text: Jobs, then one block per Experiment with a line per trial, then findings."""
    lines = [f"Job {name}: not rehearsed: {why}" for name, why in account.skipped_jobs.items()]
    for name, job, ready in account.jobs:
        marker = "ready marker written" if ready else "no ready marker"
        lines.append(
            f"Job {name}: {job.condition}{' (' + job.reason + ')' if job.reason else ''}, {len(job.pods)} pod(s), {marker}"
        )
    for exp in account.experiments:
        lines.append("")
        lines.append(f"{exp.name} ({exp.algorithm}): {exp.condition} ({exp.reason}) {exp.message}".rstrip())
        lines += [f"  note: {note}" for note in exp.notes]
        header = f"  {'trial':<30} {'condition':<19} {'epochs seen':<18} {'retries':<8} {'resumed at':<16} {'objective':<10} pods"
        lines.append(header)
        for t in exp.trials:
            resumed = "-" if t.resume is None else f"epoch {t.resume[0]} step {t.resume[1]}"
            lines.append(
                f"  {t.name:<30} {t.condition:<19} {epoch_span(t.epochs_seen, t.expected_epochs):<18} "
                f"{t.retries:<8} {resumed:<16} {t.objective:<10} {_pods(t.job)}"
            )
            lines.append(f"  {'':<30} {', '.join(f'{k}={v}' for k, v in t.parameters.items())}")
    findings = account.findings()
    lines.append("")
    lines.append(
        f"rehearsal took {account.seconds:.0f} s; "
        + (f"{len(findings)} finding(s):" if findings else "no findings")
    )
    lines += [f"  - {f}" for f in findings]
    return "\n".join(lines)
