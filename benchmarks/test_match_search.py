"""Search time of the app's 1:N match (toolkit.match.rank_people) vs gallery size and embedding dim.

Run: ``OPENBLAS_NUM_THREADS=1 .venv/bin/python -m pytest benchmarks/test_match_search.py
--benchmark-columns=min,median,mean,rounds``. On a busy machine, OpenBLAS's multi-threaded matrix-vector product
stalls on thread wake-ups (10k x 128: 12-24 ms instead of 0.3 ms), so benchmark single-threaded or on an idle machine.

One probe against N enrolled L2-normalised embeddings (5 per person): the cosine with every row, each person's
best row, the top 5 people. Embedding the probe is not included (see ``ftk match``'s "embed" time).
"""

from __future__ import annotations

import numpy as np
import pytest

from toolkit.match import rank_people

IMAGES_PER_PERSON = 5


def make_gallery(size: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(size, dim)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    person_starts = np.arange(0, size, IMAGES_PER_PERSON)
    query = embeddings[size // 2] + 0.05 * rng.normal(size=dim).astype(np.float32)
    return embeddings, person_starts, query / np.linalg.norm(query)


@pytest.mark.parametrize("dim", [128, 512])
@pytest.mark.parametrize("size", [100, 1_000, 10_000, 100_000])
def test_search_time(benchmark, size, dim):
    embeddings, starts, query = make_gallery(size, dim)
    benchmark.group = f"match search, dim {dim}"
    benchmark.extra_info.update(gallery_embeddings=size, dim=dim, people=len(starts))
    people, scores, rows = benchmark(rank_people, embeddings, starts, query, 5)
    # The noisy copy of row size//2 must be found: the benchmark times a search that works.
    assert rows[0] == size // 2 and people[0] == (size // 2) // IMAGES_PER_PERSON
    assert np.all(np.diff(scores) <= 0)
