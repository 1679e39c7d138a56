"""Mini-batches for training and batched labelling: concatenated molecules with block-diagonal pair lists."""
import numpy as np
import torch


def block_pairs(n_atoms):
    """All intra-molecule pairs (i < j) of concatenated molecules: LongTensor[2, P] (torch, no Python loop).

    Parameters
    ----------
    n_atoms : sequence of int or LongTensor
        Atoms of each molecule, in the order they are concatenated.

    Returns
    -------
    torch.LongTensor, shape (2, P)
        Pairs (i, j), i < j, of atoms in the same molecule, as global indices.

    Examples
    --------
    >>> block_pairs([2, 3]).tolist()
    [[0, 2, 2, 3], [1, 3, 4, 4]]
    """
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
    """Concatenated molecules as torch tensors (float64 positions unless ``dtype`` says otherwise).

    Parameters
    ----------
    dataset : Dataset
    frames : sequence of int
        The frames in the batch.
    dtype : torch.dtype
        Of positions and forces.

    Attributes
    ----------
    positions, atomic_numbers, molecule_index, neighbors, energies, forces, n_atoms, n_molecules

    Examples
    --------
    >>> batch = Batch(dataset, [0, 1, 2])  # doctest: +SKIP
    >>> batch.neighbors.shape  # doctest: +SKIP
    torch.Size([2, 108])
    """

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
    """Yield :class:`Batch` objects covering the dataset once (shuffled with ``seed`` when asked).

    Parameters
    ----------
    dataset : Dataset
    batch_size : int
    shuffle : bool
    seed : int
        Seeds the shuffle.
    dtype : torch.dtype

    Yields
    ------
    Batch

    Examples
    --------
    >>> sizes = [b.n_molecules for b in batches(dataset, 32)]  # doctest: +SKIP
    """
    n = len(dataset)
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, int(batch_size)):
        yield Batch(dataset, order[start:start + int(batch_size)], dtype=dtype)
