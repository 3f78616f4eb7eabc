"""Entry points whose components are not built yet."""

import sys


def _not_yet(name: str) -> int:
    print(f"{name}: not implemented yet", file=sys.stderr)
    return 1


def bigtop_top() -> int:
    return _not_yet("bigtop-top")


def bigtop_web() -> int:
    return _not_yet("bigtop-web")
