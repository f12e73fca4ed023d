"""A class's strategies by SpRAy (Lapuschkin et al. 2019): spectral clustering of its explanation maps.

The recipe, step by step:

1. **Normalise.** Each map is divided by the sum of its absolute values, so
   every image weighs the same whatever its score and the method's scale.
2. **Affinity.** A symmetric k-nearest-neighbour graph of the normalised maps
   (Euclidean distance, 0/1 edges, ``k = 10`` or fewer for tiny classes), as
   SpRAy uses: it follows the shape of the data, not a bandwidth.
3. **How many strategies.** The eigengap of the graph's normalised Laplacian:
   ``k`` is where the jump between consecutive smallest eigenvalues is largest
   (at most ``max_clusters``).
4. **Clusters.** scikit-learn's ``SpectralClustering`` on the precomputed
   affinity with that ``k`` (LOBPCG eigensolver, k-means labels); clusters are
   numbered by size, largest first.

Each cluster reports its members, its mean (normalised) map, prototypes (the
members nearest its centre) and ``relevance_box``: where its relevance lies,
the bounding box of the connected part, holding the peak, of the smallest set
of cells that holds half the mean map's positive relevance. A t-SNE embedding
of the maps (scikit-learn) is kept for drawing.

Example:
    >>> rng = np.random.default_rng(0)
    >>> maps = np.zeros((40, 8, 8), np.float32)
    >>> maps[:20, 1, 1] = 1; maps[20:, 6, 6] = 1  # two strategies: top left, bottom right
    >>> maps += rng.random(maps.shape, dtype=np.float32) * 0.05
    >>> result = class_strategies(maps, list(range(40)), embed=0)
    >>> result.eigengap.k, sorted(len(c.members) for c in result.clusters)
    (2, [20, 20])
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from cnnviz.zoo.core import CnnvizError

NEIGHBOURS = 10  # SpRAy's k-nearest-neighbour graph; fewer for classes of under 11 images
PROTOTYPES = 4
EMBED_LIMIT = 200  # t-SNE (Barnes-Hut, 300 iterations) costs ~0.5 s per 200 maps on one core; more: a seeded sample
TSNE_ITERATIONS = 300  # scikit-learn's 250 early-exaggeration iterations, then 50 to settle
DENSE_UP_TO = 100  # graphs up to this size get every Laplacian eigenvalue (numpy); larger ones only the few needed
# scikit-learn's spectral embedding by LOBPCG: 1.3 s for a 6,000-map class where ARPACK's shift-invert takes 43 s.
EIGEN_SOLVER = "lobpcg"
HALF = 0.5  # the share of positive relevance that defines where a map's relevance lies


@dataclass
class Cluster:
    """One strategy of a class: a cluster of its explanation maps.

    Attributes:
        id: the cluster's number in its class (0: the largest).
        members: the item ids of its images.
        mean_map: ``(h, w)`` mean of the members' normalised maps.
        prototypes: the ids of the members nearest the cluster's centre, nearest first.
        relevance_box: ``[x0, y0, x1, y1]``, fractions in [0, 1] of the width and
            height, where the mean map's relevance lies (see :func:`relevance_region`).
    """

    id: int
    members: list[Any]
    mean_map: np.ndarray
    prototypes: list[Any]
    relevance_box: list[float]

    def to_json(self) -> dict[str, Any]:
        """The cluster as JSON-ready data (the mean map as nested lists)."""
        return {"id": self.id, "members": list(self.members), "size": len(self.members),
                "mean_map": np.round(self.mean_map.astype(float), 6).tolist(),
                "prototypes": list(self.prototypes), "relevance_box": [round(v, 6) for v in self.relevance_box]}


@dataclass
class Eigengap:
    """The choice of the number of clusters: ``k`` and the smallest Laplacian eigenvalues it came from."""

    k: int
    eigenvalues: list[float]

    def to_json(self) -> dict[str, Any]:
        """``{"k": ..., "eigenvalues": [...]}``."""
        return {"k": self.k, "eigenvalues": [round(float(v), 8) for v in self.eigenvalues]}


@dataclass
class Embedding:
    """A 2-D t-SNE embedding of (a sample of) a class's maps: ``xy[i]`` is ``members[i]``, in ``cluster[i]``."""

    members: list[Any] = field(default_factory=list)
    xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    cluster: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Members, coordinates (nested lists) and cluster numbers."""
        return {"members": list(self.members), "xy": np.round(self.xy.astype(float), 4).tolist(),
                "cluster": list(self.cluster)}


@dataclass
class ClassStrategies:
    """SpRAy's result for one class: its clusters, the eigengap that sized them and an embedding.

    ``labels[i]`` is the cluster of the i-th map given, ``normalized`` the maps after step 1.
    """

    clusters: list[Cluster]
    eigengap: Eigengap
    embedding: Embedding
    labels: np.ndarray
    normalized: np.ndarray
    affinity: sparse.csr_matrix | None = None

    def to_json(self) -> dict[str, Any]:
        """Clusters, eigengap and embedding as JSON-ready data."""
        return {"clusters": [c.to_json() for c in self.clusters], "eigengap": self.eigengap.to_json(),
                "embedding": self.embedding.to_json()}


def normalize_maps(maps: np.ndarray) -> np.ndarray:
    """Each map divided by the sum of its absolute values (all-zero maps stay zero), as float32.

    Example:
        >>> normalize_maps(np.array([[[1.0, -3.0]]]))
        array([[[ 0.25, -0.75]]], dtype=float32)
    """
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3:
        raise CnnvizError(f"explanation maps must be (N, h, w), got shape {maps.shape}")
    if not np.isfinite(maps).all():
        raise CnnvizError("the explanation maps hold NaN or infinite values: check the method's output")
    total = np.abs(maps).sum(axis=(1, 2))
    return maps / np.where(total > 0, total, 1.0)[:, None, None]


def knn_affinity(vectors: np.ndarray, neighbours: int = NEIGHBOURS) -> sparse.csr_matrix:
    """The symmetric 0/1 k-nearest-neighbour graph of ``vectors`` ``(N, D)`` (an edge if either is among the
    other's ``neighbours`` nearest), as a sparse matrix.

    Example:
        >>> knn_affinity(np.array([[0.0], [0.1], [5.0], [5.1]]), neighbours=1).toarray().astype(int).tolist()
        [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]]
    """
    from sklearn.neighbors import kneighbors_graph

    k = min(neighbours, len(vectors) - 1)
    graph = kneighbors_graph(vectors, k, mode="connectivity", include_self=False)
    return graph.maximum(graph.T).tocsr()


def eigengap(affinity: sparse.spmatrix | np.ndarray, max_clusters: int = 8) -> Eigengap:
    """The number of clusters by the eigengap of the normalised graph Laplacian of ``affinity``.

    ``k`` maximises ``lambda_k - lambda_(k-1)`` over ``1 <= k <= max_clusters`` (eigenvalues ascending).

    Example:
        >>> blocks = sparse.block_diag([np.ones((3, 3))] * 2).toarray() - np.eye(6)  # two triangles
        >>> eigengap(blocks, max_clusters=4).k
        2
    """
    n = affinity.shape[0]
    count = min(max_clusters + 1, n)
    laplacian = csgraph.laplacian(sparse.csr_matrix(affinity, dtype=np.float64), normed=True)
    if n <= DENSE_UP_TO or count >= n - 1:
        values = np.linalg.eigvalsh(laplacian.toarray())[:count]
    else:
        from scipy.sparse.linalg import eigsh

        # The largest eigenvalues of 2I - L are the smallest of L: a far better-conditioned request for ARPACK.
        shifted = sparse.identity(n, format="csr") * 2.0 - laplacian
        top = eigsh(shifted, k=count, which="LA", v0=np.ones(n), return_eigenvectors=False)
        values = np.sort(2.0 - top)
    values = np.clip(values, 0.0, None)
    if len(values) < 2:
        return Eigengap(1, values.tolist())
    gaps = np.diff(values)[:max_clusters]
    return Eigengap(int(np.argmax(gaps)) + 1, values.tolist())


def spectral_labels(affinity: sparse.spmatrix | np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Cluster labels by scikit-learn's ``SpectralClustering`` on the precomputed ``affinity`` (all 0 when k is 1),
    its spectral embedding by LOBPCG."""
    n = affinity.shape[0]
    if k <= 1 or n <= k:
        return np.zeros(n, dtype=int) if k <= 1 else np.arange(n)
    from sklearn.cluster import SpectralClustering

    model = SpectralClustering(n_clusters=k, affinity="precomputed", random_state=seed, assign_labels="kmeans",
                               eigen_solver=EIGEN_SOLVER)
    with warnings.catch_warnings():  # separate strategies are separate graph components: expected, not a fault
        warnings.filterwarnings("ignore", message="Graph is not fully connected")
        return model.fit_predict(affinity)


