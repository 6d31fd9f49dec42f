"""The loop's rules: learning rate per epoch, early stopping, best epoch (one home for every training loop)."""

from __future__ import annotations

import math

import pytest

from sentiment.config import make_config
from sentiment.training.loop import LoopRules


def rules(epochs: int = 5, patience: int = 2) -> LoopRules:
    return LoopRules(epochs=epochs, patience=patience, learning_rate=1e-3, lr_decay=0.5)


def test_learning_rate_decays_per_epoch_from_the_config():
    r = LoopRules.from_config(make_config("lstm", learning_rate=0.01, lr_decay=0.5))
    assert [r.learning_rate_at(e) for e in range(3)] == [0.01, 0.005, 0.0025]


def test_best_epoch_is_the_first_strict_minimum_and_ignores_nan():
    assert LoopRules.best_epoch([]) is None
    assert LoopRules.best_epoch([0.5, 0.4, 0.4, 0.45]) == 1  # an equal loss is no improvement
    assert LoopRules.best_epoch([math.nan, 0.6, math.nan]) == 1
    assert LoopRules.best_epoch([math.nan]) is None


@pytest.mark.parametrize("losses, patience, stop", [
    ([0.5], 2, False),
    ([0.5, 0.6], 2, False),
    ([0.5, 0.6, 0.7], 2, True),  # two epochs without improvement
    ([0.5, 0.6, 0.4], 2, False),  # improved again: the wait starts over
    ([0.5], 0, False),  # patience 0: an improving epoch never stops the run ...
    ([0.5, 0.4], 0, False),
    ([0.5, 0.4, 0.45], 0, True),  # ... the first epoch without improvement does
    ([0.5, 0.4, 0.3, 0.2, 0.1], 9, True),  # the epoch budget
])
def test_should_stop_follows_patience_and_the_epoch_budget(losses, patience, stop):
    assert rules(patience=patience).should_stop(losses) is stop


def test_a_refit_keeps_the_schedule_with_its_own_epoch_count():
    r = LoopRules.from_config(make_config("lstm", epochs=10), epochs=3)
    assert r.epochs == 3 and r.should_stop([0.1, 0.1, 0.1])
