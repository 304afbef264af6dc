"""The re-cluster job's k-NN graph: the HNSW path agrees with the exact one."""

from __future__ import annotations

import numpy as np
import pytest

from facesearch.people import jobs
from facesearch.people.batch import knn_exact


def test_hnsw_knn_graph_matches_exact_on_a_small_set(monkeypatch: pytest.MonkeyPatch) -> None:
    # face-like data (identities with spread), as the re-cluster sees it; isotropic noise in
    # 32-d is HNSW's worst case and made the threaded build's recall vary run to run
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(40, 32))
    x = (np.repeat(centres, 10, axis=0) + 0.35 * rng.normal(size=(400, 32))).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    exact_ids, exact_sims = knn_exact(x, 5)
    monkeypatch.setattr(jobs, "EXACT_KNN_MAX_FACES", 0)
    ids, sims = jobs.knn_graph(x, 5)
    assert ids.shape == (400, 5) and sims.shape == (400, 5)
    assert not (ids == np.arange(400)[:, None]).any(), "a row is never its own neighbour"
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(ids, exact_ids, strict=True)])
    assert recall > 0.95
    top1 = np.isclose(sims[:, 0], exact_sims[:, 0], atol=1e-4)
    assert top1.mean() >= 0.99, f"nearest neighbour missed for {int((~top1).sum())} of 400"
