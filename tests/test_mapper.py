import torch

from mats.config import MapperConfig
from mats.mapper import Mapper


def test_shapes_and_dependence_on_the_embedding():
    cfg = MapperConfig(clip_length=3, prefix_length=5, num_layers=2, hidden_size=16, num_heads=2)
    torch.manual_seed(0)
    m = Mapper(cfg, embed_dim=12, lm_dim=20).eval()
    z = torch.randn(4, 12)
    out = m(z)
    assert out.shape == (4, 5, 20)
    # Each row's prefix depends on its own embedding only.
    z2 = z.clone()
    z2[1] += 1.0
    out2 = m(z2)
    assert torch.allclose(out[[0, 2, 3]], out2[[0, 2, 3]], atol=1e-6)
    assert not torch.allclose(out[1], out2[1], atol=1e-4)


def test_all_mapper_parameters_receive_gradients():
    cfg = MapperConfig(clip_length=2, prefix_length=3, num_layers=1, hidden_size=8, num_heads=2)
    m = Mapper(cfg, embed_dim=6, lm_dim=10)
    m(torch.randn(2, 6)).pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())
