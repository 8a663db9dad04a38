"""Build the Cython kernels in ``fastnn_ext``.

Every ``fastnn_ext/*.pyx`` becomes one extension module.  BLAS comes from
``scipy.linalg.cython_blas`` (function pointers resolved at import), so nothing
is linked against a BLAS library here.

Compiler flags: ``-O3 -fno-math-errno -fno-trapping-math`` lets GCC and Clang
vectorize loops that call ``sqrt`` (with errno semantics a vector square root is
not allowed).  The baseline instruction set stays plain x86-64 so the wheel runs
on any 64-bit x86 CPU; the few element-wise loops whose speed depends on vector
width are C helpers in ``fastnn_ext/src`` compiled for several instruction sets
with GCC/Clang ``target_clones`` and chosen at load time for the running CPU.
"""

import glob
import os
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup


def compile_args():
    if sys.platform == "win32":
        return ["/O2", "/fp:fast"]
    return ["-O3", "-fno-math-errno", "-fno-trapping-math"]


def extensions():
    modules = []
    for source in sorted(glob.glob(os.path.join("fastnn_ext", "*.pyx"))):
        name = "fastnn_ext." + os.path.splitext(os.path.basename(source))[0]
        modules.append(
            Extension(
                name,
                [source],
                include_dirs=[numpy.get_include(), os.path.join("fastnn_ext", "src")],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
                extra_compile_args=compile_args(),
            )
        )
    return cythonize(
        modules,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "nonecheck": False,
        },
    )


setup(ext_modules=extensions())
