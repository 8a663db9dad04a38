"""``python -m fastnn.constrained``: the same as ``fastnn constrained``."""

import sys

from fastnn.constrained.cli import main

sys.exit(main())
