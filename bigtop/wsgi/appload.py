"""Loading ``module:app`` and telling a WSGI application from an ASGI one.

Every failure is an :class:`AppError` whose message fits on one line; the
original exception is kept as ``__cause__`` for ``--debug``.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, cast

DEFAULT_ATTRIBUTES = ("application", "app")  # tried in order when the spec has no ":attr"


class AppError(Exception):
    """The application could not be loaded; the message is for the user."""


def extend_path(pythonpath: Sequence[str], cwd: str) -> None:
    """Put ``--pythonpath`` entries, then the working directory, first on
    sys.path (a console script starts with its own bin directory there)."""
    entries = [os.path.abspath(entry) for entry in pythonpath if entry]
    for entry in reversed([*entries, cwd]):
        if entry in sys.path:
            sys.path.remove(entry)
        sys.path.insert(0, entry)


def _import(module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        missing = err.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise AppError(f"no module named {missing!r} (sys.path[0] is {sys.path[0]})") from err
        raise AppError(f"importing {module_name!r} failed: {err}") from err
    except SyntaxError as err:
        where = f"{err.filename}:{err.lineno}" if err.filename else module_name
        raise AppError(f"importing {module_name!r} failed: {where}: {err.msg}") from err
    except Exception as err:
        message = str(err).splitlines()[0] if str(err) else ""
        detail = f"{type(err).__name__}: {message}" if message else type(err).__name__
        raise AppError(f"importing {module_name!r} failed: {detail}") from err


def _resolve(obj: Any, dotted: str, spec: str) -> Any:
    for part in dotted.split("."):
        if not part.isidentifier():
            raise AppError(f"{spec!r}: {dotted!r} is not an attribute name")
        try:
            obj = getattr(obj, part)
        except AttributeError as err:
            owner = getattr(obj, "__name__", type(obj).__name__)
            raise AppError(f"{spec!r}: {owner!r} has no attribute {part!r}") from err
    return obj


def load_app(spec: str) -> Callable[..., Any]:
    """``package.module:attr.path`` -> the callable. With no ``:attr``,
    ``application`` then ``app`` are tried, as gunicorn and Chaussette do."""
    module_name, sep, attribute = spec.partition(":")
    module_name = module_name.strip()
    if not module_name or (sep and not attribute.strip()):
        raise AppError(f"{spec!r}: expected MODULE:APP, for example myproject.wsgi:application")
    if not all(part.isidentifier() for part in module_name.split(".")):
        raise AppError(f"{spec!r}: {module_name!r} is not a module name")
    module = _import(module_name)
    if sep:
        app = _resolve(module, attribute.strip(), spec)
    else:
        for name in DEFAULT_ATTRIBUTES:
            if hasattr(module, name):
                app = getattr(module, name)
                break
        else:
            tried = " or ".join(repr(name) for name in DEFAULT_ATTRIBUTES)
            raise AppError(f"{spec!r}: module {module_name!r} has no {tried}; "
                           f"name the application as {module_name}:NAME")
    if not callable(app):
        raise AppError(f"{spec!r} is not callable (it is {type(app).__name__!r}); "
                       "a WSGI or ASGI application is")
    return app


def _positional_count(function: Callable[..., Any]) -> int | None:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in signature.parameters.values()):
        return None
    return sum(1 for p in signature.parameters.values() if p.kind in kinds)


def is_asgi(app: Callable[..., Any]) -> bool:
    """ASGI 3: an ``async def`` function, or an object whose ``__call__`` is
    ``async def`` and takes (scope, receive, send). Anything else is taken
    for WSGI; ``--interface asgi`` overrides this for other shapes."""
    if inspect.isclass(app):
        return False  # calling a class builds an object: ASGI 2 style, or WSGI
    if inspect.iscoroutinefunction(app):
        return True
    call = inspect.getattr_static(type(app), "__call__", None)
    if call is None or not inspect.iscoroutinefunction(call):
        return False
    count = _positional_count(cast(Any, app).__call__)  # bound: self is not counted
    return count is None or count == 3


def detect_interface(app: Callable[..., Any], wanted: str) -> str:
    """``wanted`` is ``auto``, ``wsgi`` or ``asgi`` (from --interface)."""
    if wanted != "auto":
        return wanted
    return "asgi" if is_asgi(app) else "wsgi"
