"""Santa (Strongly-related noisy text with audio): pull an audio embedding towards text space.

Memory (built once, `build_memory`):
  1. the M text embeddings are L2-normalised;
  2. noise is injected ONCE with a generator seeded by `cfg.seed`:
     entries = normalize(normalize(t) + eps), eps ~ N(0, sigma), so every entry is unit-norm.
     (The official MATS code re-noised the selected entries on every call, which made
     inference non-deterministic; here the memory is fixed and inference is a pure function.)
  3. Euclidean k-means (squared L2, NOT spherical) with K = min(cfg.k, M) centres: centroids
     are plain means of unit vectors and are NOT re-normalised (their norm is < 1). Entries
     are then assigned to their nearest centroid by squared L2 — the very rule used at
     inference — and clusters left empty are dropped, so every stored cluster has members.

Projection (`santa_project`, z the audio embedding, m_i the memory entries):
  - z is L2-normalised first if `cfg.normalize_audio` (the official code did not do this);
  - "full": cluster c = argmin_k ||z - c_k||^2; the L = min(cfg.top_l, |cluster c|) members
    with the smallest ||z - m_i||^2 (for unit-norm z this is the largest z.m_i, since the
    entries are unit-norm: ||z - m||^2 = |z|^2 - 2 z.m + 1);
    w = softmax(z.m_i / tau) over those L; out = (1 - lam) z + lam * sum_i w_i m_i;
  - "no_kmeans": the same with the L nearest entries of the whole memory;
  - "memory_only": the "full" selection with lam = 1 (DRCap style): out = sum_i w_i m_i;
  - "noise_only": out = z (the audio embedding alone, NoAudioCaptioning style);
  - finally out is L2-normalised if `cfg.normalize_output` (the mapper was trained on
    unit-norm noisy embeddings). Both flags act in every mode, including "noise_only".

The in-cluster lookup reads only the chosen cluster's entries (`ClusterIndex`: the entries
grouped by cluster, built once per memory on first use), about M / K rows instead of M: at the
paper's M = 20,000 and K = 100 it is several times faster than the "no_kmeans" scan
(benchmarks/latency.py prints both).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mats.config import SantaConfig, choices
from mats.devices import to_device
from mats.noise import inject_noise, l2_normalize


class SantaError(ValueError):
    """Bad input to Santa (shapes, config values) or an unreadable memory file."""


MODES: tuple[str, ...] = choices(SantaConfig, "mode")  # written once, in SantaConfig.mode
_KEYS = ("entries", "centroids", "assign")


@dataclass(eq=False)  # tensors have no single truth value; compare fields explicitly
class SantaMemory:
    """The noisy text memory and its k-means clustering.

    entries:   (M, D) float32, unit-norm noisy text embeddings.
    centroids: (K, D) float32, k-means centres (means of their members, not unit-norm).
    assign:    (M,) int64, cluster index of each entry; every cluster 0..K-1 is non-empty.
    texts:     the M texts the entries were embedded from, or None (models saved before the texts
               were kept): only `mats serve` reads them, to show what the audio was pulled towards.
    """

    entries: torch.Tensor
    centroids: torch.Tensor
    assign: torch.Tensor
    texts: list[str] | None = field(default=None, compare=False)
    # |m_i|^2, cached once: recomputing it per call cost more than the (B, M) matmul itself.
    entry_sq_norms: torch.Tensor = field(init=False, repr=False, compare=False)
    # The entries grouped by cluster, built on the first in-cluster lookup (`clusters`).
    _clusters: ClusterIndex | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _validate_memory(self.entries, self.centroids, self.assign)
        if self.texts is not None and len(self.texts) != self.entries.shape[0]:
            raise SantaError(f"memory has {self.entries.shape[0]} entries but {len(self.texts)} texts")
        self.entry_sq_norms = torch.einsum("md,md->m", self.entries, self.entries)  # (M,)

    @property
    def device(self) -> torch.device:
        return self.entries.device

    def to(self, device: torch.device | str) -> SantaMemory:
        """The memory on `device` (itself when it is there already): the lookup runs where the
        model runs. The squared norms are copied, not recomputed, so every device looks up with
        the same numbers."""
        device = torch.device(device)
        if self.device == device:
            return self
        moved = copy.copy(self)  # not validated again: the same tensors, checked once
        moved.entries, moved.centroids, moved.assign, moved.entry_sq_norms = (
            t.to(device) for t in (self.entries, self.centroids, self.assign, self.entry_sq_norms)
        )
        moved._clusters = None if self._clusters is None else self._clusters.to(device)
        return moved

    @property
    def clusters(self) -> ClusterIndex:
        """The entries grouped by cluster, for the in-cluster lookup; built once, on first use
        (a no_kmeans or noise_only model never pays for it)."""
        if self._clusters is None:
            self._clusters = ClusterIndex.build(self)
        return self._clusters

    @property
    def dim(self) -> int:
        return int(self.entries.shape[1])

    @property
    def size(self) -> int:
        return int(self.entries.shape[0])

    @property
    def num_clusters(self) -> int:
        return int(self.centroids.shape[0])


@dataclass(eq=False)
class ClusterIndex:
    """A memory's entries grouped by cluster, so that a lookup reads only the chosen cluster's
    members (contiguous rows) instead of scanning and masking all M entries.

    order:      (M,) int64, entry indices grouped by cluster, ascending within each cluster.
    entries:    (M, D) float32, memory.entries[order], contiguous (a cluster is a row range).
    sq_norms:   (M,) float32, memory.entry_sq_norms[order] (the same numbers, reordered).
    starts, sizes: (K,) int64, the row range of each cluster in `entries`; also as Python lists
                for slicing without a device sync.
    centroids, centroid_sq_norms: (K, D) and (K,) float32, for the nearest-centroid step.
    """

    order: torch.Tensor
    entries: torch.Tensor
    sq_norms: torch.Tensor
    starts: torch.Tensor
    sizes: torch.Tensor
    centroids: torch.Tensor
    centroid_sq_norms: torch.Tensor
    start_list: list[int]
    size_list: list[int]

    @classmethod
    def build(cls, memory: SantaMemory) -> ClusterIndex:
        k = memory.num_clusters
        order = torch.argsort(memory.assign, stable=True)  # (M,)
        sizes = torch.bincount(memory.assign, minlength=k)  # (K,) every cluster non-empty
        starts = torch.cumsum(sizes, 0) - sizes  # (K,)
        centroids = memory.centroids
        return cls(
            order=order,
            entries=memory.entries[order].contiguous(),
            sq_norms=memory.entry_sq_norms[order],
            starts=starts,
            sizes=sizes,
            centroids=centroids,
            centroid_sq_norms=(centroids * centroids).sum(-1),  # (K,) as nearest_centroid computes it
            start_list=starts.tolist(),
            size_list=sizes.tolist(),
        )

    def to(self, device: torch.device) -> ClusterIndex:
        moved = copy.copy(self)
        for name in ("order", "entries", "sq_norms", "starts", "sizes", "centroids", "centroid_sq_norms"):
            setattr(moved, name, getattr(self, name).to(device))
        return moved


def _validate_memory(entries: torch.Tensor, centroids: torch.Tensor, assign: torch.Tensor) -> None:
    for name, t in (("entries", entries), ("centroids", centroids), ("assign", assign)):
        if not isinstance(t, torch.Tensor):
            raise SantaError(f"memory {name} must be a torch.Tensor, got {type(t).__name__}")
    if entries.dim() != 2 or entries.shape[0] < 1:
        raise SantaError(f"memory entries must have shape (M>=1, D), got {tuple(entries.shape)}")
    if centroids.dim() != 2 or centroids.shape[0] < 1 or centroids.shape[1] != entries.shape[1]:
        raise SantaError(f"memory centroids must have shape (K>=1, {entries.shape[1]}), got {tuple(centroids.shape)}")
    if entries.dtype != torch.float32 or centroids.dtype != torch.float32:
        raise SantaError(f"memory entries/centroids must be float32, got {entries.dtype}/{centroids.dtype}")
    if assign.shape != (entries.shape[0],) or assign.dtype != torch.int64:
        raise SantaError(
            f"memory assign must be int64 of shape ({entries.shape[0]},), got {assign.dtype} {tuple(assign.shape)}"
        )
    k = centroids.shape[0]
    if int(assign.min()) < 0 or int(assign.max()) >= k:
        raise SantaError(f"memory assign values must lie in [0, {k}), got [{int(assign.min())}, {int(assign.max())}]")
    if torch.bincount(assign, minlength=k).min() == 0:
        raise SantaError("memory has an empty cluster (every centroid needs at least one entry)")


# --------------------------------------------------------------------------------------------
# save / load


def texts_path(path: str | Path) -> Path:
    """Where the memory's texts lie beside its safetensors file: santa.safetensors -> santa.texts.json."""
    path = Path(path)
    return path.with_name(path.stem + ".texts.json")