def relevance_region(mean_map: np.ndarray, share: float = HALF) -> np.ndarray:
    """Where a map's relevance lies: the smallest set of cells holding ``share`` of its positive relevance.

    A boolean ``(h, w)`` mask (all False for a map with no positive relevance).

    Example:
        >>> relevance_region(np.array([[0.0, 6.0], [3.0, 1.0]])).astype(int).tolist()
        [[0, 1], [0, 0]]
    """
    positive = np.clip(np.asarray(mean_map, dtype=np.float64), 0.0, None)
    total = positive.sum()
    mask = np.zeros(positive.shape, dtype=bool)
    if total <= 0:
        return mask
    order = np.argsort(positive, axis=None)[::-1]
    cumulative = np.cumsum(positive.ravel()[order]) / total
    mask.ravel()[order[:int(np.searchsorted(cumulative, share - 1e-12)) + 1]] = True
    return mask


def relevance_box(mean_map: np.ndarray, share: float = HALF) -> list[float]:
    """``[x0, y0, x1, y1]`` (fractions of width and height) around the connected part of
    :func:`relevance_region` that holds the map's peak; the whole image when there is no positive relevance.

    Example:
        >>> grid = np.zeros((4, 4)); grid[0, 3] = 1.0
        >>> relevance_box(grid)
        [0.75, 0.0, 1.0, 0.25]
    """
    region = relevance_region(mean_map, share)
    h, w = region.shape
    if not region.any():
        return [0.0, 0.0, 1.0, 1.0]
    parts, _ = ndimage.label(region)
    peak = np.unravel_index(np.argmax(np.where(region, mean_map, -np.inf)), region.shape)
    ys, xs = np.nonzero(parts == parts[peak])
    return [float(xs.min() / w), float(ys.min() / h), float((xs.max() + 1) / w), float((ys.max() + 1) / h)]


