"""Autoencoders for anomaly detection: the classic feature autoencoders and a DOMINANT-style
graph autoencoder. Torch modules only (no I/O); training lives in :mod:`graphrec.tasks.anomaly`.

* :class:`FeatureAutoencoder` -- an undercomplete MLP ``x -> h -> z -> h -> x_hat`` (Hinton &
  Salakhutdinov, Science 2006). The variants differ in training, not in the module: *vanilla*
  minimises reconstruction error; *denoising* reconstructs ``x`` from a corrupted copy (masking
  noise, Vincent et al., ICML 2008); *sparse* adds an L1 penalty ``beta * mean|z|`` on the code
  activity (Ng, CS294A notes 2011). ``tied=True`` makes every decoder weight the transpose of
  its encoder counterpart (half the parameters; a regulariser). ``out_dim`` may differ from
  ``in_dim`` so that the same module maps a context to the features it should explain.
* :class:`DominantAutoencoder` -- DOMINANT (Ding et al., "Deep Anomaly Detection on Attributed
  Networks", SDM 2019): a GCN encoder ``Z = GCN(X, A)``, an attribute decoder
  ``X_hat = GCN(Z, A)`` and a structure decoder ``A_hat = sigmoid(Z Z^T)``, trained on
  ``alpha * ||X - X_hat||^2 + (1 - alpha) * ||A - A_hat||^2``. Here the structure term is the
  binary cross-entropy over the edges and as many sampled non-edges, so it scales with the edge
  count instead of ``n^2``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class FeatureAutoencoder(nn.Module):
    """MLP autoencoder ``in_dim -> hidden -> code -> hidden -> out_dim`` with ReLU hidden layers
    and a linear code and output (logits for binary targets).

    Args:
        in_dim: input width.
        hidden: width of the hidden layer on each side.
        code: bottleneck width (undercomplete: ``code < in_dim`` is what forces it to learn the
            structure of normal data).
        out_dim: output width (default ``in_dim``).
        tied: decoder weights are the transposed encoder weights (needs ``out_dim == in_dim``).
        dropout: dropout on the hidden layers while training.
    """

    def __init__(self, in_dim: int, hidden: int = 64, code: int = 16, *, out_dim: int | None = None, tied: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        out_dim = in_dim if out_dim is None else out_dim
        if tied and out_dim != in_dim:
            raise ValueError("tied weights need out_dim == in_dim")
        self.in_dim, self.hidden, self.code, self.out_dim, self.tied = in_dim, hidden, code, out_dim, tied
        self.enc1 = nn.Linear(in_dim, hidden)
        self.enc2 = nn.Linear(hidden, code)
        if tied:
            self.dec1_bias = nn.Parameter(torch.zeros(hidden))
            self.dec2_bias = nn.Parameter(torch.zeros(out_dim))
        else:
            self.dec1 = nn.Linear(code, hidden)
            self.dec2 = nn.Linear(hidden, out_dim)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                m.reset_parameters()
        if self.tied:
            nn.init.zeros_(self.dec1_bias)
            nn.init.zeros_(self.dec2_bias)

    def encode(self, x: Tensor) -> Tensor:
        """The code ``z`` of each row of ``x``."""
        return self.enc2(self.dropout(F.relu(self.enc1(x))))

    def decode(self, z: Tensor) -> Tensor:
        """Reconstruction (logits for binary targets) from codes."""
        if self.tied:
            h = F.relu(F.linear(z, self.enc2.weight.t(), self.dec1_bias))
            return F.linear(self.dropout(h), self.enc1.weight.t(), self.dec2_bias)
        return self.dec2(self.dropout(F.relu(self.dec1(z))))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(reconstruction, code)``."""
        z = self.encode(x)
        return self.decode(z), z

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.in_dim} -> {self.hidden} -> {self.code} -> {self.hidden} -> {self.out_dim}, "
                f"tied={self.tied})")


class DominantAutoencoder(nn.Module):
    """DOMINANT graph autoencoder (Ding et al., SDM 2019) on PyG ``GCNConv`` layers.

    Args:
        in_dim: node feature width.
        hidden: width of every GCN layer and of the embedding ``Z``.
        layers: GCN layers in the encoder (the attribute decoder has as many).
        dropout: dropout between layers while training.
    """

    def __init__(self, in_dim: int, hidden: int = 64, layers: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        from torch_geometric.nn import GCNConv, SGConv

        self.in_dim, self.hidden, self.layers = in_dim, hidden, layers
        self.encoder = nn.ModuleList([GCNConv(in_dim if i == 0 else hidden, hidden) for i in range(layers)])
        # SGConv(K=1) computes the same A_norm H W + b as GCNConv but propagates before the linear
        # map, so the wide output layer passes hidden-wide messages instead of in_dim-wide ones.
        # No layer caches the normalised adjacency: one model scores any graph it is given.
        self.attr_decoder = nn.ModuleList([SGConv(hidden, in_dim if i == layers - 1 else hidden, K=1) for i in range(layers)])
        self.dropout = dropout
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for conv in [*self.encoder, *self.attr_decoder]:
            conv.reset_parameters()

    def get_embedding(self, x: Tensor, edge_index: Tensor) -> Tensor:
        """Node embeddings ``Z``."""
        h = x
        for i, conv in enumerate(self.encoder):
            h = conv(h, edge_index)
            if i < self.layers - 1:
                h = F.dropout(F.relu(h), self.dropout, self.training)
        return h

    def forward(self, x: Tensor, edge_index: Tensor) -> tuple[Tensor, Tensor]:
        """``(X_hat, Z)``; edge probabilities come from :meth:`edge_logits`."""
        z = self.get_embedding(x, edge_index)
        h = F.relu(z)
        for i, conv in enumerate(self.attr_decoder):
            h = conv(h, edge_index)
            if i < self.layers - 1:
                h = F.relu(h)
        return h, z

    @staticmethod
    def edge_logits(z: Tensor, pairs: Tensor) -> Tensor:
        """Logits of ``A_hat`` for ``pairs`` (``int64[2, m]``): ``z_u . z_v``."""
        return (z[pairs[0]] * z[pairs[1]]).sum(dim=-1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.in_dim}, hidden={self.hidden}, layers={self.layers})"