def save_memory(mem: SantaMemory, path: str | Path, dtype: torch.dtype = torch.float32) -> None:
    """Write the memory as a safetensors file with exactly the keys entries/centroids/assign,
    and its texts (when it has them) as a JSON list beside it (`texts_path`).

    `dtype=torch.float16` halves the file (for shipped models); loading always gives float32.
    """
    import json

    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {
        "entries": mem.entries.to("cpu", dtype).contiguous(),
        "centroids": mem.centroids.to("cpu", dtype).contiguous(),
        "assign": mem.assign.cpu().contiguous(),
    }
    # One metadata key: safetensors writes the metadata map in no fixed order, so two keys made
    # saves of one memory differ byte for byte (a reship then rewrote an unchanged 10 MB asset).
    save_file(tensors, str(path), metadata={"format": "mats-santa-memory/1"})
    if mem.texts is not None:
        texts_path(path).write_text(json.dumps(mem.texts, ensure_ascii=False))


def load_memory(path: str | Path) -> SantaMemory:
    """Read a memory written by `save_memory` (with its texts when they were saved).
    Missing/unexpected keys or bad shapes raise."""
    import json

    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise SantaError(f"Santa memory file not found: {path}")
    try:
        tensors = load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for corrupt headers
        raise SantaError(f"{path}: not a readable safetensors file ({err})") from None
    missing = sorted(set(_KEYS) - set(tensors))
    unexpected = sorted(set(tensors) - set(_KEYS))
    if missing or unexpected:
        raise SantaError(f"{path}: not a Santa memory (missing keys {missing}, unexpected keys {unexpected})")
    texts = None
    if texts_path(path).is_file():
        try:
            texts = json.loads(texts_path(path).read_text())
        except ValueError as err:
            raise SantaError(f"{texts_path(path)}: not a JSON list of texts ({err})") from None
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise SantaError(f"{texts_path(path)}: not a JSON list of texts")
    try:
        return SantaMemory(tensors["entries"].float(), tensors["centroids"].float(), tensors["assign"], texts)
    except SantaError as err:
        raise SantaError(f"{path}: {err}") from None


