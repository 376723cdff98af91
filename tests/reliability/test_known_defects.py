"""Regression tests for defects the reliability work found (each was a strict xfail until fixed).

- surrogate-gp/-rf could return one assignment twice in a batch in a space with a continuous double:
  picks were canonicalised (rounded to the strings Katib gets) after being chosen, and only finite
  spaces were deduplicated. Found by bench/load_service.py (pool requests 0 and 88 of 400).
"""

from __future__ import annotations

import pytest

from bench.load_service import check_reply, make_case
from suggestion_service import engine
from suggestion_service.proto import api_pb2

# The load benchmark's own request pool: the two requests that failed, plus every other surrogate
# request with a continuous space among the first 120 (deterministic: make_case is seeded).
_CASES = sorted(
    {0, 88}
    | {
        i
        for i in range(120)
        if (c := make_case(i, max_history=500)).algorithm.startswith("surrogate") and not c.space.is_finite()
    }
)[:16]


@pytest.mark.parametrize("index", _CASES)
def test_surrogate_batches_have_no_duplicate_assignments(index: int) -> None:
    case = make_case(index, max_history=500)
    result = engine.get_suggestions(case.request)
    reply = api_pb2.GetSuggestionsReply()
    for assignment in result.assignments:
        reply.parameter_assignments.add().assignments.extend(
            api_pb2.ParameterAssignment(name=k, value=v) for k, v in assignment.items()
        )
    assert check_reply(case, reply) is None
