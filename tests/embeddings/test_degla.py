"""DeGLA's EMA teacher and its compute_loss for engine.fit (paper 04)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from paperzoo.embeddings.degla import DeGLAObjective, EMATeacher
from paperzoo.engine import TrainConfig, fit, make_loader
from paperzoo.losses import DeGLALoss
from paperzoo.models.dual_encoder import DualEncoder


def _model(seed: int = 0) -> DualEncoder:
    torch.manual_seed(seed)
    m = DualEncoder(image_dim=6, text_dim=5, hidden=8, embed_dim=4)
    m.register_buffer("counter", torch.zeros(2))
    return m


def test_ema_update_formula_and_frozen_teacher() -> None:
    student = _model()
    teacher = EMATeacher(student, decay=0.9)
    old = [p.clone() for p in teacher.module.parameters()]
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
        student.counter.fill_(5.0)
    teacher.update(student)
    for o, pt, ps in zip(old, teacher.module.parameters(), student.parameters()):
        torch.testing.assert_close(pt, 0.9 * o + 0.1 * ps)
        assert not pt.requires_grad
    assert float(teacher.module.counter.sum()) == 0.0  # buffers are not averaged
    teacher.train()
    assert not teacher.module.training
    frozen = EMATeacher(student, decay=1.0)
    before = [p.clone() for p in frozen.module.parameters()]
    with torch.no_grad():
        for p in student.parameters():
            p.mul_(3.0)
    frozen.update(student)
    assert all(torch.equal(a, b) for a, b in zip(before, frozen.module.parameters()))
    with pytest.raises(ValueError, match="decay"):
        EMATeacher(student, decay=1.5)
    with pytest.raises(ValueError, match="architecture"):
        teacher.update(nn.Linear(2, 2))


def test_objective_matches_a_hand_written_loop() -> None:
    """fit + DeGLAObjective == the reference loop: step, clamp the scale, EMA-update the teacher."""
    n, k, steps = 4, 2, 5
    g = torch.Generator().manual_seed(0)
    images = torch.randn(steps, n, 6, generator=g)
    texts = torch.randn(steps, n * (1 + k), 5, generator=g)
    loss = DeGLALoss(k)

    a = _model()
    with torch.no_grad():
        a.logit_scale.fill_(4.7)  # above ln 100: the clamp matters
    b = copy.deepcopy(a)
    # hand-written reference loop
    teacher_b = EMATeacher(b, decay=0.5)
    opt_b = torch.optim.SGD(b.parameters(), lr=0.5)
    for i in range(steps):
        opt_b.zero_grad()
        v, t, s = b(images[i], texts[i])
        tv, tt, _ = teacher_b(images[i], texts[i])
        loss(v, t, s, tv, tt)["loss"].backward()
        opt_b.step()
        with torch.no_grad():
            b.logit_scale.clamp_(0, torch.log(torch.tensor(100.0)))
        teacher_b.update(b)
    # through fit
    teacher_a = EMATeacher(a, decay=0.5)
    objective = DeGLAObjective(loss, teacher_a)
    opt_a = torch.optim.SGD(a.parameters(), lr=0.5)
    loader = make_loader(torch.utils.data.TensorDataset(images, texts), 1, shuffle=False)
    fit(
        a,
        None,
        loader,
        opt_a,
        TrainConfig(progress=False),
        compute_loss=lambda m, batch: objective(m, (batch[0][0], batch[1][0])),
    )
    objective.finish(a)
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb)
    for pa, pb in zip(teacher_a.parameters(), teacher_b.parameters()):
        torch.testing.assert_close(pa, pb)
    assert set(objective.last_terms) == {"loss", "base", "igc", "tgc", "distill"}
    with pytest.raises(ValueError, match="teacher is required"):
        DeGLAObjective(DeGLALoss(k))
