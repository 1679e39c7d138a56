"""The AEV's derivatives with respect to atom positions, term by term, for training on stored features with forces.

An AEV is a sum of terms, each a function of one pair vector (radial) or of two vectors from one centre (angular),
and it has no trainable parameters. So for a fixed geometry each term's slopes are fixed numbers: stored once per
frame (:class:`TermSlopes`), the forces of any network on top follow from ``g = dE/dG`` [N, F] as
``F = -sum_i g_i . dG_i/dx`` (:meth:`TermSlopes.forces`): a gather, a small contraction and a scatter per term, with
no AEV and no double backward through it in the training loop (:mod:`nnforce.train.feature_cache`).

Stored sparsely, by term, not as a dense Jacobian [atoms, features, 3 x atoms]: a pair (i, j) within the radial
cutoff keeps its radial_block slopes along r and its unit vector (d term / d x_j = slope x unit; -that for x_i); its
term feeds the row of i (block of j's species) and the row of j (block of i's species). A triplet (centre c;
neighbours o1, o2) within the angular cutoff keeps its angular_block slopes along cos(angle), r1 and r2 and four
vectors (d cos / d x_o1, the unit vector to o1, the same for o2); c moves by minus the sum of the other two. Its term
feeds c's block of the species pair (o1, o2).

The slopes come from the AEV's own factors (:meth:`AEV._radial_factors`, :meth:`AEV._angle_base`,
:meth:`AEV._angle_powers`, :meth:`AEV._radius_factors`, nothing computed again): each term is
linear in each factor, so its derivatives along r (radial), and along cos(angle), r1 and r2 (angular) are closed
forms of the factors and their derivatives, and the chain rule through r = |v| and cos = v1.v2 / (r1 r2) gives the
slopes along the vectors. Tested against autograd's Jacobian of the AEV.
"""
import math

import torch

from .aev import _power, triplets


class TermSlopes:
    """The stored term slopes of a set of molecules (atom indices are rows of the molecules' concatenated atoms).

    Attributes
    ----------
    pair_i, pair_j : LongTensor [P]
        Pairs within the radial cutoff: ``pair_slope`` [P, radial_block] (d term / d r) and ``pair_unit`` [P, 3]
        (the unit vector i -> j): d term / d x_j = slope x unit, d term / d x_i = -that.
    pair_column_i, pair_column_j : LongTensor [P]
        First feature column the pair's term feeds in the row of i (j's species block) and of j (i's).
    centre, first, second : LongTensor [T]
        Triplets within the angular cutoff: ``triplet_slope`` [T, 3, angular_block] (d term / d cos, / d r1,
        / d r2) and ``triplet_vectors`` [T, 4, 3] (d cos / d x_first, unit vector to first, d cos / d x_second,
        unit vector to second). ``triplet_column`` [T]: first column of the species-pair block in the centre's row.
    """

    def __init__(self, pair_i, pair_j, pair_column_i, pair_column_j, pair_slope, pair_unit, centre, first, second,
                 triplet_column, triplet_slope, triplet_vectors):
        self.pair_i, self.pair_j = pair_i, pair_j
        self.pair_column_i, self.pair_column_j = pair_column_i, pair_column_j
        self.pair_slope, self.pair_unit = pair_slope, pair_unit
        self.centre, self.first, self.second = centre, first, second
        self.triplet_column = triplet_column
        self.triplet_slope, self.triplet_vectors = triplet_slope, triplet_vectors

    def forces(self, feature_gradient):
        """Forces [N, 3] from ``dE/dG`` [N, F]: ``-sum_i dE/dG_i . dG_i/dx`` (differentiable in the gradient)."""
        n, length = feature_gradient.shape
        flat = feature_gradient.reshape(-1)

        def gathered(rows, columns, size):  # dE/dG over each term's block: [terms, size]
            return flat.index_select(0, ((rows * length + columns).unsqueeze(1) + torch.arange(size)).reshape(-1)) \
                .view(-1, size)

        block = self.pair_slope.shape[1]
        weights = gathered(self.pair_i, self.pair_column_i, block) + gathered(self.pair_j, self.pair_column_j, block)
        towards_j = (weights * self.pair_slope).sum(1, keepdim=True) * self.pair_unit  # dE/dx_j of the pair's terms
        forces = torch.zeros(n, 3, dtype=feature_gradient.dtype)
        forces = forces.index_add(0, self.pair_j, -towards_j).index_add(0, self.pair_i, towards_j)
        block = self.triplet_slope.shape[2]
        along = (self.triplet_slope * gathered(self.centre, self.triplet_column, block).unsqueeze(1)).sum(2)  # [T, 3]
        vectors = self.triplet_vectors
        along_first = along[:, 0:1] * vectors[:, 0] + along[:, 1:2] * vectors[:, 1]     # dE/dx_first
        along_second = along[:, 0:1] * vectors[:, 2] + along[:, 2:3] * vectors[:, 3]
        return forces.index_add(0, self.first, -along_first).index_add(0, self.second, -along_second) \
            .index_add(0, self.centre, along_first + along_second)

    def to_local(self, offsets):
        """The same slopes with each atom index made relative to its molecule's first atom (``offsets`` [N] holds
        that first atom's row for every atom)."""
        def local(index):
            return index - offsets.index_select(0, index)

        return TermSlopes(local(self.pair_i), local(self.pair_j), self.pair_column_i, self.pair_column_j,
                          self.pair_slope, self.pair_unit, local(self.centre), local(self.first), local(self.second),
                          self.triplet_column, self.triplet_slope, self.triplet_vectors)


