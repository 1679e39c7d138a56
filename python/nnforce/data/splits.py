"""Seeded train/validation/test splits and mini-batches (concatenated molecules, block-diagonal pair lists)."""
import numpy as np
import torch


def split(dataset, sizes, seed=0):
    """Split ``dataset`` into disjoint, seeded random subsets.

    ``sizes`` lists counts (ints) or fractions (floats summing to at most 1), e.g. ``(950, 50, 1000)`` or
    ``(0.8, 0.1, 0.1)``. Returns one Dataset per size; an empty split raises ValueError.
    """
    sizes = list(sizes)
    n = len(dataset)
    if all(isinstance(s, float) for s in sizes):
        if sum(sizes) > 1.0 + 1e-9:
            raise ValueError(f"split fractions {sizes} sum to more than 1")
        counts = [int(round(s * n)) for s in sizes]
    else:
        counts = [int(s) for s in sizes]
    if any(c <= 0 for c in counts):
        raise ValueError(f"split sizes {counts} of a {n}-frame dataset leave an empty split; every split needs "
                         "at least one frame")
    if sum(counts) > n:
        raise ValueError(f"split sizes {counts} need {sum(counts)} frames but {dataset.name} has only {n}")
    order = np.random.default_rng(seed).permutation(n)
    parts, start = [], 0
    names = ["train", "validation", "test"] + [f"part{k}" for k in range(3, len(counts))]
    for name, count in zip(names, counts):
        parts.append(dataset.subset(np.sort(order[start:start + count]), name=f"{dataset.name}:{name}"))
        start += count
    return parts


def block_pairs(n_atoms):
    """All intra-molecule pairs (i < j) of concatenated molecules: LongTensor[2, P] (torch, no Python loop)."""
    n_atoms = torch.as_tensor(n_atoms, dtype=torch.long)
    pairs_per = n_atoms * (n_atoms - 1) // 2
    total = int(pairs_per.sum())
    if total == 0:
        return torch.zeros(2, 0, dtype=torch.long)
    start_atom = torch.cumsum(n_atoms, 0) - n_atoms
    mol = torch.repeat_interleave(torch.arange(n_atoms.shape[0]), pairs_per)
    local = torch.arange(total) - torch.repeat_interleave(torch.cumsum(pairs_per, 0) - pairs_per, pairs_per)
    nmax = int(n_atoms.max())
    tri = torch.triu_indices(nmax, nmax, 1)
    # enumerate triu pairs of an n-atom molecule as the first n(n-1)/2 entries of an ordering by j
    order = torch.argsort(tri[1] * nmax + tri[0])
    tri = tri[:, order]
    return tri[:, local] + start_atom[mol]


class Batch:
    """Concatenated molecules as torch tensors (float64 positions unless ``dtype`` says otherwise)."""

    def __init__(self, dataset, frames, dtype=torch.float32):
        frames = np.asarray(frames, dtype=np.int64)
        rows = dataset.atom_index(frames)
        counts = dataset.offsets[frames + 1] - dataset.offsets[frames]
        self.n_molecules = len(frames)
        self.n_atoms = torch.as_tensor(counts)
        self.positions = torch.as_tensor(dataset.positions_nm[rows], dtype=dtype)
        self.atomic_numbers = torch.as_tensor(dataset.atomic_numbers[rows])
        self.molecule_index = torch.repeat_interleave(torch.arange(len(frames)), self.n_atoms)
        self.neighbors = block_pairs(counts)
        self.energies = None if dataset.energies_kj_mol is None else torch.as_tensor(
            dataset.energies_kj_mol[frames], dtype=torch.float64)
        self.forces = None if dataset.forces_kj_mol_nm is None else torch.as_tensor(
            dataset.forces_kj_mol_nm[rows], dtype=dtype)


def batches(dataset, batch_size, shuffle=False, seed=0, dtype=torch.float32):
    """Yield :class:`Batch` objects covering the dataset once (shuffled with ``seed`` when asked)."""
    n = len(dataset)
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, int(batch_size)):
        yield Batch(dataset, order[start:start + int(batch_size)], dtype=dtype)
