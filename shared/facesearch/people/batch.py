"""The density rule over a whole set of faces at once (re-cluster, width-guard splits).

The same definitions as :mod:`.rule` — links, core faces, the centroid test for
joins (a one-face side) and merges (both sides larger), the width guard,
cannot-link, protected persons — applied Kruskal-style: candidate unions between
core faces are taken **strongest link first**, so the result does not depend on
any arrival order (ties break by face position). Non-core faces then join the best
fitting person among their linked neighbours', best fits first, which is the batch
form of the incremental rule's "best fit wins" for two faces of one photo.

Inputs are plain arrays; person identities enter only as integer *codes*:
``fixed`` pins user-assigned faces together (one code per person), ``codes`` tags
faces of protected persons (named, user-confirmed or under a "distinct"
constraint) so that no union puts two exclusive persons, or a distinct pair, in
one component.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from facesearch.people.settings import PeopleSettings

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]
#: (vectors (n, d)) -> (neighbour positions (n, k), -1 padded; similarities (n, k))
KnnFunction = Callable[[FloatArray, int], tuple[IntArray, FloatArray]]


@dataclass(frozen=True)
class BatchFaces:
    embeddings: FloatArray  # (n, d) unit rows
    images: IntArray  # (n,) image code per face
    weights: npt.NDArray[np.float64]  # (n,) centroid weight per face
    fixed: IntArray | None = None  # (n,) person code of user-assigned faces, else -1
    codes: IntArray | None = None  # (n,) person code of faces of protected persons, else -1
    exclusive: frozenset[int] = frozenset()  # codes of which no two may share a component
    distinct: frozenset[tuple[int, int]] = field(default_factory=frozenset)  # (low, high)

    def __len__(self) -> int:
        return len(self.embeddings)


@dataclass(frozen=True)
class BatchResult:
    labels: IntArray  # component id (a member's position) or -1 = unassigned
    core: npt.NDArray[np.bool_]
    link_count: IntArray


def knn_exact(vectors: FloatArray, k: int, *, block: int = 1024) -> tuple[IntArray, FloatArray]:
    """Exact cosine k-NN of unit rows against themselves (self excluded)."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(x)
    k_eff = max(0, min(k, n - 1))
    idx = np.full((n, k), -1, dtype=np.int64)
    sims = np.full((n, k), -np.inf, dtype=np.float32)
    if k_eff == 0:
        return idx, sims
    for start in range(0, n, block):
        stop = min(n, start + block)
        s = x[start:stop] @ x.T
        s[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        part = np.argpartition(-s, k_eff - 1, axis=1)[:, :k_eff]
        part_sims = np.take_along_axis(s, part, axis=1)
        order = np.argsort(-part_sims, axis=1, kind="stable")
        idx[start:stop, :k_eff] = np.take_along_axis(part, order, axis=1)
        sims[start:stop, :k_eff] = np.take_along_axis(part_sims, order, axis=1)
    return idx, sims


class _Components:
    """Union-find with the statistics the guards need, kept for roots only."""

    def __init__(self, faces: BatchFaces, settings: PeopleSettings) -> None:
        n = len(faces)
        self.faces = faces
        self.settings = settings
        self.parent = list(range(n))
        self.size = [1] * n
        self.weight = faces.weights.astype(np.float64).tolist()
        self.sums: dict[int, npt.NDArray[np.float64]] = {}
        self.images: dict[int, set[int]] = {}
        self.codes: dict[int, set[int]] = {}
        codes = faces.codes if faces.codes is not None else None
        self._image = faces.images.tolist()
        if codes is not None:
            for i in np.flatnonzero(codes >= 0).tolist():
                self.codes[i] = {int(codes[i])}
        if faces.fixed is not None:
            for i in np.flatnonzero(faces.fixed >= 0).tolist():
                self.codes.setdefault(i, set()).add(int(faces.fixed[i]))

    def find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def sum_of(self, root: int) -> npt.NDArray[np.float64]:
        total = self.sums.get(root)
        if total is None:
            single: npt.NDArray[np.float64] = float(
                self.faces.weights[root]
            ) * self.faces.embeddings[root].astype(np.float64)
            return single
        return total

    def images_of(self, root: int) -> set[int]:
        found = self.images.get(root)
        return found if found is not None else {self._image[root]}

    def conflict(self, a: int, b: int) -> bool:
        """Protected persons that may not share a component."""
        ca, cb = self.codes.get(a), self.codes.get(b)
        if not ca or not cb:
            return False
        exclusive, distinct = self.faces.exclusive, self.faces.distinct
        for x in ca:
            for y in cb:
                if x == y:
                    continue
                if x in exclusive and y in exclusive:
                    return True
                if (min(x, y), max(x, y)) in distinct:
                    return True
        return False

    def allowed(self, a: int, b: int, *, forced: bool = False) -> bool:
        if forced:
            return True
        if self.conflict(a, b):
            return False
        if not self.images_of(a).isdisjoint(self.images_of(b)):
            return False
        sa, sb = self.sum_of(a), self.sum_of(b)
        na, nb = float(np.linalg.norm(sa)), float(np.linalg.norm(sb))
        if na == 0.0 or nb == 0.0:
            return False
        threshold = (
            self.settings.join_similarity
            if min(self.size[a], self.size[b]) == 1
            else self.settings.merge_similarity
        )
        if float(np.dot(sa, sb)) / (na * nb) < threshold:
            return False
        width = float(np.linalg.norm(sa + sb)) / (self.weight[a] + self.weight[b])
        return bool(width >= self.settings.width_min_similarity)

    def union(self, a: int, b: int) -> int:
        if self.size[a] < self.size[b]:
            a, b = b, a
        merged_sum = self.sum_of(a) + self.sum_of(b)
        images = self.images_of(a)
        other = self.images_of(b)
        if a not in self.images:
            images = set(images)
        images |= other
        self.parent[b] = a
        self.size[a] += self.size[b]
        self.weight[a] += self.weight[b]
        self.sums[a] = merged_sum
        self.sums.pop(b, None)
        self.images[a] = images
        self.images.pop(b, None)
        cb = self.codes.pop(b, None)
        if cb:
            self.codes.setdefault(a, set()).update(cb)
        return a


def cluster(
    faces: BatchFaces,
    neighbours: IntArray,
    similarities: FloatArray,
    settings: PeopleSettings,
) -> BatchResult:
    """Labels for every face; ``neighbours``/``similarities`` are its k-NN (self excluded)."""
    n = len(faces)
    if n == 0:
        return BatchResult(np.empty(0, np.int64), np.empty(0, bool), np.empty(0, np.int64))
    nb = np.asarray(neighbours, dtype=np.int64)
    sims = np.asarray(similarities, dtype=np.float32)
    rows = np.repeat(np.arange(n, dtype=np.int64), nb.shape[1]).reshape(nb.shape)
    valid = (nb >= 0) & (nb != rows)
    safe = np.where(valid, nb, 0)
    linked = valid & (sims >= settings.link_similarity) & (faces.images[safe] != faces.images[rows])
    link_count = linked.sum(axis=1).astype(np.int64)
    core = link_count + 1 >= settings.min_samples

    comps = _Components(faces, settings)
    # user-assigned faces of one person stay together, whatever their similarity
    if faces.fixed is not None:
        first: dict[int, int] = {}
        for i in np.flatnonzero(faces.fixed >= 0).tolist():
            code = int(faces.fixed[i])
            if code in first:
                ra, rb = comps.find(first[code]), comps.find(i)
                if ra != rb:
                    comps.union(ra, rb)
            else:
                first[code] = i
    fixed_root = np.zeros(n, dtype=bool)
    if faces.fixed is not None:
        fixed_root[faces.fixed >= 0] = True

    # core-core links, strongest first
    core_pair = linked & core[:, None] & core[safe]
    ei, ej, es = rows[core_pair], nb[core_pair], sims[core_pair]
    order = np.lexsort((np.minimum(ei, ej) * n + np.maximum(ei, ej), -es))
    for i, j in zip(ei[order].tolist(), ej[order].tolist(), strict=True):
        ra, rb = comps.find(i), comps.find(j)
        if ra != rb and comps.allowed(ra, rb):
            comps.union(ra, rb)

    is_person = np.zeros(n, dtype=bool)
    for i in np.flatnonzero(core | fixed_root).tolist():
        is_person[comps.find(i)] = True

    # borders: non-core faces alone, best fit first; a second pass lets faces whose
    # only links were borders follow them
    for _ in range(2):
        options: list[tuple[float, int, int]] = []
        for i in np.flatnonzero(~core).tolist():
            if comps.size[comps.find(i)] > 1 or fixed_root[i]:
                continue
            support: dict[int, int] = {}
            for j in nb[i][linked[i]].tolist():
                r = comps.find(j)
                if is_person[r]:
                    support[r] = support.get(r, 0) + 1
            x = faces.embeddings[i].astype(np.float64)
            for r, count in support.items():
                if count < settings.min_support:
                    continue
                total = comps.sum_of(r)
                similarity = float(np.dot(total, x)) / max(float(np.linalg.norm(total)), 1e-12)
                if similarity >= settings.join_similarity:
                    options.append((similarity, i, r))
        if not options:
            break
        options.sort(key=lambda o: (-o[0], o[1], o[2]))
        joined = 0
        for _similarity, i, r in options:
            ri, rr = comps.find(i), comps.find(r)
            if ri == rr or comps.size[ri] > 1:
                continue
            if comps.allowed(rr, ri):
                root = comps.union(rr, ri)
                is_person[root] = True
                joined += 1
        if not joined:
            break

    labels = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        r = comps.find(i)
        if is_person[r]:
            labels[i] = r
    return BatchResult(labels, core, link_count)
