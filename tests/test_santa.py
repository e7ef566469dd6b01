import dataclasses

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from mats.config import SantaConfig
from mats.noise import inject_noise
from mats.santa import (
    SantaError,
    SantaMemory,
    build_memory,
    kmeans_plus_plus,
    load_memory,
    modality_gap,
    nearest_centroid,
    santa_project,
    save_memory,
    select,
)

M, D, K, L = 200, 16, 5, 7


def _clustered_text(m=M, d=D, topics=8, spread=0.6, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(topics, d, generator=g)
    which = torch.randint(0, topics, (m,), generator=g)
    return centres[which] + spread * torch.randn(m, d, generator=g)


@pytest.fixture(scope="module")
def memory():
    cfg = SantaConfig(k=K, top_l=L, seed=0, kmeans_backend="faiss")
    return build_memory(_clustered_text(), 0.015, cfg)


@pytest.fixture(scope="module")
def audio():
    # not unit-norm on purpose, so normalize_audio matters
    return 2.5 * torch.randn(24, D, generator=torch.Generator().manual_seed(42))


def reference_project(z, mem, cfg):
    """Santa written out per sample in numpy float64, straight from the formula."""
    entries = mem.entries.numpy().astype(np.float64)
    centroids = mem.centroids.numpy().astype(np.float64)
    assign = mem.assign.numpy()
    outs = []
    for zb in z.numpy().astype(np.float64):
        if cfg.normalize_audio:
            zb = zb / np.linalg.norm(zb)
        if cfg.mode == "noise_only":
            out = zb
        else:
            if cfg.mode == "no_kmeans":
                members = np.arange(len(entries))
            else:
                c = int(np.argmin(((centroids - zb) ** 2).sum(axis=1)))
                members = np.flatnonzero(assign == c)
            dist = ((entries[members] - zb) ** 2).sum(axis=1)
            top = min(cfg.top_l, len(members))
            chosen = members[np.argsort(dist, kind="stable")[:top]]
            logits = entries[chosen] @ zb / cfg.tau
            w = np.exp(logits - logits.max())
            w = w / w.sum()
            mix = (w[:, None] * entries[chosen]).sum(axis=0)
            lam = 1.0 if cfg.mode == "memory_only" else cfg.lam
            out = (1.0 - lam) * zb + lam * mix
        if cfg.normalize_output:
            out = out / np.linalg.norm(out)
        outs.append(out)
    return np.stack(outs)


@pytest.mark.parametrize("mode", ["full", "no_kmeans", "noise_only", "memory_only"])
@pytest.mark.parametrize("norm_audio", [True, False])
@pytest.mark.parametrize("norm_out", [True, False])
def test_project_matches_direct_formula(memory, audio, mode, norm_audio, norm_out):
    cfg = SantaConfig(
        mode=mode,
        k=K,
        top_l=L,
        tau=0.1,
        lam=0.3,
        normalize_audio=norm_audio,
        normalize_output=norm_out,
    )
    out = santa_project(audio, memory, cfg)
    assert out.shape == audio.shape and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), reference_project(audio, memory, cfg), atol=2e-5)
    if norm_out:
        assert torch.allclose(out.norm(dim=-1), torch.ones(len(audio)), atol=1e-5)


def test_project_handles_clusters_smaller_than_top_l(memory, audio):
    sizes = torch.bincount(memory.assign)
    top_l = int(sizes.max()) - 1  # bigger than the smallest cluster, smaller than the largest
    assert int(sizes.min()) < top_l
    for mode in ("full", "memory_only", "no_kmeans"):
        cfg = SantaConfig(mode=mode, k=K, top_l=top_l, tau=0.05, lam=0.6)
        out = santa_project(audio, memory, cfg)
        np.testing.assert_allclose(out.numpy(), reference_project(audio, memory, cfg), atol=2e-5)


def test_top_l_larger_than_memory(memory, audio):
    cfg = SantaConfig(mode="no_kmeans", top_l=10 * M, tau=0.2)
    out = santa_project(audio, memory, cfg)
    np.testing.assert_allclose(out.numpy(), reference_project(audio, memory, cfg), atol=2e-5)


