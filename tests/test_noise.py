import math

import numpy as np
import pytest
import torch

from mats.noise import (
    NoiseError,
    estimate_sigma,
    gaussian_noise,
    inject_noise,
    inject_noise_keyed,
    keyed_gaussian_noise,
    l2_normalize,
    noise_seed,
)


def _emb(b=8, d=32, seed=0, scale=3.0):
    return torch.randn(b, d, generator=torch.Generator().manual_seed(seed)) * scale


def test_l2_normalize_unit_rows_and_zero_row_stays_zero():
    x = _emb()
    x[3] = 0.0
    y = l2_normalize(x)
    norms = y.norm(dim=-1)
    assert torch.allclose(norms[[0, 1, 2, 4, 5, 6, 7]], torch.ones(7), atol=1e-6)
    assert torch.equal(y[3], torch.zeros(32))
    # direction kept
    assert torch.allclose(y[0] * x[0].norm(), x[0], atol=1e-5)


def test_inject_noise_is_normalize_of_unit_plus_gaussian():
    e = _emb()
    sigma = 0.015
    out = inject_noise(e, sigma, torch.Generator().manual_seed(7))
    eps = gaussian_noise(e.shape, sigma, torch.Generator().manual_seed(7))
    unit = e / e.norm(dim=-1, keepdim=True)
    expected = (unit + eps) / (unit + eps).norm(dim=-1, keepdim=True)
    assert out.shape == e.shape and out.dtype == torch.float32
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(out.norm(dim=-1), torch.ones(len(e)), atol=1e-5)
    assert not torch.allclose(out, unit, atol=1e-3)  # the noise did something


def test_gaussian_noise_std_is_sqrt_of_variance():
    sigma = 0.015
    eps = gaussian_noise((400, 512), sigma, torch.Generator().manual_seed(1))
    assert abs(eps.std().item() - math.sqrt(sigma)) < 0.01 * math.sqrt(sigma)
    assert abs(eps.mean().item()) < 0.01 * math.sqrt(sigma)


def test_perturbation_before_renormalisation_has_std_sqrt_sigma():
    # Recover eps from the output: out * |unit + eps| = unit + eps. Since out is unit + eps
    # rescaled, eps = out * s - unit where s is the scale that reproduces unit's component.
    e = _emb(b=300, d=512, seed=3)
    sigma = 0.04
    out = inject_noise(e, sigma, torch.Generator().manual_seed(5))
    eps = gaussian_noise(e.shape, sigma, torch.Generator().manual_seed(5))
    unit = l2_normalize(e)
    scale = (unit + eps).norm(dim=-1, keepdim=True)
    recovered = out * scale - unit
    assert torch.allclose(recovered, eps, atol=1e-5)
    assert abs(recovered.std().item() - math.sqrt(sigma)) < 0.01 * math.sqrt(sigma)


def test_sigma_zero_is_plain_normalisation_and_draws_nothing():
    e = _emb()
    g = torch.Generator().manual_seed(11)
    state = g.get_state().clone()
    out = inject_noise(e, 0.0, g)
    assert torch.equal(out, l2_normalize(e))
    assert torch.equal(g.get_state(), state)
    keyed = inject_noise_keyed(e, 0.0, seed=0, step=0, keys=torch.arange(len(e)))
    assert torch.equal(keyed, l2_normalize(e))


@pytest.mark.parametrize("sigma", [-0.01, float("nan"), float("inf")])
def test_bad_sigma_raises(sigma):
    with pytest.raises(ValueError, match="sigma"):
        inject_noise(_emb(), sigma)
    with pytest.raises(ValueError, match="sigma"):
        inject_noise_keyed(_emb(), sigma, seed=0, step=0, keys=torch.arange(8))


def test_bad_shapes_raise():
    with pytest.raises(NoiseError):
        inject_noise(torch.randn(16), 0.01)
    with pytest.raises(NoiseError):
        inject_noise(torch.ones(2, 3, dtype=torch.long), 0.01)
    with pytest.raises(NoiseError, match="keys"):
        inject_noise_keyed(_emb(), 0.01, seed=0, step=0, keys=torch.arange(7))


def test_keyed_noise_independent_of_batch_split_and_order():
    e = _emb(b=12, d=64, seed=2)
    keys = torch.arange(100, 112)
    full = inject_noise_keyed(e, 0.015, seed=3, step=17, keys=keys)
    # two "processes", each with two micro-batches
    parts = [(0, 3), (3, 6), (6, 9), (9, 12)]
    pieces = [inject_noise_keyed(e[a:b], 0.015, seed=3, step=17, keys=keys[a:b]) for a, b in parts]
    assert torch.equal(torch.cat(pieces), full)
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(0))
    shuffled = inject_noise_keyed(e[perm], 0.015, seed=3, step=17, keys=keys[perm])
    assert torch.equal(shuffled, full[perm])
    assert torch.allclose(full.norm(dim=-1), torch.ones(12), atol=1e-5)


