"""The small value types that option values convert to.

A module of their own so that the converters (which build them) and the
model (which holds them) can both import them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The points of a watcher's life a hook can run at (``hooks.NAME``).
HOOK_NAMES = (
    "before_start",
    "after_start",
    "before_spawn",
    "after_spawn",
    "before_stop",
    "after_stop",
    "before_signal",
    "after_signal",
    "before_reap",
    "after_reap",
    "extended_stats",
)


@dataclass(frozen=True)
class Origin:
    """Where a section was defined, for error messages raised later."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class ReadySpec:
    """How the daemon learns a process is ready to serve.

    kind is one of ``spawned`` (as soon as it runs), ``notify`` (systemd
    ``READY=1`` on ``$NOTIFY_SOCKET``), ``tcp`` (a connect to host:port
    succeeds), ``delay`` (still running after ``delay`` seconds) or
    ``exited`` (a one-shot task: done once it exited with a success status,
    never respawned after that).
    """

    kind: str = "spawned"
    host: str | None = None
    port: int | None = None
    delay: float = 0.0

    @property
    def one_shot(self) -> bool:
        """``ready = exited``: the process runs once, to completion."""
        return self.kind == "exited"

    def __str__(self) -> str:
        if self.kind == "tcp":
            host = f"[{self.host}]" if self.host and ":" in self.host else self.host
            return f"tcp:{host}:{self.port}"
        if self.kind == "delay":
            return f"delay:{self.delay!r}"
        return self.kind


@dataclass(frozen=True)
class StreamSpec:
    """Where one of a watcher's output streams goes (``stdout_stream.*``)."""

    options: dict[str, str] = field(default_factory=dict)

    @property
    def cls(self) -> str | None:
        return self.options.get("class")


@dataclass(frozen=True)
class HookSpec:
    target: str
    ignore_failure: bool = False
