"""Check that the installed libNNForceCUDA.so loads and registers with OpenMM's CUDA platform (no GPU needed).

    LD_LIBRARY_PATH=STUB_DIR python .ci/check_cuda_plugin.py STUB_DIR

STUB_DIR holds the stub libcuda.so.1 of .ci/cuda_stub.py. Checks: the process uses that stub; nnforce's CUDA plugin
and OpenMM's libOpenMMCUDA.so are not among OpenMM's plugin load failures; the CUDA platform exists and has the
CalcNNForce kernel (registered by libNNForceCUDA.so's registerKernelFactories); a CUDA Context with an NNForce
fails with an OpenMMException (no device), not a crash. Control: without the stub (on a machine without a driver)
the same plugins fail to load, so the check above can fail.
"""
import ctypes.util
import os
import subprocess
import sys

import openmm
import torch

import nnforce

stub_dir = os.path.realpath(sys.argv[1])
plugin_dir = os.path.join(os.path.dirname(nnforce.__file__), "lib", "plugins")
cuda_plugin = os.path.join(plugin_dir, "libNNForceCUDA.so")
assert os.path.isfile(cuda_plugin), f"{cuda_plugin} was not built"

with open("/proc/self/maps") as maps:
    drivers = {line.split()[-1] for line in maps if "libcuda.so" in line}
assert drivers == {os.path.join(stub_dir, "libcuda.so.1")}, f"libcuda in the process: {drivers}"

failures = openmm.Platform.getPluginLoadFailures()
bad = [f for f in failures if "libNNForceCUDA" in f or "libOpenMMCUDA.so" in f]
assert not bad, "CUDA plugins failed to load:\n" + "\n".join(bad)

names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
assert "CUDA" in names, f"no CUDA platform among {names}"
cuda = openmm.Platform.getPlatformByName("CUDA")
assert cuda.supportsKernels(["CalcNNForce"]), "the CUDA platform has no CalcNNForce kernel factory"
assert not cuda.supportsKernels(["CalcNoSuchKernel"])
assert not torch.cuda.is_available()


class Harmonic(torch.nn.Module):
    def forward(self, positions):
        return (positions ** 2).sum()


system = openmm.System()
system.addParticle(1.0)
system.addForce(nnforce.NNForce(torch.jit.script(Harmonic())))
try:
    openmm.Context(system, openmm.VerletIntegrator(0.001), cuda)
except openmm.OpenMMException as error:
    print(f"check_cuda_plugin: a CUDA Context fails as it should without a GPU: {str(error).splitlines()[0]}")
else:
    raise AssertionError("a CUDA Context was created under the stub driver")

# Control: without the stub the CUDA plugins cannot load here (only meaningful on a machine without a driver).
if ctypes.util.find_library("cuda") is None:
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = ":".join(p for p in env.get("LD_LIBRARY_PATH", "").split(":")
                                      if p and os.path.realpath(p) != stub_dir)
    code = ("import openmm, nnforce; f = openmm.Platform.getPluginLoadFailures(); "
            "print(sum('libNNForceCUDA' in x for x in f))")
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "1", f"without the stub libNNForceCUDA.so did not fail to load: {out.stdout!r}"
print(f"check_cuda_plugin: OK: {cuda_plugin} loads and registers CalcNNForce with OpenMM's CUDA platform "
      f"(torch {torch.__version__}, OpenMM {openmm.__version__})")
