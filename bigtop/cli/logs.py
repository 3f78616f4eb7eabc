"""The daemon's own log: readable, timestamped, colored on a terminal."""

from __future__ import annotations

import logging
import sys
import time

LEVEL_COLORS = {
    logging.DEBUG: "\x1b[2m",
    logging.INFO: "\x1b[32m",
    logging.WARNING: "\x1b[33m",
    logging.ERROR: "\x1b[31m",
    logging.CRITICAL: "\x1b[1;31m",
}


class Formatter(logging.Formatter):
    def __init__(self, color: bool):
        super().__init__()
        self.color = color

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        stamp += f".{int(record.msecs):03d}"
        level = f"{record.levelname:<7}"
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        if self.color:
            color = LEVEL_COLORS.get(record.levelno, "")
            return f"\x1b[2m{stamp}\x1b[0m {color}{level}\x1b[0m {message}"
        return f"{stamp} {level} {message}"


def setup(level: str = "info", output: str = "-") -> None:
    """``output``: ``-`` (stderr), a file path, or ``syslog://`` (local),
    ``syslog://HOST:PORT`` or ``syslog:///dev/log``."""
    handler: logging.Handler
    if output in ("-", "", "stderr"):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(Formatter(sys.stderr.isatty()))
    elif output == "stdout":
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(Formatter(sys.stdout.isatty()))
    elif output.startswith("syslog:"):
        from logging.handlers import SysLogHandler
        from urllib.parse import urlparse

        url = urlparse(output)
        address: str | tuple[str, int] = "/dev/log"
        if url.hostname:
            address = (url.hostname, url.port or 514)
        elif url.path:
            address = url.path
        handler = SysLogHandler(address=address)
        handler.setFormatter(logging.Formatter("bigtopd[%(process)d]: %(message)s"))
    else:
        from logging.handlers import WatchedFileHandler

        handler = WatchedFileHandler(output)
        handler.setFormatter(Formatter(False))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
