"""What a finished trial process used: its CPU time, read when it is reaped (``os.wait4``).

The local runs' cost of a trial is the CPU time (user + sys) of its process and of the descendants it
waited for. Unlike wall time it does not grow when other work shares the machine: a trial that waits
for a core is not charged for the wait. The warm launcher (:mod:`client.warm_server`) reaps its forked
trials with ``os.wait4`` and sends this number back with the exit status; :class:`MeteredProcess` does
the same for trials started as plain subprocesses. Only the standard library is imported here (the
warm launcher imports this module before its preload).
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import time


def cpu_seconds(usage: resource.struct_rusage) -> float:
    """User + system CPU seconds of a resource-usage record, rounded to microseconds."""
    return round(usage.ru_utime + usage.ru_stime, 6)


class ChildHandle:
    """The ``subprocess.Popen``-like handle on a trial process that this client reaps itself: ``pid``,
    ``returncode`` and ``cpu_seconds`` (both None until it ended), ``send_signal``, ``terminate`` and
    ``kill``; subclasses provide ``poll`` (which records the exit status) and ``wait``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.cpu_seconds: float | None = None

    def poll(self) -> int | None:
        """The exit status once the process ended (-N: killed by signal N), else None."""
        raise NotImplementedError

    def send_signal(self, sig: int) -> None:
        """Signal the process unless it is known to have ended (a zombie takes a signal harmlessly)."""
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        """SIGTERM."""
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL."""
        self.send_signal(signal.SIGKILL)


class MeteredProcess(ChildHandle):
    """A started ``subprocess.Popen`` that this handle reaps itself, with ``os.wait4``, so that the
    child's CPU time is known once it ended (``cpu_seconds``; None while it runs).

    It offers the parts of the ``Popen`` interface the local runner uses (``pid``, ``returncode``,
    ``poll``, ``wait``, ``send_signal``, ``terminate``, ``kill``). Use only these: ``Popen``'s own
    ``poll``/``wait`` would reap the child without its resource usage.
    """

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        super().__init__(popen.pid)
        self.popen = popen

    def poll(self) -> int | None:
        """The exit status once the process ended (-N: killed by signal N), else None."""
        if self.returncode is None:
            self._reap(os.WNOHANG)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Block until the process ends; ``subprocess.TimeoutExpired`` after ``timeout`` seconds."""
        if timeout is None:
            while self.returncode is None:
                self._reap(0)
            return self.returncode
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(self.popen.args, timeout)
            time.sleep(min(0.02, left))
        assert self.returncode is not None
        return self.returncode

    def _reap(self, flags: int) -> None:
        try:
            pid, status, usage = os.wait4(self.pid, flags)
        except ChildProcessError:  # reaped elsewhere: like Popen, status 0, and no usage to report
            self.returncode = self.popen.returncode = 0
            return
        if pid == 0:
            return
        self.returncode = self.popen.returncode = os.waitstatus_to_exitcode(status)
        self.cpu_seconds = cpu_seconds(usage)
