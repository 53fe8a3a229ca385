"""Node classifier for bot detection: GraphSAGE with residual connections, layer normalisation
and jumping-knowledge readout.

::

    h0     = Dropout(ReLU(LN(W_in x)))
    h_l+1  = h_l + Dropout(ReLU(LN(SAGE_l(h_l))))       SAGE_l(h)_i = W_root h_i + W_nbr mean_{j∈N(i)} h_j + b
    logit  = w_out · [h0 ; h1 ; ... ; h_L]               (jumping knowledge, concatenation)

Why this shape: GraphSAGE (Hamilton et al., NeurIPS 2017) keeps a separate root weight, so a node
is not forced to look like its neighbours, which matters where bots reach humans through attack
edges (heterophily). Residuals, normalisation and the concatenated readout are the ingredients that
make plain GNNs competitive with heterophily-specific architectures (Platonov et al., ICLR 2023;
Luo et al., "Classic GNNs are strong baselines", NeurIPS 2024); the concatenation of ego and
neighbourhood representations is the H2GCN design (Zhu et al., NeurIPS 2020).

:func:`layerwise_logits` runs inference over a whole graph one layer at a time in row chunks, so
memory is ``O(n * hidden)`` plus one chunk of the adjacency, whatever the graph size.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor, nn

from graphrec.nn.sparse import sym_spmm


class MeanSAGE(nn.Module):
    """GraphSAGE layer with mean aggregation (Hamilton et al. 2017):
    ``h'_i = W_root h_i + W_nbr (1/|N(i)|) sum_{j in N(i)} h_j + b``.

    Same maths as PyG's ``SAGEConv(aggr="mean")``; written out because this project trains on
    CPU with a ``torch.sparse`` adjacency (pyg-lib and torch-sparse are not installable), where the
    generic sparse backward dominated training time. ``adj`` is the binary adjacency block of the
    destination rows ``[n_dst, n_src]``; when it is square (the whole, symmetric adjacency) the
    product goes through :func:`graphrec.nn.sparse.sym_spmm`, whose backward reuses ``adj``."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.lin_nbr = nn.Linear(in_dim, out_dim)
        self.lin_root = nn.Linear(in_dim, out_dim, bias=False)

    def reset_parameters(self) -> None:
        self.lin_nbr.reset_parameters()
        self.lin_root.reset_parameters()

    def forward(self, h_src: Tensor, h_dst: Tensor, adj: Tensor, inv_deg: Tensor) -> Tensor:
        if adj.shape[0] == adj.shape[1]:
            agg = sym_spmm(adj, h_src)
        else:
            agg = torch.sparse.mm(adj, h_src)
        return self.from_mean(agg * inv_deg, h_dst)

    def from_mean(self, nbr_mean: Tensor, h_dst: Tensor) -> Tensor:
        """The layer from the destination rows' neighbour means already aggregated (what a
        partitioned graph computes block by block: :mod:`graphrec.distributed.graphops`)."""
        return self.lin_nbr(nbr_mean) + self.lin_root(h_dst)


