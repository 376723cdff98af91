"""The trial's own log file, kept beside its checkpoint so that it outlives the trial's pod.

Under Katib's StdOut collector the trainer's stdout and stderr go into the collector's file in an
emptyDir (``sh -c "<command> 1>/var/log/katib/metrics.log 2>&1 && ..."``), so ``kubectl logs`` of the
training container shows nothing and the file is gone with the pod. ``python -m trainer train``
therefore also appends everything it writes to ``sys.stdout`` and ``sys.stderr`` to ``trainer.log`` in
its checkpoint folder (``/checkpoints/<trial>`` on the checkpoints PVC in the manifests), framed by one
line when a run starts (time, host, pid, command) and one when it ends (exit code and what it means, and
the traceback of an unexpected error). Each attempt of a retried or resumed trial appends its own
section. A run that ends with no closing line was killed from outside (OOM killer, SIGKILL after the
grace period, a lost node).

A runaway log is capped: past :data:`MAX_LOG_BYTES` per run only the last :data:`TAIL_CHARS`
characters are kept, written before the closing line, so the final error is always there. Ranks other
than 0 of a torchrun job write ``trainer.rank<N>.log``. No heavy imports: the comparison client uses
:func:`trial_log_path` to name the file of a Katib Trial from its command.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
import time
import traceback
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, NoReturn

from trainer.config import DEFAULT_OUTPUT_DIR, resolve_checkpoint_dir
from trainer.errors import EXIT_REASONS

TRIAL_LOG_NAME = "trainer.log"
MAX_LOG_BYTES = 16 * 1024 * 1024
TAIL_CHARS = 64 * 1024
MARK = "==="  # starts the lines the log adds itself (never a Katib metric line: no name=value pair)


def trial_log_name(rank: int = 0) -> str:
    """The log's file name for this torchrun rank: ``trainer.log`` for rank 0."""
    return TRIAL_LOG_NAME if rank == 0 else f"trainer.rank{rank}.log"


class _Lenient(argparse.ArgumentParser):
    """Reads only the two folder flags, and raises instead of exiting on a malformed value."""

    def error(self, message: str) -> NoReturn:
        raise argparse.ArgumentError(None, message)


def trial_log_path(train_args: Sequence[str], rank: int = 0) -> Path | None:
    """Where ``python -m trainer train TRAIN_ARGS`` writes its log, or None when it cannot be told.

    Reads only ``--checkpoint-dir`` and ``--output-dir`` (the last of a repeated flag wins, as in the
    trainer's parser), so the path is known even when other arguments are bad.
    """
    parser = _Lenient(add_help=False)
    parser.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR)
    parser.add_argument("--checkpoint-dir", default=None)
    try:
        known, _ = parser.parse_known_args(list(train_args))
    except argparse.ArgumentError:
        return None
    return Path(resolve_checkpoint_dir(known.output_dir, known.checkpoint_dir)) / trial_log_name(rank)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Sink:
    """The open log file: the first ``limit`` bytes of a run, then only a bounded tail."""

    def __init__(self, handle: IO[str], limit: int, tail_chars: int) -> None:
        self.handle = handle
        self.limit = limit
        self.tail_chars = tail_chars
        self.written = 0
        self.omitted = 0
        self.tail: deque[str] = deque()
        self.tail_len = 0

    def copy(self, text: str) -> None:
        """Append ``text`` (past the limit: remember it in the tail instead)."""
        if self.handle.closed or not text:
            return
        if self.written < self.limit:
            self.handle.write(text)
            self.written += len(text.encode("utf-8", "replace"))
            return
        self.omitted += len(text)
        self.tail.append(text)
        self.tail_len += len(text)
        while self.tail_len - len(self.tail[0]) >= self.tail_chars:
            self.tail_len -= len(self.tail.popleft())

    def flush_tail(self) -> None:
        """Write the kept tail, after a line saying how much was left out."""
        if not self.omitted:
            return
        kept = "".join(self.tail)[-self.tail_chars :]
        skipped = self.omitted - len(kept)
        self.handle.write(
            f"\n{MARK} {skipped} characters left out after the first {self.written} bytes; the last "
            f"{len(kept)} follow\n{kept}"
        )


