"""TensorNet on nnforce's neighbor list: the forward :mod:`nnforce.potentials.torchmdnet` uses for TensorNet models.

Imported only when a TensorNet model is loaded (it imports torchmd-net). The classes hold the torchmd-net model's
own layers and call torchmd-net's own pure-torch tensor algebra (``torchmdnet.models.tensornet``'s functions for
its non-warp path); only the graph (the plugin's pairs, each unordered pair's features computed once) and the
atomic-number embedding table are ours. See :mod:`nnforce.potentials.torchmdnet` for why.
"""
from typing import List, Optional, Tuple

import torch
from torch import Tensor
from torchmdnet.models.tensornet import (_compose_tensor, _decompose_tensor, outer_to_symtensor, skewtensor_to_vector,
                                         tensor_norm, tensornet_embedding_message_passing,
                                         tensornet_interaction_message_passing, vector_to_skewtensor)

from . import _common


def _matmul33(a: Tensor, b: Tensor) -> Tensor:
    """Per-atom, per-channel 3x3 matrix products of [N, 3, 3, F] tensors: ``c[n, :, :, f] = a[n, :, :, f] @
    b[n, :, :, f]``, as one broadcast product summed over the inner index (the TorchScript form). torchmd-net's
    pure-torch path permutes to [N, F, 3, 3] and calls ``torch.matmul`` (a batched GEMM of N*F 3x3 blocks plus two
    copies), which was the largest single cost of a small molecule's step on one CPU thread; this form is 3.4x
    faster at 22 atoms and 1.7x at 1,038 (forward + backward, float32, 1 thread), with the same sums."""
    return (a.unsqueeze(3) * b.unsqueeze(1)).sum(2)


def _matmul33_traced(a: Tensor, b: Tensor) -> Tensor:
    """The same products as three broadcast multiply-adds, for the traced form (eager and ``.pt2``). The one-product
    form above compiled (torch 2.13 AOTInductor, CPU) into a package whose forces were 0.28 relative off the eager
    module's (caught by the package check); this form compiles right."""
    return (a[:, :, 0, None, :] * b[:, None, 0, :, :] + a[:, :, 1, None, :] * b[:, None, 1, :, :]
            + a[:, :, 2, None, :] * b[:, None, 2, :, :])


#: unordered pairs per step of the TorchScript loop over pairs: each step's largest temporaries ([2 * PAIR_CHUNK, 3, 3,
#: F] messages, ~9 MB in float32 at F=128) stay below glibc's largest mmap threshold (32 MB), so they are reused from
#: the heap instead of being mapped and page-faulted afresh (a whole-list [E, 3, 3, F] temporary is ~250 MB at 1,000
#: atoms, and those mappings were most of a step)
PAIR_CHUNK = 1024


def _chunks(num_pairs: int, chunk: int) -> List[int]:
    """Start of each chunk of pairs."""
    return list(range(0, num_pairs, chunk))