# --------------------------------------------------------------------------------------------
# build


def check_config(cfg: SantaConfig) -> None:
    """The one range check of Santa's settings (the ablation overrides are judged by it too)."""
    if cfg.mode not in MODES:
        raise SantaError(f"santa mode must be one of {list(MODES)}, got {cfg.mode!r}")
    for name in ("k", "top_l", "kmeans_iters"):
        if getattr(cfg, name) < 1:
            raise SantaError(f"santa {name} must be >= 1, got {getattr(cfg, name)}")
    if not cfg.tau > 0:
        raise SantaError(f"santa tau must be > 0, got {cfg.tau}")
    if not 0.0 <= cfg.lam <= 1.0:
        raise SantaError(f"santa lam must lie in [0, 1], got {cfg.lam}")


def kmeans_plus_plus(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k-means++ initial centres (Arthur & Vassilvitskii 2007) with a seeded numpy RNG.

    x (N, D) float32 -> (k, D) float32, k <= N distinct rows of x. Each new centre is drawn with
    probability proportional to the squared L2 distance to the nearest centre chosen so far;
    when every remaining point coincides with a centre, the next one is drawn uniformly among
    the rows not yet chosen.
    """
    n = x.shape[0]
    if not 1 <= k <= n:
        raise SantaError(f"k-means++ needs 1 <= k <= N, got k={k}, N={n}")
    rng = np.random.default_rng(seed)
    sq_norms = np.einsum("nd,nd->n", x, x).astype(np.float64)  # (N,)
    chosen = [int(rng.integers(n))]
    closest = np.full(n, np.inf)  # (N,) squared distance to the nearest chosen centre
    for _ in range(1, k):
        c = x[chosen[-1]]
        d2 = sq_norms - 2.0 * (x @ c).astype(np.float64) + float(c @ c)  # (N,)
        closest = np.minimum(closest, np.maximum(d2, 0.0))
        closest[chosen] = 0.0  # rounding must not let a chosen row be picked again
        total = closest.sum()
        if total > 0:
            nxt = int(rng.choice(n, p=closest / total))
        else:
            rest = np.setdiff1d(np.arange(n), np.asarray(chosen))
            nxt = int(rng.choice(rest))
        chosen.append(nxt)
    return np.ascontiguousarray(x[chosen], dtype=np.float32)


def _kmeans_faiss(x: np.ndarray, k: int, cfg: SantaConfig) -> np.ndarray:
    import faiss

    init = kmeans_plus_plus(x, k, cfg.seed)
    km = faiss.Kmeans(
        x.shape[1],
        k,
        niter=cfg.kmeans_iters,
        seed=cfg.seed,
        spherical=False,  # Euclidean k-means, matching the squared-L2 rule at inference
        min_points_per_centroid=1,  # small memories are fine: no warning, no refusal
        max_points_per_centroid=x.shape[0],  # never subsample the memory
        verbose=False,
    )
    km.train(x, init_centroids=init)
    return np.asarray(km.centroids, dtype=np.float32)


def _kmeans_sklearn(x: np.ndarray, k: int, cfg: SantaConfig) -> np.ndarray:
    from sklearn.cluster import KMeans

    km = KMeans(
        n_clusters=k,
        init="k-means++",
        n_init=1,
        max_iter=cfg.kmeans_iters,
        random_state=cfg.seed,
        algorithm="lloyd",
    )
    km.fit(x)
    return np.asarray(km.cluster_centers_, dtype=np.float32)


def nearest_centroid(
    x: torch.Tensor, centroids: torch.Tensor, centroid_sq_norms: torch.Tensor | None = None
) -> torch.Tensor:
    """Index of the nearest centroid by squared L2. (N, D), (K, D) -> (N,) int64.
    `centroid_sq_norms` (K,): |c_k|^2 when the caller has it cached (the same numbers)."""
    if centroid_sq_norms is None:
        centroid_sq_norms = (centroids * centroids).sum(-1)  # (K,)
    d2 = (x * x).sum(-1, keepdim=True) - 2.0 * x @ centroids.T + centroid_sq_norms  # (N, K)
    return d2.argmin(dim=-1)


def build_memory(text_emb: torch.Tensor, sigma: float, cfg: SantaConfig, texts: list[str] | None = None) -> SantaMemory:
    """Noisy text memory + k-means clustering; deterministic for a given cfg.seed.

    text_emb (M, D) raw or unit-norm text embeddings; sigma the noise VARIANCE (0 = no noise);
    texts the M texts embedded (kept with the memory, for explanations), or None.
    """
    check_config(cfg)
    if not isinstance(text_emb, torch.Tensor) or text_emb.dim() != 2 or text_emb.shape[0] < 1:
        got = tuple(text_emb.shape) if isinstance(text_emb, torch.Tensor) else type(text_emb)
        raise SantaError(f"text_emb must have shape (M>=1, D), got {got}")
    if not torch.isfinite(text_emb).all():
        raise SantaError("text_emb contains NaN or inf")
    if bool((text_emb.norm(dim=-1) == 0).any()):
        raise SantaError("text_emb has an all-zero row, which has no direction to normalise")
    # Built on the CPU wherever the model runs (the memory then moves with it, SantaMemory.to):
    # the noise comes from a seeded CPU generator and the k-means from faiss-cpu (what mats
    # depends on: one wheel for every machine; faiss's GPU builds are separate packages tied to a
    # CUDA version) or scikit-learn, so a seed gives the same memory on every machine. Building
    # one of 20,000 entries takes seconds, once per training run; the lookup runs on the device.
    gen = torch.Generator().manual_seed(int(cfg.seed))
    entries = inject_noise(text_emb.detach().float().cpu(), sigma, generator=gen)  # (M, D)
    return cluster_memory(entries, cfg, texts)


def cluster_memory(entries: torch.Tensor, cfg: SantaConfig, texts: list[str] | None = None) -> SantaMemory:
    """k-means over memory entries (M, D) as they are (no noise, no normalisation) into
    min(cfg.k, M) centres; also used to re-cluster a saved memory for another K."""
    check_config(cfg)
    m = entries.shape[0]
    k = min(cfg.k, m)
    x = entries.detach().float().cpu().numpy()
    if cfg.kmeans_backend == "faiss":
        centroids_np = _kmeans_faiss(x, k, cfg)
    elif cfg.kmeans_backend == "sklearn":
        centroids_np = _kmeans_sklearn(x, k, cfg)
    else:
        raise SantaError(f"unknown kmeans_backend {cfg.kmeans_backend!r}; use faiss or sklearn")
    centroids = torch.from_numpy(centroids_np.copy())  # (K, D)
    # Assign with the inference rule, then drop centres that own no entry, so every cluster
    # that the audio embedding can pick has members.
    assign = nearest_centroid(entries, centroids)  # (M,)
    used = torch.bincount(assign, minlength=k) > 0  # (K,)
    if not bool(used.all()):
        remap = torch.cumsum(used.long(), 0) - 1  # old index -> new index
        centroids = centroids[used]
        assign = remap[assign]
    return SantaMemory(entries.contiguous(), centroids.contiguous(), assign.long(), texts)


# --------------------------------------------------------------------------------------------
# projection


def santa_project(z: torch.Tensor, memory: SantaMemory | None, cfg: SantaConfig) -> torch.Tensor:
    """Santa-projected audio embeddings. z (B, D) -> (B, D) float32. See the module docstring.

    `memory` may be None only in mode "noise_only". The result is on the memory's device (the
    lookup runs there); without a memory, on z's.
    """
    check_config(cfg)
    if not isinstance(z, torch.Tensor) or z.dim() != 2 or not z.is_floating_point():
        got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise SantaError(f"audio embeddings must be a float tensor of shape (B, D), got {got}")
    z = z.detach().float()
    if memory is not None:
        z = to_device(z, memory.device)
    if cfg.normalize_audio:
        z = l2_normalize(z)  # (B, D)

    if cfg.mode == "noise_only":
        out = z
    else:
        if memory is None:
            raise SantaError(f"santa mode {cfg.mode!r} needs a memory, got None")
        if z.shape[1] != memory.dim:
            raise SantaError(f"audio embedding dim {z.shape[1]} does not match Santa memory dim {memory.dim}")
        idx, weights = select(z, memory, cfg)  # (B, L), (B, L)
        picked = memory.entries[idx]  # (B, L, D)
        recalled = (weights.unsqueeze(-1) * picked).sum(dim=1)  # (B, D)
        lam = 1.0 if cfg.mode == "memory_only" else float(cfg.lam)
        out = (1.0 - lam) * z + lam * recalled  # (B, D)

    if cfg.normalize_output:
        out = l2_normalize(out)
    return out


def select(z: torch.Tensor, memory: SantaMemory, cfg: SantaConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The L memory entries nearest to each z (within its cluster unless "no_kmeans") and their
    softmax(z.m / tau) weights. Rows with fewer than L candidates get zero weight on padding
    (a padding slot names a member of the row's cluster).
    z (B, D) as santa_project blends it (normalised first when cfg.normalize_audio).

    Returns the entries' indices (B, L) int64 and weights (B, L), L = min(cfg.top_l, M).
    """
    top_l = min(cfg.top_l, memory.size)
    if cfg.mode == "no_kmeans" or memory.device.type == "meta":
        return _select_scanning(z, memory, cfg, top_l)
    return _select_in_cluster(z, memory.clusters, top_l, cfg.tau)  # "full" and "memory_only"


