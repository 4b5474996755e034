"""``python -m psaspm``."""

import sys

from psaspm.cli import main

sys.exit(main())
