"""The thread counts `nnforce simulate` uses when none is given: torch's intra-op threads for the model and OpenMM's
CPU platform threads (measured in bench/results/threads.md).

The rule: torch gets one intra-op thread per :data:`ATOMS_PER_THREAD` model atoms (at least 1, at most the cores
this process may use); OpenMM's CPU platform gets 1 thread when the System holds the NNForce alone (it has only the
integrator to run) and its own default otherwise. A small model's ops are too small to split: over OpenMP threads
each op pays a fork/join and waits for the slowest thread, which on a busy machine made the README's first-hour
command 2.6-7x slower than one thread. ``NNFORCE_THREADS=torch`` keeps torch's and OpenMM's own defaults.
"""
import os

ATOMS_PER_THREAD = 2000


def usable_cores():
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_torch_threads(num_model_atoms, cores=None):
    """torch's intra-op threads for a model on ``num_model_atoms`` atoms.

    Examples
    --------
    >>> default_torch_threads(22, cores=32)
    1
    >>> default_torch_threads(10000, cores=32)
    5
    >>> default_torch_threads(10 ** 6, cores=16)
    16
    """
    cores = usable_cores() if cores is None else int(cores)
    return max(1, min(cores, int(num_model_atoms) // ATOMS_PER_THREAD))


def apply_thread_defaults(threads, num_model_atoms, pure_ml, platform_name, properties):
    """Set torch's threads (``threads``, else :func:`default_torch_threads`) and, for a pure-ML System on the CPU
    platform with no thread count given, OpenMM's CPU threads to 1 (in ``properties``, changed in place).
    Returns torch's thread count."""
    import torch

    if threads is not None:
        if int(threads) < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(int(threads))  # the plugin evaluates the model in this process's libtorch
        return int(threads)
    if os.environ.get("NNFORCE_THREADS", "").strip().lower() == "torch":
        return torch.get_num_threads()
    count = default_torch_threads(num_model_atoms)
    torch.set_num_threads(count)
    if pure_ml and platform_name == "CPU" and "Threads" not in properties and "OPENMM_CPU_THREADS" not in os.environ:
        properties["Threads"] = "1"
    return count
