"""Embedding validation and L2 normalisation, shared by writer and reader.

Everything in the index is unit length, so cosine similarity = inner product
and similarities are comparable across segments and dtypes.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from facesearch.errors import InvalidEmbedding

_MIN_NORM = 1e-12


def normalise(vectors: ArrayLike, *, dims: int | None = None) -> np.ndarray:
    """(n, d) float32 rows of length 1; a single vector becomes one row.

    One pass finds NaN/inf (they make the sum of squares non-finite), which
    matters on the query path; rows whose squares overflow float32 although
    every value is finite are re-summed in float64. A row is normalised the
    same way alone or in a batch (tested), so a query gives the same answer
    through ``search_one`` and ``search``.
    """
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise InvalidEmbedding(f"expected an (n, d) array of embeddings, got shape {arr.shape}")
    if dims is not None and arr.shape[1] != dims:
        raise InvalidEmbedding(f"expected {dims}-d embeddings, got {arr.shape[1]}-d")
    squares = np.einsum("ij,ij->i", arr, arr)
    if not np.isfinite(squares).all():
        if not np.isfinite(arr).all():
            raise InvalidEmbedding("embedding contains NaN or infinite values")
        squares = np.einsum("ij,ij->i", arr, arr, dtype=np.float64)
    norms = np.sqrt(squares)
    if (norms < _MIN_NORM).any():
        raise InvalidEmbedding("embedding has zero length; cannot normalise")
    out: np.ndarray = (arr / norms[:, None]).astype(np.float32, copy=False)
    return out
