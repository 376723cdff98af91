"""One pod of a Job, run on this machine the way the kubelet and Katib's pod webhook would run it.

- **Katib's webhook** (``pkg/webhook/v1beta1/pod``, ``wrapWorkerContainer``): for the StdOut, File and
  TensorFlowEvent collectors the primary container's command and args are joined with spaces (no
  quoting; a leading ``sh -c`` / ``bash -c`` is kept as the shell) and run as ``sh -c "<command>
  1>/var/log/katib/metrics.log 2>&1 && echo completed > /var/log/katib/$$$$.pid"`` (the redirect only
  for StdOut); ``KATIB_TRIAL_NAME`` comes from the trial label; ``/var/log/katib`` is an emptyDir of
  the pod; ``shareProcessNamespace: true``, so the wrapper ``sh`` is not PID 1 and SIGTERM's default
  action kills it. The collector sidecar is :mod:`client.rehearsal.collector`.
- **The kubelet**: ``$(VAR)`` references in command, args and env values are expanded from the
  container's own ``env`` (``$$`` is a literal ``$``; an unknown reference stays as written); the
  image's ``ENV`` is laid under the container's ``env``; init containers run in order and must exit 0;
  stopping a pod sends SIGTERM to each container's main process and SIGKILL after
  ``terminationGracePeriodSeconds`` (default 30). When a container's main process exits, the runtime
  kills what is left of the container (runc does so for a container without its own PID namespace),
  here every process of the container's session.
- **Paths**: every volume mount (a PVC: a folder shared by all pods; an emptyDir: a folder of this
  pod), Katib's metrics volume and the image's own folders map to folders of this machine; the
  command, args and env values are rewritten where such a path appears. Read-only mounts, users,
  resource limits and GPUs are not enforced.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from client.rehearsal.collector import (
    CollectorError,
    MetricLog,
    collect_observation_log,
    parse_text,
    read_marker,
)
from client.rehearsal.pod_env import container_env
from katib_model.collector import STDOUT, CollectorSpec

COLLECTOR_CONTAINER = "metrics-logger-and-collector"  # Katib's sidecar name for StdOut and File
KATIB_TRIAL_LABEL = "katib.kubeflow.org/trial"
DEFAULT_GRACE_SECONDS = 30
EXIT_COLLECTOR_FATAL = 255  # Go's klog.Fatalf
DISRUPTION_TARGET = "DisruptionTarget"
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: ``$$`` -> ``$``, a defined ``$(VAR)`` -> its value, else kept."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        return env.get(name, match.group(0))

    return _REFERENCE.sub(one, text)


def wrapped_command(argv: Sequence[str], collector: CollectorSpec) -> list[str]:
    """``wrapWorkerContainer``: the primary container's command after Katib's webhook (before the
    kubelet's expansion, so ``$$$$`` is still there)."""
    args = list(argv)
    shell = ["sh", "-c"]
    if len(args) > 1 and args[0] in ("sh", "bash") and args[1] == "-c":
        shell, args = args[:2], args[2:]
    if collector.kind == STDOUT:
        args.append(f"1>{collector.path} 2>&1")
    marker_dir = (
        str(PurePosixPath(collector.path).parent) if collector.kind != "TensorFlowEvent" else collector.path
    )
    args += ["&&", f"echo completed > {PurePosixPath(marker_dir) / '$$$$.pid'}"]
    return [*shell, " ".join(args)]


class PathMap:
    """Container paths -> folders of this machine, and the rewriting of strings that mention them."""

    def __init__(self, table: Mapping[str, Path]) -> None:
        # absolute: a pod runs in its own working folder, where a relative host path would name another place
        self.table = {p.rstrip("/"): Path(h).absolute() for p, h in table.items() if p.rstrip("/")}
        alternatives = "|".join(re.escape(p) for p in sorted(self.table, key=len, reverse=True))
        self._pattern = (
            re.compile(rf"(?<![\w.\-/])({alternatives})(?=[/\s'\";:)&|<>]|$)") if alternatives else None
        )

    def host(self, container_path: str) -> Path:
        """Where ``container_path`` lies on this machine (KeyError when no mount holds it)."""
        for prefix in sorted(self.table, key=len, reverse=True):
            if container_path == prefix or container_path.startswith(prefix + "/"):
                return self.table[prefix] / container_path[len(prefix) :].lstrip("/")
        raise KeyError(container_path)

    def rewrite(self, text: str) -> str:
        """``text`` with every mapped container path replaced by its folder here."""
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: str(self.table[m.group(1)]), text)


