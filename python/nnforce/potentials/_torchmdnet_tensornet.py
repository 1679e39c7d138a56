"""TensorNet on nnforce's neighbor list: the forward :mod:`nnforce.potentials.torchmdnet` uses for TensorNet models.

Imported only when a TensorNet model is loaded (it imports torchmd-net). The classes hold the torchmd-net model's
own layers and call torchmd-net's own pure-torch tensor algebra (``torchmdnet.models.tensornet``'s functions for
its non-warp path); only the graph (the plugin's pairs, each unordered pair's features computed once) and the
atomic-number embedding table are ours. See :mod:`nnforce.potentials.torchmdnet` for why.
"""
from typing import List, Optional

import torch
from torch import Tensor
from torchmdnet.models.tensornet import (_compose_tensor, _decompose_tensor, tensor_norm,
                                         tensornet_embedding_message_passing, tensornet_interaction_message_passing)

from . import _common


def _matmul33(a: Tensor, b: Tensor) -> Tensor:
    """Per-atom, per-channel 3x3 matrix products of [N, 3, 3, F] tensors: ``c[n, :, :, f] = a[n, :, :, f] @
    b[n, :, :, f]``, as three broadcast multiply-adds. torchmd-net's pure-torch path permutes to [N, F, 3, 3] and
    calls ``torch.matmul`` (a batched GEMM of N*F 3x3 blocks plus two copies), which was the largest single cost of
    a small molecule's step on one CPU thread."""
    return (a[:, :, 0, None, :] * b[:, None, 0, :, :] + a[:, :, 1, None, :] * b[:, None, 1, :, :]
            + a[:, :, 2, None, :] * b[:, None, 2, :, :])


class _TensorNetEmbedding(torch.nn.Module):
    """TensorNet's ``TensorEmbedding`` (its own layers), fed per-pair features computed once per unordered pair."""

    def __init__(self, embedding: torch.nn.Module, zij_table: Tensor):
        super().__init__()
        self.distance_proj1 = embedding.distance_proj1
        self.distance_proj2 = embedding.distance_proj2
        self.distance_proj3 = embedding.distance_proj3
        self.cutoff = embedding.cutoff
        self.act = embedding.act
        self.linears_scalar = embedding.linears_scalar
        self.linears_tensor = embedding.linears_tensor
        self.init_norm = embedding.init_norm
        self.hidden_channels = int(embedding.hidden_channels)
        # emb2(cat(emb(z_i), emb(z_j))) for every element pair of the system: a gather per edge, no GEMM
        self.register_buffer("zij_table", zij_table)

    def forward(self, type_index: Tensor, receivers: Tensor, senders: Tensor, pair_distance: Tensor,
                pair_attr: Tensor, edge_vec_norm: Tensor, num_pairs: int, num_atoms: int) -> Tensor:
        n_types = self.zij_table.shape[0]
        zij = self.zij_table.reshape(n_types * n_types, self.hidden_channels).index_select(
            0, type_index.index_select(0, receivers) * n_types + type_index.index_select(0, senders))
        # per pair (and one self-loop row), then both directions and the N self loops
        features = torch.stack([self.distance_proj1(pair_attr), self.distance_proj2(pair_attr),
                                self.distance_proj3(pair_attr)], dim=1) * self.cutoff(pair_distance)[:, None, None]
        edge_features = _directed(features, num_pairs, num_atoms)
        edge_attr_processed = zij.unsqueeze(1) * edge_features  # [E, 3, F]
        edge_index = torch.stack([receivers, senders])
        I, A, S = tensornet_embedding_message_passing(edge_vec_norm, edge_attr_processed, edge_index, num_atoms)
        X = _compose_tensor(I, A, S)
        norm = self.init_norm(tensor_norm(X))
        for linear_scalar in self.linears_scalar:
            norm = self.act(linear_scalar(norm))
        norm = norm.reshape(-1, 3, self.hidden_channels)
        I = self.linears_tensor[0](I) * norm[:, 0, :]
        A = self.linears_tensor[1](A) * norm[:, 1, None, None, :]
        S = self.linears_tensor[2](S) * norm[:, 2, None, None, :]
        return _compose_tensor(I, A, S)


