"""Face-verification metrics in pure numpy: ROC, AUC, EER, TAR@FAR, thresholds and LFW k-fold accuracy.

Conventions used throughout: a *score* is a similarity (cosine for L2-normalised embeddings), higher means "same
person"; a pair is accepted as the same person when ``score >= threshold``. ``same`` is a boolean array (True for
same-person pairs). FAR (false accept rate) is the fraction of different-person pairs accepted, TAR the fraction of
same-person pairs accepted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from toolkit.errors import InputError

DEFAULT_FARS = (1e-2, 1e-3)


def _as_arrays(scores, same, need_both: bool = True) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(same).reshape(-1).astype(bool)
    if s.shape != y.shape:
        raise InputError(f"{len(s)} scores but {len(y)} same/different labels")
    if len(s) == 0:
        raise InputError("no scores to evaluate")
    if not np.isfinite(s).all():
        raise InputError(f"{int((~np.isfinite(s)).sum())} scores are NaN or infinite; the embeddings are broken")
    if need_both and (y.all() or not y.any()):
        raise InputError("verification needs both same-person and different-person pairs")
    return s, y


@dataclass(frozen=True)
class RocCurve:
    fpr: np.ndarray  # false accept rate at each threshold, from 0 up to 1
    tpr: np.ndarray  # true accept rate at each threshold
    thresholds: np.ndarray  # decreasing; the first is +inf (accept nothing)


def roc_curve(scores, same) -> RocCurve:
    """FPR/TPR for every distinct score used as the threshold (``score >= t`` accepted), plus the (0, 0) point."""
    s, y = _as_arrays(scores, same)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    # The last index of each run of tied scores: a threshold accepts a whole run or none of it.
    ends = np.r_[np.nonzero(np.diff(s_sorted))[0], len(s_sorted) - 1]
    tp = np.cumsum(y_sorted)[ends]
    fp = (ends + 1) - tp
    tpr = np.r_[0.0, tp / y.sum()]
    fpr = np.r_[0.0, fp / (~y).sum()]
    thresholds = np.r_[np.inf, s_sorted[ends]]
    return RocCurve(fpr=fpr, tpr=tpr, thresholds=thresholds)


def auc(curve: RocCurve) -> float:
    """Area under the ROC curve (trapezoidal; equals P(same score > different score), ties counting half)."""
    dx = np.diff(curve.fpr)
    return float(np.sum(dx * (curve.tpr[1:] + curve.tpr[:-1]) / 2))


def equal_error_rate(scores, same) -> tuple[float, float]:
    """(EER, threshold): where the false accept rate equals the false reject rate, interpolated along the ROC.

    The threshold is the first ROC threshold (from strict to lenient) at which FAR >= FRR.
    """
    curve = roc_curve(scores, same)
    frr = 1.0 - curve.tpr
    gap = curve.fpr - frr  # rises from -1 to +1 along the curve
    i = int(np.argmax(gap >= -1e-12))  # tolerance: 1/3 - (1 - 2/3) is not exactly 0 in floats
    if i == 0:  # cannot happen (gap[0] == -1) but keep the arithmetic safe
        return 0.0, float(curve.thresholds[0])
    g0, g1 = gap[i - 1], gap[i]
    t = 0.0 if g1 == g0 else -g0 / (g1 - g0)
    eer = curve.fpr[i - 1] + t * (curve.fpr[i] - curve.fpr[i - 1])
    return float(eer), float(curve.thresholds[i])


@dataclass(frozen=True)
class FarPoint:
    far_target: float
    threshold: float  # accept when score >= threshold
    tar: float  # true accept rate at that threshold
    far: float  # the false accept rate actually measured at that threshold (<= far_target)
    resolvable: bool  # False when far_target < 1 / n_different: the threshold is simply above every impostor


def threshold_at_far(scores, same, far: float) -> FarPoint:
    """The most lenient threshold whose false accept rate is at most ``far``, and the TAR there.

    With N different-person pairs, at most ``floor(far * N)`` of them may be accepted; the threshold sits just above
    the next impostor score (the next float up, so that impostor is rejected under ``score >= threshold``).
    """
    if not (0.0 <= far <= 1.0):
        raise InputError(f"FAR must be between 0 and 1, got {far}")
    s, y = _as_arrays(scores, same)
    negatives = np.sort(s[~y])[::-1]
    n_neg = len(negatives)
    allowed = int(math.floor(far * n_neg + 1e-9))
    if allowed >= n_neg:
        threshold = float(s.min())
    else:
        threshold = float(np.nextafter(negatives[allowed], np.inf))
    tar = float(np.mean(s[y] >= threshold))
    far_measured = float(np.mean(negatives >= threshold))
    return FarPoint(far_target=float(far), threshold=threshold, tar=tar, far=far_measured,
                    resolvable=far * n_neg >= 1.0 - 1e-9)


def best_accuracy_threshold(scores, same) -> tuple[float, float]:
    """(threshold, accuracy) maximising accuracy on these pairs.

    Candidates: the lowest score (accept all), the midpoints between consecutive distinct scores, and just above the
    highest score (reject all). Ties: the median of the tied candidates, the higher one for an even count (fewer
    false accepts).
    """
    s, y = _as_arrays(scores, same, need_both=False)
    distinct = np.unique(s)
    candidates = np.r_[distinct[0], (distinct[:-1] + distinct[1:]) / 2, np.nextafter(distinct[-1], np.inf)]
    pos = np.sort(s[y])
    neg = np.sort(s[~y])
    true_accepts = len(pos) - np.searchsorted(pos, candidates, side="left")
    true_rejects = np.searchsorted(neg, candidates, side="left")
    accuracy = (true_accepts + true_rejects) / len(s)
    best = np.flatnonzero(accuracy == accuracy.max())
    pick = best[len(best) // 2]
    return float(candidates[pick]), float(accuracy[pick])


def derive_folds(same, n_folds: int = 10) -> np.ndarray:
    """Deterministic stratified folds for a pairs list without folds (pairsDevTest.txt): the i-th same-person pair
    goes to fold ``i * n_folds // n_same``, likewise for different-person pairs (contiguous, file order), so every
    fold has the same mix, like the 10 sets of pairs.txt."""
    y = np.asarray(same).astype(bool).reshape(-1)
    if n_folds < 2:
        raise InputError(f"need at least 2 folds, got {n_folds}")
    if len(y) < n_folds:
        raise InputError(f"{len(y)} pairs cannot be split into {n_folds} folds", hint="use more pairs")
    folds = np.empty(len(y), dtype=np.int64)
    for mask in (y, ~y):
        idx = np.flatnonzero(mask)
        folds[idx] = np.arange(len(idx)) * n_folds // max(len(idx), 1)
    return folds


@dataclass(frozen=True)
class KFoldResult:
    accuracies: list[float]  # per fold, threshold chosen on the other folds
    thresholds: list[float]
    mean: float
    std: float  # population std over folds (ddof=0), as the facenet/LFW evaluation code reports


def kfold_accuracy(scores, same, folds) -> KFoldResult:
    """LFW protocol: for each fold, pick the best-accuracy threshold on the other folds, test it on this one."""
    s, y = _as_arrays(scores, same)
    f = np.asarray(folds).reshape(-1)
    if f.shape != s.shape:
        raise InputError(f"{len(f)} fold ids for {len(s)} pairs")
    fold_ids = np.unique(f)
    if len(fold_ids) < 2:
        raise InputError("k-fold accuracy needs at least 2 folds")
    accuracies, thresholds = [], []
    for fold in fold_ids:
        test = f == fold
        threshold, _ = best_accuracy_threshold(s[~test], y[~test])
        accuracies.append(float(np.mean((s[test] >= threshold) == y[test])))
        thresholds.append(threshold)
    acc = np.asarray(accuracies)
    return KFoldResult(accuracies=accuracies, thresholds=thresholds, mean=float(acc.mean()), std=float(acc.std()))


@dataclass
class VerificationMetrics:
    n_pairs: int
    n_same: int
    n_different: int
    n_folds: int
    folds_from_file: bool
    accuracy_mean: float
    accuracy_std: float
    fold_accuracies: list[float]
    fold_thresholds: list[float]
    best_threshold: float  # best-accuracy threshold on all pairs
    best_threshold_accuracy: float  # its (optimistic, in-sample) accuracy
    auc: float
    eer: float
    eer_threshold: float
    far_points: list[FarPoint] = field(default_factory=list)
    roc: RocCurve | None = None
    same_mean: float = 0.0
    different_mean: float = 0.0

    def far_point(self, far: float) -> FarPoint | None:
        for p in self.far_points:
            if abs(p.far_target - far) <= 1e-12 + 1e-6 * far:
                return p
        return None


def verification_metrics(scores, same, folds=None, fars=DEFAULT_FARS, n_folds: int = 10) -> VerificationMetrics:
    """Everything ``ftk evaluate`` reports for a set of scored pairs. Without ``folds``, :func:`derive_folds`."""
    s, y = _as_arrays(scores, same)
    folds_from_file = folds is not None
    f = np.asarray(folds).reshape(-1) if folds is not None else derive_folds(y, n_folds)
    kfold = kfold_accuracy(s, y, f)
    best_t, best_acc = best_accuracy_threshold(s, y)
    curve = roc_curve(s, y)
    eer, eer_t = equal_error_rate(s, y)
    far_list = sorted({float(v) for v in fars}, reverse=True)
    return VerificationMetrics(
        n_pairs=len(s), n_same=int(y.sum()), n_different=int((~y).sum()), n_folds=len(np.unique(f)),
        folds_from_file=folds_from_file, accuracy_mean=kfold.mean, accuracy_std=kfold.std,
        fold_accuracies=kfold.accuracies, fold_thresholds=kfold.thresholds, best_threshold=best_t,
        best_threshold_accuracy=best_acc, auc=auc(curve), eer=eer, eer_threshold=eer_t,
        far_points=[threshold_at_far(s, y, far) for far in far_list], roc=curve,
        same_mean=float(s[y].mean()), different_mean=float(s[~y].mean()),
    )


def far_key(far: float) -> str:
    """The report's key for a FAR value: the stringified float ("0.01", "0.001"), as toolkit.reports expects."""
    return str(float(far))