def aev_term_slopes(aev, species, i, j, vectors):
    """AEVs and their term slopes for molecules given by an intra-molecule pair list (no periodic shifts).

    Parameters
    ----------
    aev : AEV
        The feature module (:class:`nnforce.models.aev.AEV`).
    species : LongTensor [N]
    i, j : LongTensor [P]
        Pairs (each unordered pair once); ``vectors`` [P, 3] = x_j - x_i.

    Returns
    -------
    (Tensor [N, F], TermSlopes)
        The features (as ``aev(species, i, j, vectors)``) and the slopes of their terms.
    """
    n = species.shape[0]
    with torch.no_grad():
        r2 = (vectors * vectors).sum(dim=1)
        keep = torch.nonzero(r2 < aev.radial_cutoff ** 2).flatten()
        i, j, vectors = i.index_select(0, keep), j.index_select(0, keep), vectors.index_select(0, keep)
        r = torch.sqrt(r2.index_select(0, keep))
        terms, slopes = _radial_slopes(aev, r)                                  # [P, B], d term / d r
        column_i = species.index_select(0, j) * aev.radial_block
        column_j = species.index_select(0, i) * aev.radial_block
        features = torch.zeros(n, aev.length, dtype=vectors.dtype)
        block = torch.arange(aev.radial_block)
        for row, column in ((i, column_i), (j, column_j)):
            features.view(-1).index_add_(0, ((row * aev.length + column).unsqueeze(1) + block).reshape(-1),
                                         terms.reshape(-1))
        close = torch.nonzero(r < aev.angular_cutoff).flatten()
        angular = _angular(aev, species, i.index_select(0, close), j.index_select(0, close),
                           vectors.index_select(0, close), r.index_select(0, close), features)
    return features, TermSlopes(i, j, column_i, column_j, slopes, vectors / r.unsqueeze(1), *angular)


