"""fastnn train on any option value: a one-line usage error naming the option
(exit status 2, no traceback), or the value accepted exactly when the option's
rule, written out here, allows it."""

import math
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fastnn.cli import main

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
TEXT = st.one_of(
    st.text(max_size=8), st.integers(-10**25, 10**25).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "-inf", "1e400", "0", "-0", "-0.0", "1_000", " 7 ", "0x10", "",
                     "2147483647", "2147483648", "4096", "4097"]),
)


def as_int(text):
    try:
        return int(text)
    except ValueError:
        return None


def as_float(text):
    try:
        return float(text)
    except ValueError:
        return None


def finite_at_least(text, minimum, strict=False):
    value = as_float(text)
    return value is not None and math.isfinite(value) and (
        value > minimum if strict else value >= minimum)


def int_within(text, low, high=math.inf):
    value = as_int(text)
    return value is not None and low <= value <= high


def widths(text):
    parts = [part for part in text.split(",") if part.strip()]
    return bool(parts) and all(int_within(part, 1, 2**31 - 1) for part in parts)


RULES = {
    "--lr": lambda text: finite_at_least(text, 0.0, strict=True),
    "--l2": lambda text: finite_at_least(text, 0.0),
    "--lr-decay": lambda text: finite_at_least(text, 0.0),
    "--epochs": lambda text: int_within(text, 1),
    "--batch-size": lambda text: int_within(text, 1, 2**31 - 1),
    "--seed": lambda text: int_within(text, 0),
    "--validation": lambda text: int_within(text, 0),
    "--threads": lambda text: int_within(text, 1, 4096),
    "--hidden": widths,
    "--dropout": lambda text: finite_at_least(text, 0.0) and as_float(text) < 1,
    "--early-stopping": lambda text: int_within(text, 0),
}


def reaches_its_option(text):
    """argparse takes a value starting with '-' for an option, unless it is a number."""
    return not text.startswith("-") or re.fullmatch(r"-\d+|-\d*\.\d+", text) is not None


@pytest.mark.parametrize("option", sorted(RULES))
@SETTINGS
@given(text=TEXT)
@example(text="--l")  # the start of several options' names
def test_any_value(tmp_path, capsys, option, text):
    try:
        code = main(["train", "--data-dir", str(tmp_path), option, text])  # no data there
    except SystemExit as exit_info:
        code = exit_info.code
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    accepted = "apt-get install" in err  # parsed, then the data were missing
    assert accepted == (reaches_its_option(text) and RULES[option](text)), err
    if not accepted:
        assert err.strip().splitlines()[-1].startswith(f"fastnn train: error: argument {option}")
