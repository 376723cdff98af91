"""The replies of representative GetSuggestions requests stay bit for bit what they were when pinned
(``reply_cases.py``): refactoring the algorithm must not change a single assignment."""

from __future__ import annotations

import json

from .reply_cases import PINS, engine_replies


def test_replies_match_the_pins() -> None:
    pinned = json.loads(PINS.read_text())
    got = engine_replies()
    assert sorted(got) == sorted(pinned)
    changed = [name for name in pinned if got[name] != pinned[name]]
    assert not changed, f"replies changed for {changed}"
