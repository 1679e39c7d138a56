"""Repro of the wrong .pt2 forces of the ANI-style model (fixed in nnforce.models.ani.ElementNetworks).

The make_fx + torch.export graph of energy + autograd.grad is run eagerly, then compiled, on a 7-atom molecule:
``python bench/aev_pt2_repro.py full --aoti --indexput`` compiles with AOTInductor the old ElementNetworks (per-element
``out.index_put((index,), values)``) and prints its force error (measured 2026-11-30, torch 2.13.0 CPU: 6.47 kJ/mol/nm
on forces of at most 6.60, energy right to 1e-16); without ``--indexput`` (the fixed code, ``index_add``) 8.4e-15.
``torch.compile(program.module())`` (no ``--aoti``) was right with the old code (6.2e-15): the bug shows in AOTInductor.
Cause (read in the generated kernel): the backward of index_put puts zeros into the incoming gradient, which is
the broadcast ones of ``.sum()``; Inductor stores it as a one-element buffer and the index_put kernel writes 0.0 into
that element, zeroing every atom's gradient (``out_ptr0[0] = 0.0`` in cpp_fused_index_index_put_mul_ones_like_...).
``radial`` sets the angular cutoff to ~0 (radial AEV only).
"""
import sys, time
import torch
from torch.fx.experimental.proxy_tensor import make_fx
from nnforce._pt2 import _energy_and_gradients, _ordered_inputs, _dynamic_shapes, exporting, _convert_precision
from nnforce.models import ANIModel

torch.manual_seed(0)
mode = sys.argv[1] if len(sys.argv) > 1 else "full"
n = 7
g = torch.Generator().manual_seed(3)
x = torch.rand(n, 3, generator=g, dtype=torch.float64) * 0.35
Z = torch.tensor([6, 1, 1, 8, 1, 6, 1][:n])
ij = torch.triu_indices(n, n, 1)
neighbors = ij
shifts = torch.zeros(ij.shape[1], 3, dtype=torch.float64)
if "--indexput" in sys.argv:
    import nnforce.models.ani as ani_module
    def _forward(self, features, species):
        out = torch.zeros(features.shape[0], dtype=features.dtype, device=features.device)
        for k, net in enumerate(self.nets):
            index = torch.nonzero(species == k).squeeze(1)
            out = out.index_put((index,), net(features.index_select(0, index)).squeeze(1))
        return out
    ani_module.ElementNetworks.forward = _forward
model = ANIModel([1, 6, 8], hidden=[8], seed=1)
model = _convert_precision(model, torch.float64)
if mode == "radial":
    model.aev.angular_cutoff = 1e-6  # no angular pairs
example = {"positions": x, "neighbors": neighbors, "shifts": shifts, "atomic_numbers": Z}
names, tensors = _ordered_inputs(example, torch.float64)
compute = _energy_and_gradients(model, names, [])
expected = compute(*tensors)
with exporting():
    graph = make_fx(compute, tracing_mode="symbolic", _allow_non_fake_inputs=True)(*tensors)
print("make_fx graph err", float((graph(*tensors)[1] - expected[1]).abs().max()))
program = torch.export.export(graph, tuple(tensors), dynamic_shapes=_dynamic_shapes(names, tensors, 1000, 100000))
print("export err", float((program.module()(*tensors)[1] - expected[1]).abs().max()))
t = time.time()
if "--graph" in sys.argv:
    open("/tmp/aev_graph.txt", "w").write(str(program.graph_module.code))
from torch._inductor import compile_fx
if "--aoti" in sys.argv:
    path = torch._inductor.aoti_compile_and_package(program, package_path="/tmp/aev_repro.pt2")
    fn = torch._inductor.aoti_load_package(path)
elif "--cppwrap" in sys.argv:
    fn = torch.compile(program.module(), backend="inductor", dynamic=True, fullgraph=True, options={"cpp_wrapper": True})
else:
    fn = torch.compile(program.module(), backend="inductor", dynamic=True, fullgraph=True)
got = fn(*tensors)
print("compile s", time.time() - t)
print("energy err", float((got[0] - expected[0]).abs()), "force err", float((got[1] - expected[1]).abs().max()),
      "scale", float(expected[1].abs().max()))
