"""Reference data: readers with explicit units, a ragged Dataset in OpenMM units, seeded splits, batching,
and labelling with GFN2-xTB (tblite) or a teacher model."""
from .dataset import Dataset, concatenate
from .readers import atomic_number, read_ani_h5, read_ase_db, read_dataset, read_md17, read_qm9, read_xyz
from .batch import Batch, batches, block_pairs
from .splits import split

__all__ = ["Dataset", "concatenate", "atomic_number", "read_ani_h5", "read_ase_db", "read_dataset", "read_md17",
           "read_qm9", "read_xyz", "Batch", "batches", "block_pairs", "split"]