def _select_scanning(
    z: torch.Tensor, memory: SantaMemory, cfg: SantaConfig, top_l: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """select() from the distances to all M entries; outside "no_kmeans" the entries of other
    clusters are masked out. The in-cluster modes take this path only on the meta device
    (shapes without data: the in-cluster lookup reads how large the chosen clusters are)."""
    dots = z @ memory.entries.T  # (B, M)
    d2 = (z * z).sum(-1, keepdim=True) - 2.0 * dots + memory.entry_sq_norms  # (B, M)
    if cfg.mode == "no_kmeans":
        _, idx = torch.topk(d2, top_l, dim=1, largest=False, sorted=True)  # (B, L)
        return idx, torch.softmax(torch.gather(dots, 1, idx) / cfg.tau, dim=1)  # (B, L) each
    allowed = memory.assign.unsqueeze(0) == nearest_centroid(z, memory.centroids).unsqueeze(1)  # (B, M)
    d2 = d2.masked_fill(~allowed, float("inf"))
    _, idx = torch.topk(d2, top_l, dim=1, largest=False, sorted=True)  # (B, L)
    valid = torch.gather(allowed, 1, idx)  # (B, L) False where the cluster had < L members
    logits = torch.gather(dots, 1, idx) / cfg.tau  # (B, L)
    return idx, torch.softmax(logits.masked_fill(~valid, float("-inf")), dim=1)


def _select_in_cluster(
    z: torch.Tensor, index: ClusterIndex, top_l: int, tau: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """select() within each row's nearest cluster, reading only that cluster's rows of
    `index.entries`: one (g, D) x (D, n) product per distinct cluster among the B rows, then the
    distances, top-L and softmax over a (B, S) table, S = max(L, the largest chosen cluster).
    The same selection and weights as scanning all M entries with the others masked out, to
    float rounding (a product over fewer columns may round its last bit differently)."""
    b = z.shape[0]
    cluster = nearest_centroid(z, index.centroids, index.centroid_sq_norms)  # (B,)
    perm = None
    if b > 1:  # rows of one cluster next to each other: each product reads a slice of z
        cluster, perm = torch.sort(cluster, stable=True)  # (B,), (B,)
        z = z[perm]
        chosen, counts = torch.unique_consecutive(cluster, return_counts=True)
        groups = list(zip(chosen.tolist(), counts.tolist()))  # (cluster, rows) in row order
    else:
        groups = [(int(cluster[0]), 1)]
    sizes = index.sizes[cluster]  # (B,)
    width = max(top_l, *(index.size_list[c] for c, _ in groups))  # S
    dots = z.new_zeros(b, width)  # (B, S), columns past a cluster's size are padding
    row = 0
    for c, count in groups:
        start, n = index.start_list[c], index.size_list[c]
        dots[row : row + count, :n] = z[row : row + count] @ index.entries[start : start + n].T  # (g, n)
        row += count
    pos = torch.arange(width, device=z.device)  # (S,)
    valid = pos < sizes.unsqueeze(1)  # (B, S)
    slot = index.starts[cluster].unsqueeze(1) + torch.minimum(pos, sizes.unsqueeze(1) - 1)  # (B, S) row in entries
    d2 = (z * z).sum(-1, keepdim=True) - 2.0 * dots + index.sq_norms[slot]  # (B, S)
    d2 = d2.masked_fill(~valid, float("inf"))
    _, top = torch.topk(d2, top_l, dim=1, largest=False, sorted=True)  # (B, L) columns
    idx = index.order[torch.gather(slot, 1, top)]  # (B, L) entry indices
    logits = torch.gather(dots, 1, top) / tau  # (B, L)
    weights = torch.softmax(logits.masked_fill(~torch.gather(valid, 1, top), float("-inf")), dim=1)  # (B, L)
    if perm is not None:  # back to the caller's row order
        inverse = torch.empty_like(perm)
        inverse[perm] = torch.arange(b, device=perm.device)
        idx, weights = idx[inverse], weights[inverse]
    return idx, weights


# --------------------------------------------------------------------------------------------
# diagnostics


def modality_gap(audio_emb: torch.Tensor, text_emb: torch.Tensor) -> dict[str, float]:
    """How far apart paired audio and text embeddings sit (both L2-normalised first).

    centroid_distance: || mean_i a_i - mean_i t_i ||_2, the gap between the modality centres
                       (Liang et al. 2022, "Mind the gap").
    paired_cosine:     mean_i cos(a_i, t_i).
    n:                 number of pairs.
    """
    for name, t in (("audio_emb", audio_emb), ("text_emb", text_emb)):
        if not isinstance(t, torch.Tensor) or t.dim() != 2 or not t.is_floating_point():
            raise SantaError(f"{name} must be a float tensor of shape (N, D)")
    if audio_emb.shape != text_emb.shape or audio_emb.shape[0] < 1:
        raise SantaError(
            f"audio_emb {tuple(audio_emb.shape)} and text_emb {tuple(text_emb.shape)} must be "
            "paired: same shape (N>=1, D)"
        )
    a = l2_normalize(audio_emb.detach().double().cpu())  # (N, D)
    t = l2_normalize(text_emb.detach().double().cpu())  # (N, D)
    return {
        "centroid_distance": float((a.mean(0) - t.mean(0)).norm()),
        "paired_cosine": float((a * t).sum(-1).mean()),
        "n": int(a.shape[0]),
    }
