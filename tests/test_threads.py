import torch

from mats.threads import torch_threads


def test_torch_threads_sets_then_restores():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before


def test_torch_threads_restores_after_an_error():
    before = torch.get_num_threads()
    try:
        with torch_threads(1):
            raise RuntimeError("stop")
    except RuntimeError:
        pass
    assert torch.get_num_threads() == before
