"""Stored atomic features (and their terms' slopes) for training models whose features have no trainable parameters.

An ANI-style model's AEV is a fixed function of the geometry, so every epoch would recompute the same features for
every atom. :class:`FeatureCache` computes them once per dataset (in the model's dtype) and :func:`nnforce.train.fit`
then trains the per-element networks on the stored rows, which gives the same losses as recomputing them (the
features of an atom depend only on its own molecule) at a fraction of the cost: on QM9 (18 atoms per molecule, 560
features, one thread) a batch of 64 molecules took 57 ms with the AEV recomputed and 20 ms from stored features.

When the loss has a force term the cache also stores the slopes of every AEV term with respect to the atoms it
moves (:func:`nnforce.models.aev_jacobian.aev_term_slopes`); the forces are then ``-(dE/dfeatures) . dfeatures/dx``
from those (:meth:`~nnforce.models.aev_jacobian.TermSlopes.forces`), and the loss's gradient goes through the
networks and this contraction only, not through the AEV twice (bench/results/train_force_cache.md).

The cache is used when :class:`TrainConfig` ``feature_cache`` is ``"auto"`` (the default), the model offers
``energies_from_features`` and its feature module ``aev`` has no trainable parameters (an
:class:`~nnforce.models.aev.AEV` when there are forces), and the stored arrays fit in ``feature_cache_max_gib``
(:class:`CacheTooLarge` stops the build as soon as they would not); otherwise training recomputes features as before.
"""
import numpy as np
import torch

from ..data.batch import Batch
from ..data.dataset import offset_ranges
from ..models._geometry import pair_vectors
from ..models.aev import AEV
from ..models.aev_jacobian import TermSlopes, aev_term_slopes


class CacheTooLarge(Exception):
    """The stored arrays would pass the memory limit (``fit`` then recomputes the features)."""


class FeatureBatch:
    """A batch of molecules given by stored features: ``features`` [N, F], ``species`` [N], ``molecule_index`` [N],
    ``n_molecules``; with forces also ``slopes`` (:class:`~nnforce.models.aev_jacobian.TermSlopes`, rows of this
    batch) and the reference ``forces`` [N, 3] (the fields :func:`nnforce.train.fit` needs)."""

    def __init__(self, features, species, molecule_index, n_molecules, slopes=None, forces=None):
        self.features = features
        self.species = species
        self.molecule_index = molecule_index
        self.n_molecules = n_molecules
        self.slopes = slopes
        self.forces = forces


def can_cache(model, config):
    """Whether ``fit`` may train ``model`` from stored features under ``config`` (see the module docstring)."""
    if config.feature_cache == "off":
        return False
    if config.force_weight > 0 and not isinstance(getattr(model, "aev", None), AEV):
        return False
    if not all(hasattr(model, name) for name in ("features", "energies_from_features")) or not isinstance(
            getattr(model, "aev", None), torch.nn.Module):
        return False
    if hasattr(model, "reconstruction_loss"):  # multitask models train their encoder
        return False
    return not any(p.requires_grad for p in model.aev.parameters())