class _Tee:
    """A text stream that copies what is written to it into the log, then writes it on."""

    def __init__(self, stream: IO[str], sink: _Sink) -> None:
        self._stream = stream
        self._sink = sink

    def write(self, text: str) -> int:
        """Copy into the log first (the stream may be a closed pipe), then write on."""
        with contextlib.suppress(OSError, ValueError):  # the log must never break the trial
            self._sink.copy(text)
        return self._stream.write(text)

    def flush(self) -> None:
        """Flush the stream and the log."""
        self._stream.flush()
        if not self._sink.handle.closed:
            self._sink.handle.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class TrialLog:
    """Context manager: while open, ``sys.stdout`` and ``sys.stderr`` are also copied into ``path``.

    Call :meth:`finish` with the exit code before leaving; leaving with an exception records it
    (``SystemExit``'s code, or the traceback of an unexpected error) instead. A log that cannot be
    opened is skipped with one warning line on rank 0: it never fails the trial.
    """

    def __init__(
        self,
        path: Path,
        command: str,
        rank: int = 0,
        limit: int = MAX_LOG_BYTES,
        tail_chars: int = TAIL_CHARS,
    ) -> None:
        self.path = path
        self.command = command
        self.rank = rank
        self.limit = limit
        self.tail_chars = tail_chars
        self.exit_code: int | None = None
        self._sink: _Sink | None = None
        self._saved: tuple[Any, Any] | None = None
        self._started = 0.0

    @classmethod
    def for_command(cls, argv: Sequence[str], rank: int) -> TrialLog | None:
        """The log of ``python -m trainer ARGV`` when it is a ``train`` run, else None (also for
        ``train --help``, which trains nothing and must not create folders)."""
        if not argv or argv[0] != "train" or {"-h", "--help"} & set(argv[1:]):
            return None
        path = trial_log_path(argv[1:], rank)
        if path is None:
            return None
        from shlex import join

        return cls(path, "python -m trainer " + join(argv), rank)

    def finish(self, exit_code: int) -> None:
        """Record the exit code the process is about to return."""
        self.exit_code = exit_code

    def __enter__(self) -> TrialLog:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a", encoding="utf-8", errors="replace", buffering=1)
        except OSError as exc:
            if self.rank == 0:
                print(
                    f"trainer: warning: no trial log: cannot write {self.path} ({exc.strerror or exc})",
                    file=sys.stderr,
                    flush=True,
                )
            return self
        self._started = time.monotonic()
        handle.write(
            f"{MARK} {_now()} run started on {socket.gethostname()} (pid {os.getpid()}, rank {self.rank}): "
            f"{self.command}\n"
        )
        self._sink = _Sink(handle, self.limit, self.tail_chars)
        self._saved = (sys.stdout, sys.stderr)
        sys.stdout = _Tee(sys.stdout, self._sink)  # type: ignore[assignment]
        sys.stderr = _Tee(sys.stderr, self._sink)  # type: ignore[assignment]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._sink is None or self._saved is None:
            return
        sys.stdout, sys.stderr = self._saved
        sink, self._sink = self._sink, None
        try:
            for stream in self._saved:
                stream.flush()
            sink.flush_tail()
            sink.handle.write(self._closing_line(exc, tb))
        except (OSError, ValueError):
            pass
        finally:
            sink.handle.close()

    def _closing_line(self, exc: BaseException | None, tb: TracebackType | None) -> str:
        elapsed = time.monotonic() - self._started
        head = f"{MARK} {_now()} run ended after {elapsed:.1f} s: "
        if exc is None or isinstance(exc, SystemExit):
            code = self.exit_code if exc is None else exc.code
            if code is None:
                code = 0
            if not isinstance(code, int):  # sys.exit("message"): printed to stderr, exits 1
                return f"{head}exit 1 ({code})\n"
            reason = EXIT_REASONS.get(code, "unknown exit code")
            return f"{head}exit {code} ({reason})\n"
        if isinstance(exc, KeyboardInterrupt):
            return f"{head}interrupted (KeyboardInterrupt)\n"
        trace = "".join(traceback.format_exception(type(exc), exc, tb))
        return f"{head}exit 1 ({EXIT_REASONS[1]}: {type(exc).__name__}: {exc})\n{trace}"
