"""Errors that end a trial with a specific exit code and a one-paragraph explanation."""

from __future__ import annotations

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_BAD_ARGS = 2
EXIT_NON_FINITE_LOSS = 3
EXIT_OUT_OF_MEMORY = 4
EXIT_MISSING_CACHE = 5
EXIT_BAD_CHECKPOINT = 6
EXIT_METRICS_PUSH = 7
EXIT_PREEMPTED = 143  # 128 + SIGTERM, what a shell reports for a process killed by SIGTERM

#: Exit codes that a retry of the same command on the same kind of node reproduces: the trial Jobs'
#: podFailurePolicy fails the Job (and so the Trial) at once for these instead of retrying them
#: (manifests/templates/fragments/job-policy.yaml.tmpl). Retried: EXIT_PREEMPTED (a checkpoint was
#: saved), EXIT_UNEXPECTED (may be a node or network fault) and EXIT_METRICS_PUSH (network).
DETERMINISTIC_EXIT_CODES = (
    EXIT_BAD_ARGS,
    EXIT_NON_FINITE_LOSS,
    EXIT_OUT_OF_MEMORY,
    EXIT_MISSING_CACHE,
    EXIT_BAD_CHECKPOINT,
)

#: What each exit code means, in the words the trial's own log file ends with (trainer/trial_log.py).
EXIT_REASONS = {
    EXIT_OK: "finished",
    EXIT_UNEXPECTED: "unexpected error",
    EXIT_BAD_ARGS: "bad arguments",
    EXIT_NON_FINITE_LOSS: "loss became NaN or infinite (--fail-on-divergence)",
    EXIT_OUT_OF_MEMORY: "out of memory",
    EXIT_MISSING_CACHE: "model or dataset missing from the cache",
    EXIT_BAD_CHECKPOINT: "checkpoint unreadable, mismatched or unwritable",
    EXIT_METRICS_PUSH: "pushing metrics failed",
    EXIT_PREEMPTED: "preempted (checkpoint saved; a rerun resumes)",
}


class TrainerError(Exception):
    """Base class: ``exit_code`` is what the process returns, ``str(self)`` what it prints.

    ``collective`` marks an error that every rank of a torchrun job raises at the same point (a
    preemption, a divergence seen through an all-reduce): only rank 0 prints it, and the ranks leave
    the process group together. ``peer_report`` marks an error that only reports another rank's
    failure: rank 0 prints it, the other ranks stay quiet.
    """

    exit_code = EXIT_UNEXPECTED
    collective = False
    peer_report = False


class NonFiniteLossError(TrainerError):
    """The training loss became NaN or infinite (usually a learning rate far too high)."""

    exit_code = EXIT_NON_FINITE_LOSS


class OutOfMemoryError(TrainerError):
    """The accelerator ran out of memory at the requested batch size."""

    exit_code = EXIT_OUT_OF_MEMORY


class MissingCacheError(TrainerError):
    """A model or dataset is neither in the cache nor downloadable (offline mode)."""

    exit_code = EXIT_MISSING_CACHE


class CheckpointError(TrainerError):
    """The checkpoint cannot be read or belongs to a different run; never silently restart."""

    exit_code = EXIT_BAD_CHECKPOINT


class MetricsPushError(TrainerError):
    """Pushing metrics to the Katib DB manager failed."""

    exit_code = EXIT_METRICS_PUSH


class PreemptedError(TrainerError):
    """SIGTERM (or --stop-after-epoch) stopped the run after saving a checkpoint."""

    exit_code = EXIT_PREEMPTED
