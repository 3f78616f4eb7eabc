"""``python -m bigtop`` is bigtopctl."""

import sys

from bigtop.cli.bigtopctl import main

sys.exit(main())
