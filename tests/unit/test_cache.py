"""``ftk cache``: what the cache holds per kind, and cleaning it only inside the cache root (toolkit.cache)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.unit.test_cli_flags import assert_usage_error, ftk
from toolkit.cache import cache_usage, clean_cache
from toolkit.errors import InputError

OLD = time.time() - 40 * 86400


def _file(path: Path, size: int, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A cache as ftk leaves it: detections (one old, one new), crops, a runtime venv (a folder), a user's
    benchmark_model, deploy state, and a folder that is not ftk's."""
    root = tmp_path / "cache"
    _file(root / "detections" / "old.jsonl", 1000, OLD)
    _file(root / "detections" / "new.jsonl", 500)
    _file(root / "crops" / "a.npz", 2048, OLD)
    _file(root / "runtimes" / "tensorflow-cpu-2.12.0-py311" / "lib" / "tf.so", 4096, OLD)
    _file(root / "runtimes" / "tensorflow-cpu-2.12.0-py311" / ".ftk-ready.json", 10, OLD)
    _file(root / "benchmark_model" / "arm64-v8a" / "benchmark_model", 300)
    _file(root / "state" / "deploy" / "journal.json", 20)
    _file(root / "someone-elses" / "data.bin", 64)
    monkeypatch.setenv("FTK_CACHE_DIR", str(root))
    return root


def test_usage_per_kind(cache):
    usage = cache_usage()
    by = {k.kind: k for k in usage.kinds}
    assert (by["detections"].entries, by["detections"].files, by["detections"].bytes) == (2, 2, 1500)
    assert (by["runtimes"].entries, by["runtimes"].files, by["runtimes"].bytes) == (1, 2, 4106)
    assert by["embeddings"].entries == 0 and by["kotlin"].bytes == 0
    assert by["detections"].oldest == pytest.approx(OLD, abs=2) and by["detections"].newest > OLD
    assert [o.kind for o in usage.other] == ["someone-elses"]  # state/ is neither a kind nor "other"
    assert usage.total_bytes == 1500 + 2048 + 4106 + 300 + 64


def test_clean_removes_what_ftk_can_make_again_and_nothing_else(cache):
    result = clean_cache()
    assert sorted(result.removed) == ["crops/a.npz", "detections/new.jsonl", "detections/old.jsonl",
                                      "runtimes/tensorflow-cpu-2.12.0-py311"]
    assert result.removed_bytes == 1500 + 2048 + 4106 and not result.errors
    assert (cache / "benchmark_model" / "arm64-v8a" / "benchmark_model").is_file()  # the user's binary
    assert (cache / "state" / "deploy" / "journal.json").is_file() and (cache / "someone-elses").is_dir()
    assert (cache / "detections").is_dir() and not any((cache / "detections").iterdir())
    assert clean_cache(("benchmark_model",)).removed == ["benchmark_model/arm64-v8a"]  # only when named


def test_older_than_keeps_recent_entries_whole(cache):
    # the venv's newest file is old; touching one file in it keeps the whole venv (its last use)
    dry = clean_cache(older_than_days=30, dry_run=True)
    assert sorted(dry.removed) == ["crops/a.npz", "detections/old.jsonl", "runtimes/tensorflow-cpu-2.12.0-py311"]
    assert dry.kept_newer == 1 and (cache / "crops" / "a.npz").is_file()  # a dry run removes nothing
    os.utime(cache / "runtimes" / "tensorflow-cpu-2.12.0-py311" / ".ftk-ready.json")
    result = clean_cache(("runtimes", "detections"), older_than_days=30)
    assert result.removed == ["detections/old.jsonl"] and result.kept_newer == 2
    assert (cache / "runtimes" / "tensorflow-cpu-2.12.0-py311" / "lib" / "tf.so").is_file()


def test_links_never_lead_the_clean_outside_the_root(cache, tmp_path):
    outside = tmp_path / "precious"
    _file(outside / "keep.txt", 10, OLD)
    (cache / "kotlin").symlink_to(outside)  # a kind folder that leads out: refused before anything is removed
    with pytest.raises(InputError, match="refusing to clean .*kotlin: it is a symbolic link"):
        clean_cache()
    assert (cache / "crops" / "a.npz").is_file() and (outside / "keep.txt").is_file()
    (cache / "kotlin").unlink()
    (cache / "crops" / "link.npz").symlink_to(outside / "keep.txt")  # a link entry: removed as a link
    (cache / "runtimes" / "tensorflow-cpu-2.12.0-py311" / "out").symlink_to(outside)  # a link inside a venv
    result = clean_cache()
    assert "crops/link.npz" in result.removed and not (cache / "crops" / "link.npz").exists()
    assert (outside / "keep.txt").is_file() and not (cache / "runtimes" / "tensorflow-cpu-2.12.0-py311").exists()


def test_an_unknown_kind_gets_a_did_you_mean(cache):
    with pytest.raises(InputError, match=r"unknown cache kind 'runtime' \(did you mean 'runtimes'\?\)"):
        clean_cache(("runtime",))


def test_cli_shows_and_cleans(cache):
    code, out, err = ftk("cache")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"cache: {cache} (FTK_CACHE_DIR moves it)"
    assert any(line.startswith("runtimes") and "4.0 KiB" in line for line in lines), out
    assert "never cleaned: state/" in out and "left alone: someone-elses" in out

    code, out, err = ftk("cache", "--json")
    data = json.loads(out)
    assert code == 0 and data["root"] == str(cache) and {k["kind"] for k in data["kinds"]} >= {"crops", "runtimes"}

    code, out, err = ftk("cache", "clean", "--dry-run", "--kind", "crops")
    assert code == 0 and out.splitlines() == ["  crops/a.npz", f"would remove 1 entry (2.0 KiB) from {cache}"]
    assert (cache / "crops" / "a.npz").is_file()
    code, out, err = ftk("cache", "clean", "--older-than", "30")
    assert code == 0 and out.startswith("removed 3 entries (7.0 KiB) from") and "kept 1 newer entry" in out
    code, _, err = ftk("cache", "clean", "--older-than", "-1")
    assert_usage_error(code, err, "--older-than")
