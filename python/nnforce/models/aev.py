"""ANI atomic environment vectors (AEVs): the one implementation behind the ANI-style model and ANI-1x.

AEV of atom i (lengths in whatever unit the cutoffs and shifts are given in: nm for the ANI-style model, Angstrom
for ANI-1x's published parameters):

* radial, per neighbour species s, radial eta and shell R_k:
  ``G_R[s, eta, k] = sum_{j in s} 0.25 exp(-eta (r_ij - R_k)^2) f_c(r_ij; Rc_R)``;
* angular, per unordered neighbour-species pair (s1, s2), angular eta, zeta, radial shell R_a and angle section
  theta_z: ``G_A = sum_{j<k} 2 ((1 + cos(theta_ijk - theta_z)) / 2)^zeta exp(-eta ((r_ij + r_ik)/2 - R_a)^2)
  f_c(r_ij; Rc_A) f_c(r_ik; Rc_A)`` with ``theta_ijk = acos(0.95 cos)`` (ANI's damping keeps acos differentiable);
* ``f_c`` Behler's cosine cutoff. Columns: radial blocks by species, then angular blocks by species pair, each
  block ordered (eta, zeta, shell, section) as in torchani, so published ANI weights apply unchanged.

Export-friendly: pairs beyond a cutoff are dropped with ``nonzero`` (a data-dependent size that ``torch.export``
traces as an unbacked dimension), triplets come from a per-centre table and a broadcast mask, and there is no
Python branch on tensor values, so the same code runs eagerly, in TorchScript and compiled into a ``.pt2``.
"""
import math
from typing import List, Optional, Tuple

import torch
from torch import Tensor


def _buffer(values: List[float]) -> Tensor:
    return torch.tensor([float(v) for v in values], dtype=torch.float64)


