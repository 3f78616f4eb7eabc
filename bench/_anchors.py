"""The anchor systems bigtop is measured against, installed in a private venv.

``ensure_anchor_venv()`` creates ``bench/.venv-anchors`` and installs the
pinned Circus and supervisord releases into it; ``ensure_anchor_venv(HTTP_PINS)``
adds gunicorn and gevent, which only the HTTP benchmark needs, and
``ensure_chaussette()`` adds Circus's WSGI server (or says why it cannot).
It is idempotent: when the packages are already importable there at the
pinned versions it only costs one short interpreter start.

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
# Installed only for bench/http.py: gunicorn's sync and gevent workers
# (its gevent worker also imports packaging: the gunicorn[gevent] extra).
HTTP_PINS = {"gunicorn": "27.0.1", "gevent": "26.9.0", "packaging": "26.4"}
# Circus's WSGI server, tried in this order until one serves with wsgiref
# on this Python: the 2015 release, then a 2022 backport of it.
CHAUSSETTE = (("chaussette", "1.3.0"), ("chaussette-backport", "1.3.1"))

_GITIGNORE_LINE = ".venv-anchors/"

# Prints "name version" per pinned package; exits non-zero if one is missing.
_PROBE = """
import importlib, importlib.metadata as md
for module in {modules!r}:
    importlib.import_module(module)  # importable, not just installed
for name in {names!r}:
    print(name, md.version(name))
"""

# Prints the installed Chaussette distribution and version if its wsgiref
# backend loads (the one that still serves); exits non-zero otherwise.
_CHAUSSETTE_PROBE = """
import importlib.metadata as md
import chaussette.server, chaussette.backend
assert "wsgiref" in chaussette.backend.backends(), chaussette.backend.backends()
for name in {names!r}:
    try:
        print(name, md.version(name))
        break
    except md.PackageNotFoundError:
        pass
else:
    raise SystemExit("no chaussette distribution")
"""


class AnchorSetupError(RuntimeError):
    """The anchor venv could not be created or populated."""


def anchor_bin(name: str) -> Path:
    """Path of an executable installed in the anchor venv."""
    return ANCHOR_VENV / "bin" / name


def installed_versions(python: Path, pins: dict[str, str] | None = None
                       ) -> dict[str, str] | None:
    """Versions of the pinned packages (``PINS`` and ``pins``) in the venv of
    ``python``, or None if one is not importable."""
    if not python.exists():
        return None
    names = sorted({**PINS, **(pins or {})})
    modules = ["psutil", *names]  # each distribution's module has its name
    probe = _PROBE.format(modules=modules, names=names)
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


def ensure_anchor_venv(extra: dict[str, str] | None = None, log=print) -> dict[str, str]:
    """Create/refresh the anchor venv with ``PINS`` and the ``extra`` pins
    (e.g. ``HTTP_PINS``); return the installed versions."""
    ensure_gitignore()
    wanted = {**PINS, **(extra or {})}
    python = anchor_bin("python")
    versions = installed_versions(python, extra)
    if versions == wanted:
        return versions

    if not python.exists():
        log(f"anchors: creating {ANCHOR_VENV.relative_to(REPO_DIR)}")
        _run([sys.executable, "-m", "venv", str(ANCHOR_VENV)])
    specs = [f"{name}=={version}" for name, version in sorted(wanted.items())]
    log(f"anchors: pip install {' '.join(specs)}")
    _pip(python, "install", *specs)

    versions = installed_versions(python, extra)
    if versions != wanted:
        raise AnchorSetupError(
            f"anchor venv has {versions!r} after install, wanted {wanted!r}"
        )
    return versions


def chaussette_version(python: Path) -> str | None:
    """'chaussette 1.3.0' (or the backport's name) if it loads wsgiref, else None."""
    if not python.exists():
        return None
    probe = _CHAUSSETTE_PROBE.format(names=[name for name, _ in CHAUSSETTE])
    proc = subprocess.run([str(python), "-c", probe], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


def ensure_chaussette(log=print) -> tuple[str | None, str]:
    """Install Chaussette into the anchor venv (which must exist).

    Returns ("chaussette 1.3.0", "") for the first candidate of
    ``CHAUSSETTE`` that installs and loads its wsgiref backend on this
    Python, or (None, why none did). A candidate that fails is uninstalled
    again, so that the next one does not sit on top of it.
    """
    python = anchor_bin("python")
    found = chaussette_version(python)
    if found:
        return found, ""
    reasons = []
    for name, version in CHAUSSETTE:
        log(f"anchors: pip install {name}=={version}")
        try:
            _pip(python, "install", f"{name}=={version}")
        except AnchorSetupError as exc:
            reasons.append(f"{name} {version} does not install: {_last_line(str(exc))}")
            continue
        found = chaussette_version(python)
        if found:
            return found, ""
        reasons.append(f"{name} {version} does not load in the anchor venv: "
                       f"{_import_error(python)}")
        try:
            _pip(python, "uninstall", "--yes", name)
        except AnchorSetupError as exc:
            reasons.append(f"cannot uninstall {name}: {_last_line(str(exc))}")
            break
    return None, "; ".join(reasons)


def _import_error(python: Path) -> str:
    proc = subprocess.run([str(python), "-c", "import chaussette.server, chaussette.backend"],
                          capture_output=True, text=True, check=False)
    return _last_line(proc.stderr) or f"exit status {proc.returncode}"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def _pip(python: Path, *args: str) -> None:
    _run([str(python), "-m", "pip", *args[:1], "--quiet", "--disable-pip-version-check",
          *args[1:]])


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
        raise AnchorSetupError(
            f"command failed ({proc.returncode}): {' '.join(argv)}\n{tail}"
        )
