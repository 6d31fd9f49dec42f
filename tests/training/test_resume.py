"""Resume state: every model and optimizer variable saved atomically per epoch; a damaged newest state is skipped."""

from __future__ import annotations

import errno

import keras
import numpy as np
import pytest

from sentiment import artifacts
from sentiment.errors import WriteError
from sentiment.training import resume


def tiny_model(seed: int) -> keras.Model:
    """A compiled two-layer model with dropout (whose RNG state is a variable too) and built optimizer slots."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((3,))
    x = keras.layers.Dropout(0.5)(keras.layers.Dense(4)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1)(x))
    model.compile("adam", "mse")
    model.fit(np.ones((8, 3)), np.ones((8, 1)), verbose=0, epochs=1)
    return model


def all_values(model: keras.Model) -> list[np.ndarray]:
    return [np.array(v.numpy()) for v in resume.state_variables(model)]


def test_restore_brings_back_weights_optimizer_and_rng_state(tmp_path):
    source = tiny_model(1)
    resume.save(source, tmp_path, 3)
    target = tiny_model(2)
    assert resume.restore(target, tmp_path) == 3
    for a, b in zip(all_values(source), all_values(target)):
        np.testing.assert_array_equal(a, b)
    assert int(target.optimizer.iterations.numpy()) == int(source.optimizer.iterations.numpy()) == 1


def test_only_the_newest_two_states_are_kept(tmp_path):
    model = tiny_model(1)
    for epochs in (1, 2, 3):
        resume.save(model, tmp_path, epochs)
    assert [e for e, _ in resume.saved_states(tmp_path)] == [3, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state-00002.npz", "state-00003.npz"]  # no temp files


def test_a_damaged_newest_state_falls_back_to_the_one_before(tmp_path, caplog):
    older, newer = tiny_model(1), tiny_model(2)
    resume.save(older, tmp_path, 1)
    resume.save(newer, tmp_path, 2)
    path = resume.state_path(tmp_path, 2)
    path.write_bytes(path.read_bytes()[:100])  # a disk that lied
    target = tiny_model(3)
    assert resume.restore(target, tmp_path) == 1
    assert "unusable" in caplog.text
    for a, b in zip(all_values(older), all_values(target)):
        np.testing.assert_array_equal(a, b)


def test_no_usable_state_starts_afresh(tmp_path, caplog):
    resume.save(tiny_model(1), tmp_path, 1)
    other = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)])
    other.compile("adam", "mse")
    assert resume.restore(other, tmp_path) == 0  # a state of another model is not forced on this one
    assert "starts again from its first epoch" in caplog.text


def test_a_full_disk_leaves_the_previous_state_and_no_temp_file(tmp_path, monkeypatch):
    model = tiny_model(1)
    resume.save(model, tmp_path, 1)

    def full(path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(artifacts, "sync_file", full)
    with pytest.raises(WriteError, match=r"cannot write .*state-00002.npz: No space left on device \(.* free there\)"):
        resume.save(model, tmp_path, 2)
    assert [p.name for p in tmp_path.iterdir()] == ["state-00001.npz"]
