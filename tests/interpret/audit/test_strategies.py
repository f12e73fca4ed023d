"""SpRAy strategies: the clustering is scikit-learn's on the same affinity; the eigengap finds planted blobs."""

import numpy as np
import pytest
from scipy import sparse
from sklearn.cluster import SpectralClustering
from sklearn.metrics import adjusted_rand_score

from cnnviz.interpret.audit.strategies import (
    class_strategies, eigengap, embed_strategies, knn_affinity, normalize_maps, relevance_box, relevance_region,
)
from cnnviz.zoo.core import CnnvizError


def blobs(sizes, side=10, seed=0):
    """Maps whose relevance sits on one of len(sizes) spots (a random place each), plus noise and random scale."""
    rng = np.random.default_rng(seed)
    spots = rng.choice(side * side, size=len(sizes), replace=False)
    maps, truth = [], []
    for label, (size, spot) in enumerate(zip(sizes, spots)):
        for _ in range(size):
            m = rng.normal(0, 0.05, (side, side))
            m.ravel()[spot] += 1.0
            maps.append(m * rng.uniform(0.1, 10.0))  # scale must not matter
            truth.append(label)
    return np.array(maps, np.float32), np.array(truth)


@pytest.mark.parametrize("sizes", [[30, 30], [25, 15, 40], [20, 20, 20, 20, 20], [80, 70, 50]])  # the last: sparse path
def test_the_eigengap_recovers_the_planted_number_of_strategies(sizes):
    maps, truth = blobs(sizes, seed=len(sizes))
    result = class_strategies(maps, list(range(len(maps))), embed=0)
    assert result.eigengap.k == len(sizes)
    assert adjusted_rand_score(truth, result.labels) == 1.0
    assert [len(c.members) for c in result.clusters] == sorted(sizes, reverse=True)


def test_the_clustering_equals_scikit_learns_on_the_same_affinity():
    maps, _ = blobs([20, 25, 15], seed=3)
    maps += np.random.default_rng(1).normal(0, 0.3, maps.shape).astype(np.float32)  # overlap: a non-trivial cut
    result = class_strategies(maps, list(range(len(maps))), seed=5, embed=0)
    affinity = knn_affinity(normalize_maps(maps).reshape(len(maps), -1))
    assert (abs(affinity - result.affinity)).sum() == 0
    oracle = SpectralClustering(n_clusters=result.eigengap.k, affinity="precomputed", random_state=5,
                                eigen_solver="lobpcg").fit_predict(affinity)
    assert adjusted_rand_score(oracle, result.labels) == 1.0


def test_the_eigengap_reads_the_laplacian_spectrum():
    graph = sparse.block_diag([np.ones((4, 4)) - np.eye(4)] * 3).tocsr()  # three separate cliques
    gap = eigengap(graph, max_clusters=6)
    assert gap.k == 3 and np.allclose(gap.eigenvalues[:3], 0, atol=1e-9) and gap.eigenvalues[3] > 0.5
    assert len(gap.eigenvalues) == 7
    ring = sparse.diags([1.0, 1.0], [1, -1], shape=(12, 12), dtype=float).tolil()
    ring[0, 11] = ring[11, 0] = 1
    laplacian_values = np.sort(2 - 2 * np.cos(2 * np.pi * np.arange(12) / 12)) / 2  # normalised ring, degree 2
    assert np.allclose(eigengap(ring.tocsr(), max_clusters=4).eigenvalues, laplacian_values[:5], atol=1e-9)


def test_clusters_report_mean_maps_prototypes_and_where_relevance_lies():
    maps, truth = blobs([12, 8], side=8, seed=4)
    ids = [f"img{i}.png" for i in range(len(maps))]
    result = class_strategies(maps, ids, embed=20)
    normalized = normalize_maps(maps)
    for cluster in result.clusters:
        index = [ids.index(m) for m in cluster.members]
        assert np.allclose(cluster.mean_map, normalized[index].mean(0), atol=1e-6)
        assert set(cluster.prototypes) <= set(cluster.members) and len(cluster.prototypes) == 4
        y, x = np.unravel_index(np.argmax(cluster.mean_map), (8, 8))
        x0, y0, x1, y1 = cluster.relevance_box
        assert x0 <= (x + 0.5) / 8 <= x1 and y0 <= (y + 0.5) / 8 <= y1 and (x1 - x0) * (y1 - y0) <= 4 / 64
    assert sorted(result.embedding.members) == sorted(ids) and result.embedding.xy.shape == (20, 2)
    assert set(embed_strategies(result, ids, limit=5).members) < set(ids)  # a sample, when the class is larger
    data = result.to_json()
    assert data["eigengap"]["k"] == 2 and len(data["clusters"][0]["mean_map"]) == 8


def test_relevance_region_is_the_smallest_set_holding_half():
    grid = np.array([[0.0, 1.0, 0.0], [4.0, -9.0, 2.0], [0.0, 0.0, 3.0]])  # positives sum to 10
    assert relevance_region(grid).sum() == 2  # 4 + 3 >= 5
    assert relevance_box(np.zeros((3, 3))) == [0.0, 0.0, 1.0, 1.0]


def test_small_and_bad_inputs():
    empty = class_strategies(np.zeros((0, 4, 4)), [])
    assert empty.clusters == [] and empty.eigengap.k == 0
    two = class_strategies(np.random.rand(2, 4, 4), ["a", "b"])
    assert len(two.clusters) == 1 and two.clusters[0].members == ["a", "b"]
    with pytest.raises(CnnvizError, match="ids"):
        class_strategies(np.zeros((3, 4, 4)), [1, 2])
    with pytest.raises(CnnvizError, match="NaN"):
        class_strategies(np.full((3, 4, 4), np.nan), [1, 2, 3])
    with pytest.raises(CnnvizError, match=r"\(N, h, w\)"):
        class_strategies(np.zeros((3, 16)), [1, 2, 3])


def test_large_classes_take_the_sparse_eigensolver_and_agree_with_the_dense_one():
    from scipy.sparse import csgraph

    rng = np.random.default_rng(2)
    points = np.concatenate([rng.normal(c, 1.0, (550, 6)) for c in (0.0, 2.0, 4.0)])  # overlapping: connected
    affinity = knn_affinity(points)
    dense = np.linalg.eigvalsh(csgraph.laplacian(affinity.astype(float), normed=True).toarray())[:5]
    gap = eigengap(affinity, max_clusters=4)  # 1650 nodes: ARPACK on 2I - L
    assert np.allclose(gap.eigenvalues, np.clip(dense, 0, None), atol=1e-6)
