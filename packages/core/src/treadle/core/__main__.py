"""``python -m treadle.core``: the ``treadle`` command line."""

import sys

from treadle.core.cli import main

if __name__ == "__main__":
    sys.exit(main())