class AEV(torch.nn.Module):
    """Radial + angular AEVs of concatenated atoms from a pair list ``(i, j, r_ij)`` (each unordered pair once).

    Parameters
    ----------
    num_species : int
        Number of species channels (species are 0..num_species-1).
    radial_cutoff, angular_cutoff : float
        Cutoffs (angular <= radial), in the unit of the pair vectors.
    radial_eta, radial_shifts, angular_eta, angular_shifts, zeta, angle_sections : list of float
        The AEV parameters (eta in 1/length^2, shifts in length, sections in radians).
    sections_first : bool
        Order each angular block (section, shell) instead of torchani's (eta, zeta, shell, section); the ANI-style
        model's layout (one eta and zeta), kept so its trained weights stay valid.
    """

    def __init__(self, num_species: int, radial_cutoff: float, angular_cutoff: float, radial_eta: List[float],
                 radial_shifts: List[float], angular_eta: List[float], angular_shifts: List[float],
                 zeta: List[float], angle_sections: List[float], sections_first: bool = False):
        super().__init__()
        if angular_cutoff > radial_cutoff:
            raise ValueError("angular_cutoff must not exceed radial_cutoff")
        self.num_species = int(num_species)
        self.radial_cutoff = float(radial_cutoff)
        self.angular_cutoff = float(angular_cutoff)
        # etas and zetas are not saved in state dicts (they are set by the constructor), so checkpoints of the
        # ANI-style model written before this class existed load unchanged
        self.register_buffer("radial_etas", _buffer(radial_eta), persistent=False)
        self.register_buffer("radial_shifts", _buffer(radial_shifts))
        self.register_buffer("angular_etas", _buffer(angular_eta), persistent=False)
        self.register_buffer("angular_shifts", _buffer(angular_shifts))
        self.register_buffer("zetas", _buffer(zeta), persistent=False)
        self.zeta_values = [float(z) for z in zeta]
        self.register_buffer("angle_sections", _buffer(angle_sections))
        # cos and sin of the sections, derived once (compiled code would otherwise evaluate them for every term) and
        # re-derived from angle_sections whenever it changes (dtype conversion, state dict), so that they are always
        # the cos/sin of the sections the model holds, in its precision
        self.register_buffer("section_cos", torch.cos(self.angle_sections), persistent=False)
        self.register_buffer("section_sin", torch.sin(self.angle_sections), persistent=False)
        self.sections_first = bool(sections_first)
        self.radial_block = len(radial_eta) * len(radial_shifts)
        self.angular_block = len(angular_eta) * len(zeta) * len(angular_shifts) * len(angle_sections)
        self.num_species_pairs = self.num_species * (self.num_species + 1) // 2
        pair_index = torch.zeros(self.num_species, self.num_species, dtype=torch.long)
        block = 0
        for a in range(self.num_species):
            for b in range(a, self.num_species):
                pair_index[a, b] = block
                pair_index[b, a] = block
                block += 1
        self.register_buffer("pair_index", pair_index)
        self.radial_length = self.num_species * self.radial_block
        self.angular_length = self.num_species_pairs * self.angular_block
        self.length = self.radial_length + self.angular_length

    def _refresh_sections(self):
        with torch.no_grad():
            self.section_cos = torch.cos(self.angle_sections)
            self.section_sin = torch.sin(self.angle_sections)

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        self._refresh_sections()
        return self

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._refresh_sections()

    def forward(self, species: Tensor, i: Tensor, j: Tensor, vectors: Tensor) -> Tensor:
        n = species.shape[0]
        r2 = (vectors * vectors).sum(dim=1)
        keep = torch.nonzero(r2 < self.radial_cutoff * self.radial_cutoff).flatten()
        i = i.index_select(0, keep)
        j = j.index_select(0, keep)
        vectors = vectors.index_select(0, keep)
        distances = torch.sqrt(r2.index_select(0, keep))
        radial = self._radial(species, i, j, distances, n)
        close = torch.nonzero(distances < self.angular_cutoff).flatten()
        angular = self._angular(species, i.index_select(0, close), j.index_select(0, close),
                                vectors.index_select(0, close), distances.index_select(0, close), n)
        return torch.cat([radial, angular], dim=1)

    def _radial(self, species: Tensor, i: Tensor, j: Tensor, r: Tensor, n: int) -> Tensor:
        dtype = r.dtype
        terms = self._radial_terms(r)
        # one row of radial_block columns per (atom, neighbour species): a row-wise index_add, whose contiguous rows
        # the compiler vectorizes (a flat element-wise scatter compiled to a scalar loop)
        rows = torch.zeros(n * self.num_species, self.radial_block, dtype=dtype, device=r.device)
        rows = rows.index_add(0, i * self.num_species + species.index_select(0, j), terms)
        rows = rows.index_add(0, j * self.num_species + species.index_select(0, i), terms)
        return rows.view(n, self.radial_length)

    def _radial_terms(self, r: Tensor) -> Tensor:
        """The radial terms of pairs at distances ``r`` [P]: [P, radial_block] (before the sum over neighbours)."""
        gauss, fc = self._radial_factors(r)
        return (gauss * fc.view(-1, 1, 1)).reshape(-1, self.radial_block)

    def _radial_factors(self, r: Tensor) -> Tuple[Tensor, Tensor]:
        """The two factors of the radial terms: ``0.25 exp(-eta (r - R)^2)`` [P, Eta, Shift] and the cutoff [P]
        (the AEV's term slopes differentiate them, :mod:`nnforce.models.aev_jacobian`)."""
        dtype = r.dtype
        fc = self._cutoff(r, self.radial_cutoff)
        gauss = 0.25 * torch.exp(-self.radial_etas.to(dtype).view(1, -1, 1)
                                 * (r.view(-1, 1, 1) - self.radial_shifts.to(dtype).view(1, 1, -1)) ** 2)
        return gauss, fc

    def _cutoff(self, r: Tensor, cutoff: float) -> Tensor:
        """Behler's cosine cutoff 0.5 cos(pi r / rc) + 0.5 (the pairs given are within rc)."""
        return 0.5 * torch.cos(r * (math.pi / cutoff)) + 0.5

    def _angular(self, species: Tensor, i: Tensor, j: Tensor, vectors: Tensor, r: Tensor, n: int) -> Tensor:
        dtype = vectors.dtype
        centre, other, v, d = self._directed(i, j, vectors, r)
        owner, first, second = triplets(centre, n)
        if not torch.compiler.is_compiling() and owner.shape[0] == 0:  # no triplets (TorchScript's backward dislikes empties)
            return torch.zeros(n, self.angular_length, dtype=dtype, device=vectors.device)
        v1 = v.index_select(0, first)
        v2 = v.index_select(0, second)
        r1 = d.index_select(0, first)
        r2 = d.index_select(0, second)
        terms = self._angular_terms(v1, v2, r1, r2)
        block = self.pair_index[species.index_select(0, other.index_select(0, first)),
                                species.index_select(0, other.index_select(0, second))]
        # one row of angular_block columns per (centre, neighbour-species pair): see _radial
        rows = torch.zeros(n * self.num_species_pairs, self.angular_block, dtype=dtype, device=vectors.device)
        rows = rows.index_add(0, owner * self.num_species_pairs + block, terms)
        return rows.view(n, self.angular_length)

    def _directed(self, i: Tensor, j: Tensor, vectors: Tensor, r: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Each pair in both directions: (centre, other atom, vector centre -> other, distance), [2P] each."""
        # gathered with index_select, not torch.cat: the backward of a cat of data-dependent (unbacked) sizes came out
        # wrong in AOTInductor-compiled packages
        m = i.shape[0]
        directed = torch.arange(2 * m, device=vectors.device)
        pair = directed % m  # empty when m == 0 (no division happens)
        forward_half = directed < m
        centre = torch.where(forward_half, i.index_select(0, pair), j.index_select(0, pair))
        other = torch.where(forward_half, j.index_select(0, pair), i.index_select(0, pair))
        sign = torch.where(forward_half, 1.0, -1.0).to(vectors.dtype)
        return centre, other, vectors.index_select(0, pair) * sign.unsqueeze(1), r.index_select(0, pair)

    def _angular_terms(self, v1: Tensor, v2: Tensor, r1: Tensor, r2: Tensor) -> Tensor:
        """The angular terms of triplets (centre to neighbours along ``v1`` and ``v2``, at distances ``r1`` and
        ``r2``): [T, angular_block] (before the sum over neighbour pairs)."""
        return self._angle_terms((v1 * v2).sum(dim=1) / (r1 * r2), r1, r2)

    def _angle_terms(self, cosine: Tensor, r1: Tensor, r2: Tensor) -> Tensor:
        """:meth:`_angular_terms` from the cosine of the angle and the two distances."""
        radius_term, angle_term, fc = self._angle_factors(cosine, r1, r2)
        return self._combine(radius_term, angle_term, fc)

    def _angle_factors(self, cosine: Tensor, r1: Tensor, r2: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """The three factors of the angular terms: radial [T, EtaA, ShfA], angular [T, Zeta, Section] and the
        cutoffs' product [T]."""
        base = self._angle_base(cosine)[0]
        radius_term, f1, f2 = self._radius_factors(r1, r2)
        return radius_term, self._angle_powers(base), f1 * f2

    def _angle_base(self, cosine: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """``(1 + cos(theta - theta_z)) / 2`` [T, Section] of each section, with what it is made of: cos(theta),
        sin(theta) [T] and the sections' cos and sin (the AEV's term slopes differentiate it,
        :mod:`nnforce.models.aev_jacobian`)."""
        # theta = acos(0.95 cos_ijk), so cos(theta - theta_z) = cos(theta) cos(theta_z) + sin(theta) sin(theta_z) with
        # cos(theta) = 0.95 cos_ijk and sin(theta) = sqrt(1 - cos(theta)^2) >= sqrt(1 - 0.95^2): the same numbers as
        # acos then cos, without either (compiled code recomputes this term for every shell of every triplet)
        cos_theta = 0.95 * cosine
        sin_theta = torch.sqrt(1.0 - cos_theta * cos_theta)
        section_cos, section_sin = self._section_cos_sin(cosine.dtype)
        shifted = cos_theta.unsqueeze(1) * section_cos.unsqueeze(0) \
            + sin_theta.unsqueeze(1) * section_sin.unsqueeze(0)                               # [T, Section]
        return (1.0 + shifted) * 0.5, cos_theta, sin_theta, section_cos, section_sin

    def _angle_powers(self, base: Tensor) -> Tensor:
        """``base ** zeta`` for each zeta: [T, Zeta, Section]."""
        return torch.stack([_power(base, z) for z in self.zeta_values], dim=1)

    def _radius_factors(self, r1: Tensor, r2: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """``exp(-eta ((r1 + r2) / 2 - R)^2)`` [T, EtaA, ShfA] and the two cutoffs [T]."""
        dtype = r1.dtype
        radius_term = torch.exp(-self.angular_etas.to(dtype).view(1, -1, 1) * (
            (0.5 * (r1 + r2)).view(-1, 1, 1) - self.angular_shifts.to(dtype).view(1, 1, -1)) ** 2)
        return radius_term, self._cutoff(r1, self.angular_cutoff), self._cutoff(r2, self.angular_cutoff)

    def _section_cos_sin(self, dtype: torch.dtype) -> Tuple[Tensor, Tensor]:
        """cos and sin of the angle sections in ``dtype``."""
        if torch.compiler.is_compiling():  # compiled: the stored cos/sin, loaded as constants
            return self.section_cos.to(dtype), self.section_sin.to(dtype)
        # eager and TorchScript: from the sections as they are now (whatever dtype conversions they went through)
        sections = self.angle_sections.to(dtype)
        return torch.cos(sections), torch.sin(sections)

    def _combine(self, radius_term: Tensor, angle_term: Tensor, fc: Tensor) -> Tensor:
        """[T, EtaA, ShfA] and [T, Zeta, Section] -> [T, EtaA, Zeta, ShfA, Section] (or sections before shells),
        as rows of angular_block columns, times ``fc`` [T]."""
        terms = 2.0 * radius_term.unsqueeze(2).unsqueeze(4) * angle_term.unsqueeze(1).unsqueeze(3)
        if self.sections_first:
            terms = terms.permute(0, 1, 2, 4, 3)
        return terms.reshape(-1, self.angular_block) * fc.unsqueeze(1)


def _power(base: Tensor, exponent: float) -> Tensor:
    """``base ** exponent``; by repeated squaring when the exponent is a whole number from 1 to 1024 (ANI's zeta is
    32), which compiles to a few multiplications instead of a call of ``pow`` per element."""
    whole = int(exponent)
    if float(whole) != exponent or whole < 1 or whole > 1024:
        return base ** exponent
    result = torch.ones_like(base)
    square = base
    while whole > 0:
        if whole % 2 == 1:
            result = result * square
        whole = whole // 2
        if whole > 0:
            square = square * square
    return result


def _largest(counts: Tensor) -> int:
    """The largest count as a size: an int eagerly and in TorchScript, an unbacked size when traced for export."""
    if torch.jit.is_scripting():
        return int(counts.max())
    most = counts.max().item()
    torch._check(most >= 0)
    return most


def triplets(centre: Tensor, n: int) -> Tuple[Tensor, Tensor, Tensor]:
    """For directed pairs with centres ``centre``, every unordered pair of pairs sharing a centre: returns (centre
    atom, index of the first pair, index of the second pair), ordered by centre. Built from a padded [n, most] table
    of each centre's pairs and a broadcast mask (no Python branch on values, so it also exports)."""
    count = centre.shape[0]
    order = torch.argsort(centre, stable=True)
    sorted_centre = centre.index_select(0, order)
    counts = torch.zeros(n, dtype=torch.long, device=centre.device).index_add(
        0, centre, torch.ones_like(centre))
    most = _largest(counts)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(count, device=centre.device) - starts.index_select(0, sorted_centre)
    table = torch.full((n * most,), -1, dtype=torch.long, device=centre.device)
    table = table.index_put((sorted_centre * most + rank,), order).view(n, most)
    slots = torch.arange(most, device=centre.device)
    upper = slots.unsqueeze(1) < slots.unsqueeze(0)                                   # [most, most]
    present = table >= 0
    mask = present.unsqueeze(2) & present.unsqueeze(1) & upper.unsqueeze(0)           # [n, most, most]
    found = torch.nonzero(mask.reshape(-1)).flatten()
    atom = torch.div(found, most * most, rounding_mode="floor")
    rest = found - atom * (most * most)
    a = torch.div(rest, most, rounding_mode="floor")
    b = rest - a * most
    flat_table = table.reshape(-1)
    return atom, flat_table.index_select(0, atom * most + a), flat_table.index_select(0, atom * most + b)


class AEVComputer(AEV):
    """The ANI-style model's AEV in nm: ANI-1x's parameters converted from Angstrom, one eta and one zeta.

    Parameters
    ----------
    num_elements : int
        Number of species channels.
    radial_cutoff, angular_cutoff : float
        Cutoffs in nm.
    radial_eta, angular_eta, zeta : float
        Widths (1/nm^2) and the angular sharpness.
    radial_shifts, angular_shifts : list of float, optional
        Shells in nm (defaults: 16 radial from 0.09 nm, 4 angular).
    num_angle_sections : int
        Angle sections theta_z = (2k+1) pi / (2 num_angle_sections).
    """

    def __init__(self, num_elements: int, radial_cutoff: float = 0.52, angular_cutoff: float = 0.35,
                 radial_eta: float = 1600.0, radial_shifts: Optional[List[float]] = None,
                 angular_eta: float = 800.0, angular_shifts: Optional[List[float]] = None, zeta: float = 32.0,
                 num_angle_sections: int = 8):
        if radial_shifts is None:
            radial_shifts = [0.09 + 0.026875 * k for k in range(16)]
        if angular_shifts is None:
            angular_shifts = [0.09 + 0.065 * k for k in range(4)]
        sections = [(2 * k + 1) * math.pi / (2 * num_angle_sections) for k in range(num_angle_sections)]
        super().__init__(num_elements, radial_cutoff, angular_cutoff, [radial_eta], list(radial_shifts),
                         [angular_eta], list(angular_shifts), [zeta], sections, sections_first=True)
        self.num_elements = int(num_elements)
        self.radial_eta = float(radial_eta)
        self.angular_eta = float(angular_eta)
        self.zeta = float(zeta)