def test_modes_differ_on_this_data(memory, audio):
    # guards the comparison above: the data must be such that the modes disagree
    outs = {
        m: santa_project(audio, memory, SantaConfig(mode=m, top_l=L))
        for m in ("full", "no_kmeans", "noise_only", "memory_only")
    }
    assert not torch.allclose(outs["full"], outs["no_kmeans"], atol=1e-4)
    assert not torch.allclose(outs["full"], outs["noise_only"], atol=1e-4)
    assert not torch.allclose(outs["full"], outs["memory_only"], atol=1e-4)


def test_memory_only_equals_full_with_lambda_one(memory, audio):
    a = santa_project(audio, memory, SantaConfig(mode="memory_only", top_l=L, lam=0.3))
    b = santa_project(audio, memory, SantaConfig(mode="full", top_l=L, lam=1.0))
    assert torch.equal(a, b)


def test_noise_only_needs_no_memory_and_other_modes_do(audio):
    out = santa_project(audio, None, SantaConfig(mode="noise_only"))
    assert torch.allclose(out, audio / audio.norm(dim=-1, keepdim=True), atol=1e-6)
    with pytest.raises(SantaError, match="memory"):
        santa_project(audio, None, SantaConfig(mode="full"))


def test_project_rejects_bad_input(memory, audio):
    with pytest.raises(SantaError, match="dim"):
        santa_project(torch.randn(3, D + 1), memory, SantaConfig())
    with pytest.raises(SantaError, match="shape"):
        santa_project(torch.randn(D), memory, SantaConfig())
    with pytest.raises(SantaError, match="tau"):
        santa_project(audio, memory, SantaConfig(tau=0.0))
    with pytest.raises(SantaError, match="lam"):
        santa_project(audio, memory, SantaConfig(lam=1.5))
    with pytest.raises(SantaError, match="mode"):
        santa_project(audio, memory, SantaConfig(mode="bogus"))


# ---------------------------------------------------------------- select: the in-cluster lookup


def masked_scan_select(z, mem, cfg):
    """select() as it was before the cluster index: all M distances, the other clusters masked
    out. The reference the lookup must agree with."""
    dots = z @ mem.entries.T  # (B, M)
    d2 = (z * z).sum(-1, keepdim=True) - 2.0 * dots + mem.entry_sq_norms
    if cfg.mode == "no_kmeans":
        allowed = torch.ones_like(d2, dtype=torch.bool)
    else:
        allowed = mem.assign.unsqueeze(0) == nearest_centroid(z, mem.centroids).unsqueeze(1)
    d2 = d2.masked_fill(~allowed, float("inf"))
    _, idx = torch.topk(d2, min(cfg.top_l, mem.size), dim=1, largest=False, sorted=True)
    logits = (torch.gather(dots, 1, idx) / cfg.tau).masked_fill(~torch.gather(allowed, 1, idx), float("-inf"))
    return idx, torch.softmax(logits, dim=1)


