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
Where glibc's libmvec (vector exp, log1p) links, the loops calling them use it;
where OpenMP links, the optimizer steps of the compiled epoch use several threads.
``FASTNN_NO_SMALL_GEMM=1`` builds without the small-batch matrix kernels (AVX-512 and
AVX2+FMA).

Build time: the modules compile in parallel (one job per CPU unless ``-j`` says
otherwise), the largest C file first so that the longest compile does not start
last; Cython translates the ``.pyx`` files in parallel too.  Cython's memoryview
and function-object code is compiled once, into ``fastnn_ext._cyutility``,
instead of into every module, and the small-batch matrix kernels once, into a
static library that the modules link.
"""

import glob
import os
import sys
import tempfile

import Cython
import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SRC = os.path.join("fastnn_ext", "src")
# Cython's shared utility module: the memoryview type and the rest of the
# runtime support every module would otherwise compile for itself.
SHARED_UTILITY = "fastnn_ext._cyutility"


def compile_args():
    if sys.platform == "win32":
        return ["/O2", "/fp:fast"]
    return ["-O3", "-fno-math-errno", "-fno-trapping-math"]


LIBMVEC_PROBE = r"""
#include <math.h>
__attribute__((simd("notinbranch"))) float expf(float);
__attribute__((simd("notinbranch"))) float log1pf(float);
__attribute__((simd("notinbranch"))) double exp(double);
__attribute__((simd("notinbranch"))) double log1p(double);
float a[64], b[64];
double c[64], d[64];
__attribute__((target("avx512f"))) void wide(void) {
    for (int i = 0; i < 64; ++i) { a[i] = expf(b[i]) + log1pf(b[i]); c[i] = exp(d[i]) + log1p(d[i]); }
}
__attribute__((target("avx2,fma"))) void mid(void) {
    for (int i = 0; i < 64; ++i) { a[i] = expf(b[i]) + log1pf(b[i]); c[i] = exp(d[i]) + log1p(d[i]); }
}
void base(void) {
    for (int i = 0; i < 64; ++i) { a[i] = expf(b[i]) + log1pf(b[i]); c[i] = exp(d[i]) + log1p(d[i]); }
}
int main(void) { wide(); mid(); base(); return 0; }
"""


OPENMP_PROBE = r"""
#include <omp.h>
int main(void) {
    int total = 0;
    #pragma omp parallel for reduction(+:total)
    for (int i = 0; i < 4; ++i) total += omp_get_num_threads();
    return total > 0 ? 0 : 1;
}
"""


def program_links(source_text, extra_compile=(), extra_link=(), libraries=()):
    """True if a C program compiles and links into an executable.

    Linking an executable fails on a missing symbol, where a shared library
    would only fail at import.  Any failure of the probe means: no.
    """
    try:
        from setuptools._distutils.ccompiler import new_compiler
        from setuptools._distutils.sysconfig import customize_compiler

        compiler = new_compiler()
        customize_compiler(compiler)
        with tempfile.TemporaryDirectory() as tmp:
            source = os.path.join(tmp, "probe.c")
            with open(source, "w") as f:
                f.write(source_text)
            objects = compiler.compile([source], output_dir=tmp,
                                       extra_postargs=compile_args() + list(extra_compile))
            compiler.link_executable(objects, os.path.join(tmp, "probe"),
                                     libraries=list(libraries),
                                     extra_postargs=list(extra_link))
    except Exception:
        return False
    return True


def libmvec_links():
    """True if a program calling the vector exp/log1p of every ISA level links."""
    if sys.platform != "linux" or os.environ.get("FASTNN_NO_LIBMVEC"):
        return False
    return program_links(LIBMVEC_PROBE, libraries=["mvec", "m"])


def openmp_flags():
    """Compiler and linker flags for OpenMP, or none where it is unavailable.

    Without OpenMP the ``prange`` loops run on one thread.
    ``FASTNN_NO_OPENMP=1`` builds without it.
    """
    if sys.platform == "win32" or os.environ.get("FASTNN_NO_OPENMP"):
        return []
    return ["-fopenmp"] if program_links(OPENMP_PROBE, ["-fopenmp"], ["-fopenmp"]) else []


def cpu_count():
    """CPUs this process may run on (the affinity mask where there is one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def small_gemm_macros():
    return [("FASTNN_NO_SMALL_GEMM", "1")] if os.environ.get("FASTNN_NO_SMALL_GEMM") else []


# The translation unit of that library: small_gemm_kernels.h's definitions.
# The modules include the header with FASTNN_SMALL_GEMM_EXTERN and so see only
# its declarations; compiled into each module that calls a product, the
# AVX-512 kernels alone took about five seconds of compiler time in each.  Hidden
# visibility: a module linking them keeps its own copy and exports none of it.
SMALL_GEMM_UNIT = """\
#if defined(__GNUC__)
#define SG_API __attribute__((visibility("hidden")))
#else
#define SG_API
#endif
#include "small_gemm_kernels.h"
"""


def small_gemm_unit():
    """The library's one C file, written into build/ (it is the header's to say)."""
    path = os.path.join("build", "fastnn_src", "small_gemm_kernels.c")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        with open(path) as f:
            current = f.read()
    except OSError:
        current = None
    if current != SMALL_GEMM_UNIT:
        with open(path, "w") as f:
            f.write(SMALL_GEMM_UNIT)
    return path


def kernel_libraries():
    """The small-batch matrix kernels as a static library, compiled once.

    ``build_ext`` links it into every module; a module takes its objects only
    if it calls them (dense and train do).
    """
    return [("fastnn_small_gemm", {
        "sources": [small_gemm_unit()],
        "include_dirs": [SRC],
        "macros": small_gemm_macros(),
        # OpenMP splits a large product over threads (where it links)
        "cflags": compile_args() + openmp_flags(),
        "obj_deps": {"": [os.path.join(SRC, "small_gemm_kernels.h")]},
    })]


def extensions():
    vector_math = libmvec_links()
    openmp = openmp_flags()
    modules = [Extension(SHARED_UTILITY, [SHARED_UTILITY.replace(".", os.sep) + ".c"],
                         extra_compile_args=compile_args())]
    for source in sorted(glob.glob(os.path.join("fastnn_ext", "*.pyx"))):
        name = "fastnn_ext." + os.path.splitext(os.path.basename(source))[0]
        modules.append(
            Extension(
                name,
                [source],
                include_dirs=[numpy.get_include(), SRC],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                               ("FASTNN_SMALL_GEMM_EXTERN", "1")]
                + ([("FASTNN_LIBMVEC", "1")] if vector_math else [])
                + small_gemm_macros(),
                libraries=["mvec", "m"] if vector_math else [],
                extra_compile_args=compile_args() + openmp,
                extra_link_args=openmp,
            )
        )
    return cythonize(
        modules,
        nthreads=cpu_count(),
        shared_utility_qualified_name=SHARED_UTILITY,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "nonecheck": False,
        },
    )


class BuildExt(build_ext):
    """``build_ext`` with one job per CPU, the largest module first.

    Runs ``build_clib`` first, also when called alone (``build_ext --inplace``),
    since every module links the kernel library.
    """

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None:
            self.parallel = cpu_count()

    def run(self):
        if self.distribution.has_c_libraries():
            self.run_command("build_clib")
        super().run()

    def build_extensions(self):
        # The executor starts the jobs in list order: the longest compile
        # (the biggest C file, train.c) started last would run alone at the end.
        self.extensions.sort(key=lambda ext: sum(os.path.getsize(source) for source in ext.sources
                                                 if os.path.exists(source)), reverse=True)
        super().build_extensions()


# The guard: cythonize's worker processes import this file again where they
# are not forked (spawn, forkserver) and must not run the build themselves.
if __name__ == "__main__":
    if tuple(int(part) for part in Cython.__version__.split(".")[:2]) < (3, 1):
        sys.exit(f"fastnn needs Cython >= 3.1 to build (shared utility module), found {Cython.__version__}")
    setup(ext_modules=extensions(), libraries=kernel_libraries(),
          cmdclass={"build_ext": BuildExt})
