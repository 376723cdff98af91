"""Start ``python -m MODULE ...`` trials from a pre-warmed process instead of a fresh interpreter.

A tiny trial trains for about a second but a fresh Python needs 4-5 s to import torch, torchvision and
transformers. :class:`WarmLauncher` keeps one launcher process (:mod:`client.warm_server`) per
(interpreter, MODULE's package, preload list, environment); it imports the heavy modules once and forks
a child per trial. :class:`WarmProcess` is the runner's handle on such a child, with the parts of the
``subprocess.Popen`` interface the runner uses (``pid``, ``returncode``, ``poll``, ``wait``,
``send_signal``, ``terminate``, ``kill``), so timeouts, kills and resume after SIGKILL work the same.
Once a child ended, ``cpu_seconds`` holds the user + sys CPU time the launcher read when it reaped it
(:mod:`client.process_usage`): the trial's local cost.

Only commands of the form ``<this runner's python> -m MODULE ARGS...`` are launched warm; the caller runs
anything else (and everything when the launcher cannot start) as a normal subprocess.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from client.module_preload import is_module_name, top_package
from client.process_usage import ChildHandle

PER_TRIAL_ENV = frozenset({"KATIB_TRIAL_NAME"})
READY_TIMEOUT = 600.0
START_TIMEOUT = 60.0
_BOOT = (
    "import sys; n = len(sys.path); sys.path.append({path!r}); "
    "from client.warm_server import main; main(sys.path[:n])"
)
_LOST = 255


def module_command(argv: Sequence[str], python: str) -> tuple[str, list[str]] | None:
    """(MODULE, ARGS) when ``argv`` is ``python -m MODULE ARGS...`` with this ``python``; else None."""
    if len(argv) < 3 or argv[0] != python or argv[1] != "-m" or not is_module_name(argv[2]):
        return None
    return argv[2], list(argv[3:])


class WarmProcess(ChildHandle):
    """A trial forked by a warm launcher; a ``subprocess.Popen`` look-alike for the runner."""

    def __init__(self, server: WarmServer, pid: int, args: list[str], log_path: Path) -> None:
        super().__init__(pid)
        self.server = server
        self.args = args
        self.log_path = log_path

    def poll(self) -> int | None:
        """The exit status once the trial ended (-N: killed by signal N), else None."""
        if self.returncode is None:
            self.server.pump(0.0)
            if self.returncode is None and self.server.dead and not _alive(self.pid):
                self._lost()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Block until the trial ends; ``subprocess.TimeoutExpired`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
            self.server.pump(0.2 if left is None else min(0.2, left))
        assert self.returncode is not None
        return self.returncode

    def _lost(self) -> None:
        self.returncode = _LOST
        with contextlib.suppress(OSError), open(self.log_path, "a") as log:
            log.write(
                f"\nthe warm trial launcher (pid {self.server.pid}) exited unexpectedly; the exit status "
                f"of this trial is unknown (see {self.server.log_path})\n"
            )


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


@dataclass
class WarmServer:
    """One launcher process and its two pipes."""

    module: str
    python: str
    preload: tuple[str, ...]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    req_fd: int = -1
    rep_fd: int = -1
    dead: bool = False
    ready: dict[str, Any] | None = None
    error: str = ""
    _buffer: bytes = b""
    _seq: int = 0
    _started: dict[int, dict[str, Any]] = field(default_factory=dict)
    _children: dict[int, WarmProcess] = field(default_factory=dict)
    _early_exits: dict[int, tuple[int, float | None]] = field(default_factory=dict)

    @property
    def pid(self) -> int | None:
        """The launcher's process id."""
        return None if self.process is None else self.process.pid

    def start(self) -> None:
        """Start the launcher process (it preloads in the background; see :meth:`wait_ready`)."""
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        package_root = str(Path(__file__).resolve().parent.parent)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            try:
                self.process = subprocess.Popen(
                    [self.python, "-c", _BOOT.format(path=package_root), self.module,
                     json.dumps(list(self.preload)), str(req_r), str(rep_w)],
                    env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    pass_fds=(req_r, rep_w),
                )  # fmt: skip
            finally:
                os.close(req_r)
                os.close(rep_w)
        self.req_fd, self.rep_fd = req_w, rep_r

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> bool:
        """Wait for the preload to finish; False (with ``error`` set) if the launcher failed."""
        deadline = time.monotonic() + timeout
        while self.ready is None and not self.dead:
            left = deadline - time.monotonic()
            if left <= 0:
                self.error = f"not ready after {timeout:g} s"
                self.close()
                return False
            self.pump(min(left, 1.0))
        if self.ready is None:
            self.error = self.error or f"exited during the preload: {self._log_tail()}"
            return False
        return True

    def launch(
        self, module: str, args: list[str], env: Mapping[str, str], cwd: str, log_path: Path
    ) -> WarmProcess | None:
        """Fork a trial; None (with ``error`` set) if the launcher could not."""
        if self.dead or self.ready is None:
            return None
        self._seq += 1
        seq = self._seq
        request = {"seq": seq, "module": module, "args": args, "env": dict(env), "cwd": cwd,
                   "log": str(log_path)}  # fmt: skip
        data = (json.dumps(request) + "\n").encode()
        try:
            while data:
                data = data[os.write(self.req_fd, data) :]
        except OSError as err:
            self.error = f"cannot send to the launcher: {err}"
            self._mark_dead()
            return None
        deadline = time.monotonic() + START_TIMEOUT
        while seq not in self._started and not self.dead and time.monotonic() < deadline:
            self.pump(1.0)
        reply = self._started.pop(seq, None)
        if reply is None or "pid" not in reply:
            if reply is not None:
                self.error = str(reply.get("error", "no pid in the reply"))
            elif self.dead:
                self.error = f"the launcher exited: {self._log_tail()}"
            else:
                self.error = f"no answer within {START_TIMEOUT:g} s"
            return None
        pid = int(reply["pid"])
        process = WarmProcess(self, pid, [self.python, "-m", module, *args], log_path)
        if pid in self._early_exits:
            process.returncode, process.cpu_seconds = self._early_exits.pop(pid)
        else:
            self._children[pid] = process
        return process

    def pump(self, timeout: float) -> None:
        """Read the launcher's replies (waiting up to ``timeout`` s for the first one)."""
        if self.dead:
            return
        readable, _, _ = select.select([self.rep_fd], [], [], max(0.0, timeout))
        while readable:
            try:
                data = os.read(self.rep_fd, 1 << 16)
            except OSError:
                data = b""
            if not data:
                self._mark_dead()
                return
            self._buffer += data
            *lines, self._buffer = self._buffer.split(b"\n")
            for line in lines:
                if line.strip():
                    self._handle(json.loads(line))
            readable, _, _ = select.select([self.rep_fd], [], [], 0.0)

    def _handle(self, message: dict[str, Any]) -> None:
        event = message.get("event")
        if event == "ready":
            self.ready = message
        elif event == "failed":
            self.error = str(message.get("error", "failed"))
        elif event in ("started", "error"):
            self._started[int(message["seq"])] = message
        elif event == "exited":
            pid, code = int(message["pid"]), int(message["returncode"])
            used = message.get("cpu_seconds")
            cpu = None if used is None else float(used)
            child = self._children.pop(pid, None)
            if child is None:
                self._early_exits[pid] = (code, cpu)
            else:
                child.returncode, child.cpu_seconds = code, cpu

    def _mark_dead(self) -> None:
        self.dead = True
        for fd in (self.req_fd, self.rep_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.req_fd = self.rep_fd = -1
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)

    def _log_tail(self) -> str:
        try:
            lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            lines = []
        return lines[-1][:300] if lines else f"no output; see {self.log_path}"

    def close(self) -> None:
        """Close the request pipe (the launcher exits once its children ended), then stop it."""
        if self.process is None:
            return
        if self.req_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.req_fd)
            self.req_fd = -1
        deadline = time.monotonic() + 10
        while not self.dead and time.monotonic() < deadline:
            self.pump(0.2)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._mark_dead()