@dataclass
class PodSetup:
    """What a pod needs besides its spec: where it runs and what the rehearsal lays over it."""

    name: str
    pod_dir: Path
    claims_dir: Path  # PVC claim name -> claims_dir/<claim>, shared by every pod
    image_env: Mapping[str, str]
    image_paths: Mapping[str, Path]  # image folders (e.g. PYTHONPATH's /opt/...) -> folders here
    overrides: Mapping[str, str] = field(default_factory=dict)  # env the rehearsal adds (hub, proxies)
    labels: Mapping[str, str] = field(default_factory=dict)
    namespace: str = "default"
    primary: str | None = None  # Katib's primary container (trial pods)
    collector: CollectorSpec | None = None  # Katib's metrics collector (trial pods)
    metric_names: Sequence[str] = ()  # objective first
    init_timeout: float = 60.0
    deadline: float | None = None  # time.monotonic() at which activeDeadlineSeconds stops the pod
    preempt: Callable[[Path | None], bool] | None = None  # called while running: True -> preempt now


@dataclass
class PodOutcome:
    """How one pod ended, as the Job controller and Katib's collector see it."""

    name: str
    phase: str  # Succeeded | Failed
    exit_codes: dict[str, int]
    conditions: dict[str, str]
    log_path: Path
    metrics_path: Path | None
    reported: list[MetricLog] | None  # what the collector reported (None: nothing)
    message: str = ""
    preempted: bool = False
    deadline_exceeded: bool = False
    seconds: float = 0.0

    @property
    def succeeded(self) -> bool:
        """Whether every container exited 0."""
        return self.phase == "Succeeded"


def _volume_dirs(spec: Mapping[str, Any], setup: PodSetup) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for volume in spec.get("volumes") or []:
        name = str(volume.get("name"))
        if "persistentVolumeClaim" in volume:
            out[name] = setup.claims_dir / str(volume["persistentVolumeClaim"]["claimName"])
        elif "emptyDir" in volume:
            out[name] = setup.pod_dir / "volumes" / name
        else:
            raise ValueError(f"pod {setup.name}: volume {name!r} is neither a PVC nor an emptyDir")
    return out


def container_paths(container: Mapping[str, Any], volumes: Mapping[str, Path], setup: PodSetup) -> PathMap:
    """The container's mounts, Katib's metrics folder (primary container) and the image folders."""
    table: dict[str, Path] = {p: Path(h) for p, h in setup.image_paths.items()}
    for mount in container.get("volumeMounts") or []:
        host = volumes[str(mount["name"])]
        if mount.get("subPath"):
            host = host / str(mount["subPath"])
        table[str(mount["mountPath"])] = host
    if setup.collector is not None and container.get("name") == setup.primary:
        table[str(PurePosixPath(setup.collector.path).parent)] = setup.pod_dir / "volumes" / "metrics-volume"
    for host in table.values():
        host.mkdir(parents=True, exist_ok=True)
    return PathMap(table)


