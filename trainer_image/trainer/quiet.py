"""Silence progress bars and chatty loggers so stdout holds only Katib-parsable lines."""

from __future__ import annotations

import logging
import os

_QUIET_ENV = {
    "TQDM_DISABLE": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


def quiet_libraries() -> None:
    """Set the environment switches (before HF libraries are imported) and quiet their loggers."""
    for key, value in _QUIET_ENV.items():
        os.environ.setdefault(key, value)
    for name in ("transformers", "datasets", "huggingface_hub", "torch._dynamo", "torch._inductor"):
        logging.getLogger(name).setLevel(logging.ERROR)