@dataclass
class WarmLauncher:
    """Launchers keyed by (python, package, preload, environment less per-trial variables)."""

    workdir: Path
    preload: tuple[str, ...] = ()
    log: Callable[[str], None] = print
    _servers: dict[tuple[Any, ...], WarmServer] = field(default_factory=dict)
    _refused: set[tuple[Any, ...]] = field(default_factory=set)

    def start(
        self, argv: Sequence[str], python: str, env: Mapping[str, str], log_path: Path
    ) -> WarmProcess | None:
        """Run ``argv`` warm if it is ``python -m MODULE ...`` and a launcher works; else None."""
        parsed = module_command(argv, python)
        if parsed is None:
            return None
        module, args = parsed
        package = top_package(module)
        server_env = {k: v for k, v in env.items() if k not in PER_TRIAL_ENV}
        server_env["PYTHONUNBUFFERED"] = "1"
        key = (python, package, self.preload, tuple(sorted(server_env.items())))
        if key in self._refused:
            return None
        server = self._servers.get(key)
        if server is not None and server.dead:
            server.close()
            server = None
        if server is None:
            index = len(self._servers) + len(self._refused) + 1
            server = WarmServer(
                module,
                python,
                self.preload,
                server_env,
                self.workdir / f".warm-launcher-{package}-{index}.log",
            )
            started = time.monotonic()
            server.start()
            if not server.wait_ready():
                self._refused.add(key)
                server.close()
                self.log(
                    f"warm trial launcher for {package} failed ({server.error}); "
                    "running its trials as subprocesses"
                )
                return None
            assert server.ready is not None
            failed = server.ready.get("failed") or []
            self.log(
                f"warm trial launcher for {package}: {len(server.ready.get('loaded') or [])} modules preloaded "
                f"from {server.ready.get('origin')} in {time.monotonic() - started:.1f} s"
                + (f" ({len(failed)} could not be imported; see {server.log_path})" if failed else "")
            )
            self._servers[key] = server
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.touch()
        process = server.launch(module, args, env, os.getcwd(), log_path)
        if process is None:
            self.log(f"warm trial launcher could not start a trial ({server.error}); using a subprocess")
        return process

    def close(self) -> None:
        """Stop every launcher."""
        for server in self._servers.values():
            server.close()
        self._servers.clear()
