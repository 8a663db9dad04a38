"""atomic_write and check_writable on any path: the bytes written and nothing else,
or an error naming the path."""

import os
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from test_properties_strategies import ANYTHING

from fastnn._files import atomic_write, check_writable

SETTINGS = settings(max_examples=150, deadline=None)
NAMES = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=300)


@SETTINGS
@given(name=NAMES, content=st.binary(max_size=200))
def test_any_file_name(name, content):
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, name)
        try:
            with atomic_write(path) as f:
                f.write(content)
        except (OSError, ValueError) as error:
            # a name the file system refuses: too long, a NUL, "." or "..", a missing
            # subdirectory; the message names it, and nothing is left behind
            assert name in str(error) or "path" in str(error) or directory in str(error), error
            assert os.listdir(directory) == []
            return
        assert Path(path).read_bytes() == content
        assert len(os.listdir(directory)) == 1 or os.sep in name


@SETTINGS
@given(path=ANYTHING, mode=st.one_of(ANYTHING, st.sampled_from(["wb", "w", "r", "a", "wb+"])))
def test_wrong_arguments(path, mode):
    with tempfile.TemporaryDirectory() as directory:
        os.chdir(directory)  # a string path lands here
        try:
            with atomic_write(path, mode=mode) as f:
                f.write(b"" if "b" in mode else "")
        except TypeError as error:
            assert "path" in str(error) or "mode" in str(error), error
        except ValueError as error:
            assert "mode" in str(error) or "path" in str(error), error
        except OSError as error:
            assert error.filename is not None, error
        finally:
            os.chdir("/")


@SETTINGS
@given(path=ANYTHING)
def test_check_writable_on_anything(path):
    with tempfile.TemporaryDirectory() as directory:
        os.chdir(directory)
        try:
            check_writable(path)
        except (TypeError, ValueError) as error:
            assert "path" in str(error), error
        except OSError as error:
            assert error.filename is not None, error
        finally:
            os.chdir("/")
        assert os.listdir(directory) == []  # the probe never stays
