"""bigtop: a process and socket manager for Unix, successor to Circus."""

__version__ = "0.1.0"
