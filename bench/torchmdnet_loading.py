"""Why openmm-ml's TorchMD-Net energies differ from nnforce's (issue 23): one of openmm-ml's loading options.

    python bench/torchmdnet_loading.py

openmm-ml loads TorchMD-Net checkpoints with ``load_model(..., static_shapes=True, check_errors=False,
remove_ref_energy=True, max_num_neighbors=min(64, N))``; nnforce with ``load_model(..., derivative=False,
max_num_neighbors=...)``. This builds a small seeded TensorNet with torchmd-net's own ``create_model``, saves it
as a checkpoint the way the vs_openmmml bench does, and evaluates one random 10-atom structure with the model as
created and with each loading option switched on alone. Writes bench/results/torchmdnet_loading.md.
Seen (torchmd-net 3.1.0, CPU): only ``check_errors=False`` changes the energy (0.72 relative), alone or with the
others; nnforce's loading equals the model as created.
"""
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    import tempfile

    from torchmdnet.models.model import create_model, load_model
    from torchmdnet.scripts.train import get_argparse

    torch.manual_seed(2026)
    args = vars(get_argparse().parse_args(["--model", "tensornet", "--embedding-dimension", "32", "--num-layers", "2",
                                           "--num-rbf", "16", "--cutoff-upper", "5.0", "--precision", "32",
                                           "--max-num-neighbors", "128"]))
    created = create_model(dict(args)).eval()
    path = os.path.join(tempfile.mkdtemp(), "tensornet.ckpt")
    torch.save({"hyper_parameters": args, "state_dict": {"model." + k: v for k, v in created.state_dict().items()}},
               path)
    z = torch.tensor([6, 1, 1, 1, 8, 1, 6, 1, 1, 1])
    generator = torch.Generator().manual_seed(1)
    pos = torch.randn(10, 3, generator=generator) * 1.5  # Angstrom

    def energy(model):
        return float(model(z, pos, batch=torch.zeros_like(z))[0].sum().detach())

    rows = [("model as created (create_model)", energy(created))]
    options = [("load_model, nnforce's options", {"max_num_neighbors": 128}),
               ("+ remove_ref_energy=True", {"max_num_neighbors": 128, "remove_ref_energy": True}),
               ("+ max_num_neighbors=N (10)", {"max_num_neighbors": 10}),
               ("+ check_errors=False", {"max_num_neighbors": 128, "check_errors": False}),
               ("+ static_shapes=True", {"max_num_neighbors": 128, "static_shapes": True}),
               ("openmm-ml's options (all of the above)", {"max_num_neighbors": 10, "remove_ref_energy": True,
                                                          "coulomb_cutoff": None, "static_shapes": True,
                                                          "check_errors": False})]
    for label, kwargs in options:
        rows.append((label, energy(load_model(path, derivative=False, **kwargs))))
    reference = rows[0][1]
    lines = ["# TorchMD-Net: openmm-ml's loading options vs the model as created", "",
             "Written by `python bench/torchmdnet_loading.py` (seeded TensorNet, 32 features, 2 layers, float32, "
             "CPU; one random 10-atom structure). Energy in the model's unit (eV).", "",
             "| loaded with | energy | relative to the created model |", "|---|---|---|"]
    for label, value in rows:
        lines.append(f"| {label} | {value:.7f} | {abs(value - reference) / abs(reference):.1e} |")
    lines.append("")
    text = "\n".join(lines) + "\n"
    out = os.path.join(HERE, "results", "torchmdnet_loading.md")
    with open(out + ".tmp", "w") as handle:
        handle.write(text)
    os.replace(out + ".tmp", out)
    print(text)


if __name__ == "__main__":
    main()
