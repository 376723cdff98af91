"""Stable seeds: SHA-256 of JSON-serialised parts (never Python's per-process salted ``hash()``)."""

from __future__ import annotations

import hashlib
import json

import numpy as np


def stable_seed(*parts: object) -> int:
    """A 63-bit seed that depends only on ``parts`` (JSON-serialisable), identical across processes."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") >> 1


def rng_from(*parts: object) -> np.random.Generator:
    """A numpy Generator seeded with ``stable_seed(*parts)``."""
    return np.random.default_rng(stable_seed(*parts))
