"""The shared sparse operators (graphrec.nn.sparse): same values and gradients as dense algebra."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graphrec.nn.sparse import RowSparse, spmm, sym_spmm


def _symmetric(n: int = 30, density: float = 0.15, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = np.triu(rng.random((n, n)) < density, 1).astype(np.float32) * rng.random((n, n)).astype(np.float32)
    return a + a.T + np.diag(rng.random(n).astype(np.float32))


@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_symmetric_product_has_the_dense_value_and_gradient(layout: str) -> None:
    a = _symmetric()
    sparse = torch.from_numpy(a).to_sparse() if layout == "coo" else torch.from_numpy(a).to_sparse_csr()
    h = torch.randn(30, 5, generator=torch.Generator().manual_seed(1), requires_grad=True)
    w = torch.randn(30, 5, generator=torch.Generator().manual_seed(2))
    out = sym_spmm(sparse, h)
    (out * w).sum().backward()
    assert h.grad is not None
    np.testing.assert_allclose(out.detach().numpy(), a @ h.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h.grad.numpy(), a.T @ w.numpy(), rtol=1e-5, atol=1e-5)
    assert out.grad_fn is not None and "SparseMM" in type(out.grad_fn).__name__
    with torch.no_grad():  # no autograd node without a gradient to compute
        assert sym_spmm(sparse, h).grad_fn is None


def test_product_with_a_given_transpose_has_the_dense_gradient() -> None:
    a = np.random.default_rng(5).random((20, 30)).astype(np.float32) * (np.random.default_rng(6).random((20, 30)) < 0.2)
    h = torch.randn(30, 3, generator=torch.Generator().manual_seed(1), requires_grad=True)
    g = torch.randn(20, 3, generator=torch.Generator().manual_seed(2))
    out = spmm(torch.from_numpy(a).to_sparse_csr(), torch.from_numpy(a.T.copy()).to_sparse_csr(), h)
    (out * g).sum().backward()
    assert h.grad is not None
    np.testing.assert_allclose(out.detach().numpy(), a @ h.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h.grad.numpy(), a.T @ g.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reuse", [False, True])
def test_row_sparse_product_has_the_dense_value_and_gradient(reuse: bool) -> None:
    rng = np.random.default_rng(0)
    dense = (rng.random((40, 12)) < 0.2).astype(np.float32) * rng.random((40, 12)).astype(np.float32)
    dense[[3, 17]] = 0.0  # empty rows
    dense[:, 5] = 0.0  # an empty column
    rows, cols = np.nonzero(dense)
    s = RowSparse.from_entries(rows, cols, dense[rows, cols], dense.shape)
    s.reuse = reuse
    np.testing.assert_array_equal(s.to_dense(), dense)
    w = torch.randn(12, 4, generator=torch.Generator().manual_seed(3), requires_grad=True)
    g = torch.randn(40, 4, generator=torch.Generator().manual_seed(4))
    out = s.mm(w)
    (out * g).sum().backward()
    assert w.grad is not None
    np.testing.assert_allclose(out.detach().numpy(), dense @ w.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(w.grad.numpy(), dense.T @ g.numpy(), rtol=1e-5, atol=1e-5)
    # a transposed view (a Linear layer's weight.T) works the same
    lin = torch.nn.Linear(12, 4, bias=False)
    np.testing.assert_allclose(s.mm(lin.weight.T).detach().numpy(), dense @ lin.weight.detach().numpy().T, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError):
        s.mm(torch.zeros(11, 4))


def test_row_sparse_gathers_and_stacks_rows() -> None:
    rng = np.random.default_rng(1)
    dense = (rng.random((25, 7)) < 0.3).astype(np.float32)
    rows, cols = np.nonzero(dense)
    s = RowSparse.from_entries(rows, cols, dense[rows, cols], dense.shape)
    pick = np.array([4, 4, 0, 24, 9])
    np.testing.assert_array_equal(s.take(pick).to_dense(), dense[pick])
    assert s.take(np.empty(0, dtype=np.int64)).shape == (0, 7)
    both = RowSparse.concat([s, s.take(pick)])
    np.testing.assert_array_equal(both.to_dense(), np.concatenate([dense, dense[pick]]))
    empty = RowSparse.from_entries(np.empty(0), np.empty(0), np.empty(0), (3, 7))
    assert empty.mm(torch.ones(7, 2)).shape == (3, 2) and float(empty.mm(torch.ones(7, 2)).abs().sum()) == 0.0
    with pytest.raises(ValueError, match="sorted"):
        RowSparse.from_entries(np.array([1, 0]), np.array([0, 0]), np.ones(2), (2, 7))


def test_profile_encoder_computes_the_same_function_from_sparse_rows() -> None:
    """The Siamese encoder's sparse first layer (training on sparse profiles) gives the dense
    path's embeddings and parameter gradients; dropout acts on the non-zeros only."""
    from graphrec.nn.siamese import ProfileEncoder

    rng = np.random.default_rng(2)
    dense = (rng.random((50, 30)) < 0.1).astype(np.float32)
    dense[7] = 0.0  # an all-zero profile
    sparse = RowSparse.from_dense(dense)
    assert sparse.density == float((dense != 0).mean())
    torch.manual_seed(0)
    enc = ProfileEncoder(30, hidden=16, out_dim=8, dropout=0.5).eval()
    pick = np.array([3, 7, 7, 49, 0])
    z_dense = enc(torch.from_numpy(dense[pick]))
    z_sparse = enc(sparse.take(pick))
    np.testing.assert_allclose(z_sparse.detach().numpy(), z_dense.detach().numpy(), rtol=1e-5, atol=1e-6)
    grads = []
    for z in (z_dense, z_sparse):
        enc.zero_grad()
        (z * torch.arange(8.0)).sum().backward(retain_graph=True)
        grads.append({k: p.grad.clone() for k, p in enc.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for k in grads[0]:
        np.testing.assert_allclose(grads[1][k].numpy(), grads[0][k].numpy(), rtol=1e-4, atol=1e-6)
    enc.train()  # training mode: stochastic, still unit-norm rows
    assert torch.allclose(enc(sparse.take(pick)).norm(dim=1), torch.ones(5), atol=1e-5)
    with pytest.raises(ValueError):
        RowSparse.from_dense(dense).__class__(sparse.offsets, sparse.cols, sparse.vals, 30, reuse=True).mm(torch.ones(30, 2), torch.ones(sparse.cols.size))
