"""When this trainer process started: ``gpu_seconds`` counts from here, as the process holds its GPUs.

A leaf module (imports nothing from the trainer): the CLI imports it first thing, so the clock starts
as the process loads, and the training loop reads it without importing the CLI.
"""

from __future__ import annotations

import time

PROCESS_START = time.monotonic()
