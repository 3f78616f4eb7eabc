"""``python -m bigtop.wsgi`` is ``bigtop-wsgi``."""

import sys

from .cli import main

sys.exit(main())