def _environment(
    container: Mapping[str, Any], setup: PodSetup, paths: PathMap
) -> tuple[dict[str, str], dict[str, str]]:
    """(the process environment, the container's own expanded env for ``$(VAR)`` in the command)."""
    refs = {
        "metadata.name": setup.name,
        "metadata.namespace": setup.namespace,
        **{f"metadata.labels['{k}']": v for k, v in setup.labels.items()},
    }
    own = container_env({}, dict(container), refs)
    if setup.collector is not None and container.get("name") == setup.primary:
        own["KATIB_TRIAL_NAME"] = setup.labels.get(KATIB_TRIAL_LABEL, "")
    expanded: dict[str, str] = {}
    for name, value in own.items():  # each value sees the ones defined before it
        expanded[name] = expand(value, expanded)
    env = {**setup.image_env, **expanded}
    env = {k: paths.rewrite(v) for k, v in env.items()}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return env | dict(setup.overrides), expanded


def _argv(container: Mapping[str, Any], setup: PodSetup, env: Mapping[str, str], paths: PathMap) -> list[str]:
    argv = [str(a) for a in container.get("command") or []] + [str(a) for a in container.get("args") or []]
    if not argv:
        raise ValueError(
            f"pod {setup.name}: container {container.get('name')!r} has no command (set command:)"
        )
    if (
        setup.collector is not None
        and container.get("name") == setup.primary
        and setup.collector.wraps_command
    ):
        argv = wrapped_command(argv, setup.collector)
    return [paths.rewrite(expand(a, env)) for a in argv]


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def session_pids(session: int) -> list[int]:
    """Every live process of ``session`` (the container's processes: our children keep the session)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if len(fields) > 4 and int(fields[3]) == session and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def kill_session(session: int) -> None:
    """SIGKILL every process left in the container (what the runtime does when it removes it)."""
    for pid in session_pids(session):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _start(argv: list[str], env: Mapping[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv, env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip


def _stop(
    process: subprocess.Popen[bytes], grace: float, hook: Callable[[float], None] | None = None
) -> None:
    """The kubelet's stop: the preStop hook (``hook(seconds left)``), then SIGTERM to the main process,
    then SIGKILL to the container once ``grace`` seconds have passed (or once the main process ended)."""
    end = time.monotonic() + grace
    if hook is not None and process.poll() is None:
        hook(grace)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.0, end - time.monotonic()))
    kill_session(process.pid)
    process.wait()


def run_pod(spec: Mapping[str, Any], setup: PodSetup) -> PodOutcome:
    """Run the pod ``spec`` (a Job's ``spec.template.spec``) to its end (see the module docstring)."""
    started = time.monotonic()
    setup.pod_dir.mkdir(parents=True, exist_ok=True)
    volumes = _volume_dirs(spec, setup)
    grace = float(spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS))
    log_path = setup.pod_dir / "pod.log"
    containers = list(spec.get("containers") or [])
    if len(containers) != 1:
        raise ValueError(f"pod {setup.name}: a rehearsal runs pods with one container, got {len(containers)}")
    main = containers[0]
    main_name = str(main.get("name"))
    workdir = setup.pod_dir / "workspace"
    workdir.mkdir(parents=True, exist_ok=True)

    def outcome(phase: str, codes: dict[str, int], message: str, **extra: Any) -> PodOutcome:
        return PodOutcome(
            setup.name, phase, codes, extra.pop("conditions", {}), log_path, extra.pop("metrics", None),
            extra.pop("reported", None), message, seconds=time.monotonic() - started, **extra,
        )  # fmt: skip

    for init in spec.get("initContainers") or []:
        paths = container_paths(init, volumes, setup)
        env, own = _environment(init, setup, paths)
        process = _start(_argv(init, setup, own, paths), env, workdir, log_path)
        try:
            code = _exit_code(process.wait(timeout=setup.init_timeout))
        except subprocess.TimeoutExpired:
            _stop(process, 0)
            message = (
                f"init container {init.get('name')} still running after {setup.init_timeout:g} s "
                "(on a cluster the pod would stay in Init)"
            )
            return outcome("Failed", {str(init.get("name")): 137}, message)
        kill_session(process.pid)
        if code != 0:
            return outcome(
                "Failed", {str(init.get("name")): code}, f"init container {init.get('name')} exited {code}"
            )

    paths = container_paths(main, volumes, setup)
    env, own = _environment(main, setup, paths)
    process = _start(_argv(main, setup, own, paths), env, workdir, log_path)
    argv_env = (env, own, paths)
    metrics = None
    if setup.collector is not None:
        metrics = paths.host(setup.collector.path)
    preempted = deadline = False
    try:
        while process.poll() is None:
            if setup.deadline is not None and time.monotonic() >= setup.deadline:
                deadline = True
            elif setup.preempt is not None and setup.preempt(metrics):
                preempted = True
            if preempted or deadline:
                _stop(process, grace, _pre_stop_hook(main, argv_env, workdir, log_path))
                break
            time.sleep(0.05)
    finally:  # also when the rehearsal is interrupted: no pod outlives it
        kill_session(process.pid)
    code = _exit_code(process.wait())
    conditions = {DISRUPTION_TARGET: "True"} if preempted else {}
    codes = {main_name: code}
    if setup.collector is None:
        phase = "Succeeded" if code == 0 and not (preempted or deadline) else "Failed"
        return outcome(
            phase, codes, "", conditions=conditions, preempted=preempted, deadline_exceeded=deadline
        )
    reported, message = None, ""
    if preempted or deadline:
        codes[COLLECTOR_CONTAINER] = 143  # stopped with the pod
        message = "pod stopped before the main process completed: the collector reported nothing"
    else:
        marker = metrics.parent / f"{process.pid}.pid"  # type: ignore[union-attr]
        try:
            read_marker(marker.read_text() if marker.is_file() else None)
            text = metrics.read_text(errors="replace")  # type: ignore[union-attr]
            reported = collect_observation_log(
                text, list(setup.metric_names), setup.collector.metrics_formats, setup.collector.format
            )
            codes[COLLECTOR_CONTAINER] = 0
        except (CollectorError, OSError) as err:
            codes[COLLECTOR_CONTAINER] = EXIT_COLLECTOR_FATAL
            message = f"metrics collector: {err}"
    phase = "Succeeded" if all(c == 0 for c in codes.values()) else "Failed"
    return outcome(
        phase, codes, message, conditions=conditions, metrics=metrics, reported=reported,
        preempted=preempted, deadline_exceeded=deadline,
    )  # fmt: skip


