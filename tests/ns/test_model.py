"""EAvatarModel's own training state: the sparse-control set it keeps between steps."""

import torch

from eavatar.avatar.control import SparseControlConfig


def test_training_keeps_the_control_set_for_refresh_every_steps_and_recomputes_after_densification(loaded):
    _, pipeline, _, _ = loaded
    model = pipeline.model
    avatar = model.avatar
    saved, was_training = avatar.cfg.control, model.training
    try:
        avatar.cfg.control = SparseControlConfig(enabled=True, select="expression", tau=float(avatar.expression_reach().median()), refresh_every=5)
        model.train()
        model.step, model.train_control_set = 100, None
        first = model.training_control_set(bf16=False)
        assert torch.equal(first, avatar.control_set()) and 0 < int(first.sum()) < len(first)
        with torch.no_grad():
            avatar.generator.expression.deform[-1].weight.mul_(3.0)  # an optimiser step: expressions move Gaussians 3x as far
        model.step = 104
        assert model.training_control_set(bf16=False) is first  # kept between refreshes
        model.step = 105
        again = model.training_control_set(bf16=False)  # recomputed after refresh_every
        assert torch.equal(again, avatar.control_set()) and int(again.sum()) > int(first.sum())
        with torch.no_grad():
            avatar.generator.expression.deform[-1].weight.div_(3.0)
        model.train_control_set = (105, torch.ones(len(first) - 1, dtype=torch.bool))  # as after a prune
        assert torch.equal(model.training_control_set(bf16=False), first)  # another N: recomputed at once
        avatar.cfg.control = SparseControlConfig(enabled=True, select="frame")
        assert model.training_control_set(bf16=False) is None  # the per-frame rule keeps nothing
    finally:
        avatar.cfg.control = saved
        model.train(was_training)
        model.train_control_set = None
