"""LFW pairs files: header and folds, line formats, malformed lines, missing images, balanced subsets."""

from __future__ import annotations

import numpy as np
import pytest

from toolkit.data.pairs import check_pair_images, read_pairs, subset_pairs
from toolkit.errors import InputError


def write(tmp_path, text, name="pairs.txt"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_two_sets_give_folds(tmp_path):
    path = write(tmp_path, "2\t1\nAl\t1\t2\nAl\t1\tBo\t3\nBo\t2\t3\nBo\t1\tCy\t12\n")
    pairs = read_pairs(path)
    assert pairs.n_sets == 2 and pairs.has_folds
    assert [p.fold for p in pairs.pairs] == [0, 0, 1, 1]
    assert list(pairs.same) == [True, False, True, False]
    first, second = pairs.pairs[0], pairs.pairs[1]
    assert (first.left, first.right) == ("Al/Al_0001.jpg", "Al/Al_0002.jpg")
    assert (second.left, second.right) == ("Al/Al_0001.jpg", "Bo/Bo_0003.jpg")
    assert pairs.pairs[3].right == "Cy/Cy_0012.jpg"
    assert pairs.image_paths() == ["Al/Al_0001.jpg", "Al/Al_0002.jpg", "Bo/Bo_0003.jpg", "Bo/Bo_0002.jpg",
                                   "Bo/Bo_0001.jpg", "Cy/Cy_0012.jpg"]


def test_dev_header_and_headerless_have_no_folds(tmp_path):
    dev = read_pairs(write(tmp_path, "1\nAl\t1\t2\nAl\t1\tBo\t3\n"))
    assert dev.n_sets == 1 and not dev.has_folds and dev.folds is None
    own = read_pairs(write(tmp_path, "Al 1 2\nAl 1 Bo 3\n", "own.txt"))
    assert len(own.pairs) == 2 and own.per_set is None and own.folds is None


@pytest.mark.parametrize("text, message", [
    ("1\nAl\t1\t2\nAl\t1\tBo\n", r"pairs.txt:3: image number must be an integer, got 'Bo'"),  # a field lost
    ("1\nAl\t1\t2\nAl\t1\tBo\t3\textra\n", r"pairs.txt:3: expected 3 fields"),
    ("1\nAl\tone\t2\nAl\t1\tBo\t3\n", r"pairs.txt:2: image number must be an integer, got 'one'"),
    ("1\nAl\t0\t2\nAl\t1\tBo\t3\n", r"image numbers start at 1"),
    ("2\nAl\t1\t2\nAl\t1\tBo\t3\n", r"header promises 1 set\(s\) of 2 .* has 2 pair lines"),
    ("2\t1\nAl\t1\t2\nBo\t1\t2\nAl\t1\tBo\t3\nBo\t1\tAl\t3\n", r"set 1 does not have 1 same-person pairs"),
    ("Al 1 2\nBo 1 2\n", r"needs both same-person"),
    ("1\n../etc\t1\t2\nAl\t1\tBo\t3\n", r"not a person name"),
    ("", r"is empty"),
])
def test_malformed_pairs_are_clear_errors(tmp_path, text, message):
    with pytest.raises(InputError, match=message):
        read_pairs(write(tmp_path, text))


def test_missing_file_and_missing_images(tmp_path):
    with pytest.raises(InputError, match="pairs file not found"):
        read_pairs(tmp_path / "nope.txt")
    pairs = read_pairs(write(tmp_path, "1\nAl\t1\t2\nAl\t1\tBo\t3\n"))
    (tmp_path / "img" / "Al").mkdir(parents=True)
    (tmp_path / "img" / "Al" / "Al_0001.jpg").write_bytes(b"x")
    with pytest.raises(InputError, match=r"2 of 3 images named by pairs.txt are missing .*Al/Al_0002.jpg"):
        check_pair_images(pairs, tmp_path / "img")
    with pytest.raises(InputError, match="image folder not found"):
        check_pair_images(pairs, tmp_path / "nothing")


def test_subset_is_balanced_and_spread(tmp_path):
    lines = [f"P{i}\t1\t2" for i in range(10)] + [f"P{i}\t1\tQ{i}\t1" for i in range(10)]
    pairs = read_pairs(write(tmp_path, "10\n" + "\n".join(lines) + "\n"))
    sub = subset_pairs(pairs, 6)
    assert len(sub.pairs) == 6 and int(sub.same.sum()) == 3
    assert [p.left.split("/")[0] for p in sub.pairs if p.same] == ["P0", "P3", "P6"]
    assert subset_pairs(pairs, None) is pairs


def test_real_lfw_pairs_files(lfw_pairs_dir):
    view2 = read_pairs(lfw_pairs_dir / "pairs.txt")
    assert len(view2.pairs) == 6000 and view2.n_sets == 10
    folds = view2.folds
    for f in range(10):
        in_fold = folds == f
        assert in_fold.sum() == 600 and view2.same[in_fold].sum() == 300
    dev = read_pairs(lfw_pairs_dir / "pairsDevTest.txt")
    assert len(dev.pairs) == 1000 and int(dev.same.sum()) == 500 and dev.folds is None
    assert len(dev.image_paths()) == 1549
    assert np.all([p.line >= 2 for p in dev.pairs])
