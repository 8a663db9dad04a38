"""What a timing was measured on: the CPU and the versions of the libraries.

Benchmark numbers mean little without the processor (its vector width above
all: AVX-512 against AVX2 halves or doubles a matrix product's peak) and the
BLAS each library calls.  ``describe()`` gathers both for the pytest header,
the ratio summary and the scaling study.
"""

import os
import platform
from importlib import metadata

#: the /proc/cpuinfo flags that decide which kernels OpenBLAS and XLA run
SIMD_FLAGS = {"avx512f": "AVX-512F", "avx2": "AVX2", "fma": "FMA"}


def cpu_info(path="/proc/cpuinfo"):
    """Model name, family, model, stepping and flags of the first processor.

    Returns
    -------
    dict
        ``model_name``, ``family``, ``model``, ``stepping`` (str, or None
        when the file lacks them) and ``flags`` (a set of str); all None and
        empty off Linux.
    """
    fields = {"model name": None, "cpu family": None, "model": None, "stepping": None, "flags": ""}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor's block ends at the first blank line
                key, _, value = line.partition(":")
                key = key.strip()
                if key in fields:
                    fields[key] = value.strip()
    except OSError:
        pass
    return {"model_name": fields["model name"] or platform.processor() or None,
            "family": fields["cpu family"], "model": fields["model"],
            "stepping": fields["stepping"], "flags": set(fields["flags"].split())}


def _version(distribution):
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _owner(filepath):
    # Each wheel vendors its own copy: the directory names which one it is.
    for marker, name in (("numpy", "NumPy"), ("scipy", "SciPy"), ("torch", "PyTorch"),
                         ("jaxlib", "JAX"), ("fastnn", "fastnn")):
        if marker in filepath:
            return name
    return os.path.basename(filepath)


def thread_pools():
    """One line per loaded BLAS or OpenMP runtime (threadpoolctl's view).

    NumPy, SciPy and fastnn's kernels are imported first so that both
    OpenBLAS copies and fastnn's OpenMP runtime are loaded and listed.
    """
    import numpy  # noqa: F401
    import scipy.linalg  # noqa: F401
    from threadpoolctl import threadpool_info

    try:
        import fastnn_ext.dense  # noqa: F401
    except ImportError:
        pass

    lines = []
    for pool in threadpool_info():
        detail = ", ".join(f"{key} {pool[key]}" for key in ("architecture", "threading_layer")
                           if pool.get(key))
        version = f" {pool['version']}" if pool.get("version") else ""
        lines.append(f"{_owner(pool['filepath'])}: {pool['internal_api']}{version}"
                     f" ({pool['user_api']}, {pool['num_threads']} threads"
                     + (f", {detail}" if detail else "") + ")")
    return lines


def describe():
    """Lines naming the CPU, its vector extensions and the library versions."""
    import numpy
    import scipy

    cpu = cpu_info()
    flags = cpu["flags"]
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    simd = ", ".join(f"{label} {'yes' if flag in flags else 'no'}" for flag, label in SIMD_FLAGS.items())
    lines = [
        f"CPU: {cpu['model_name']} (family {cpu['family']}, model {cpu['model']}, "
        f"stepping {cpu['stepping']}), {os.cpu_count()} logical CPUs, {usable} usable",
        f"SIMD: {simd}" if flags else "SIMD: unknown (no /proc/cpuinfo flags)",
        f"Python {platform.python_version()}, NumPy {numpy.__version__}, SciPy {scipy.__version__}, "
        f"PyTorch {_version('torch')}, JAX {_version('jax')} (jaxlib {_version('jaxlib')}), "
        f"threadpoolctl {_version('threadpoolctl')}",
    ]
    lines += [f"  {line}" for line in thread_pools()]
    # Set on some processors to work around old OpenBLAS bugs; it changes
    # which kernels a current OpenBLAS runs, so a reader must know.
    for variable in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS", "XLA_FLAGS"):
        if os.environ.get(variable):
            lines.append(f"  {variable}={os.environ[variable]}")
    return lines


if __name__ == "__main__":
    print("\n".join(describe()))