def _random_memory(m, d, k, seed, duplicates=1):
    g = torch.Generator().manual_seed(seed)
    text = torch.randn(m // duplicates, d, generator=g).repeat_interleave(duplicates, dim=0)  # (M, D)
    return build_memory(text, 0.0, SantaConfig(k=k, seed=seed))


def _assert_same_selection(new, ref, z, mem, gap=1e-5):
    """Same weights (to float rounding: a product over fewer columns may round its last bit
    otherwise) and the same entries in the same order, except where two candidates lie within
    `gap` of each other (rounding may then swap them); padding has weight 0 in both."""
    (idx, w), (ref_idx, ref_w) = new, ref
    assert idx.shape == ref_idx.shape and w.shape == ref_w.shape
    torch.testing.assert_close(w, ref_w, rtol=1e-5, atol=1e-7)
    assert torch.equal(w > 0, ref_w > 0)
    d2 = torch.cdist(z.double(), mem.entries.double()) ** 2  # (B, M)
    ref_d2 = torch.gather(d2, 1, ref_idx)  # (B, L)
    # a candidate is near a tie when another entry lies within `gap` of it (inside the list or not)
    near = ((d2.unsqueeze(1) - ref_d2.unsqueeze(2)).abs() < gap).sum(-1) > 1  # (B, L)
    real = ref_w > 0
    assert torch.equal(idx[real & ~near], ref_idx[real & ~near])
    # tied candidates are interchangeable: the same distances either way
    torch.testing.assert_close(torch.gather(d2, 1, idx)[real], ref_d2[real], rtol=0, atol=gap)


@pytest.mark.parametrize(
    ("m", "d", "k", "top_l"),
    [(3000, 64, 30, 32), (400, 16, 40, 32), (200, 8, 9, 300), (50, 4, 1, 8), (1, 4, 1, 32)],
)
@pytest.mark.parametrize("mode", ["full", "memory_only", "no_kmeans"])
def test_select_matches_the_masked_scan(m, d, k, top_l, mode):
    """Clusters larger and smaller than L, L larger than M, one cluster, one entry; batch 1 and
    batches whose rows share clusters."""
    mem = _random_memory(m, d, k, seed=m)
    cfg = SantaConfig(mode=mode, k=k, top_l=top_l, tau=0.1)
    g = torch.Generator().manual_seed(1)
    for b in (1, 2, 33):
        z = torch.nn.functional.normalize(torch.randn(b, d, generator=g), dim=-1)
        new, ref = select(z, mem, cfg), masked_scan_select(z, mem, cfg)
        if mode == "no_kmeans":  # the scan itself: the very same numbers
            assert torch.equal(new[0], ref[0]) and torch.equal(new[1], ref[1])
        else:
            _assert_same_selection(new, ref, z, mem)
            # every index names a member of the row's cluster (padding too)
            clusters = nearest_centroid(z, mem.centroids)
            assert torch.equal(mem.assign[new[0]], clusters.unsqueeze(1).expand_as(new[0]))


def test_select_with_tied_entries():
    """Each text three times over (no noise): the L nearest include exact ties, which either
    implementation may order its own way; the weights and the blended embedding agree."""
    mem = _random_memory(900, 16, 12, seed=3, duplicates=3)
    cfg = SantaConfig(mode="full", k=12, top_l=L, tau=0.1, lam=0.5)
    z = torch.nn.functional.normalize(torch.randn(40, 16, generator=torch.Generator().manual_seed(4)), dim=-1)
    (idx, w), (ref_idx, ref_w) = select(z, mem, cfg), masked_scan_select(z, mem, cfg)
    _assert_same_selection((idx, w), (ref_idx, ref_w), z, mem)
    torch.testing.assert_close(mem.entries[idx], mem.entries[ref_idx], rtol=0, atol=0)  # ties: equal vectors
    blended = (w.unsqueeze(-1) * mem.entries[idx]).sum(1)
    torch.testing.assert_close(blended, (ref_w.unsqueeze(-1) * mem.entries[ref_idx]).sum(1), rtol=1e-5, atol=1e-6)


def test_select_rows_do_not_depend_on_the_batch(memory, audio):
    cfg = SantaConfig(mode="full", k=K, top_l=L)
    z = torch.nn.functional.normalize(audio, dim=-1)
    idx, w = select(z, memory, cfg)
    for i in (0, 5, 23):
        one_idx, one_w = select(z[i : i + 1], memory, cfg)
        assert torch.equal(one_idx[0], idx[i])
        torch.testing.assert_close(one_w[0], w[i], rtol=1e-5, atol=1e-7)


def test_cluster_index_groups_the_entries(memory):
    index = memory.clusters
    assert index is memory.clusters  # built once
    assert sorted(index.order.tolist()) == list(range(memory.size))
    for c, (start, size) in enumerate(zip(index.start_list, index.size_list)):
        rows = index.order[start : start + size]
        assert torch.equal(rows, torch.nonzero(memory.assign == c).squeeze(1))  # ascending members
        assert torch.equal(index.entries[start : start + size], memory.entries[rows])
    moved = memory.to("meta")
    assert moved.clusters.entries.device.type == "meta" and memory.clusters.entries.device.type == "cpu"


# ---------------------------------------------------------------- build


def test_build_entries_are_text_noised_once_with_seed():
    text = _clustered_text()
    cfg = SantaConfig(k=K, seed=3)
    mem = build_memory(text, 0.015, cfg)
    expected = inject_noise(text, 0.015, torch.Generator().manual_seed(3))
    assert torch.allclose(mem.entries, expected, atol=1e-6)
    assert torch.allclose(mem.entries.norm(dim=-1), torch.ones(M), atol=1e-5)
    assert mem.entries.dtype == torch.float32 and mem.assign.dtype == torch.int64
    # noise was really added: the entries are not just the normalised text
    unit = text / text.norm(dim=-1, keepdim=True)
    assert (mem.entries - unit).abs().max() > 0.05


@pytest.mark.parametrize("backend", ["faiss", "sklearn"])
def test_build_is_deterministic_per_seed(backend):
    text = _clustered_text()
    a = build_memory(text, 0.015, SantaConfig(k=K, seed=1, kmeans_backend=backend))
    b = build_memory(text, 0.015, SantaConfig(k=K, seed=1, kmeans_backend=backend))
    c = build_memory(text, 0.015, SantaConfig(k=K, seed=2, kmeans_backend=backend))
    for f in ("entries", "centroids", "assign"):
        assert torch.equal(getattr(a, f), getattr(b, f)), f
    assert not torch.allclose(a.entries, c.entries)


def _blobs(n_per=40, k=5, d=D, seed=0):
    """k tight, far-apart blobs (on the sphere after normalisation)."""
    g = torch.Generator().manual_seed(seed)
    centres = 10.0 * torch.eye(d)[:k]
    labels = torch.arange(k).repeat_interleave(n_per)
    return centres[labels] + 0.3 * torch.randn(len(labels), d, generator=g), labels


@pytest.mark.parametrize("backend", ["faiss", "sklearn"])
def test_clustering_is_valid(backend):
    x, labels = _blobs()
    mem = build_memory(x, 0.002, SantaConfig(k=5, seed=0, kmeans_backend=backend, kmeans_iters=50))
    e = mem.entries.numpy().astype(np.float64)
    c = mem.centroids.numpy().astype(np.float64)
    a = mem.assign.numpy()
    # every entry is assigned to its nearest centroid (squared L2), computed by brute force
    d2 = ((e[:, None, :] - c[None, :, :]) ** 2).sum(-1)
    np.testing.assert_array_equal(a, d2.argmin(axis=1))
    # centroids are the means of their members (converged Lloyd)
    for j in range(mem.num_clusters):
        np.testing.assert_allclose(c[j], e[a == j].mean(axis=0), atol=1e-4)
    # and the five blobs are recovered exactly (k-means++ seeding does not get stuck)
    assert mem.num_clusters == 5
    for j in range(5):
        assert len(set(labels[torch.from_numpy(a == j)].tolist())) == 1


def test_k_is_capped_by_memory_size_and_empty_clusters_dropped():
    x = torch.randn(3, D)
    mem = build_memory(x, 0.0, SantaConfig(k=100))
    assert mem.num_clusters <= 3
    assert torch.bincount(mem.assign, minlength=mem.num_clusters).min() >= 1
    # duplicated rows: k-means cannot fill 4 clusters with 2 distinct points
    dup = torch.cat([torch.ones(5, D), -torch.ones(5, D)])
    mem = build_memory(dup, 0.0, SantaConfig(k=4))
    assert mem.num_clusters == 2
    assert torch.bincount(mem.assign).min() >= 1


def test_kmeans_plus_plus_picks_distinct_rows_deterministically():
    x, _ = _blobs()
    xn = x.numpy()
    a = kmeans_plus_plus(xn, 5, seed=0)
    b = kmeans_plus_plus(xn, 5, seed=0)
    np.testing.assert_array_equal(a, b)
    # each centre is a row of x, and the five come from five different blobs
    rows = [int(np.flatnonzero((xn == r).all(axis=1))[0]) for r in a]
    assert len({r // 40 for r in rows}) == 5
    with pytest.raises(SantaError):
        kmeans_plus_plus(xn, len(xn) + 1, seed=0)


def test_build_rejects_bad_input():
    with pytest.raises(SantaError):
        build_memory(torch.randn(D), 0.01, SantaConfig())
    with pytest.raises(SantaError, match="NaN"):
        build_memory(torch.full((4, D), float("nan")), 0.01, SantaConfig())
    with pytest.raises(SantaError, match="zero row"):
        build_memory(torch.cat([torch.randn(3, D), torch.zeros(1, D)]), 0.01, SantaConfig())
    with pytest.raises(ValueError, match="sigma"):
        build_memory(torch.randn(10, D), -1.0, SantaConfig())
    with pytest.raises(SantaError, match="backend"):
        build_memory(torch.randn(10, D), 0.01, SantaConfig(kmeans_backend="annoy"))


# ---------------------------------------------------------------- save / load


def test_save_load_round_trip(memory, audio, tmp_path):
    path = tmp_path / "sub" / "memory.safetensors"
    save_memory(memory, path)
    loaded = load_memory(path)
    for f in ("entries", "centroids", "assign"):
        assert torch.equal(getattr(loaded, f), getattr(memory, f)), f
    cfg = SantaConfig(top_l=L)
    assert torch.equal(santa_project(audio, loaded, cfg), santa_project(audio, memory, cfg))


def test_saving_one_memory_gives_the_same_bytes(memory, tmp_path):
    # A reship of an unchanged model must not rewrite its memory file.
    paths = [tmp_path / f"m{i}.safetensors" for i in range(8)]
    for p in paths:
        save_memory(memory, p, dtype=torch.float16)
    assert len({p.read_bytes() for p in paths}) == 1


def test_load_rejects_bad_files(memory, tmp_path):
    with pytest.raises(SantaError, match="not found"):
        load_memory(tmp_path / "nope.safetensors")

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(SantaError, match="safetensors"):
        load_memory(garbage)

    good = tmp_path / "good.safetensors"
    save_memory(memory, good)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(SantaError):
        load_memory(truncated)

    missing = tmp_path / "missing.safetensors"
    save_file({"entries": memory.entries, "centroids": memory.centroids}, str(missing))
    with pytest.raises(SantaError, match="missing keys \\['assign'\\]"):
        load_memory(missing)

    extra = tmp_path / "extra.safetensors"
    save_file(
        {"entries": memory.entries, "centroids": memory.centroids, "assign": memory.assign, "bias": torch.zeros(1)},
        str(extra),
    )
    with pytest.raises(SantaError, match="unexpected keys \\['bias'\\]"):
        load_memory(extra)

    bad_shape = tmp_path / "bad_shape.safetensors"
    save_file(
        {"entries": memory.entries, "centroids": memory.centroids, "assign": memory.assign[:-1].contiguous()},
        str(bad_shape),
    )
    with pytest.raises(SantaError, match="assign"):
        load_memory(bad_shape)


def test_memory_validation():
    e = torch.nn.functional.normalize(torch.randn(6, 4), dim=-1)
    with pytest.raises(SantaError, match="empty cluster"):
        SantaMemory(e, torch.zeros(3, 4), torch.tensor([0, 0, 1, 1, 0, 1]))
    with pytest.raises(SantaError, match=r"\[0, 2\)"):
        SantaMemory(e, torch.zeros(2, 4), torch.tensor([0, 0, 1, 1, 0, 2]))
    with pytest.raises(SantaError, match="centroids"):
        SantaMemory(e, torch.zeros(2, 5), torch.tensor([0, 0, 1, 1, 0, 1]))
    assert dataclasses.is_dataclass(SantaMemory)


# ---------------------------------------------------------------- modality gap


def test_modality_gap_direct_computation():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(50, D, generator=g)
    a = t + 0.5 * torch.randn(50, D, generator=g) + 2.0  # shifted: a real gap
    gap = modality_gap(a, t)
    an = a.numpy() / np.linalg.norm(a.numpy(), axis=1, keepdims=True)
    tn = t.numpy() / np.linalg.norm(t.numpy(), axis=1, keepdims=True)
    assert gap["n"] == 50
    assert gap["centroid_distance"] == pytest.approx(np.linalg.norm(an.mean(0) - tn.mean(0)), rel=1e-5)
    assert gap["paired_cosine"] == pytest.approx(np.mean((an * tn).sum(1)), rel=1e-5)
    same = modality_gap(3.0 * t, t)
    assert same["centroid_distance"] == pytest.approx(0.0, abs=1e-6)
    assert same["paired_cosine"] == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(SantaError, match="paired"):
        modality_gap(a, t[:10])
