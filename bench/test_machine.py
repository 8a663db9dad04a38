"""The machine description reads the first processor of /proc/cpuinfo."""

from machine import cpu_info, describe

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC 9R14 96-Core Processor
stepping\t: 1
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw

processor\t: 1
cpu family\t: 6
model\t\t: 85
model name\t: Other
flags\t\t: sse2
"""


def test_cpu_info_reads_the_first_processor_block(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    info = cpu_info(path)
    assert info["model_name"] == "AMD EPYC 9R14 96-Core Processor"
    assert (info["family"], info["model"], info["stepping"]) == ("25", "17", "1")
    assert {"avx2", "avx512f", "fma"} <= info["flags"]
    assert "avx512bw" in info["flags"] and "sse2" in info["flags"]


def test_missing_cpuinfo_gives_no_flags(tmp_path):
    info = cpu_info(tmp_path / "absent")
    assert info["flags"] == set() and info["family"] is None


def test_description_names_the_cpu_and_numpy():
    import numpy

    lines = describe()
    assert lines[0].startswith("CPU: ")
    assert f"NumPy {numpy.__version__}" in "\n".join(lines)