def _pre_stop_hook(
    container: Mapping[str, Any],
    argv_env: tuple[dict[str, str], dict[str, str], PathMap],
    cwd: Path,
    log: Path,
) -> Callable[[float], None] | None:
    """The container's ``lifecycle.preStop.exec`` hook as a call that runs it for at most the given
    seconds (None without one); its output goes to the pod's log."""
    command = (((container.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get("command")
    if not command:
        return None
    env, own, paths = argv_env
    argv = [paths.rewrite(expand(str(a), own)) for a in command]

    def run(seconds: float) -> None:
        hook = _start(argv, env, cwd, log)
        with contextlib.suppress(subprocess.TimeoutExpired):
            hook.wait(timeout=seconds)
        kill_session(hook.pid)
        hook.wait()

    return run


def epochs_in(metrics_file: Path | None, name: str = "epoch") -> list[int]:
    """The ``epoch`` values in a metrics file, read with Katib's default filter (empty when absent)."""
    if metrics_file is None or not metrics_file.is_file():
        return []
    logs = parse_text(metrics_file.read_text(errors="replace").split("\n"), [name], ())
    return [int(float(log.value)) for log in logs if log.value.replace(".", "", 1).isdigit()]


def preempt_after_epoch(epoch: int = 1) -> Callable[[Path | None], bool]:
    """A trigger that fires once the metrics file shows epoch ``epoch`` (the next one is under way)."""

    def trigger(metrics_file: Path | None) -> bool:
        return any(e >= epoch for e in epochs_in(metrics_file))

    return trigger
