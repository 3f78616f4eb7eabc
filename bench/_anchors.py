"""The anchor systems bigtop is measured against, installed in a private venv.

``ensure_anchor_venv()`` creates ``bench/.venv-anchors`` and installs the
pinned Circus and supervisord releases into it. It is idempotent: when both
packages are already importable there at the pinned versions it only costs
one short interpreter start.

Standard library only, so it can run before psutil is importable.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
ANCHOR_VENV = BENCH_DIR / ".venv-anchors"

# distribution name -> pinned version
PINS = {"circus": "0.19.0", "supervisor": "4.3.0"}

_GITIGNORE_LINE = ".venv-anchors/"

# Prints "name version" per pinned package; exits non-zero if one is missing.
_PROBE = """
import importlib.metadata as md
import circus, supervisor, psutil  # noqa: F401  (importable, not just installed)
for name in {names!r}:
    print(name, md.version(name))
"""


class AnchorSetupError(RuntimeError):
    """The anchor venv could not be created or populated."""


def anchor_bin(name: str) -> Path:
    """Path of an executable installed in the anchor venv."""
    return ANCHOR_VENV / "bin" / name


def installed_versions(python: Path) -> dict[str, str] | None:
    """Versions of the pinned packages in the venv of ``python``, or None."""
    if not python.exists():
        return None
    probe = _PROBE.format(names=sorted(PINS))
    proc = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        return None
    return dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line)


def ensure_gitignore() -> None:
    """Keep bench/.venv-anchors out of git."""
    path = BENCH_DIR / ".gitignore"
    lines = path.read_text().splitlines() if path.exists() else []
    if _GITIGNORE_LINE not in lines:
        with path.open("a") as f:
            f.write(_GITIGNORE_LINE + "\n")


def ensure_anchor_venv(log=print) -> dict[str, str]:
    """Create/refresh the anchor venv; return the installed versions."""
    ensure_gitignore()
    python = anchor_bin("python")
    versions = installed_versions(python)
    if versions == PINS:
        return versions

    if not python.exists():
        log(f"anchors: creating {ANCHOR_VENV.relative_to(REPO_DIR)}")
        _run([sys.executable, "-m", "venv", str(ANCHOR_VENV)])
    specs = [f"{name}=={version}" for name, version in sorted(PINS.items())]
    log(f"anchors: pip install {' '.join(specs)}")
    _run([str(python), "-m", "pip", "install", "--quiet",
          "--disable-pip-version-check", *specs])

    versions = installed_versions(python)
    if versions != PINS:
        raise AnchorSetupError(
            f"anchor venv has {versions!r} after install, wanted {PINS!r}"
        )
    return versions


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
        raise AnchorSetupError(
            f"command failed ({proc.returncode}): {' '.join(argv)}\n{tail}"
        )
