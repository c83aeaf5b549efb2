"""Verification metrics against values computed by hand on tiny score sets."""

from __future__ import annotations

import numpy as np
import pytest

from toolkit.errors import InputError
from toolkit.metrics import (
    auc,
    best_accuracy_threshold,
    derive_folds,
    equal_error_rate,
    far_key,
    kfold_accuracy,
    roc_curve,
    threshold_at_far,
    verification_metrics,
)

# Same-person pairs score 0.9, 0.8, 0.4; different-person pairs 0.7, 0.3, 0.2.
SCORES = np.array([0.9, 0.8, 0.4, 0.7, 0.3, 0.2])
SAME = np.array([True, True, True, False, False, False])


def test_roc_points_by_hand():
    curve = roc_curve(SCORES, SAME)
    assert curve.thresholds[0] == np.inf
    assert np.allclose(curve.thresholds[1:], [0.9, 0.8, 0.7, 0.4, 0.3, 0.2])
    assert np.allclose(curve.tpr, [0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1])
    assert np.allclose(curve.fpr, [0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1])


def test_auc_is_probability_same_beats_different():
    # 8 of the 9 (same, different) combinations are ordered correctly: 0.4 < 0.7 is the only miss.
    assert auc(roc_curve(SCORES, SAME)) == pytest.approx(8 / 9)
    # Ties count half: same {0.5, 0.5} vs different {0.5, 0.1} -> (0.5 + 1 + 0.5 + 1) / 4.
    assert auc(roc_curve([0.5, 0.5, 0.5, 0.1], [True, True, False, False])) == pytest.approx(0.75)


def test_eer_exact_and_interpolated():
    eer, threshold = equal_error_rate(SCORES, SAME)
    assert eer == pytest.approx(1 / 3)  # at 0.7: FAR 1/3, FRR 1/3
    assert threshold == pytest.approx(0.7)
    # Crossing between two ROC points: same {0.9, 0.3}, different {0.5}. Accepting >= 0.5 jumps FAR 0 -> 1 while
    # FRR stays 0.5, so the rates are equal half-way: EER 0.5.
    eer, threshold = equal_error_rate([0.9, 0.3, 0.5], [True, True, False])
    assert eer == pytest.approx(0.5)
    assert threshold == pytest.approx(0.5)


def test_threshold_at_far_by_hand():
    # FAR 1/3 of 3 impostors: one may pass; the threshold sits just above the second-highest impostor (0.3).
    p = threshold_at_far(SCORES, SAME, 1 / 3)
    assert p.threshold > 0.3 and p.threshold == pytest.approx(0.3)
    assert p.tar == pytest.approx(1.0) and p.far == pytest.approx(1 / 3) and p.resolvable
    # FAR 0.1 < 1/3: no impostor may pass -> just above 0.7, accepting 0.9 and 0.8.
    p = threshold_at_far(SCORES, SAME, 0.1)
    assert p.threshold > 0.7 and p.threshold == pytest.approx(0.7)
    assert p.tar == pytest.approx(2 / 3) and p.far == 0.0 and not p.resolvable
    # FAR 1: everything accepted.
    p = threshold_at_far(SCORES, SAME, 1.0)
    assert p.tar == 1.0 and p.far == 1.0
    with pytest.raises(InputError, match="between 0 and 1"):
        threshold_at_far(SCORES, SAME, 2.0)


def test_tar_at_far_on_a_larger_set():
    # 1000 impostors at 0.000..0.999 and 10 genuine pairs at 0.9905..0.9995 and 0.5: at FAR 1e-2 ten impostors
    # (0.990..0.999) may pass, the threshold is just above 0.989, and 9 of the 10 genuine pairs are accepted.
    impostors = np.arange(1000) / 1000
    genuine = np.r_[0.9905 + np.arange(9) / 1000, 0.5]
    scores = np.r_[genuine, impostors]
    same = np.r_[np.ones(10, bool), np.zeros(1000, bool)]
    p = threshold_at_far(scores, same, 1e-2)
    assert p.threshold == pytest.approx(0.989)
    assert p.far == pytest.approx(0.010) and p.tar == pytest.approx(0.9)
    p = threshold_at_far(scores, same, 1e-3)  # one impostor (0.999) may pass
    assert p.threshold == pytest.approx(0.998) and p.tar == pytest.approx(0.1)  # only 0.9985


def test_best_accuracy_threshold_ties_pick_the_higher_median():
    # Candidates 0.35 and 0.75 both classify 5 of 6 correctly; the higher (fewer false accepts) wins.
    threshold, accuracy = best_accuracy_threshold(SCORES, SAME)
    assert accuracy == pytest.approx(5 / 6)
    assert threshold == pytest.approx(0.75)
    threshold, accuracy = best_accuracy_threshold([0.9, 0.6, 0.4, 0.1], [True, True, False, False])
    assert (threshold, accuracy) == (pytest.approx(0.5), 1.0)


def test_kfold_threshold_comes_from_the_other_folds():
    # Fold 0: same 0.8, different 0.2. Fold 1: same 0.4, different 0.6 (inverted).
    scores = [0.8, 0.2, 0.4, 0.6]
    same = [True, False, True, False]
    result = kfold_accuracy(scores, same, [0, 0, 1, 1])
    # Testing fold 0 with fold 1's threshold (accept-all and reject-all tie at 50%; the higher wins: > 0.6): 100%.
    # Testing fold 1 with fold 0's threshold (0.5): both pairs wrong: 0%.
    assert result.accuracies == [1.0, 0.0]
    assert result.thresholds[1] == pytest.approx(0.5)
    assert result.thresholds[0] > 0.6
    assert result.mean == pytest.approx(0.5) and result.std == pytest.approx(0.5)


def test_derive_folds_is_stratified_and_deterministic():
    same = np.r_[np.ones(20, bool), np.zeros(20, bool)]
    folds = derive_folds(same)
    assert np.array_equal(folds, derive_folds(same))
    for f in range(10):
        assert (folds[same] == f).sum() == 2 and (folds[~same] == f).sum() == 2
    with pytest.raises(InputError, match="cannot be split into 10 folds"):
        derive_folds(same[:5])


def test_verification_metrics_separable_and_report_keys():
    rng = np.random.default_rng(0)
    scores = np.r_[rng.uniform(0.6, 1.0, 50), rng.uniform(-0.2, 0.5, 50)]
    same = np.r_[np.ones(50, bool), np.zeros(50, bool)]
    m = verification_metrics(scores, same)
    assert m.accuracy_mean == 1.0 and m.auc == 1.0 and m.eer == 0.0
    assert 0.5 < m.best_threshold < 0.6
    assert m.n_folds == 10 and not m.folds_from_file
    assert [p.far_target for p in m.far_points] == [1e-2, 1e-3]
    assert all(p.tar == 1.0 for p in m.far_points)
    assert far_key(1e-2) == "0.01" and far_key(1e-3) == "0.001"


def test_bad_scores_are_clear_errors():
    with pytest.raises(InputError, match="both same-person and different-person"):
        roc_curve([0.1, 0.2], [True, True])
    with pytest.raises(InputError, match="NaN"):
        roc_curve([0.1, float("nan")], [True, False])
    with pytest.raises(InputError, match="3 scores but 2"):
        roc_curve([0.1, 0.2, 0.3], [True, False])