class _TensorNetInteraction(torch.nn.Module):
    """One TensorNet ``Interaction`` layer (its own layers), edge MLP evaluated once per unordered pair."""

    def __init__(self, layer: torch.nn.Module):
        super().__init__()
        self.cutoff = layer.cutoff
        self.act = layer.act
        self.linears_scalar = layer.linears_scalar
        self.linears_tensor = layer.linears_tensor
        self.hidden_channels = int(layer.hidden_channels)
        self.o3 = layer.equivariance_invariance_group == "O(3)"

    def forward(self, X: Tensor, receivers: Tensor, senders: Tensor, pair_distance: Tensor, pair_attr: Tensor,
                q: Tensor, num_pairs: int) -> Tensor:
        attr = pair_attr
        for linear_scalar in self.linears_scalar:
            attr = self.act(linear_scalar(attr))
        attr = (attr * self.cutoff(pair_distance).view(-1, 1)).reshape(attr.shape[0], 3, self.hidden_channels)
        num_atoms = X.shape[0]
        edge_attr = _directed(attr, num_pairs, num_atoms)
        X = X / (tensor_norm(X) + 1)[:, None, None, :]
        I, A, S = _decompose_tensor(X)
        I = self.linears_tensor[0](I)
        A = self.linears_tensor[1](A)
        S = self.linears_tensor[2](S)
        Y = _compose_tensor(I, A, S)
        Im, Am, Sm = tensornet_interaction_message_passing(I, A, S, edge_attr, torch.stack([receivers, senders]),
                                                           num_atoms)
        msg = _compose_tensor(Im, Am, Sm)
        if self.o3:
            C = (1 + 0.1 * q[..., None, None, None]) * (_matmul33(msg, Y) + _matmul33(Y, msg))
        else:
            C = 2 * _matmul33(Y, msg)
        I, A, S = _decompose_tensor(C)
        normp1 = tensor_norm(C) + 1
        I = I / normp1
        A = A / normp1[..., None, None, :]
        S = S / normp1[..., None, None, :]
        I = self.linears_tensor[3](I)
        A = self.linears_tensor[4](A)
        S = self.linears_tensor[5](S)
        dX = _compose_tensor(I, A, S)
        return X + dX + (1 + 0.1 * q[..., None, None, None]) * _matmul33(dX, dX)


def _directed(per_pair: Tensor, num_pairs: int, num_atoms: int) -> Tensor:
    """Rows for the directed edges [i->j pairs, j->i pairs, N self loops] from rows [P pairs, 1 self-loop row]."""
    pairs = per_pair[:num_pairs]
    loop = per_pair[num_pairs:]
    return torch.cat([pairs, pairs, loop.expand([num_atoms] + list(loop.shape[1:]))])


