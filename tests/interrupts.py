"""Child processes that a test interrupts as Ctrl-C in a terminal would."""

import signal
import subprocess


def interruptible_popen(command, **options):
    """``subprocess.Popen`` whose child turns SIGINT into KeyboardInterrupt.

    A command that a shell without job control starts in the background
    (``pytest … &`` in a script) inherits SIGINT as ignored, and Python then
    leaves it ignored: the child of such a test run would never see the
    interrupt the test sends.
    """
    return subprocess.Popen(command, preexec_fn=_default_sigint, **options)


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)
