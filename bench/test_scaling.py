"""The scaling study's FLOP count, and that its script runs from end to end."""

import subprocess
import sys
from pathlib import Path

import pytest
import scaling
from workloads import C2


def test_step_flops_counts_the_products_a_step_computes():
    # [2, 3, 1] on one row: 2·3 + 3·1 = 9 weights.  Forward and weight
    # gradients: 2 FLOPs per weight each; the input gradient only of the
    # second layer (3·1 weights): nothing reads the first layer's.
    assert scaling.step_flops((2, 3, 1), 1) == 18 + 18 + 6
    # C2 has 234,752 weights (the optimizer benchmark's count), 34,048 of
    # them after the first layer (256·128 + 128·10).
    assert scaling.step_flops(C2.widths, 1) == 4 * 234_752 + 2 * 34_048
    assert scaling.step_flops(C2.widths, 64) == 64 * (4 * 234_752 + 2 * 34_048)


def test_quick_run_prints_every_size_and_draws_the_figure(tmp_path):
    out = tmp_path / "scaling.png"
    script = Path(scaling.__file__)
    result = subprocess.run([sys.executable, str(script), "--quick", "--out", str(out)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("CPU: ")
    settings = scaling.Settings(quick=True)
    for key in (*settings.batches, *settings.widths):
        assert any(line.split()[:1] == [str(key)] for line in lines), f"no row for {key}"
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "no figure" in result.stdout
    else:
        assert out.stat().st_size > 0


def test_unknown_library_is_refused(capsys):
    with pytest.raises(SystemExit) as stop:
        scaling.main(["--quick", "--libraries", "fastnn,tensorflow"])
    assert stop.value.code == 2
    assert "--libraries" in capsys.readouterr().err