class TensorNetAdapter(torch.nn.Module):
    """``forward(positions [nm], atomic_numbers, neighbors, shifts, box) -> energy [kJ/mol]`` for a TorchMD-Net
    TensorNet model on the plugin's neighbor list (see the module docstring)."""

    cutoff_nm: float

    def __init__(self, model: torch.nn.Module, elements: List[int], length_scale: float, energy_scale: float,
                 charge: Optional[float]):
        super().__init__()
        rep = model.representation_model
        self.length_scale = float(length_scale)
        self.energy_scale = float(energy_scale)
        self.cutoff_lower = float(rep.cutoff_lower)
        self.cutoff_upper = float(rep.cutoff_upper)
        self.cutoff_nm = self.cutoff_upper * self.length_scale
        self.distance_expansion = rep.distance_expansion
        embedding = rep.tensor_embedding
        elements = sorted({int(z) for z in elements})
        dtype = embedding.emb.weight.dtype
        with torch.no_grad():
            z = torch.tensor(elements, dtype=torch.long)
            Z = embedding.emb(z)
            n = len(elements)
            pairs = torch.cat([Z.unsqueeze(1).expand(n, n, -1), Z.unsqueeze(0).expand(n, n, -1)], dim=-1)
            table = embedding.emb2(pairs.reshape(n * n, -1)).reshape(n, n, -1).to(dtype)
        type_of_z = torch.full((int(embedding.max_z),), -1, dtype=torch.long)
        type_of_z[z] = torch.arange(n)
        self.register_buffer("type_of_z", type_of_z)
        self.embedding = _TensorNetEmbedding(embedding, table)
        self.layers = torch.nn.ModuleList([_TensorNetInteraction(layer) for layer in rep.layers])
        self.linear = rep.linear
        self.out_norm = rep.out_norm
        self.act = rep.act
        self.output_network = model.output_model.output_network
        self.reduce_mean = model.output_model.reduce_op == "mean"
        self.atomrefs = torch.nn.ModuleList(list(model.prior_model) if model.prior_model is not None else [])
        self.register_buffer("std", model.std.detach().clone())
        self.register_buffer("mean", model.mean.detach().clone())
        self.register_buffer("charge", torch.tensor([0.0 if charge is None else float(charge)], dtype=dtype))

    def forward(self, positions: Tensor, atomic_numbers: Tensor, neighbors: Optional[Tensor] = None,
                shifts: Optional[Tensor] = None, box: Optional[Tensor] = None) -> Tensor:
        i, j, vectors, _ = _common.pairs_with_offsets(positions, neighbors, shifts, box)
        vectors = vectors / self.length_scale  # r_ij = x_j - x_i (+ shift), model units
        distances = (vectors * vectors).sum(dim=1).sqrt()
        keep = torch.nonzero((distances < self.cutoff_upper) & (distances >= self.cutoff_lower)).flatten()
        i = i.index_select(0, keep)
        j = j.index_select(0, keep)
        vectors = vectors.index_select(0, keep)
        distances = distances.index_select(0, keep)
        num_pairs = i.shape[0]
        num_atoms = positions.shape[0]
        loops = torch.arange(num_atoms, dtype=i.dtype, device=i.device)
        receivers = torch.cat([i, j, loops])
        senders = torch.cat([j, i, loops])
        # torchmd-net's edge vector is x[receiver] - x[sender], normalised (self loops: zero)
        unit = vectors / distances.unsqueeze(1)
        edge_vec_norm = torch.cat([-unit, unit, torch.zeros_like(positions)])
        pair_distance = torch.cat([distances, torch.zeros(1, dtype=distances.dtype, device=distances.device)])
        pair_attr = self.distance_expansion(pair_distance)
        z = atomic_numbers.long()
        q = self.charge.to(positions.dtype).expand(num_atoms)
        X = self.embedding(self.type_of_z.index_select(0, z), receivers, senders, pair_distance, pair_attr,
                           edge_vec_norm, num_pairs, num_atoms)
        for layer in self.layers:
            X = layer(X, receivers, senders, pair_distance, pair_attr, q, num_pairs)
        I, A, S = _decompose_tensor(X)
        x = torch.cat((3 * I ** 2, tensor_norm(A), tensor_norm(S)), dim=-1)
        x = self.act(self.linear(self.out_norm(x)))
        x = self.output_network(x) * self.std
        pos = positions / self.length_scale
        batch = torch.zeros_like(z)
        for prior in self.atomrefs:
            x = prior.pre_reduce(x, z, pos, batch, None)
        y = x.mean(dim=0) if self.reduce_mean else x.sum(dim=0)
        y = y + self.mean
        return y.sum() * self.energy_scale