def test_keyed_noise_changes_with_seed_step_and_key():
    keys = torch.tensor([5, 5, 6])
    base = keyed_gaussian_noise(32, 0.015, seed=0, step=0, keys=keys)
    assert torch.equal(base[0], base[1])  # same key -> same noise
    assert not torch.allclose(base[0], base[2])  # different key
    other_step = keyed_gaussian_noise(32, 0.015, seed=0, step=1, keys=keys)
    other_seed = keyed_gaussian_noise(32, 0.015, seed=1, step=0, keys=keys)
    assert not torch.allclose(base, other_step)
    assert not torch.allclose(base, other_seed)
    # the hash does not confuse swapped arguments
    assert noise_seed(0, 1, 2) != noise_seed(0, 2, 1) != noise_seed(1, 0, 2)
    assert 0 <= noise_seed(2**40, 3, -1) < 2**63


def test_keyed_noise_std_is_sqrt_of_variance():
    sigma = 0.015
    eps = keyed_gaussian_noise(512, sigma, seed=0, step=3, keys=torch.arange(256))
    assert abs(eps.std().item() - math.sqrt(sigma)) < 0.02 * math.sqrt(sigma)
    # rows are not copies of each other
    corr = np.corrcoef(eps[:20].numpy())
    assert np.abs(corr[np.triu_indices(20, 1)]).max() < 0.25


def _pairs_with_angles(thetas, d=6):
    """t_i = e_0, a_i = cos(th) e_0 + sin(th) e_1 (scaled, to check normalisation)."""
    n = len(thetas)
    t = torch.zeros(n, d, dtype=torch.float64)
    a = torch.zeros(n, d, dtype=torch.float64)
    t[:, 0] = 2.0
    a[:, 0] = 5.0 * torch.cos(torch.tensor(thetas, dtype=torch.float64))
    a[:, 1] = 5.0 * torch.sin(torch.tensor(thetas, dtype=torch.float64))
    return a.float(), t.float()


def test_estimate_sigma_known_answer():
    thetas = [0.1, 0.3, 0.5, 1.2, 2.0]
    a, t = _pairs_with_angles(thetas)
    # diff of the unit vectors = (cos th - 1, sin th, 0, ...): l_inf = max(|cos th - 1|, |sin th|)
    linf = [max(abs(math.cos(th) - 1.0), abs(math.sin(th))) for th in thetas]
    assert estimate_sigma(a, t) == pytest.approx(sum(linf) / len(linf), rel=1e-6)
    assert estimate_sigma(a, t, rule="mean_linf_squared") == pytest.approx(
        sum(x * x for x in linf) / len(linf), rel=1e-6
    )
    # |unit a - unit t|^2 = 2 - 2 cos th, spread over D dimensions
    d = a.shape[1]
    energy = sum(2.0 - 2.0 * math.cos(th) for th in thetas) / len(thetas) / d
    assert estimate_sigma(a, t, rule="gap_energy") == pytest.approx(energy, rel=1e-6)
    # identical directions -> zero variance
    assert estimate_sigma(t * 3.0, t) == pytest.approx(0.0, abs=1e-7)
    assert estimate_sigma(t * 3.0, t, rule="gap_energy") == pytest.approx(0.0, abs=1e-7)


def test_gap_energy_noise_has_the_gap_s_expected_norm():
    # Noise drawn at the estimated variance has (in expectation) the norm of the paired gap.
    a, t = _pairs_with_angles([0.4, 0.9, 1.3] * 20, d=64)
    sigma = estimate_sigma(a, t, rule="gap_energy")
    gap = (l2_normalize(a) - l2_normalize(t)).norm(dim=-1).pow(2).mean()
    eps = gaussian_noise((20000, 64), sigma, torch.Generator().manual_seed(0))
    assert eps.norm(dim=-1).pow(2).mean() == pytest.approx(float(gap), rel=0.02)


def test_estimate_sigma_validates_input():
    a, t = _pairs_with_angles([0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="same shape"):
        estimate_sigma(a, t[:2])
    with pytest.raises(ValueError, match="at least 2"):
        estimate_sigma(a[:1], t[:1])
    with pytest.raises(ValueError):
        estimate_sigma(a[0], t[0])
    with pytest.raises(ValueError, match="rule"):
        estimate_sigma(a, t, rule="max")
    bad = a.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        estimate_sigma(bad, t)
