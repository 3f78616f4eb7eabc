"""Configuration errors that point at the file, line and key at fault."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    message: str
    file: str | None = None
    line: int | None = None
    section: str | None = None
    key: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        what = ""
        if self.section and self.key:
            what = f"[{self.section}] {self.key}: "
        elif self.section:
            what = f"[{self.section}]: "
        elif self.key:
            what = f"{self.key}: "
        return f"{where}{what}{self.message}"


SHOWN = 50  # problems in the message (a garbage file has one per line)


class ConfigError(Exception):
    """One or more problems found in a configuration; nothing was applied.
    Its message shows the first SHOWN problems; ``problems`` has them all."""

    def __init__(self, problems: list[Problem] | Problem | str):
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems = problems
        shown = [str(p) for p in problems[:SHOWN]]
        if len(problems) > SHOWN:
            shown.append(f"... and {len(problems) - SHOWN:,} more problems")
        super().__init__("\n".join(shown))
