"""The stored golden set: the current code must reproduce its embeddings and distance matrix. Tests only read it;
regenerating is an explicit command (python -m toolkit.reference regenerate tiny-synthetic --overwrite)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from toolkit.errors import InputError, OutputExistsError
from toolkit.reference import (DEFAULT_TOLERANCE, FILES, TINY_SET, distance_matrix, list_reference_sets,
                               load_reference_set, reference_root, verify_reference_set, write_reference_set)


def test_stored_set_is_small_numpy_only_and_consistent():
    root = reference_root() / TINY_SET
    assert TINY_SET in list_reference_sets()
    assert sum(p.stat().st_size for p in root.iterdir()) < 1_000_000
    for name in ("inputs.npy", "embeddings.npy", "distances.npy"):
        np.load(root / name, allow_pickle=False)  # raises if anything needed pickle
    ref = load_reference_set(TINY_SET)  # checks every file's sha256 against the manifest
    assert ref.inputs.dtype == np.uint8 and ref.inputs.shape[1:] == (32, 32, 3)
    assert ref.embeddings.shape == (len(ref.inputs), ref.spec.embedding_dim)
    assert np.allclose(np.linalg.norm(ref.embeddings, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(distance_matrix(ref.embeddings), ref.distances, atol=1e-6)
    # Not a degenerate set: the faces are far apart in embedding space.
    off_diagonal = ref.distances[np.triu_indices(len(ref.distances), 1)]
    assert off_diagonal.min() > 0.2 and off_diagonal.max() > 1.0


def test_current_code_reproduces_golden_embeddings_and_distances():
    result = verify_reference_set(TINY_SET)
    assert result.passed, result
    assert result.max_embedding_diff <= DEFAULT_TOLERANCE["embeddings_atol"]
    assert result.max_distance_diff <= DEFAULT_TOLERANCE["distances_atol"]


def test_tampered_set_is_refused_and_drift_is_detected(tmp_path):
    copy = tmp_path / TINY_SET
    shutil.copytree(reference_root() / TINY_SET, copy)
    emb = np.load(copy / "embeddings.npy")
    np.save(copy / "embeddings.npy", emb + 1e-3)
    with pytest.raises(InputError, match="does not match its manifest sha256"):
        load_reference_set(TINY_SET, root=tmp_path)
    # The same change with a consistent manifest is loaded, but verify reports the drift.
    manifest = json.loads((copy / "manifest.json").read_text())
    from toolkit.io import sha256_file

    manifest["files"]["embeddings.npy"]["sha256"] = sha256_file(copy / "embeddings.npy")
    (copy / "manifest.json").write_text(json.dumps(manifest))
    result = verify_reference_set(TINY_SET, root=tmp_path)
    assert not result.passed and result.max_embedding_diff == pytest.approx(1e-3, rel=0.01)


def test_writing_a_set_elsewhere_and_refusing_to_overwrite(tmp_path):
    ref = load_reference_set(TINY_SET)
    dest = write_reference_set("copy", ref.checkpoint, ref.inputs[:4], description="test", root=tmp_path)
    assert sorted(p.name for p in dest.iterdir()) == sorted([*FILES, "manifest.json"])
    assert verify_reference_set("copy", root=tmp_path).passed
    np.testing.assert_allclose(np.load(dest / "embeddings.npy"), ref.embeddings[:4], atol=1e-6)
    with pytest.raises(OutputExistsError):
        write_reference_set("copy", ref.checkpoint, ref.inputs[:4], description="test", root=tmp_path)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folders left