class FeatureCache:
    """The features of every atom of ``dataset`` under ``model``'s fixed feature module, computed once (and, with
    ``forces``, the slopes of their terms).

    Parameters
    ----------
    model : torch.nn.Module
        An ANI-style model (``element_index``, ``features``, ``aev.length``).
    dataset : Dataset
    dtype : torch.dtype
        The model's dtype (features are stored in it).
    batch_size : int
        Molecules per feature computation (memory only; the values do not depend on it).
    forces : bool
        Store the term slopes too (force training).
    max_bytes : float, optional
        Raise :class:`CacheTooLarge` as soon as the stored arrays pass this.

    Examples
    --------
    >>> cache = FeatureCache(model, train_set, torch.float32)  # doctest: +SKIP
    >>> cache.batch([0, 5, 9]).features.shape  # doctest: +SKIP
    torch.Size([54, 560])
    """

    def __init__(self, model, dataset, dtype, batch_size=512, forces=False, max_bytes=None):
        self.offsets = np.asarray(dataset.offsets, dtype=np.int64)
        self.dataset = dataset
        n_atoms, length = int(self.offsets[-1]), int(model.aev.length)
        self._check_size(n_atoms * length * torch.empty((), dtype=dtype).element_size(), max_bytes)
        self.features = torch.empty((n_atoms, length), dtype=dtype)
        species = model.element_index.index_select(0, torch.as_tensor(dataset.atomic_numbers, dtype=torch.long))
        self.species = species
        self.forces = torch.as_tensor(dataset.forces_kj_mol_nm, dtype=dtype) if forces else None
        parts, stored = [], self.features.numel() * self.features.element_size()
        with torch.no_grad():
            for start in range(0, len(dataset), batch_size):
                frames = np.arange(start, min(start + batch_size, len(dataset)))
                batch = Batch(dataset, frames, dtype=dtype)
                rows = slice(int(self.offsets[frames[0]]), int(self.offsets[frames[-1] + 1]))
                if not forces:
                    self.features[rows] = model.features(batch.positions, species[rows], batch.neighbors)
                    continue
                self.features[rows], slopes = aev_term_slopes(model.aev, species[rows],
                                                              *pair_vectors(batch.positions, batch.neighbors))
                first_atom = torch.repeat_interleave(torch.as_tensor(self.offsets[frames] - self.offsets[start]),
                                                     batch.n_atoms)
                parts.append((slopes.to_local(first_atom), batch.molecule_index.index_select(0, slopes.pair_i),
                              batch.molecule_index.index_select(0, slopes.centre), frames))
                stored += sum(t.numel() * t.element_size() for t in vars(parts[-1][0]).values())
                self._check_size(stored, max_bytes)
        self.slopes = self._join(parts, len(dataset)) if forces else None
        self._bytes = stored

    def bytes(self):
        """Bytes the stored features (and slopes) take."""
        return self._bytes

    @staticmethod
    def _check_size(stored, max_bytes):
        if max_bytes is not None and stored > max_bytes:
            raise CacheTooLarge(f"the stored features need more than {max_bytes / 2 ** 30:.3g} GiB")

    def _join(self, parts, n_frames):
        """One :class:`TermSlopes` of every frame (frame-local atom indices) and each frame's pair and triplet
        offsets into it."""
        fields = {name: torch.cat([vars(part[0])[name] for part in parts]) for name in vars(parts[0][0])}
        pair_counts = np.zeros(n_frames, dtype=np.int64)
        triplet_counts = np.zeros(n_frames, dtype=np.int64)
        for _, pair_frame, triplet_frame, frames in parts:
            pair_counts[frames] = np.bincount(pair_frame.numpy(), minlength=len(frames))
            triplet_counts[frames] = np.bincount(triplet_frame.numpy(), minlength=len(frames))
        self.pair_offsets = np.concatenate([[0], np.cumsum(pair_counts)])
        self.triplet_offsets = np.concatenate([[0], np.cumsum(triplet_counts)])
        return TermSlopes(**fields)

    def batch(self, frames):
        """The :class:`FeatureBatch` of ``frames`` (molecule order as given)."""
        frames = np.asarray(frames, dtype=np.int64)
        rows = torch.as_tensor(self.dataset.atom_index(frames))
        counts = torch.as_tensor(self.offsets[frames + 1] - self.offsets[frames])
        molecule_index = torch.repeat_interleave(torch.arange(len(frames)), counts)
        features, species = self.features.index_select(0, rows), self.species.index_select(0, rows)
        if self.slopes is None:
            return FeatureBatch(features, species, molecule_index, len(frames))
        return FeatureBatch(features, species, molecule_index, len(frames), self._batch_slopes(frames, counts),
                            self.forces.index_select(0, rows))

    def _batch_slopes(self, frames, atom_counts):
        """The stored slopes of ``frames``, atom indices made rows of the batch."""
        first_atom = torch.cumsum(atom_counts, 0) - atom_counts
        pairs = torch.as_tensor(offset_ranges(self.pair_offsets, frames))
        triplets = torch.as_tensor(offset_ranges(self.triplet_offsets, frames))
        pair_shift = torch.repeat_interleave(
            first_atom, torch.as_tensor(self.pair_offsets[frames + 1] - self.pair_offsets[frames]))
        triplet_shift = torch.repeat_interleave(
            first_atom, torch.as_tensor(self.triplet_offsets[frames + 1] - self.triplet_offsets[frames]))
        s = self.slopes

        def take(values, index, shift=None):
            taken = values.index_select(0, index)
            return taken if shift is None else taken + shift

        return TermSlopes(take(s.pair_i, pairs, pair_shift), take(s.pair_j, pairs, pair_shift),
                          take(s.pair_column_i, pairs), take(s.pair_column_j, pairs), take(s.pair_slope, pairs),
                          take(s.pair_unit, pairs), take(s.centre, triplets, triplet_shift),
                          take(s.first, triplets, triplet_shift), take(s.second, triplets, triplet_shift),
                          take(s.triplet_column, triplets), take(s.triplet_slope, triplets),
                          take(s.triplet_vectors, triplets))
