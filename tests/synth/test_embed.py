"""The shared sentence-embedding helper (packaged all-MiniLM-L6-v2, offline) and diversity measures."""
from __future__ import annotations

import numpy as np
import pytest

from hybridtune.embed import default_embedder, embed, max_similarity_to, mean_pairwise_distance, vendi_score


def test_embeddings_are_normalised_and_semantic():
    X = embed(["I can't sleep at night.", "I lie awake for hours every night.", "The quarterly sales report is due."])
    assert X.shape == (3, 384) and np.allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-5)
    assert X[0] @ X[1] > X[0] @ X[2] + 0.2  # same topic is closer than a different one
    assert embed([]).shape == (0, 384)
    assert default_embedder() is default_embedder()  # loaded once per process


def test_diversity_measures():
    same = np.tile(np.eye(4)[0], (5, 1))
    ortho = np.eye(4)
    assert vendi_score(same) == pytest.approx(1.0) and mean_pairwise_distance(same) == pytest.approx(0.0)
    assert vendi_score(ortho) == pytest.approx(4.0) and mean_pairwise_distance(ortho) == pytest.approx(1.0)
    assert mean_pairwise_distance(ortho[:1]) == 0.0 and vendi_score(ortho[:0]) == 0.0
    assert list(max_similarity_to(ortho[:2], ortho[1:3])) == [0.0, 1.0]
