"""The MIRO loss, checked by hand."""

from __future__ import annotations

import pytest
import torch

from napari_miro.loss import miro_loss


def test_loss_terms_by_hand_on_a_tiny_graph():
    # two nodes joined both ways; positions 0 and 1 (in displacement units)
    positions = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    target = torch.tensor([[-0.5, 0.0], [0.5, 0.0]])  # collapse both onto x = 0.5
    edge_index = torch.tensor([[0, 1], [1, 0]])
    predicted = torch.tensor([[-0.25, 0.0], [0.25, 0.0]])  # halfway
    targets = {"target": target, "fine_target": target, "positions": positions, "class_id": torch.tensor([1, 1])}
    # L1: mean |error| over 4 coordinates = (0.25 + 0 + 0.25 + 0) / 4; distance after: predicted 0.5, true 0
    l1 = miro_loss([predicted], targets, edge_index, alpha=10.0, beta=0.1, displacement_loss="l1")
    assert float(l1) == pytest.approx(0.125 + 10 * 0.5, abs=1e-4)  # distances carry a 1e-6 smoothing
    mse = miro_loss([predicted], targets, edge_index, alpha=0.0, displacement_loss="mse")
    assert float(mse) == pytest.approx((0.0625 + 0.0625) / 4, abs=1e-6)
    # averaged over steps: a perfect second step halves the loss
    two = miro_loss([predicted, target], targets, edge_index, alpha=10.0, displacement_loss="l1")
    assert float(two) == pytest.approx(float(l1) / 2, abs=1e-4)
    # class logits add beta * cross-entropy
    logits = torch.tensor([[0.0, 0.0, 2.0, 0.0], [0.0, 0.0, 2.0, 0.0]])  # 2 classes: ln(1 + e^-2)
    with_classes = miro_loss(
        [torch.cat([predicted, logits[:, 2:]], 1)], targets, edge_index, alpha=10.0, beta=0.1, displacement_loss="l1"
    )
    expected_ce = float(torch.nn.functional.cross_entropy(torch.tensor([[2.0, 0.0]] * 2), torch.tensor([1, 1])))
    assert float(with_classes) == pytest.approx(float(l1) + 0.1 * expected_ce, abs=1e-5)


def test_multiscale_loss_uses_fine_targets_for_early_steps():
    positions = torch.zeros(2, 2)
    coarse, fine = torch.ones(2, 2), torch.zeros(2, 2)
    targets = {"target": coarse, "fine_target": fine, "positions": positions, "class_id": torch.zeros(2).long()}
    edge_index = torch.zeros(2, 0, dtype=torch.long)
    outputs = [fine.clone(), coarse.clone()]  # step 0 hits the fine target, step 1 the coarse one
    assert float(miro_loss(outputs, targets, edge_index, alpha=0.0, fine_step=0, displacement_loss="l1")) == 0.0
    assert float(miro_loss(outputs, targets, edge_index, alpha=0.0, fine_step=None, displacement_loss="l1")) > 0
