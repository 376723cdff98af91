"""``python -m trainer.preempt``: the trial container's preStop hook, so preemption reaches the trainer.

Why a hook. With the StdOut collector, Katib v0.19's pod webhook replaces the primary container's
command by ``sh -c "<command and args joined by spaces> 1>/var/log/katib/metrics.log 2>&1 && echo
completed > /var/log/katib/$$$$.pid"`` (``pkg/webhook/v1beta1/pod/utils.go``, ``wrapWorkerContainer``;
Kubernetes turns ``$$$$`` into ``$$``, the shell's pid) and sets ``shareProcessNamespace: true``
(``inject_webhook.go``). The kubelet's SIGTERM goes to that ``sh``, which dies without forwarding it;
the container runtime then kills what is left of a container that shares the pod's PID namespace, so
the trainer never saves its mid-epoch checkpoint. Wrapping our command in a shell with a ``trap``
would change the command's shape that the local runner, the manifest tests and the DDP variant read.

Instead the kubelet's own order is used: it runs a container's preStop hook *before* it sends SIGTERM,
within the same grace period. This hook finds the wrapper shells the way Katib's metrics collector
finds its main process (``pkg/metricscollector/v1beta1/common/pns.go``, ``GetMainProcesses``: the
command line contains ``echo completed > <metrics dir>``) and sends SIGTERM to their children, as
Katib's own early stopping does (``cmd/metricscollector/v1beta1/file-metricscollector/main.go``:
``mainProc.Children()`` then ``Terminate()``). It returns once those children have exited. The
trainer saves its checkpoint and exits 143, so the wrapper's ``&& echo completed`` is skipped, the
``<pid>.pid`` marker is never written, and the collector's ``WaitMainProcesses`` fails ("Unable to read
file ... .pid") without reporting: the pod fails with 143 and the Job retries it. Without a wrapper
(Push collector, a pod Katib did not mutate) there is nothing to do: the kubelet's SIGTERM reaches the
trainer itself. Standard library only: the hook must start fast and import no torch.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

KATIB_METRICS_DIR = "/var/log/katib"  # pkg/apis/controller/common/v1beta1: DefaultFilePath's folder
COMPLETED_MARKER = "echo completed > "  # utils.go getMarkCompletedCommand, pns.go GetMainProcesses
DEFAULT_TIMEOUT_S = 110.0  # inside the trials' terminationGracePeriodSeconds (120)
PROC = Path("/proc")


def _cmdline(pid_dir: Path) -> str:
    try:
        raw = (pid_dir / "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")


def _parent(pid_dir: Path) -> int | None:
    try:
        stat = (pid_dir / "stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[1]) if len(fields) > 1 else None


def _pids(proc: Path) -> list[Path]:
    return [p for p in proc.iterdir() if p.name.isdigit()]


def wrapper_shells(metrics_dir: str = KATIB_METRICS_DIR, proc: Path = PROC) -> list[int]:
    """Pids of the processes whose command line holds Katib's ``echo completed > <metrics_dir>``."""
    needle = COMPLETED_MARKER + metrics_dir.rstrip("/")
    me = os.getpid()
    return sorted(int(p.name) for p in _pids(proc) if int(p.name) != me and needle in _cmdline(p))


def children(parents: Sequence[int], proc: Path = PROC) -> list[int]:
    """Pids of the direct children of ``parents`` (the trainer or torchrun under a wrapper shell)."""
    wanted = set(parents)
    return sorted(int(p.name) for p in _pids(proc) if _parent(p) in wanted)


def _running(pid: int, proc: Path = PROC) -> bool:
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :][:1] != "Z"


def _poll_until_exited(pids: Sequence[int], deadline: float) -> list[int]:
    left = list(pids)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [pid for pid in left if _running(pid)]
    return left


def _wait_all(pids: Sequence[int], timeout: float) -> list[int]:
    """Wait until every pid has exited (pidfd where the kernel has it, else polling); the survivors."""
    deadline = time.monotonic() + timeout
    fds: dict[int, int] = {}
    try:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                fds[os.pidfd_open(pid)] = pid
    except OSError:  # no pidfd_open (old kernel, seccomp): poll /proc instead
        for fd in fds:
            os.close(fd)
        return _poll_until_exited(pids, deadline)
    try:
        while fds and (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select(list(fds), [], [], left)
            for fd in ready:
                os.close(fd)
                del fds[fd]
        return sorted(fds.values())
    finally:
        for fd in fds:
            os.close(fd)


def stop_training(
    metrics_dir: str = KATIB_METRICS_DIR, timeout: float = DEFAULT_TIMEOUT_S, proc: Path = PROC
) -> tuple[list[int], list[int]]:
    """SIGTERM the children of Katib's wrapper shells and wait for them: (signalled, still running)."""
    targets = children(wrapper_shells(metrics_dir, proc), proc)
    signalled = []
    for pid in targets:
        try:
            os.kill(pid, signal.SIGTERM)
            signalled.append(pid)
        except ProcessLookupError:
            continue
    return signalled, _wait_all(signalled, timeout)


def main(argv: Sequence[str] | None = None) -> int:
    """The hook's entry point; always 0 (a failing hook only adds a FailedPreStopHook event)."""
    parser = argparse.ArgumentParser(
        prog="python -m trainer.preempt",
        description="preStop hook: forward the pod's termination to the trainer under Katib's sh wrapper "
        "and wait until it has saved its checkpoint and exited",
    )
    parser.add_argument("--metrics-dir", default=KATIB_METRICS_DIR, help="Katib's metrics folder")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds to wait for the trainer to exit"
    )
    args = parser.parse_args(argv)
    signalled, left = stop_training(args.metrics_dir, args.timeout)
    if not signalled:
        print("trainer.preempt: no Katib-wrapped trainer here; the kubelet's SIGTERM reaches it", flush=True)
    else:
        state = f"still running: {left}" if left else "all exited"
        print(f"trainer.preempt: sent SIGTERM to {signalled}; {state}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
