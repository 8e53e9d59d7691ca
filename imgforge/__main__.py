"""Entry point for ``python -m imgforge``."""

import sys

from imgforge.cli import main

sys.exit(main())
