import math

import pytest

from mats.config import TrainConfig
from mats.schedule import lr_at

# ---- the schedules as each trainer wrote them before they shared mats.schedule, kept verbatim
# as the reference: lr_at must give every caller's settings the same floats, bit for bit.


def old_train_lr_lambda(cfg: TrainConfig, max_steps: int):  # mats/train.py `lr_lambda`
    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / max(1, cfg.warmup_steps)
        if cfg.schedule == "constant":
            return 1.0
        progress = (step - cfg.warmup_steps) / max(1, max_steps - cfg.warmup_steps)
        progress = min(1.0, progress)
        if cfg.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0 - progress

    return f


def old_clap_lr_at(step: int, lr: float, warmup_steps: int, steps: int) -> float:  # clap_train `_lr_at`
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, steps - warmup_steps)
    return lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def old_lm_lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:  # lm_pretrain `lr_factor`
    if step < warmup:
        return (step + 1) / max(1, warmup)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


@pytest.mark.parametrize("schedule", ["linear", "cosine", "constant"])
@pytest.mark.parametrize("warmup, total", [(0, 100), (10, 110), (20, 200), (2000, 10000), (50, 30)])
def test_mats_training_schedule_is_unchanged(schedule, warmup, total):
    old = old_train_lr_lambda(TrainConfig(warmup_steps=warmup, schedule=schedule), total)
    for step in range(0, total + 50):
        assert lr_at(step, warmup, total, schedule) == old(step)


@pytest.mark.parametrize("lr, warmup, steps", [(2e-3, 100, 2000), (1e-3, 5, 40), (3e-4, 1, 7)])
def test_mini_clap_schedule_is_unchanged(lr, warmup, steps):
    for step in range(steps + 10):
        assert lr_at(step, warmup, steps, "cosine", peak=lr) == old_clap_lr_at(step, lr, warmup, steps)


@pytest.mark.parametrize("warmup, total, floor", [(50, 1000, 0.1), (20, 400, 0.0), (10, 100, 0.1), (0, 30, 0.25)])
def test_mini_lm_schedules_are_unchanged(warmup, total, floor):
    for step in range(total + 10):
        assert lr_at(step, warmup, total, "cosine", floor=floor) == old_lm_lr_factor(step, warmup, total, floor)


def test_warms_up_then_decays():
    f = [lr_at(s, 10, 110, "linear") for s in range(120)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[60] == pytest.approx(0.5) and f[110] == 0.0 and f[119] == 0.0
    assert lr_at(50, 0, 100, "cosine") == pytest.approx(0.5)
    assert lr_at(500, 0, 100, "constant") == 1.0


def test_cosine_decays_to_the_floor():
    f = [lr_at(s, 10, 100, "cosine", floor=0.1) for s in range(120)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[9:], f[10:]))
    assert f[100] == pytest.approx(0.1) and f[119] == pytest.approx(0.1)
    assert f[55] == pytest.approx(0.1 + 0.9 * 0.5, abs=1e-9)  # half-way through the cosine


def test_unknown_decay_is_an_error():
    with pytest.raises(ValueError, match="decay"):
        lr_at(5, 0, 10, "step")
