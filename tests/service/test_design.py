"""The initial design covers every value of few-valued parameters; the GP's prior mean is pessimistic."""

from __future__ import annotations

import numpy as np
import pytest

from suggestion_service import candidates
from suggestion_service.space import SearchSpace
from suggestion_service.surrogates import PRIOR_MEAN_OFFSET, GPSurrogate

from .builders import bert_space, continuous_space


@pytest.mark.parametrize("seed", range(8))
def test_three_design_points_use_every_learning_rate_and_both_values_of_the_others(seed: int) -> None:
    space = SearchSpace.from_proto(bert_space())
    rng = np.random.default_rng(seed)
    pool = candidates.pool(space, rng, 64, set())
    design = candidates.space_filling(space, rng, 3, pool[:0], pool)
    assert len({space.raw_key(r) for r in design}) == 3
    assert sorted(design[:, 0].tolist()) == [0.0, 1.0, 2.0]  # 2e-5, 3e-5 and 5e-5 all tried
    for col in range(1, 4):
        assert set(design[:, col].tolist()) == {0.0, 1.0}


def test_design_continues_from_what_was_tried() -> None:
    space = SearchSpace.from_proto(bert_space())
    rng = np.random.default_rng(0)
    pool = candidates.pool(space, rng, 64, set())
    tried = space.raw(
        {"learning_rate": "2e-5", "batch_size": "16", "max_seq_length": "128", "num_epochs": "3"}
    )[None, :]
    design = candidates.space_filling(space, rng, 2, tried, pool)
    assert set(design[:, 0].tolist()) == {1.0, 2.0}  # the two learning rates not tried yet
    assert all(set(design[:, c].tolist()) >= {1.0} for c in range(1, 4))


def test_continuous_design_is_still_maximin() -> None:
    space = SearchSpace.from_proto(continuous_space())
    rng = np.random.default_rng(1)
    pool = candidates.pool(space, rng, 256, set())
    design = candidates.space_filling(space, rng, 4, pool[:0], pool)
    X = space.encode_raw(design)  # noqa: N806
    d = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(-1))[np.triu_indices(4, 1)]
    assert d.min() > 0.3  # spread out, not clustered


def test_gp_prior_mean_is_pessimistic_far_from_the_data() -> None:
    rng = np.random.default_rng(0)
    X = rng.random((12, 2)) * 0.2  # noqa: N806  (all data in one corner)
    y = np.sin(6 * X[:, 0]) + X[:, 1]
    gp = GPSurrogate(random_state=0).fit(X, y)
    far, _ = gp.predict(np.array([[5.0, 5.0]]))
    assert far[0] == pytest.approx(y.mean() + PRIOR_MEAN_OFFSET * y.std(), abs=1e-3)
    neutral = GPSurrogate(random_state=0, prior_offset=0.0).fit(X, y)
    assert neutral.predict(np.array([[5.0, 5.0]]))[0][0] == pytest.approx(y.mean(), abs=1e-3)
    near, _ = gp.predict(X[:3])
    assert near == pytest.approx(y[:3], abs=0.05)  # the data still decide near the data
    assert gp.conditioned(X, y).predict(np.array([[5.0, 5.0]]))[0][0] == pytest.approx(far[0])
