"""Where a finished trial's output can still be read: ``kubectl`` commands on a cluster, files locally.

On a cluster (read from the Trial object, which carries what Katib v0.19 copied from the Experiment:
``pkg/controller.v1beta1/experiment/experiment_controller_util.go``):

* ``spec.retainRun`` (the Experiment's ``trialTemplate.retain``): the trial controller deletes the
  finished trial's Job, and with it its pods and their logs, unless it is set
  (``pkg/controller.v1beta1/trial/trial_controller.go``, ``reconcileJob``). When it is set, the pods
  are found by the label Katib's pod webhook puts on them (``katib.kubeflow.org/trial``), as the Katib
  UI finds them. With the StdOut collector the training container's output is redirected into the
  collector's file, so it is the sidecar ``metrics-logger-and-collector`` that prints it (the file
  metrics collector logs every line it reads); the UI picks the same container.
* The trainer's own log (``trainer.log`` in its checkpoint folder, trainer/trial_log.py): the folder
  is read from the trial's command, and the volume mounted there says where the file lives after the
  pod (a PersistentVolumeClaim, or an emptyDir that is deleted with the pod).

Locally, the runner keeps each trial's combined stdout and stderr in ``<trial folder>/stdout.log``
(client/local_runner.py), and the trainer's ``trainer.log`` sits in the checkpoint folder under it.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from client.model import Experiment

#: Katib's MetricLoggerCollectorContainerName (pkg/metricscollector/v1beta1/common/const.go).
COLLECTOR_CONTAINER = "metrics-logger-and-collector"
#: consts.LabelTrialName: set on every trial pod by Katib's pod webhook (pkg/webhook/v1beta1/pod/utils.go).
TRIAL_POD_LABEL = "katib.kubeflow.org/trial"
STDOUT_COLLECTOR = "StdOut"
#: The local runner's file for a trial's combined stdout and stderr (client/local_runner.py).
LOCAL_STDOUT_LOG = "stdout.log"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _pod_specs(obj: Any) -> Iterator[Mapping[str, Any]]:
    """Every pod spec (a mapping with a ``containers`` list) under a Job-like object, in order."""
    if isinstance(obj, Mapping):
        if isinstance(obj.get("containers"), list):
            yield obj
            return
        for value in obj.values():
            yield from _pod_specs(value)
    elif isinstance(obj, list):
        for item in obj:
            yield from _pod_specs(item)


def _primary(run_spec: Any, name: str) -> tuple[Mapping[str, Any], Mapping[str, Any]] | None:
    """(pod spec, container) of the first container called ``name`` (any container when unnamed)."""
    for pod in _pod_specs(run_spec):
        for container in pod["containers"]:
            if isinstance(container, Mapping) and (not name or container.get("name") == name):
                return pod, container
    return None


def _train_args(container: Mapping[str, Any]) -> list[str] | None:
    """The arguments after ``trainer train`` in the container's command (``python -m`` or ``torchrun
    -m``; also inside a ``sh -c`` string); None when the container does not run the trainer."""
    argv = [str(a) for a in [*(container.get("command") or []), *(container.get("args") or [])]]
    for words in (argv, *(shlex.split(a) for a in argv if " " in a)):
        for i in range(len(words) - 1):
            if words[i] == "trainer" and words[i + 1] == "train" and i and words[i - 1] == "-m":
                return words[i + 2 :]
    return None


def _volume_of(path: str, pod: Mapping[str, Any], container: Mapping[str, Any]) -> str:
    """Where ``path`` (inside the container) lives once the pod is gone, in words."""
    if not posixpath.isabs(path):
        return f"{path} relative to the container's working folder: gone with the pod"
    mounts = [m for m in container.get("volumeMounts") or [] if isinstance(m, Mapping)]
    inside = [
        m
        for m in mounts
        if path == str(m.get("mountPath", "")).rstrip("/")
        or path.startswith(str(m.get("mountPath", "")).rstrip("/") + "/")
    ]
    if not inside:
        return f"{path} in the container's own filesystem: gone with the pod"
    mount = max(inside, key=lambda m: len(str(m.get("mountPath", ""))))
    relative = posixpath.relpath(path, str(mount["mountPath"]))
    relative = posixpath.join(str(mount.get("subPath") or ""), relative)
    volume = next(
        (
            v
            for v in pod.get("volumes") or []
            if isinstance(v, Mapping) and v.get("name") == mount.get("name")
        ),
        {},
    )
    claim = _mapping(volume.get("persistentVolumeClaim")).get("claimName")
    if claim:
        return f"{relative} on PVC {claim} ({path} in the trial's pod)"
    if "emptyDir" in volume:
        return f"{path} on emptyDir volume {mount.get('name')}: deleted with the pod"
    kinds = [k for k in volume if k != "name"]
    kind = kinds[0] if kinds else "unknown"
    return f"{relative} on the {kind} volume {mount.get('name')} ({path} in the trial's pod)"


def cluster_log_locations(trial: Mapping[str, Any]) -> list[str]:
    """How to read a Katib Trial object's output after it ended: a ``kubectl logs`` command when its
    pods are retained (else why not), and where its trainer.log is. Never raises on odd shapes."""
    from trainer.trial_log import trial_log_path

    meta, spec = _mapping(trial.get("metadata")), _mapping(trial.get("spec"))
    name, namespace = str(meta.get("name", "")), str(meta.get("namespace", ""))
    primary_name = str(spec.get("primaryContainerName") or "")
    collector = str(_mapping(_mapping(spec.get("metricsCollector")).get("collector")).get("kind") or "")
    out = []
    if spec.get("retainRun") is True:
        container = COLLECTOR_CONTAINER if collector == STDOUT_COLLECTOR else primary_name
        command = ["kubectl", "-n", namespace, "logs", "-l", f"{TRIAL_POD_LABEL}={name}"]
        if container:
            command += ["-c", container]
        out.append(f"pod logs: {shlex.join([*command, '--prefix', '--tail=-1'])}")
    else:
        out.append("pod logs: none (the pods were deleted with the trial's Job: trialTemplate.retain is off)")
    found = _primary(spec.get("runSpec"), primary_name)
    args = _train_args(found[1]) if found else None
    path = trial_log_path(args) if args is not None else None
    if found and path is not None:
        out.append(f"trainer log: {_volume_of(str(path), *found)}")
    return out


def local_log_locations(trial_dir: str) -> list[str]:
    """A local trial's log files: the runner's stdout.log, then any trainer.log in its sub-folders."""
    if not trial_dir:
        return []
    folder = Path(trial_dir)
    files = [folder / LOCAL_STDOUT_LOG]
    if folder.is_dir():
        files += sorted(folder.glob("*/trainer*.log"))
    return [f"log: {f}" for f in files]


def attach_local_logs(experiments: Sequence[Experiment], trial_dirs: Mapping[tuple[str, str], str]) -> None:
    """Fill ``Trial.logs`` of local experiments from their trial folders ((experiment, trial) -> folder)."""
    for experiment in experiments:
        for trial in experiment.trials:
            trial.logs = local_log_locations(trial_dirs.get((experiment.name, trial.name), ""))