# The 5th..95th percentile band of pair cosines narrower than this: every face maps to nearly the same direction.
# A working face model spreads different-person pairs around 0 and same-person pairs well above them (a band of
# ~0.5-1.0 wide); a collapsed one (a 1-epoch InceptionResnetV1: ~0.99999 for every pair) has a band near 1e-5.
COLLAPSE_SPREAD = 0.02
# A calibrated threshold at or above this prints as 1.0000 with four decimals and decides on noise.
DEGENERATE_THRESHOLD = 0.9999


def embedding_collapse(scores, same=None) -> str | None:
    """One line saying that the embeddings collapsed (the pair cosines barely differ), else None.

    ``scores``: cosine similarities of pairs of different images; ``same`` (optional) labels them same-person, so
    the line can give the spread of each kind.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    s = s[np.isfinite(s)]
    if len(s) < 2:
        return None
    low, high = np.percentile(s, [5, 95])
    if high - low >= COLLAPSE_SPREAD:
        return None
    detail = ""
    if same is not None:
        y = np.asarray(same).reshape(-1).astype(bool)
        if y.any() and (~y).any():
            detail = f"; std same-person {s[y].std():.2g}, different-person {s[~y].std():.2g}"
    return (f"the embeddings have collapsed: 90 % of pair cosines lie in [{low:.6f}, {high:.6f}] (a band of "
            f"{high - low:.2g}{detail}): the model maps every face to nearly the same direction, so thresholds and "
            "accuracies here mean little (an untrained, undertrained or broken model)")
