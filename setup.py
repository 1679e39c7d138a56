"""Build and install nnforce: CMake builds the plugin against the installed openmm and torch.

Install with `pip install --no-build-isolation .` so the build sees the torch you run (an isolated build
environment would fetch another torch, whose C++ ABI would not match).
"""
import os
import subprocess
import sys

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


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
        build_dir = os.environ.get("NNFORCE_BUILD_DIR", os.path.join(HERE, "build", "cmake"))
        if self.inplace:
            package_dir = os.path.join(HERE, "python", "nnforce")
        else:
            package_dir = os.path.abspath(os.path.join(self.build_lib, "nnforce"))
        os.makedirs(build_dir, exist_ok=True)
        configure = ["cmake", "-S", HERE, "-B", build_dir, f"-DPython3_EXECUTABLE={sys.executable}",
                     f"-DCMAKE_INSTALL_PREFIX={package_dir}", "-DCMAKE_BUILD_TYPE=Release"]
        configure += os.environ.get("NNFORCE_CMAKE_ARGS", "").split()
        jobs = os.environ.get("NNFORCE_BUILD_JOBS", str(os.cpu_count() or 2))
        subprocess.check_call(configure)
        subprocess.check_call(["cmake", "--build", build_dir, "--parallel", jobs])
        subprocess.check_call(["cmake", "--install", build_dir])


setup(
    name="nnforce",
    version="0.1.0",
    description="Machine-learned potentials in OpenMM: train, export, simulate (NNForce plugin), analyze",
    package_dir={"": "python"},
    packages=find_packages("python"),
    package_data={"nnforce.demo": ["alanine_dipeptide.pdb"]},
    ext_modules=[CMakeExtension("nnforce._plugin")],
    cmdclass={"build_ext": CMakeBuild},
    python_requires=">=3.10",
    install_requires=["numpy", "openmm>=8.1"],  # torch is deliberately not listed: build against the one you have
    entry_points={"console_scripts": ["nnforce = nnforce.cli:main"]},
    zip_safe=False,
)
