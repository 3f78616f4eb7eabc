"""``python -m bigtop.cli.top``: the same as ``bigtop-top``."""

import sys

from . import main

sys.exit(main())
