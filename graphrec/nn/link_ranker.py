"""Structure-aware link ranker: a GNN encoder plus neighbourhood pair features, trained listwise.

For a user ``u`` and candidate ``v``::

    h      = GNN(X, A)                                      node embeddings (GCN, Kipf & Welling 2017)
    s(u,v) = MLP([ z_uv ; (x_u ⊙ x_v) W ; h_u ⊙ h_v ])

* ``z_uv``: standardised neighbourhood features (:mod:`graphrec.tasks.linkpred.features`): common
  neighbours, Adamic-Adar, resource allocation, Jaccard and their per-user normalisations. They
  carry the common-neighbour structure that plain GNN embeddings miss (the motivation of
  SEAL / NCN / BUDDY: Zhang & Chen 2018, Wang et al. 2023, Chamberlain et al. 2023).
* ``(x_u ⊙ x_v) W``: a learned weighting of the profile features the two users share (which shared
  attributes make friendship likely), low rank ``W ∈ R^{d×r}``.
* ``h_u ⊙ h_v``: GNN embedding agreement (community / position), optional.

Training is listwise (ListNet-style softmax cross-entropy, Cao et al. 2007): for each user's
candidate list ``g`` with positives ``P_g``, ``loss_g = mean_{p∈P_g} (logsumexp_{v∈g} s(u,v) - s(u,p))``,
which optimises the per-user ranking that Recall@K and MRR measure, not a global calibration.
:func:`grouped_listwise_loss` computes it for many lists at once (segment reductions over a flat
score vector), optionally with a sampled softmax's importance weights on subsampled negatives.

Both sparse products (the GCN's propagation and sparse inputs) go through :mod:`graphrec.nn.sparse`,
whose backward passes avoid torch's generic sparse backward.

The module is used for training only; serving re-implements ``score`` in numpy from the saved
weights (:mod:`graphrec.tasks.linkpred.scorer`) so the serving path does not import torch.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from graphrec.nn.sparse import RowSparse, sym_spmm


class GCNEncoder(nn.Module):
    """Two GCN layers over a normalised sparse adjacency ``Â = D^-1/2 (A + I) D^-1/2``:
    ``h1 = ReLU(Â (X W0 + b0))``, ``h = normalise(Â (h1 W1 + b1))``.

    Kipf & Welling's propagation written with ``torch.sparse`` products (full batch; pyg-lib and
    torch-sparse are not available here): ``Â`` is symmetric, so both products go through
    :func:`~graphrec.nn.sparse.sym_spmm` (backward ``Â G``, no transpose); a sparse input ``X``
    (a :class:`~graphrec.nn.sparse.RowSparse` one-hot profile matrix) multiplies ``W0`` by
    :meth:`~graphrec.nn.sparse.RowSparse.mm` (backward ``X^T G`` as a scatter-add). Unlike PyG's
    ``GCNConv`` the bias is added before propagation, which only rescales it by the row sums of ``Â``.
    """

    def __init__(self, in_dim: int, hidden: int = 32, out_dim: int = 16, dropout: float = 0.3) -> None:
        super().__init__()
        self.lin0 = nn.Linear(in_dim, hidden)
        self.lin1 = nn.Linear(hidden, out_dim)
        self.dropout = nn.Dropout(dropout)

    def reset_parameters(self) -> None:
        self.lin0.reset_parameters()
        self.lin1.reset_parameters()

    def forward(self, x: Tensor | RowSparse, adj: Tensor) -> Tensor:
        """``x``: node inputs ``[n, in_dim]``, dense, torch sparse or :class:`RowSparse` (sparse
        one-hot profiles stay sparse); ``adj``: the symmetric normalised adjacency ``[n, n]``."""
        if isinstance(x, RowSparse):
            first = x.mm(self.lin0.weight.T) + self.lin0.bias
        elif x.is_sparse:
            first = torch.sparse.mm(x, self.lin0.weight.T) + self.lin0.bias
        else:
            first = self.lin0(self.dropout(x))
        h = torch.relu(sym_spmm(adj, first))
        h = sym_spmm(adj, self.lin1(self.dropout(h)))
        return nn.functional.normalize(h, dim=1)


class LinkRanker(nn.Module):
    """Scores (user, candidate) pairs; see the module docstring for the formula.

    Args:
        num_pair_features: width of ``z_uv``.
        profile_dim: width of the profile vectors ``x`` (0: no profile term).
        shared_rank: rank ``r`` of the shared-profile weighting ``W``.
        hidden: width of the MLP's hidden layers.
        gnn_dim: output width of the GCN encoder (0: no GNN term).
    """

    def __init__(self, num_pair_features: int, profile_dim: int, *, shared_rank: int = 8, hidden: int = 64, gnn_dim: int = 16) -> None:
        super().__init__()
        self.num_pair_features = num_pair_features
        self.profile_dim = profile_dim
        self.shared_rank = shared_rank if profile_dim > 0 else 0
        self.gnn_dim = gnn_dim
        self.shared = nn.Linear(profile_dim, self.shared_rank, bias=False) if self.shared_rank else None
        self.encoder = GCNEncoder(profile_dim + 1, hidden=2 * gnn_dim, out_dim=gnn_dim) if gnn_dim else None
        width = num_pair_features + self.shared_rank + gnn_dim
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.shared is not None:
            nn.init.zeros_(self.shared.weight)  # start from the structural ranker
        if self.encoder is not None:
            self.encoder.reset_parameters()
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(pair_features={self.num_pair_features}, profile_dim={self.profile_dim}, "
            f"shared_rank={self.shared_rank}, gnn_dim={self.gnn_dim})"
        )

    def embed(self, x: Tensor | RowSparse, adj: Tensor) -> Tensor | None:
        """GNN node embeddings ``h`` (None without a GNN term)."""
        return None if self.encoder is None else self.encoder(x, adj)

    def forward(self, pair: Tensor, shared: Tensor | RowSparse | None, h_user: Tensor | None, h_cand: Tensor | None) -> Tensor:
        """Scores ``[c]`` of ``c`` (user, candidate) pairs: one user's candidates or the rows of
        many users' lists at once.

        Args:
            pair: ``[c, num_pair_features]`` standardised pair features.
            shared: ``[c, profile_dim]`` ``x_u ⊙ x_v`` rows (:class:`RowSparse`, torch sparse or
                dense), or None.
            h_user: ``[gnn_dim]`` embedding of the one user, or ``[c, gnn_dim]`` the user of each
                row; h_cand: ``[c, gnn_dim]``.
        """
        parts = [pair]
        if self.shared is not None:
            assert shared is not None
            parts.append(shared.mm(self.shared.weight.T) if isinstance(shared, RowSparse) else shared @ self.shared.weight.T)
        if self.encoder is not None:
            assert h_user is not None and h_cand is not None
            parts.append(h_cand * h_user)
        return self.mlp(torch.cat(parts, dim=1)).squeeze(-1)


def listwise_loss(scores: Tensor, positive: Tensor) -> Tensor:
    """Softmax cross-entropy of the positives within one candidate list (ListNet):
    ``mean_{p∈P} (logsumexp_v s_v - s_p)``."""
    return (torch.logsumexp(scores, dim=0) - scores[positive]).mean()


def grouped_listwise_loss(scores: Tensor, positive: Tensor, group: Tensor, num_groups: int, log_weight: Tensor | None = None) -> Tensor:
    """:func:`listwise_loss` of many candidate lists at once, averaged over the lists.

    Rows are the concatenated lists: ``group[i]`` in ``[0, num_groups)`` names the list of row
    ``i``; every list has at least one positive. With segment reductions (no loop over lists)::

        m_g    = max_{i∈g} (s_i + log w_i)                      (scatter_reduce amax; constant)
        lse_g  = m_g + log Σ_{i∈g} exp(s_i + log w_i - m_g)     (index_add)
        loss   = mean_g mean_{p∈P_g} (lse_g - s_p)

    ``log_weight`` (``log w_i``, default 0) turns ``lse_g`` into an importance-weighted estimate
    of the full list's partition function when negatives were subsampled: a negative kept with
    probability ``q`` gets ``w = 1/q`` (sampled softmax, Bengio & Senécal 2008), positives and
    always-kept negatives ``w = 1``. ``m_g`` is detached: the gradient of ``lse_g`` is the same
    for any constant shift. Equals the mean of :func:`listwise_loss` over the lists (tested)."""
    shifted = scores if log_weight is None else scores + log_weight
    peak = torch.full((num_groups,), float("-inf"), dtype=scores.dtype).scatter_reduce(0, group, shifted.detach(), "amax")
    total = torch.zeros(num_groups, dtype=scores.dtype).index_add(0, group, torch.exp(shifted - peak[group]))
    lse = peak + torch.log(total)
    pos_group = group[positive]
    per_positive = lse[pos_group] - scores[positive]
    count = torch.bincount(pos_group, minlength=num_groups).to(scores.dtype)
    per_group = torch.zeros(num_groups, dtype=scores.dtype).index_add(0, pos_group, per_positive) / count
    return per_group.mean()
