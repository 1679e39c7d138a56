"""Seeded train/validation/test splits (batching lives in :mod:`nnforce.data.batch`)."""
import numpy as np

from .batch import Batch, batches, block_pairs  # noqa: F401  (old imports)


def split(dataset, sizes, seed=0):
    """Split ``dataset`` into disjoint, seeded random subsets.

    ``sizes`` lists counts (ints) or fractions (floats summing to at most 1), e.g. ``(950, 50, 1000)`` or
    ``(0.8, 0.1, 0.1)``. Returns one Dataset per size; an empty split raises ValueError.

    Parameters
    ----------
    dataset : Dataset
    sizes : sequence of int or float
    seed : int

    Returns
    -------
    list of Dataset

    Examples
    --------
    >>> train, validation, test = split(dataset, (0.8, 0.1, 0.1), seed=0)  # doctest: +SKIP
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