def _chunk_length(start: int, num_pairs: int, chunk: int) -> int:
    return min(chunk, num_pairs - start)


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
        self.pair_chunk = PAIR_CHUNK
        # emb2(cat(emb(z_i), emb(z_j))) for every element pair of the system: a gather per edge, no GEMM
        self.register_buffer("zij_table", zij_table)

    def forward(self, type_index: Tensor, receivers: Tensor, senders: Tensor, pair_distance: Tensor,
                pair_attr: Tensor, edge_vec_norm: Tensor, num_pairs: int, num_atoms: int) -> Tensor:
        n_types = self.zij_table.shape[0]
        zij = self.zij_table.reshape(n_types * n_types, self.hidden_channels).index_select(
            0, type_index.index_select(0, receivers) * n_types + type_index.index_select(0, senders))
        # per pair (and one self-loop row), then both directions and the N self loops
        edge_features = _directed(self._features(pair_attr, pair_distance), num_pairs, num_atoms)
        edge_attr_processed = zij.unsqueeze(1) * edge_features  # [E, 3, F]
        edge_index = torch.stack([receivers, senders])
        I, A, S = tensornet_embedding_message_passing(edge_vec_norm, edge_attr_processed, edge_index, num_atoms)
        return self._mix(I, A, S)

    def _mix(self, I: Tensor, A: Tensor, S: Tensor) -> Tensor:
        """The embedding's end, shared by both forms: the norm of I + A + S through the scalar MLP scales the three
        parts' linear maps."""
        X = _compose_tensor(I, A, S)
        norm = self.init_norm(tensor_norm(X))
        for linear_scalar in self.linears_scalar:
            norm = self.act(linear_scalar(norm))
        norm = norm.reshape(-1, 3, self.hidden_channels)
        I = self.linears_tensor[0](I) * norm[:, 0, :]
        A = self.linears_tensor[1](A) * norm[:, 1, None, None, :]
        S = self.linears_tensor[2](S) * norm[:, 2, None, None, :]
        return _compose_tensor(I, A, S)

    def _features(self, attr: Tensor, distance: Tensor) -> Tensor:
        return torch.stack([self.distance_proj1(attr), self.distance_proj2(attr), self.distance_proj3(attr)],
                           dim=1) * self.cutoff(distance)[:, None, None]  # [pairs, 3, F]

    def chunked(self, types: Tensor, i: Tensor, j: Tensor, distances: Tensor, unit: Tensor, attr: Tensor,
                loop_attr: Tensor, num_atoms: int) -> Tensor:
        """The TorchScript form: pairs in chunks of ``pair_chunk``, both directions from one set of features."""
        n_types = self.zij_table.shape[0]
        table = self.zij_table.reshape(n_types * n_types, self.hidden_channels)
        loop = self._features(loop_attr, torch.zeros(1, dtype=distances.dtype, device=distances.device))
        # self loops: distance 0, direction 0, so only the scalar part: f_0 * emb2(z_i, z_i)
        I = loop[:, 0, :] * table.index_select(0, types * (n_types + 1))
        A = torch.zeros((num_atoms, 3, self.hidden_channels), dtype=distances.dtype, device=distances.device)
        S = torch.zeros((num_atoms, 3, 3, self.hidden_channels), dtype=distances.dtype, device=distances.device)
        num_pairs = i.shape[0]
        for start in _chunks(num_pairs, self.pair_chunk):
            length = _chunk_length(start, num_pairs, self.pair_chunk)
            ic = i.narrow(0, start, length)
            jc = j.narrow(0, start, length)
            uc = unit.narrow(0, start, length)
            features = self._features(attr.narrow(0, start, length), distances.narrow(0, start, length))
            receivers = torch.cat([ic, jc])
            ti = types.index_select(0, ic)
            tj = types.index_select(0, jc)
            # receiver i gets emb2(z_i, z_j) and the edge vector x_i - x_j (= -unit); receiver j the reverse
            zij = table.index_select(0, torch.cat([ti * n_types + tj, tj * n_types + ti]))
            f = torch.cat([features, features]) * zij.unsqueeze(1)  # [2c, 3, F]
            vec = torch.cat([-uc, uc])
            I = I.index_add(0, receivers, f[:, 0, :])
            A = A.index_add(0, receivers, f[:, 1, None, :] * vec.unsqueeze(-1))
            outer = (uc.unsqueeze(2) * uc.unsqueeze(1)).unsqueeze(-1)  # the same for both directions
            S = S.index_add(0, receivers, f[:, 2, None, None, :] * torch.cat([outer, outer]))
        A = vector_to_skewtensor(A)
        S = outer_to_symtensor(S)
        return self._mix(I, A, S)


