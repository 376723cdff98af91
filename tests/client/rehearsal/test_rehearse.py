"""A small rehearsal end to end: the committed manifests' cache Job and one sst2 Experiment (2 trials, the
first preempted mid-epoch), run as a Katib cluster would run them (slow: about a minute)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from client.rehearsal.account import RehearsalAccount
from client.rehearsal.runner import REPO, Rehearsal, RehearsalOptions

MANIFESTS = REPO / "manifests"
EXPERIMENT = "sst2-surrogate-gp"


def _setup_for_sst2(folder: Path) -> Path:
    """The set-up manifests with the cache Job's task list narrowed to sst2 (the only change)."""
    folder.mkdir()
    for path in MANIFESTS.glob("*.yaml"):
        if path.name.startswith("30-"):
            continue
        text = path.read_text()
        if "warm-cache --tasks sst2,mrpc,cifar10 " in text:
            text = text.replace("warm-cache --tasks sst2,mrpc,cifar10 ", "warm-cache --tasks sst2 ")
        (folder / path.name).write_text(text)
    return folder


@pytest.fixture(scope="module")
def account(tmp_path_factory: pytest.TempPathFactory) -> RehearsalAccount:
    root = tmp_path_factory.mktemp("rehearse")
    options = RehearsalOptions(
        manifests=[MANIFESTS / f"30-experiment-{EXPERIMENT}.yaml"],
        setup=_setup_for_sst2(root / "setup"),
        max_trials=2,
        preempt=True,
        workdir=root / "work",
        text_rows=48,
    )
    lines: list[str] = []
    result = Rehearsal(options, log=lines.append).run()
    yield result
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_cache_job_experiment_and_preemption_run_as_on_a_cluster(account: RehearsalAccount) -> None:
    (_, job, ready), *_ = [j for j in account.jobs if j[0] == "katib-surrogate-warm-cache"]
    assert job.succeeded and ready, job.message
    assert account.egress == []
    (experiment,) = account.experiments
    assert (experiment.name, experiment.condition, experiment.reason) == (
        EXPERIMENT,
        "Succeeded",
        "ExperimentMaxTrialsReached",
    )
    first, second = experiment.trials
    assert [t.condition for t in (first, second)] == ["Succeeded", "Succeeded"]
    assert first.preempted and not second.preempted
    preempted, retry = first.job.pods
    assert preempted.conditions == {"DisruptionTarget": "True"}
    assert preempted.exit_codes["training"] in (137, 143) and preempted.reported is None
    assert first.job.actions == ["Ignore"] and first.job.counted_failures == 0 and first.retries == 1
    assert retry.succeeded and retry.reported
    for trial in (first, second):
        assert trial.expected_epochs in (3, 4)
        assert trial.objective not in ("-", "unavailable")
        assert float(trial.objective) == max(
            float(log.value) for p in trial.job.pods for log in p.reported or [] if log.name == "accuracy"
        )
    assert second.epochs_seen == list(range(1, second.expected_epochs + 1))


@pytest.mark.slow
def test_preempted_trial_resumes_from_its_sigterm_checkpoint_and_katib_sees_every_epoch(
    account: RehearsalAccount,
) -> None:
    # Where in an epoch the signal lands depends on timing (mid-epoch, or just as an epoch ends): what must
    # hold is that the trainer saved on the signal and the next pod resumed from that checkpoint.
    first = account.experiments[0].trials[0]
    assert first.preempted and first.saved_on_signal is True
    assert first.resume is not None and first.resume >= (2, 0)
    assert first.epochs_seen[: first.expected_epochs] == list(range(1, first.expected_epochs + 1))
    assert account.findings() == []
