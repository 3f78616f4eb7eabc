"""The layers of docs/architecture.md, checked on the source: which
package may import which, and no import circle inside core (not even for
type hints)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "bigtop"

# package -> the packages of bigtop it must never import
FORBIDDEN = {
    "config": {"core", "stats", "control", "client", "plugins", "cli", "web", "wsgi", "cluster"},
    "core": {"stats", "control", "client", "plugins", "cli", "web", "wsgi", "cluster"},
    "stats": {"client", "plugins", "cli", "web", "wsgi", "cluster"},
    "control": {"client", "plugins", "cli", "web", "wsgi"},
    "cluster": {"stats", "control", "client", "plugins", "cli", "web", "wsgi"},
    "client": {"core", "stats", "plugins", "cli", "web", "wsgi", "cluster"},
    "plugins": {"core", "stats", "cli", "web", "cluster"},
    "web": {"core", "stats", "cli", "plugins", "cluster"},
    "wsgi": {"config", "core", "stats", "control", "client", "plugins", "cli", "web",
             "cluster"},
}
# What of control the client and the front ends may use: the wire's description.
WIRE = {"bigtop.control.protocol", "bigtop.control.endpoints", "bigtop.control.multicast",
        "bigtop.control"}
# The daemon's own entry point builds the arbiter and the control server.
DAEMON = "bigtop.cli.bigtopd"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The bigtop modules a file imports, anywhere in it (functions and
    TYPE_CHECKING blocks included)."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                as_path = PACKAGE.parent / candidate.replace(".", "/")
                exists = as_path.with_suffix(".py").exists() or as_path.is_dir()
                found.add(candidate if exists else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m == "bigtop" or m.startswith("bigtop.")}


GRAPH = {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_each_layer_imports_only_what_it_may():
    wrong = []
    for module, deps in GRAPH.items():
        banned = FORBIDDEN.get(layer(module), set())
        if module == DAEMON:
            continue
        for dep in deps:
            if layer(dep) in banned:
                wrong.append(f"{module} imports {dep}")
            elif (layer(module) in ("client", "cli", "web", "plugins") and layer(dep) == "control"
                  and dep not in WIRE):
                wrong.append(f"{module} imports {dep} (front ends see the wire only)")
    assert not wrong, "\n".join(sorted(wrong))


def test_front_ends_never_import_the_core():
    wrong = [f"{m} imports {d}" for m, deps in GRAPH.items() for d in deps
             if layer(m) in ("cli", "web", "plugins") and m != DAEMON and layer(d) == "core"]
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_circle_inside_core():
    core = {m: {d for d in deps if layer(d) == "core" and d != "bigtop.core"}
            for m, deps in GRAPH.items() if layer(m) == "core" and m != "bigtop.core"}
    circles = []

    def visit(module: str, path: list[str], done: set[str]) -> None:
        for dep in sorted(core.get(module, ())):
            if dep in path:
                circles.append(" -> ".join(path[path.index(dep):] + [dep]))
            elif dep not in done:
                done.add(dep)
                visit(dep, path + [dep], done)

    for module in core:
        visit(module, [module], set())
    assert not circles, "\n".join(sorted(set(circles)))


def test_bigtopctl_and_its_shell_do_not_import_each_other():
    assert "bigtop.cli.bigtopctl" not in GRAPH["bigtop.cli.shell"]


def test_the_checker_sees_imports():
    """The checks above would pass on an empty graph: it is not one."""
    assert "bigtop.core.watcher" in GRAPH["bigtop.core.arbiter"]
    assert "bigtop.control.protocol" in GRAPH["bigtop.client.calls"]
