"""The MIRO network: a recurrent graph neural network that predicts, for every localization, the
displacement (in units of delta) that moves it onto the centre of its cluster.

Pure core (torch): imports neither Qt nor napari.

Architecture (the paper's Methods, layer sizes as in its reference implementation):

- encoders: ``Linear(5 -> H)`` for the node features and ``Linear(3 -> H)`` for the edge features;
- a hidden graph, node state ``h`` and edge state ``g`` (both zero at step 0);
- one recurrent block applied K times with the same weights:
  ``node_in = Linear(2H -> H)([h, x_enc])``, ``edge_in = Linear(2H -> H)([g, e_enc])``,
  ``g' = ReLU(Linear(3H -> H)([node_in[src], node_in[dst], edge_in]))``,
  ``h' = ReLU(Linear(H -> H)(sum of g' over the edges arriving at each node))`` (no skip from ``h``);
- a head ``Linear(H -> 2 + n_classes)`` read at every step: a displacement and optional class logits.

The default (H = 256, 2 outputs) has 528,386 trainable parameters, 529,157 with 3 class logits.

:meth:`MIRO.forward` uses a faster but identical formulation: the 3H-wide edge update is linear before its
ReLU, so its source and destination parts are applied once per node and gathered per edge, the part that
reads ``edge_in`` is folded into one H x H product per step, and everything that depends only on the
constant encoded edge features is computed once per graph. :meth:`MIRO.forward_plain` is the literal
formulation; a test checks that both agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

__all__ = ["MIRO", "GraphBatch", "MIROConfig", "batch_graphs", "count_parameters"]


@dataclass
class MIROConfig:
    """Everything needed to rebuild a MIRO network (stored with every saved model)."""

    hidden: int = 256
    steps: int = 20
    n_classes: int = 0  #: class logits (0 = clustering only); background counts as a class
    node_features: int = 5
    edge_features: int = 3
    fine_step: int | None = None  #: multiscale: the step (0-based) whose output is the fine scale
    extra: dict = field(default_factory=dict)

    @property
    def n_outputs(self) -> int:
        return 2 + self.n_classes

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> MIROConfig:
        known = {name: values[name] for name in cls.__dataclass_fields__ if name in values}
        return cls(**known)


@dataclass
class GraphBatch:
    """One or several graphs as tensors, concatenated (node indices offset per graph)."""

    node_features: torch.Tensor  #: (N, 5)
    edge_features: torch.Tensor  #: (E, 3)
    edge_index: torch.Tensor  #: (2, E) long, row 0 = source, row 1 = destination
    n_nodes: int

    def to(self, device: torch.device | str) -> GraphBatch:
        return GraphBatch(
            self.node_features.to(device),
            self.edge_features.to(device),
            self.edge_index.to(device),
            self.n_nodes,
        )


def batch_graphs(graphs: Sequence, device: torch.device | str) -> GraphBatch:
    """Graphs (anything with float32 ``node_features``, ``edge_features`` and an int ``edge_index`` as numpy
    arrays) concatenated into one batch, node indices offset per graph."""
    offsets = np.cumsum([0] + [len(g.node_features) for g in graphs])
    edge_index = np.concatenate([g.edge_index + offset for g, offset in zip(graphs, offsets[:-1], strict=True)], 1)
    return GraphBatch(
        torch.as_tensor(np.concatenate([g.node_features for g in graphs]), dtype=torch.float32, device=device),
        torch.as_tensor(np.concatenate([g.edge_features for g in graphs]), dtype=torch.float32, device=device),
        torch.as_tensor(edge_index, dtype=torch.long, device=device),
        int(offsets[-1]),
    )


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(parameter.numel() for parameter in module.parameters() if parameter.requires_grad)


class MIRO(nn.Module):
    """The recurrent MIRO block with its encoders and head (see the module docstring)."""

    def __init__(self, config: MIROConfig | None = None) -> None:
        super().__init__()
        self.config = config or MIROConfig()
        hidden = self.config.hidden
        self.node_encoder = nn.Linear(self.config.node_features, hidden)
        self.edge_encoder = nn.Linear(self.config.edge_features, hidden)
        self.node_input = nn.Linear(2 * hidden, hidden)
        self.edge_input = nn.Linear(2 * hidden, hidden)
        self.edge_update = nn.Linear(3 * hidden, hidden)
        self.node_update = nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, self.config.n_outputs)

    def forward_plain(self, batch: GraphBatch, steps: int | None = None) -> list[torch.Tensor]:
        """The literal formulation of the paper's equations; returns the head's output at every step."""
        steps = steps or self.config.steps
        src, dst = batch.edge_index
        x_enc = self.node_encoder(batch.node_features)
        e_enc = self.edge_encoder(batch.edge_features)
        h = x_enc.new_zeros(batch.n_nodes, self.config.hidden)
        g = e_enc.new_zeros(e_enc.shape[0], self.config.hidden)
        outputs = []
        for _ in range(steps):
            node_in = self.node_input(torch.cat([h, x_enc], dim=1))
            edge_in = self.edge_input(torch.cat([g, e_enc], dim=1))
            g = torch.relu(self.edge_update(torch.cat([node_in[src], node_in[dst], edge_in], dim=1)))
            aggregate = h.new_zeros(batch.n_nodes, self.config.hidden).index_add_(0, dst, g)
            h = torch.relu(self.node_update(aggregate))
            outputs.append(self.head(h))
        return outputs

    def forward(self, batch: GraphBatch, steps: int | None = None) -> list[torch.Tensor]:
        """Same function as :meth:`forward_plain`, computed with the linearity folded in (faster)."""
        steps = steps or self.config.steps
        hidden = self.config.hidden
        src, dst = batch.edge_index
        w_h, w_x = self.node_input.weight[:, :hidden], self.node_input.weight[:, hidden:]
        w_g, w_e = self.edge_input.weight[:, :hidden], self.edge_input.weight[:, hidden:]
        u_src = self.edge_update.weight[:, :hidden]
        u_dst = self.edge_update.weight[:, hidden : 2 * hidden]
        u_edge = self.edge_update.weight[:, 2 * hidden :]
        # per node: node_in = h W_h^T + (x_enc W_x^T + b); the source and destination parts of the edge update
        # are applied to it once per node, then gathered per edge
        x_enc = self.node_encoder(batch.node_features)
        node_constant = x_enc @ w_x.T + self.node_input.bias  # (N, H), fixed over the steps
        h_to_src, h_to_dst = u_src @ w_h, u_dst @ w_h  # (H, H) each
        constant_src, constant_dst = node_constant @ u_src.T, node_constant @ u_dst.T
        # per edge: u_edge (g W_g^T + e_enc W_e^T + b_e) + b_u = g (u_edge W_g)^T + edge_constant
        edge_constant = (self.edge_encoder(batch.edge_features) @ w_e.T + self.edge_input.bias) @ u_edge.T
        edge_constant = edge_constant + self.edge_update.bias
        g_to_edge_t = (u_edge @ w_g).T  # (H, H)
        h = None
        g = None
        outputs = []
        for _ in range(steps):
            if h is None:
                part_src, part_dst = constant_src, constant_dst
            else:
                part_src = torch.addmm(constant_src, h, h_to_src.T)
                part_dst = torch.addmm(constant_dst, h, h_to_dst.T)
            pre = part_src.index_select(0, src)
            pre = pre + part_dst.index_select(0, dst) + edge_constant
            if g is not None:
                pre = torch.addmm(pre, g, g_to_edge_t)
            g = torch.relu(pre)
            aggregate = g.new_zeros(batch.n_nodes, hidden).index_add_(0, dst, g)
            h = torch.relu(self.node_update(aggregate))
            outputs.append(self.head(h))
        return outputs
