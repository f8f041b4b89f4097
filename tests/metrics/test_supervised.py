import math

import numpy as np
import pytest
import torch
from sklearn.metrics import r2_score as sklearn_r2

from pyro_partial.metrics import (
    angular_error,
    angular_error_from_angles,
    classification_error,
    confusion_counts,
    direction_from_angles,
    largest_confusion,
    r2_score,
)


def test_angular_error_known_cases():
    x, y = [1.0, 0.0, 0.0], [0.0, 2.0, 0.0]
    np.testing.assert_allclose(
        angular_error([x, x, x, [1.0, 1.0, 0.0]], [y, [3.0, 0.0, 0.0], [-1.0, 0.0, 0.0], x]),
        [90.0, 0.0, 180.0, 45.0],
        atol=1e-12,
    )


def test_angular_error_is_accurate_for_tiny_angles():
    small = 1e-7  # radians; arccos of the dot product would lose it entirely in float64
    error = angular_error([1.0, 0.0, 0.0], [math.cos(small), math.sin(small), 0.0])
    assert error == pytest.approx(math.degrees(small), rel=1e-9)


def test_angular_error_keeps_tensors_and_gradients():
    pred = torch.tensor([[1.0, 1.0, 0.0]], requires_grad=True)
    error = angular_error(pred, np.array([[1.0, 0.0, 0.0]]))
    assert isinstance(error, torch.Tensor) and error.shape == (1,)
    error.sum().backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_angular_error_rejects_bad_input():
    with pytest.raises(ValueError, match=r"pred must have shape \(N, 3\)"):
        angular_error(np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="target holds a zero vector"):
        angular_error(np.ones((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="same shape"):
        angular_error(np.ones((2, 3)), np.ones((3, 3)))


def test_directions_from_azimuth_and_elevation():
    directions = direction_from_angles([[0.0, 0.0], [90.0, 0.0], [0.0, 90.0], [-90.0, 0.0]])
    np.testing.assert_allclose(directions, [[0, 0, 1], [1, 0, 0], [0, 1, 0], [-1, 0, 0]], atol=1e-12)
    with pytest.raises(ValueError, match=r"angles must have shape \(N, 2\)"):
        direction_from_angles([1.0, 2.0, 3.0])


def test_angular_error_between_angle_pairs():
    pred = [[10.0, 0.0], [20.0, 35.0], [0.0, 90.0], [130.0, 0.0]]
    target = [[-25.0, 0.0], [20.0, -10.0], [77.0, 90.0], [-130.0, 0.0]]
    # Along the equator the angle is the azimuth difference, along a meridian the elevation difference,
    # and all azimuths meet at the pole.
    np.testing.assert_allclose(angular_error_from_angles(pred, target), [35.0, 45.0, 0.0, 100.0], atol=1e-9)


def test_classification_error_takes_labels_or_scores():
    target = np.array([0, 1, 2, 2])
    assert classification_error(np.array([0, 1, 1, 2]), target) == 0.25
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]])
    assert classification_error(scores, np.eye(3)[target]) == 0.25
    with pytest.raises(ValueError, match="same number"):
        classification_error(np.zeros(3), np.zeros(4))


def test_confusion_counts_by_hand():
    target = np.array([0, 0, 1, 2, 2, 2])
    pred = np.array([0, 2, 1, 1, 1, 2])
    expected = [[1, 0, 1], [0, 1, 0], [0, 2, 1]]  # row: true class, column: predicted class
    np.testing.assert_array_equal(confusion_counts(pred, target, 3), expected)
    # one-hot targets and scores give the same counts; a class nobody holds gets a row and column of zeros
    counts = confusion_counts(np.eye(4)[pred], torch.as_tensor(np.eye(4)[target]), 4)
    np.testing.assert_array_equal(counts[:3, :3], expected)
    assert counts[3].sum() == counts[:, 3].sum() == 0
    # the diagonal holds the correct predictions: 1 - trace / N is the classification error
    assert 1 - np.trace(counts) / counts.sum() == classification_error(pred, target)
    assert largest_confusion(counts) == (2, 1)


def test_confusion_counts_rejects_bad_input():
    with pytest.raises(ValueError, match="same number"):
        confusion_counts(np.zeros(3, dtype=int), np.zeros(4, dtype=int), 2)
    with pytest.raises(ValueError, match=r"target holds classes 0..5, outside 0..2"):
        confusion_counts(np.array([0, 1]), np.array([0, 5]), 3)
    with pytest.raises(ValueError, match=r"square matrix \(C, C\) with C >= 2 classes; got shape \(1, 1\)"):
        largest_confusion(np.array([[4]]))


def test_r2_matches_scikit_learn_and_known_values():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(50, 2))
    pred = target + 0.3 * rng.normal(size=(50, 2))
    assert r2_score(pred, target) == pytest.approx(sklearn_r2(target, pred), rel=1e-12)
    assert r2_score(target, target) == 1.0
    assert r2_score(np.broadcast_to(target.mean(0), target.shape), target) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="target must vary"):
        r2_score(np.zeros(4), np.ones(4))