def _angular(aev, species, i, j, vectors, r, features):
    """Triplets (centre, first, second, column, slopes, vectors: see :class:`TermSlopes`); adds their terms to
    ``features``."""
    n = species.shape[0]
    centre, other, v, _ = aev._directed(i, j, vectors, r)
    owner, first, second = triplets(centre, n)
    v1, v2 = v.index_select(0, first), v.index_select(0, second)
    o1, o2 = other.index_select(0, first), other.index_select(0, second)
    block = aev.pair_index[species.index_select(0, o1), species.index_select(0, o2)]
    column = aev.radial_length + block * aev.angular_block
    # a term is a function of cos(angle), r1 and r2; its slopes along each, and the chain rule through
    # cos = v1.v2 / (r1 r2), r = |v|, give its slopes along the vectors
    r1, r2 = torch.linalg.vector_norm(v1, dim=1), torch.linalg.vector_norm(v2, dim=1)
    cosine = (v1 * v2).sum(dim=1) / (r1 * r2)
    terms, by_cos, by_r1, by_r2 = _angle_slopes(aev, cosine, r1, r2)
    u1, u2 = v1 / r1.unsqueeze(1), v2 / r2.unsqueeze(1)
    cos_by_v1 = (u2 - cosine.unsqueeze(1) * u1) / r1.unsqueeze(1)               # d cos / d v1, [T, 3]
    cos_by_v2 = (u1 - cosine.unsqueeze(1) * u2) / r2.unsqueeze(1)
    columns = (owner * aev.length + column).unsqueeze(1) + torch.arange(aev.angular_block)
    features.view(-1).index_add_(0, columns.reshape(-1), terms.reshape(-1))
    return (owner, o1, o2, column, torch.stack([by_cos, by_r1, by_r2], dim=1),
            torch.stack([cos_by_v1, u1, cos_by_v2, u2], dim=1))


def _radial_slopes(aev, r):
    """The radial terms [P, B] (:meth:`AEV._radial_terms`) and their derivatives along r."""
    gauss, fc = aev._radial_factors(r)                                # 0.25 exp(-eta (r - R)^2) and the cutoff
    etas = aev.radial_etas.to(r.dtype).view(1, -1, 1)
    offset = r.view(-1, 1, 1) - aev.radial_shifts.to(r.dtype).view(1, 1, -1)
    fc_by_r = _cutoff_slope(r, aev.radial_cutoff)
    slopes = gauss * (-2.0 * etas * offset * fc.view(-1, 1, 1) + fc_by_r.view(-1, 1, 1))
    return (gauss * fc.view(-1, 1, 1)).reshape(-1, aev.radial_block), slopes.reshape(-1, aev.radial_block)


def _angle_slopes(aev, cosine, r1, r2):
    """The angular terms [T, B] and their derivatives along the cosine, r1 and r2, from the AEV's factors
    (:meth:`AEV._angle_base`, :meth:`AEV._angle_powers`, :meth:`AEV._radius_factors`; each term is
    2 x radial x angular x cutoffs, linear in each factor)."""
    base, cos_theta, sin_theta, section_cos, section_sin = aev._angle_base(cosine)
    angle = aev._angle_powers(base)
    radius, f1, f2 = aev._radius_factors(r1, r2)
    fc = f1 * f2
    base_by_cos = 0.475 * (section_cos - (cos_theta / sin_theta).unsqueeze(1) * section_sin)
    angle_by_cos = torch.stack([z * _power(base, z - 1.0) for z in aev.zeta_values], dim=1) * base_by_cos.unsqueeze(1)
    mean = (0.5 * (r1 + r2)).view(-1, 1, 1)
    # d radius / d r1 = d radius / d r2 = 0.5 d radius / d mean
    radius_by_r = -aev.angular_etas.to(r1.dtype).view(1, -1, 1) \
        * (mean - aev.angular_shifts.to(r1.dtype).view(1, 1, -1)) * radius
    f1_by_r, f2_by_r = _cutoff_slope(r1, aev.angular_cutoff), _cutoff_slope(r2, aev.angular_cutoff)
    bare = aev._combine(radius, angle, torch.ones_like(fc))
    along_mean = aev._combine(radius_by_r, angle, fc)
    return (bare * fc.unsqueeze(1), aev._combine(radius, angle_by_cos, fc),
            along_mean + bare * (f1_by_r * f2).unsqueeze(1), along_mean + bare * (f1 * f2_by_r).unsqueeze(1))


def _cutoff_slope(r, cutoff):
    """d/dr of :meth:`AEV._cutoff`."""
    scale = math.pi / cutoff
    return -0.5 * scale * torch.sin(r * scale)
