"""The MIRO network: the reference's parameter counts, the fast path equals the literal one."""

from __future__ import annotations

import numpy as np
import torch

from napari_miro import simulate
from napari_miro.graph import build_graph
from napari_miro.model import MIRO, GraphBatch, MIROConfig, count_parameters


def _batch(dtype=torch.float32) -> GraphBatch:
    positions = simulate.elliptical_clusters(n_clusters=4, fov_nm=800, seed=0)[["x", "y"]].to_numpy()
    graph = build_graph(positions, 150.0)
    return GraphBatch(
        torch.as_tensor(graph.node_features, dtype=dtype),
        torch.as_tensor(graph.edge_features, dtype=dtype),
        torch.as_tensor(graph.edge_index),
        graph.n_nodes,
    )


def test_parameter_counts_match_the_reference():
    assert count_parameters(MIRO()) == 528_386
    assert count_parameters(MIRO(MIROConfig(n_classes=3))) == 529_157
    assert MIRO().config.steps == 20 and MIRO().config.hidden == 256


def test_fast_path_equals_plain_path():
    torch.manual_seed(0)
    model = MIRO(MIROConfig(hidden=48, steps=6, n_classes=3)).double()
    batch = _batch(torch.float64)
    with torch.no_grad():
        plain, fast = model.forward_plain(batch), model(batch)
    assert len(plain) == len(fast) == 6
    for a, b in zip(plain, fast, strict=True):
        assert a.shape == (batch.n_nodes, 5)
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    # float32 agrees to float tolerance too, and gradients agree
    model = model.float()
    batch = _batch()
    plain_loss = sum(o.square().mean() for o in model.forward_plain(batch))
    plain_grads = torch.autograd.grad(plain_loss, list(model.parameters()))
    fast_loss = sum(o.square().mean() for o in model(batch))
    fast_grads = torch.autograd.grad(fast_loss, list(model.parameters()))
    torch.testing.assert_close(plain_loss, fast_loss, rtol=1e-4, atol=1e-6)
    for a, b in zip(plain_grads, fast_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)


def test_node_update_reads_only_the_aggregate_of_incoming_edges():
    torch.manual_seed(1)
    model = MIRO(MIROConfig(hidden=16, steps=2))
    batch = _batch()
    isolated = GraphBatch(batch.node_features, batch.edge_features[:0], batch.edge_index[:, :0], batch.n_nodes)
    with torch.no_grad():
        outputs = model(isolated)
    # without edges the aggregate is zero, so every node gets the same output whatever its features
    expected = model.head(torch.relu(model.node_update.bias)).expand_as(outputs[-1])
    torch.testing.assert_close(outputs[-1], expected)


def test_steps_can_be_chosen_at_call_time():
    model = MIRO(MIROConfig(hidden=16, steps=4))
    with torch.no_grad():
        assert len(model(_batch(), steps=7)) == 7
    assert np.isfinite(model(_batch())[-1].detach().numpy()).all()
