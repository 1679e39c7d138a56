"""Build and install nnforce: CMake builds the plugin against the installed openmm and torch.

Install with `pip install --no-build-isolation ".[all]"` (or one of the extras: analysis, train, demo) so the build
sees the torch you run (an isolated build environment would fetch another torch, whose C++ ABI would not match).
"""
import os
import re
import shutil
import subprocess
import sys

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


def read_version():
    """The one version: ``__version__`` in python/nnforce/_version.py (also what ``nnforce.__version__`` is)."""
    with open(os.path.join(HERE, "python", "nnforce", "_version.py")) as handle:
        return re.search(r'^__version__ = "([^"]+)"', handle.read(), re.M).group(1)


# Optional stacks. None of them names torch: nnforce builds against, and runs with, the torch already installed.
# chemiscope: only its standalone JS file is used, which bundles 3Dmol.js for the reports' 3D structure views
ANALYSIS = ["mdtraj", "pyparsing<3.3", "deeptime", "scikit-learn", "scipy", "matplotlib", "dask[distributed]",
            "chemiscope>=1.1,<2"]
TRAIN = ["pyyaml", "tensorboard", "h5py", "ase", "tblite", "qm9pack"]
EXTRAS = {
    "analysis": ANALYSIS,                              # nnforce analyze, nnforce.analysis
    "train": TRAIN,                                    # nnforce train / label / export, nnforce.data, nnforce.train
    "demo": ANALYSIS + TRAIN + ["torchani==2.1.1"],    # nnforce demo (torchani only carries the ANI-1x files)
}
EXTRAS["all"] = sorted(set(sum(EXTRAS.values(), [])))


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    """Configure, build and install the CMake project into the package directory being built."""

    def run(self):
        for module in ("torch", "openmm"):
            try:
                __import__(module)
            except ImportError as error:
                raise RuntimeError(f"nnforce builds against the installed {module}, which cannot be imported ({error}). "
                                   f"Install it first, then run `pip install --no-build-isolation .`.") from error
        if shutil.which("swig") is None and shutil.which("swig", path=os.path.dirname(sys.executable)) is None:
            raise RuntimeError("nnforce's Python wrapper is generated with SWIG, which was not found. Install it "
                               "(`pip install swig`), then run `pip install --no-build-isolation .` again.")
        build_dir = os.environ.get("NNFORCE_BUILD_DIR", os.path.join(HERE, "build", "cmake"))
        if self.inplace:
            package_dir = os.path.join(HERE, "python", "nnforce")
        else:
            package_dir = os.path.abspath(os.path.join(self.build_lib, "nnforce"))
        os.makedirs(build_dir, exist_ok=True)
        configure = ["cmake", "-S", HERE, "-B", build_dir, f"-DPython3_EXECUTABLE={sys.executable}",
                     f"-DCMAKE_INSTALL_PREFIX={package_dir}", "-DCMAKE_BUILD_TYPE=Release"]
        # Every build passes the current value (empty: the default), so a reused build directory's cache never
        # keeps an earlier one.
        configure.append(f"-DNNFORCE_CUDA_ARCHITECTURES={os.environ.get('NNFORCE_CUDA_ARCHITECTURES', '')}")
        configure += os.environ.get("NNFORCE_CMAKE_ARGS", "").split()
        jobs = os.environ.get("NNFORCE_BUILD_JOBS", str(os.cpu_count() or 2))
        subprocess.check_call(configure)
        subprocess.check_call(["cmake", "--build", build_dir, "--parallel", jobs])
        # Libraries of an earlier build in the package (e.g. a CUDA plugin built when a toolkit was present) must not
        # survive into this one.
        shutil.rmtree(os.path.join(package_dir, "lib"), ignore_errors=True)
        subprocess.check_call(["cmake", "--install", build_dir])


setup(
    name="nnforce",
    version=read_version(),
    description="Machine-learned potentials in OpenMM: train, export, simulate (NNForce plugin), analyze",
    license="MIT",
    package_dir={"": "python"},
    packages=find_packages("python"),
    package_data={"nnforce.demo": ["alanine_dipeptide.pdb", "data/*.npz"]},
    ext_modules=[CMakeExtension("nnforce._plugin")],
    cmdclass={"build_ext": CMakeBuild},
    python_requires=">=3.10",
    # torch is deliberately not listed: build against the one you have. mdtraj: ML atom selections, trajectories.
    install_requires=["numpy", "openmm>=8.1", "tqdm", "mdtraj", "pyparsing<3.3"],
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["nnforce = nnforce.cli:main"]},
    zip_safe=False,
)