class BotGNN(nn.Module):
    """Args: in_dim: input width; hidden: layer width; layers: SAGE layers; dropout: rate."""

    def __init__(self, in_dim: int, hidden: int = 64, layers: int = 2, dropout: float = 0.3) -> None:
        super().__init__()
        self.in_dim, self.hidden, self.num_layers, self.dropout_rate = in_dim, hidden, layers, dropout
        self.lin_in = nn.Linear(in_dim, hidden)
        self.norm_in = nn.LayerNorm(hidden)
        self.convs = nn.ModuleList(MeanSAGE(hidden, hidden) for _ in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(layers))
        self.lin_out = nn.Linear(hidden * (layers + 1), 1)
        self.dropout = nn.Dropout(dropout)

    def reset_parameters(self) -> None:
        for module in [self.lin_in, self.norm_in, *self.convs, *self.norms, self.lin_out]:
            module.reset_parameters()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(in_dim={self.in_dim}, hidden={self.hidden}, layers={self.num_layers}, dropout={self.dropout_rate})"

    def encode_input(self, x: Tensor) -> Tensor:
        return self.dropout(torch.relu(self.norm_in(self.lin_in(x))))

    def layer(self, i: int, h_src: Tensor, h_dst: Tensor, adj: Tensor, inv_deg: Tensor) -> Tensor:
        """Layer ``i`` for the destination rows of ``adj`` (``[n_dst, n_src]``; ``inv_deg``:
        ``[n_dst, 1]`` inverse degrees, 0 for isolated nodes)."""
        return self.finish_layer(i, self.convs[i](h_src, h_dst, adj, inv_deg), h_dst)

    def layer_from_mean(self, i: int, nbr_mean: Tensor, h_dst: Tensor) -> Tensor:
        """Layer ``i`` given the destination rows' neighbour means ``[n_dst, hidden]`` (0 for
        isolated nodes): the same maths as :meth:`layer`, for aggregations done elsewhere."""
        conv: MeanSAGE = self.convs[i]  # type: ignore[assignment]
        return self.finish_layer(i, conv.from_mean(nbr_mean, h_dst), h_dst)

    def finish_layer(self, i: int, conv_out: Tensor, h_dst: Tensor) -> Tensor:
        """Residual, normalisation, activation and dropout around layer ``i``'s convolution."""
        return h_dst + self.dropout(torch.relu(self.norms[i](conv_out)))

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        """Logits ``[n]`` for node inputs ``x`` ``[n, in_dim]`` and a symmetric binary sparse
        ``adj`` ``[n, n]``."""
        inv_deg = inverse_degree(adj)
        hs = [self.encode_input(x)]
        for i in range(self.num_layers):
            hs.append(self.layer(i, hs[-1], hs[-1], adj, inv_deg))
        return self.lin_out(torch.cat(hs, dim=1)).squeeze(-1)


def inverse_degree(adj: Tensor) -> Tensor:
    """``[n_rows, 1]``: 1 / row degree of a sparse CSR block (0 where the row is empty)."""
    deg = (adj.crow_indices()[1:] - adj.crow_indices()[:-1]).to(torch.float32).unsqueeze(1)
    return torch.where(deg > 0, 1.0 / deg.clamp(min=1.0), torch.zeros_like(deg))


def sparse_adjacency(indptr: np.ndarray, indices: np.ndarray, rows: slice | None = None) -> Tensor:
    """Binary adjacency (or the row block ``rows``) as a torch sparse CSR tensor."""
    n = indptr.size - 1
    start, stop = (0, n) if rows is None else (rows.start, rows.stop)
    lo, hi = int(indptr[start]), int(indptr[stop])
    crow = torch.from_numpy((indptr[start : stop + 1] - lo).astype(np.int64))
    col = torch.from_numpy(indices[lo:hi].astype(np.int64))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, torch.ones(hi - lo), size=(stop - start, n), check_invariants=False)


@torch.no_grad()
def layerwise_logits(model: BotGNN, x: np.ndarray, indptr: np.ndarray, indices: np.ndarray, *, chunk: int = 200_000) -> np.ndarray:
    """Whole-graph inference, layer by layer, ``chunk`` destination rows at a time."""
    model.eval()
    n = x.shape[0]
    hs = [torch.empty((n, model.hidden))]
    for s in range(0, n, chunk):
        hs[0][s : s + chunk] = model.encode_input(torch.from_numpy(np.ascontiguousarray(x[s : s + chunk])))
    for i in range(model.num_layers):
        prev, nxt = hs[-1], torch.empty((n, model.hidden))
        for s in range(0, n, chunk):
            rows = slice(s, min(s + chunk, n))
            block = sparse_adjacency(indptr, indices, rows)
            nxt[rows] = model.layer(i, prev, prev[rows], block, inverse_degree(block))
        hs.append(nxt)
    out = np.empty(n, dtype=np.float32)
    for s in range(0, n, chunk):
        out[s : s + chunk] = model.lin_out(torch.cat([h[s : s + chunk] for h in hs], dim=1)).squeeze(-1).numpy()
    return out
