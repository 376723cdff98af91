"""A ``batch/v1`` Job's pod retries, as Kubernetes' Job controller decides them (``katib_model.retry``).

Pods run one after another (``parallelism: 1``, ``completions: 1``): a pod that succeeds completes the
Job; a failed pod is judged by ``podFailurePolicy`` (``FailJob`` ends the Job with reason
``PodFailurePolicy``, ``Ignore`` retries without counting, ``Count`` counts) and the Job fails with
``BackoffLimitExceeded`` once more than ``backoffLimit`` failures counted; ``activeDeadlineSeconds``,
counted from the Job's start, stops the running pod and fails the Job with ``DeadlineExceeded``. The
real controller waits 10 s, 20 s, 40 s... (at most 6 min) before replacing a counted failure; a
rehearsal starts the next pod at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from client.rehearsal.pod import PodOutcome, PodSetup, run_pod
from katib_model.retry import COUNT, FAIL_JOB, IGNORE, RetryRules

#: Pods a rehearsal starts for one Job at most, whatever the rules (an Ignore rule could loop forever).
MAX_PODS = 12


@dataclass
class JobOutcome:
    """How a Job ended: ``Complete`` or ``Failed`` with the Job condition's reason, and its pods."""

    condition: str
    reason: str = ""
    message: str = ""
    pods: list[PodOutcome] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)  # per failed pod: FailJob | Ignore | Count

    @property
    def succeeded(self) -> bool:
        """Whether the Job completed."""
        return self.condition == "Complete"

    @property
    def counted_failures(self) -> int:
        """Failed pods that counted against ``backoffLimit``."""
        return self.actions.count(COUNT)


def judge(rules: RetryRules, pod: PodOutcome, counted: int) -> tuple[str, str | None]:
    """(the rule's action for a failed pod, the Job's failure reason or None to retry), where ``counted``
    is the number of counted failures before this pod."""
    action = rules.action(pod.exit_codes, pod.conditions)
    if action == FAIL_JOB:
        return action, "PodFailurePolicy"
    if action == IGNORE:
        return action, None
    limit = rules.backoff_limit
    return action, ("BackoffLimitExceeded" if limit is not None and counted + 1 > limit else None)


def run_job(
    pod_spec: Mapping[str, Any], rules: RetryRules, setup_for: Callable[[int, float | None], PodSetup]
) -> JobOutcome:
    """Run pods of ``pod_spec`` until the Job completes or fails; ``setup_for(index, deadline)`` gives
    each pod's setup (``deadline``: the ``time.monotonic()`` at which activeDeadlineSeconds expires)."""
    started = time.monotonic()
    deadline = None if rules.active_deadline_seconds is None else started + rules.active_deadline_seconds
    job = JobOutcome("Running")
    while len(job.pods) < MAX_PODS:
        pod = run_pod(pod_spec, setup_for(len(job.pods), deadline))
        job.pods.append(pod)
        if pod.succeeded:
            job.condition = "Complete"
            return job
        if pod.deadline_exceeded or (deadline is not None and time.monotonic() >= deadline):
            job.condition, job.reason = "Failed", "DeadlineExceeded"
            job.message = f"Job was active longer than specified deadline ({rules.active_deadline_seconds} s)"
            return job
        action, reason = judge(rules, pod, job.counted_failures)
        job.actions.append(action)
        if reason is not None:
            job.condition, job.reason = "Failed", reason
            job.message = (
                f"Container exit codes {pod.exit_codes} matched a FailJob rule"
                if reason == "PodFailurePolicy"
                else f"Job has reached the specified backoff limit ({rules.backoff_limit})"
            )
            return job
    job.condition, job.reason = "Failed", "RehearsalPodLimit"
    job.message = f"{MAX_PODS} pods started without the Job completing or failing"
    return job