def embed_strategies(result: ClassStrategies, ids: Sequence[Any], *, seed: int = 0,
                     limit: int = EMBED_LIMIT) -> Embedding:
    """The t-SNE embedding of a class's normalised maps (a seeded sample of at most ``limit``), stored on ``result``.

    :func:`class_strategies` calls it (``embed``); call it yourself after ``class_strategies(..., embed=0)`` to
    run the embedding as a step of its own.
    """
    vectors = result.normalized.reshape(len(result.normalized), -1)
    n = len(vectors)
    if limit <= 0 or n < 4:
        result.embedding = Embedding()
        return result.embedding
    chosen = np.sort(np.random.default_rng(seed).permutation(n)[:limit]) if n > limit else np.arange(n)
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, (len(chosen) - 1) / 3.0))
    xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
              max_iter=TSNE_ITERATIONS).fit_transform(vectors[chosen])
    result.embedding = Embedding([ids[i] for i in chosen], xy.astype(np.float32),
                                 [int(result.labels[i]) for i in chosen])
    return result.embedding


def class_strategies(maps: np.ndarray, ids: Sequence[Any], *, seed: int = 0, max_clusters: int = 8,
                     neighbours: int = NEIGHBOURS, prototypes: int = PROTOTYPES,
                     embed: int = EMBED_LIMIT) -> ClassStrategies:
    """SpRAy on one class: its explanation maps clustered into strategies (see the module docstring).

    Args:
        maps: ``(N, h, w)`` downsized explanation maps of the class's images (any sign, any scale).
        ids: the N item ids, in the same order.
        seed: seeds the spectral clustering's k-means and the t-SNE.
        max_clusters: the most clusters the eigengap may choose.
        neighbours: k of the k-nearest-neighbour affinity.
        prototypes: how many prototypes each cluster names.
        embed: the most maps the t-SNE embeds (a seeded sample beyond it); 0 skips the embedding (see
            :func:`embed_strategies`).

    Returns:
        The clusters (largest first), the eigengap, the embedding, each map's cluster and the normalised maps.
    """
    normalized = normalize_maps(maps)
    if len(ids) != len(normalized):
        raise CnnvizError(f"{len(normalized)} maps but {len(ids)} item ids: give one id per map")
    if max_clusters < 1:
        raise CnnvizError(f"max_clusters must be 1 or more, got {max_clusters}")
    n = len(normalized)
    if n == 0:
        return ClassStrategies([], Eigengap(0, []), Embedding(), np.zeros(0, int), normalized)
    vectors = normalized.reshape(n, -1)
    affinity = None
    if n < 3:
        gap, labels = Eigengap(1, []), np.zeros(n, dtype=int)
    else:
        affinity = knn_affinity(vectors, neighbours)
        gap = eigengap(affinity, max_clusters)
        labels = spectral_labels(affinity, gap.k, seed)
    # Number clusters by size (largest first), ties by first member, so the order does not depend on k-means' labels.
    found = sorted(set(labels.tolist()), key=lambda c: (-int((labels == c).sum()), int(np.argmax(labels == c))))
    renumber = {old: new for new, old in enumerate(found)}
    labels = np.array([renumber[c] for c in labels.tolist()], dtype=int)
    clusters = []
    for c in range(len(found)):
        index = np.flatnonzero(labels == c)
        centre = vectors[index].mean(0)
        nearest = index[np.argsort(((vectors[index] - centre) ** 2).sum(1), kind="stable")[:prototypes]]
        mean_map = normalized[index].mean(0)
        clusters.append(Cluster(c, [ids[i] for i in index], mean_map, [ids[i] for i in nearest],
                                [float(v) for v in relevance_box(mean_map)]))
    result = ClassStrategies(clusters, gap, Embedding(), labels, normalized, affinity)
    embed_strategies(result, ids, seed=seed, limit=embed)
    return result
