"""A re-cluster's new clusters named with the old persons' ids, so ids and names survive.

Users hold on to person ids (links, names, the correction log), so a re-cluster
should hand each new cluster the id of the old person it mostly is. Clusters are
matched to old persons by how many faces they share — a maximum-overlap
one-to-one assignment: the Hungarian algorithm per connected block of the overlap
graph (blocks are small and independent), a greedy pass, biggest overlap first,
for a block too large for it. A cluster holding pinned faces (user-assigned, or
of a person a user merged) takes their person's id first; a cluster matched to
nothing gets a new id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

#: largest overlap block solved exactly (rows x columns)
HUNGARIAN_MAX_CELLS = 4_000_000


def match_by_overlap(
    overlaps: dict[tuple[int, str], int],
) -> dict[int, str]:
    """One-to-one cluster -> old person assignment maximising the shared faces."""
    if not overlaps:
        return {}
    labels = sorted({lab for lab, _ in overlaps})
    olds = sorted({old for _, old in overlaps})
    li = {lab: i for i, lab in enumerate(labels)}
    oi = {old: i for i, old in enumerate(olds)}
    rows = np.array([li[lab] for lab, _ in overlaps])
    cols = np.array([oi[old] for _, old in overlaps])
    vals = np.array(list(overlaps.values()), dtype=np.float64)
    nl, no = len(labels), len(olds)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols + nl)), shape=(nl + no, nl + no)).tocsr()
    _, block = connected_components(graph, directed=False)
    by_block: dict[int, list[int]] = {}
    for e, r in enumerate(rows.tolist()):
        by_block.setdefault(int(block[r]), []).append(e)
    out: dict[int, str] = {}
    for edges in by_block.values():
        r_ids = sorted({int(rows[e]) for e in edges})
        c_ids = sorted({int(cols[e]) for e in edges})
        if len(r_ids) == 1 or len(c_ids) == 1 or len(r_ids) * len(c_ids) <= HUNGARIAN_MAX_CELLS:
            rpos = {r: i for i, r in enumerate(r_ids)}
            cpos = {c: i for i, c in enumerate(c_ids)}
            dense = np.zeros((len(r_ids), len(c_ids)))
            for e in edges:
                dense[rpos[int(rows[e])], cpos[int(cols[e])]] = vals[e]
            chosen_r, chosen_c = linear_sum_assignment(dense, maximize=True)
            for a, b in zip(chosen_r.tolist(), chosen_c.tolist(), strict=True):
                if dense[a, b] > 0:
                    out[labels[r_ids[a]]] = olds[c_ids[b]]
        else:  # greedy, biggest overlap first
            taken_r: set[int] = set()
            taken_c: set[int] = set()
            for e in sorted(edges, key=lambda e: (-vals[e], int(rows[e]), int(cols[e]))):
                r, c = int(rows[e]), int(cols[e])
                if r not in taken_r and c not in taken_c:
                    taken_r.add(r)
                    taken_c.add(c)
                    out[labels[r]] = olds[c]
    return out


def person_ids_of_clusters(
    labels: Sequence[int],
    current_root: Sequence[str | None],
    fixed: npt.NDArray[np.int64],
    new_id: Callable[[], str],
) -> dict[int, str]:
    """Cluster label -> person id for every cluster (label >= 0).

    ``current_root[i]`` is face i's person (root) before the re-cluster, ``fixed[i]``
    >= 0 where face i is pinned to it: a cluster with pinned faces keeps the first
    pinned face's person; the others are matched by overlap among the persons left;
    the rest get ``new_id()``, in label order.
    """
    forced: dict[int, str] = {}
    for position in np.flatnonzero(fixed >= 0).tolist():
        root = current_root[position]
        assert root is not None
        forced.setdefault(labels[position], root)
    overlaps: dict[tuple[int, str], int] = {}
    taken = set(forced.values())
    for label, root in zip(labels, current_root, strict=True):
        if label < 0 or root is None or label in forced or root in taken:
            continue
        overlaps[(label, root)] = overlaps.get((label, root), 0) + 1
    mapping = {**match_by_overlap(overlaps), **forced}
    for label in sorted({lab for lab in labels if lab >= 0} - set(mapping)):
        mapping[label] = new_id()
    return mapping
