"""The MIRO loss: displacement error, edge-length preservation and class cross-entropy, averaged over the
recurrent steps.

Pure core (torch): imports no other napari_miro module, neither Qt nor napari.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["miro_loss"]


def miro_loss(
    outputs: Sequence[torch.Tensor],
    targets: dict[str, torch.Tensor],
    edge_index: torch.Tensor,
    alpha: float = 10.0,
    beta: float = 0.1,
    displacement_loss: str = "l1",
    fine_step: int | None = None,
) -> torch.Tensor:
    """The MIRO loss averaged over the recurrent steps.

    Per step k: ``L_r`` (mean absolute, or squared, error of the displacement, both in units of delta)
    ``+ alpha * L_d`` (mean over edges of | ||p_hat_i - p_hat_j|| - ||p_i - p_j|| |, p = position after the
    target displacement, p_hat after the predicted one) ``+ beta * cross-entropy`` of the class logits when
    the model has them. Multiscale: steps 0..fine_step use the fine targets, later steps the coarse ones.
    """
    src, dst = edge_index
    positions = targets["positions"]
    total = positions.new_zeros(())
    for step, output in enumerate(outputs):
        target = targets["fine_target"] if fine_step is not None and step <= fine_step else targets["target"]
        displacement = output[:, :2].float()
        error = displacement - target
        regression = error.abs().mean() if displacement_loss == "l1" else (error**2).mean()
        moved_true = positions - target
        moved_pred = positions - displacement
        # index_select, not moved[src]: the gradient of advanced indexing accumulates in a thread-dependent
        # order on the CPU (runs differed after a few steps); index_select's is deterministic
        true_distance = _edge_lengths(moved_true, src, dst)
        pred_distance = _edge_lengths(moved_pred, src, dst)
        distance_term = (pred_distance - true_distance).abs().mean() if len(src) else total
        step_loss = regression + alpha * distance_term
        if output.shape[1] > 2:
            step_loss = step_loss + beta * torch.nn.functional.cross_entropy(output[:, 2:].float(), targets["class_id"])
        total = total + step_loss
    return total / len(outputs)


def _edge_lengths(positions: torch.Tensor, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """The length of every edge between displaced positions."""
    vectors = positions.index_select(0, src) - positions.index_select(0, dst)
    return (vectors**2).sum(1).add(1e-12).sqrt()
