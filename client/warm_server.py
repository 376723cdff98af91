"""The warm trial launcher process: preload heavy modules once, then fork one child per trial.

Started by :class:`client.warm_launcher.WarmServer` as ``python -c <boot> MODULE PRELOAD_JSON REQ_FD REP_FD``
with the trials' environment (less per-trial variables). It imports the preload entries of
:mod:`client.module_preload`, reports ``ready`` and then serves JSON lines on the request pipe::

    {"seq": 1, "module": "trainer", "args": [...], "env": {...}, "cwd": "/x", "log": "/x/stdout.log"}

For each request it forks; the child behaves like ``python -m MODULE ARGS`` started in ``cwd`` with
``env``, stdin from /dev/null and stdout+stderr in ``log`` (see :func:`run_child`). Replies on the reply
pipe: ``{"event": "started", "seq", "pid"}`` or ``{"event": "error", "seq", "error"}``, and
``{"event": "exited", "pid", "returncode", "cpu_seconds"}`` when a child ends (``-N`` for signal N, as
``subprocess.Popen.returncode``; ``cpu_seconds`` is the child's user + sys CPU time from ``os.wait4``,
its own and that of any descendants it waited for, which a busy machine does not inflate as it does
wall time). The launcher ignores SIGINT (the runner stops trials itself) and exits
once the request pipe is closed and all its children have ended, so children of a killed runner keep
running exactly like orphaned subprocesses until the resumed run kills them.
Only the standard library is imported here before the preload.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import gc
import importlib.util
import json
import os
import runpy
import select
import signal
import sys
import threading
import time
from typing import Any

from client.module_preload import preload, resolve, top_package
from client.process_usage import cpu_seconds


def _print_exception() -> None:
    """Print the current exception like the interpreter, leaving out the launcher's own frames."""
    etype, value, tb = sys.exc_info()
    while tb is not None and (
        tb.tb_frame.f_code.co_filename == __file__ or "runpy" in tb.tb_frame.f_code.co_filename
    ):
        tb = tb.tb_next
    if value is not None:
        value = value.with_traceback(tb)  # the default hook prints value.__traceback__
    sys.excepthook(etype, value, tb)  # type: ignore[arg-type]


def _exit_code(code: object) -> int:
    """The process exit status Python derives from ``SystemExit(code)`` (printing non-int codes)."""
    if code is None:
        return 0
    if isinstance(code, int) and not isinstance(code, bool):
        return code & 0xFF
    if isinstance(code, bool):
        return int(code)
    print(code, file=sys.stderr)
    return 1


def _finish_like_python() -> None:
    """What the interpreter does at a normal exit: join non-daemon threads, atexit handlers, flush."""
    main = threading.main_thread()
    for thread in threading.enumerate():
        if thread is not main and not thread.daemon and thread.is_alive():
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _configure_threads(env: dict[str, str]) -> None:
    """Size already-imported thread pools for this trial (a fork copies the launcher's settings)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return
    try:
        threads = int(env.get("OMP_NUM_THREADS", ""))
    except ValueError:
        return
    if threads >= 1:
        torch.set_num_threads(threads)


def _reseed() -> None:
    """Fresh entropy for RNGs seeded at import (Python's ``random`` reseeds itself after a fork)."""
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()


def run_child(request: dict[str, Any], base_path: list[str], close_fds: list[int]) -> int:
    """In the forked child: become ``python -m MODULE ARGS``; returns the exit status.

    The request's log file becomes fds 1 and 2 (stdin is /dev/null), cwd and environment are replaced,
    modules of MODULE's own package are dropped from ``sys.modules`` (so they are imported fresh, with
    this trial's environment and clock), then ``runpy.run_module(MODULE, run_name="__main__",
    alter_sys=True)`` runs with ``sys.argv = [<module path>, *ARGS]``.
    """
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for fd in close_fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    module = request["module"]
    try:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.path[:] = [os.getcwd(), *base_path[1:]]
        package = top_package(module)
        for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
            del sys.modules[name]
        importlib.invalidate_caches()
        _reseed()
        _configure_threads(request["env"])
        if importlib.util.find_spec(package) is None:
            print(f"{sys.executable}: No module named {module}", file=sys.stderr)
            return 1
        sys.argv = ["-m", *request["args"]]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except KeyboardInterrupt:
        _print_exception()
        _finish_like_python()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)  # like the interpreter: die of the signal
        code = 130
    except BaseException:
        _print_exception()
        code = 1
    try:
        _finish_like_python()
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except BaseException:
        _print_exception()
    return code


class _Server:
    def __init__(self, req_fd: int, rep_fd: int, base_path: list[str]) -> None:
        self.req_fd = req_fd
        self.rep_fd = rep_fd
        self.base_path = base_path
        self.children: set[int] = set()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.reply_ok = True

    def send(self, message: dict[str, Any]) -> None:
        if not self.reply_ok:
            return
        data = (json.dumps(message) + "\n").encode()
        try:
            while data:
                data = data[os.write(self.rep_fd, data) :]
        except OSError as err:  # the runner is gone: keep reaping children, stop replying
            if err.errno not in (errno.EPIPE, errno.EBADF):
                raise
            self.reply_ok = False

    def fork(self, request: dict[str, Any]) -> None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        try:
            pid = os.fork()
        except OSError as err:
            self.send({"event": "error", "seq": request.get("seq"), "error": f"fork failed: {err}"})
            return
        if pid == 0:
            code = 1
            try:
                code = run_child(
                    request, self.base_path, [self.req_fd, self.rep_fd, self.wake_r, self.wake_w]
                )
            finally:
                os._exit(code)
        self.children.add(pid)
        self.send({"event": "started", "seq": request.get("seq"), "pid": pid})

    def reap(self) -> None:
        while self.children:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            self.children.discard(pid)
            self.send({"event": "exited", "pid": pid, "returncode": os.waitstatus_to_exitcode(status),
                       "cpu_seconds": cpu_seconds(usage)})  # fmt: skip

    def serve(self) -> None:
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self.wake_w)
        buffer = b""
        open_requests = True
        while open_requests or self.children:
            watch = [self.wake_r] + ([self.req_fd] if open_requests else [])
            readable, _, _ = select.select(watch, [], [], 1.0)
            if self.wake_r in readable:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self.wake_r, 512):
                        pass
            if self.req_fd in readable:
                data = os.read(self.req_fd, 1 << 16)
                if not data:
                    open_requests = False
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        self.fork(json.loads(line))
            self.reap()


def main(base_path: list[str]) -> None:
    """Entry point of the launcher process (see the module docstring for the arguments)."""
    module, explicit_json, req, rep = sys.argv[1:5]
    req_fd, rep_fd = int(req), int(rep)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    server = _Server(req_fd, rep_fd, base_path)
    started = time.monotonic()
    try:
        entries, origin = resolve(module, json.loads(explicit_json) or None)
    except ValueError as err:
        server.send({"event": "failed", "error": str(err)})
        return
    loaded, failed = preload(entries)
    gc.collect()
    gc.freeze()  # keep the preloaded objects out of the children's collections (fewer copy-on-write pages)
    seconds = time.monotonic() - started
    print(
        f"warm launcher for {module}: {len(loaded)} preload entries from {origin} in {seconds:.1f} s"
        + (f"; {len(failed)} failed: " + "; ".join(failed) if failed else ""),
        file=sys.stderr,
        flush=True,
    )
    server.send(
        {"event": "ready", "origin": origin, "loaded": loaded, "failed": failed, "seconds": round(seconds, 3)}
    )
    server.serve()