class _TensorNetInteraction(torch.nn.Module):
    """One TensorNet ``Interaction`` layer (its own layers), edge MLP evaluated once per unordered pair."""

    def __init__(self, layer: torch.nn.Module):
        super().__init__()
        self.cutoff = layer.cutoff
        self.act = layer.act
        self.linears_scalar = layer.linears_scalar
        self.linears_tensor = layer.linears_tensor
        self.hidden_channels = int(layer.hidden_channels)
        self.pair_chunk = PAIR_CHUNK
        self.o3 = layer.equivariance_invariance_group == "O(3)"

    def forward(self, X: Tensor, receivers: Tensor, senders: Tensor, pair_distance: Tensor, pair_attr: Tensor,
                q: Tensor, num_pairs: int) -> Tensor:
        attr = self._factors(pair_attr, pair_distance)
        num_atoms = X.shape[0]
        edge_attr = _directed(attr, num_pairs, num_atoms)
        X, I, A, S, Y = self._input(X)
        Im, Am, Sm = tensornet_interaction_message_passing(I, A, S, edge_attr, torch.stack([receivers, senders]),
                                                           num_atoms)
        return self._update(X, Y, _compose_tensor(Im, Am, Sm), q, True)

    def _input(self, X: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The layer's normalised input X, its I/A/S parts after the first three linear maps, and their sum Y."""
        X = X / (tensor_norm(X) + 1)[:, None, None, :]
        I, A, S = _decompose_tensor(X)
        I = self.linears_tensor[0](I)
        A = self.linears_tensor[1](A)
        S = self.linears_tensor[2](S)
        return X, I, A, S, _compose_tensor(I, A, S)

    def _update(self, X: Tensor, Y: Tensor, msg: Tensor, q: Tensor, traced: bool) -> Tensor:
        """X plus the layer's update from the summed messages; ``traced`` picks the 3x3 product form the .pt2
        compiler gets right (the broadcast one-product form compiled into wrong forces, see _matmul33_traced)."""
        if traced:
            if self.o3:
                C = (1 + 0.1 * q[..., None, None, None]) * (_matmul33_traced(msg, Y) + _matmul33_traced(Y, msg))
            else:
                C = 2 * _matmul33_traced(Y, msg)
        elif self.o3:
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
        square = _matmul33_traced(dX, dX) if traced else _matmul33(dX, dX)
        return X + dX + (1 + 0.1 * q[..., None, None, None]) * square

    def _factors(self, attr: Tensor, distance: Tensor) -> Tensor:
        for linear_scalar in self.linears_scalar:
            attr = self.act(linear_scalar(attr))
        return (attr * self.cutoff(distance).view(-1, 1)).reshape(attr.shape[0], 3, self.hidden_channels)

    def chunked(self, X: Tensor, i: Tensor, j: Tensor, distances: Tensor, attr: Tensor, loop_attr: Tensor,
                q: Tensor) -> Tensor:
        """The TorchScript form: messages gathered and summed per chunk of ``pair_chunk`` pairs."""
        X, I, A, S, Y = self._input(X)
        A_vec = skewtensor_to_vector(A)
        loop = self._factors(loop_attr, torch.zeros(1, dtype=distances.dtype, device=distances.device))
        Im = loop[:, 0, :] * I
        Am = loop[:, 1, None, :] * A_vec
        Sm = loop[:, 2, None, None, :] * S
        num_pairs = i.shape[0]
        for start in _chunks(num_pairs, self.pair_chunk):
            length = _chunk_length(start, num_pairs, self.pair_chunk)
            ic = i.narrow(0, start, length)
            jc = j.narrow(0, start, length)
            factors = self._factors(attr.narrow(0, start, length), distances.narrow(0, start, length))
            f = torch.cat([factors, factors])
            receivers = torch.cat([ic, jc])
            senders = torch.cat([jc, ic])
            Im = Im.index_add(0, receivers, f[:, 0, :] * I.index_select(0, senders))
            Am = Am.index_add(0, receivers, f[:, 1, None, :] * A_vec.index_select(0, senders))
            Sm = Sm.index_add(0, receivers, f[:, 2, None, None, :] * S.index_select(0, senders))
        return self._update(X, Y, _compose_tensor(Im, vector_to_skewtensor(Am), Sm), q, False)


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
        num_atoms = positions.shape[0]
        z = atomic_numbers.long()
        q = self.charge.to(positions.dtype).expand(num_atoms)
        if torch.jit.is_scripting():
            X = self._chunked_features(i, j, vectors, distances, z, q, num_atoms)
        else:
            X = self._whole_features(i, j, vectors, distances, z, q, num_atoms)
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

    def _chunked_features(self, i: Tensor, j: Tensor, vectors: Tensor, distances: Tensor, z: Tensor, q: Tensor,
                          num_atoms: int) -> Tensor:
        """TensorNet's atom tensors X [N, 3, 3, F], TorchScript form: a loop over chunks of pairs keeps every
        temporary small (see PAIR_CHUNK)."""
        unit = vectors / distances.unsqueeze(1)
        attr = self.distance_expansion(distances)
        loop_attr = self.distance_expansion(torch.zeros(1, dtype=distances.dtype, device=distances.device))
        X = self.embedding.chunked(self.type_of_z.index_select(0, z), i, j, distances, unit, attr, loop_attr,
                                   num_atoms)
        for layer in self.layers:
            X = layer.chunked(X, i, j, distances, attr, loop_attr, q)
        return X

    def _whole_features(self, i: Tensor, j: Tensor, vectors: Tensor, distances: Tensor, z: Tensor, q: Tensor,
                        num_atoms: int) -> Tensor:
        """The same, traced form (eager and ``.pt2``): whole-list tensors over the directed edges [i->j, j->i, self
        loops], in which the pair count stays one symbolic size; the .pt2 compiler fuses the gather-multiply-sums."""
        num_pairs = i.shape[0]
        loops = torch.arange(num_atoms, dtype=i.dtype, device=i.device)
        receivers = torch.cat([i, j, loops])
        senders = torch.cat([j, i, loops])
        # torchmd-net's edge vector is x[receiver] - x[sender], normalised (self loops: zero)
        unit = vectors / distances.unsqueeze(1)
        edge_vec_norm = torch.cat([-unit, unit, torch.zeros((num_atoms, 3), dtype=unit.dtype, device=unit.device)])
        pair_distance = torch.cat([distances, torch.zeros(1, dtype=distances.dtype, device=distances.device)])
        pair_attr = self.distance_expansion(pair_distance)
        X = self.embedding(self.type_of_z.index_select(0, z), receivers, senders, pair_distance, pair_attr,
                           edge_vec_norm, num_pairs, num_atoms)
        for layer in self.layers:
            X = layer(X, receivers, senders, pair_distance, pair_attr, q, num_pairs)
        return X
