"""Options declared where they are stored: on the model's dataclass fields.

``option()`` and ``entries()`` make a dataclass field whose metadata holds
the option's :class:`Option` record: its converter, what it accepts, its
default as the docs show it, its one-line doc, and whether changing it
restarts processes or takes free text. ``@section`` turns a class into a
frozen dataclass, completes each record with the field's name, type and
default and the section's scope, and refuses (at import) a field without a
declaration or a converter that rejects its own default. The model is thus
the one option table: readers, docs and other layers read it through
:mod:`bigtop.config.options`, and nothing can drift.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal, TypeVar, dataclass_transform, overload

from .convert import Converter

T = TypeVar("T")
C = TypeVar("C")
# value: ``key = value``; table: ``key`` holds NAME=VALUE pairs (env);
# entries: one key per entry, ``prefix + NAME`` (rlimit_nofile, hooks.X).
Form = Literal["value", "table", "entries"]

_METADATA = "bigtop.option"
_DECLARED: dict[type, tuple[Option, ...]] = {}


@dataclasses.dataclass(frozen=True)
class Option:
    """One option, as the readers, the docs and other layers see it."""

    name: str  # the dataclass field
    scope: str  # the section kind: circus, watcher, flapping, socket, plugin
    key: str  # as written in a file: the name, or a pattern (rlimit_NAME)
    type: str  # the field's annotation: "int", "str | None"
    accepts: str  # what a value may be, in an operator's words
    # One value; for a table or entries option, the value of one entry.
    # None: each entry is an option of its own, in ``entries`` (flapping.*).
    convert: Converter | None
    default: Any  # None when required
    required: bool
    shown: str  # the default as the docs write it ("": from the value)
    doc: str  # one line
    runtime: bool  # `set` may change it while the daemon runs
    restarts: bool  # changing it restarts the watcher's processes
    text: bool  # a free-text value: bigtopctl sends it as written
    # Read for compatibility and never used: a bad value is a warning, since
    # it changes nothing (Circus accepts ``check_delay = -1``).
    inert: bool = False
    form: Form = "value"
    prefix: str = ""
    keys: tuple[str, ...] | None = None  # the NAMEs an entry may have; None: any
    entries: tuple[Option, ...] = ()

    def converter(self) -> Converter:
        """The option's own converter; an option whose entries are options
        of their own has none."""
        if self.convert is None:
            raise TypeError(f"{self.key}: each of its entries has a converter of its own")
        return self.convert

    def entry(self, name: str) -> Converter | None:
        """The converter of this option's entry ``name``; None if it has none."""
        if self.keys is not None and name not in self.keys:
            return None
        for nested in self.entries:
            if nested.key == name:
                return nested.convert
        return self.convert


def _record(convert: Converter | None, accepts: str, doc: str, shown: str, restarts: bool,
            text: bool, inert: bool = False, key: str = "", form: Form = "value", prefix: str = "",
            keys: tuple[str, ...] | None = None,
            nested: tuple[Option, ...] = ()) -> dict[str, Option]:
    """Field metadata; ``@section`` fills in what only the field knows."""
    return {_METADATA: Option(
        name="", scope="", key=key, type="", accepts=accepts, convert=convert, default=None,
        required=False, shown=shown, doc=doc, runtime=False, restarts=restarts, text=text,
        inert=inert, form=form, prefix=prefix, keys=keys, entries=nested,
    )}


@overload
def option(convert: Callable[[Any], T], *, accepts: str, doc: str, shown: str = "",
           restarts: bool = False, text: bool = False, inert: bool = False) -> T: ...


@overload
def option(convert: Callable[[Any], T], *, default: T, accepts: str, doc: str,
           shown: str = "", restarts: bool = False, text: bool = False,
           inert: bool = False) -> T: ...


def option(convert: Callable[[Any], Any], *, default: Any = dataclasses.MISSING, accepts: str,
           doc: str, shown: str = "", restarts: bool = False, text: bool = False,
           inert: bool = False) -> Any:
    """A ``key = value`` option; without a default, a required one."""
    return dataclasses.field(default=default,
                             metadata=_record(convert, accepts, doc, shown, restarts, text,
                                              inert))


def entries(convert: Converter | None = None, *, factory: Callable[[], T], key: str,
            accepts: str, doc: str, prefix: str | None = None,
            keys: tuple[str, ...] | None = None, of: type | None = None, shown: str = "",
            restarts: bool = False) -> T:
    """An option made of named entries: one key per entry, ``prefix + NAME``
    (NAME one of keys, or any); without a prefix, one key holding a table of
    them (env). Each entry is converted by convert, or is an option of the
    ``@section`` class ``of`` (flapping.*)."""
    if (convert is None) == (of is None):
        raise TypeError(f"{key}: give entries() either a converter or a section (of=)")
    nested = declared(of) if of is not None else ()
    metadata = _record(
        convert, accepts, doc, shown, restarts, False, key=key,
        form="table" if prefix is None else "entries", prefix=prefix or "",
        keys=tuple(o.key for o in nested) if nested else keys, nested=nested,
    )
    field: T = dataclasses.field(default_factory=factory, metadata=metadata)
    return field


@dataclass_transform(frozen_default=True, field_specifiers=(option, entries, dataclasses.field))
def section(scope: str, *, runtime: bool = False,
            plain: tuple[str, ...] = ()) -> Callable[[type[C]], type[C]]:
    """A frozen dataclass whose fields are the options of ``scope``, but for
    the ``plain`` ones (a section's name, its origin). ``runtime``: the
    ``set`` command may change these options while the daemon runs."""

    def make(cls: type[C]) -> type[C]:
        made = dataclasses.dataclass(frozen=True)(cls)
        options = []
        for f in dataclasses.fields(made):  # type: ignore[arg-type]
            record = f.metadata.get(_METADATA)
            if (record is None) != (f.name in plain):
                raise TypeError(f"{cls.__name__}.{f.name}: declare it with option() or "
                                "entries(), or list it in plain")
            if record is not None:
                options.append(_complete(record, f, scope, runtime))
        _DECLARED[made] = tuple(options)
        return made

    return make


def _complete(record: Option, f: dataclasses.Field[Any], scope: str, runtime: bool) -> Option:
    required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    if f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    else:
        default = None if required else f.default
    option = dataclasses.replace(
        record, name=f.name, scope=scope, key=record.key or f.name, default=default,
        type=str(f.type),  # the annotation's text: the model postpones annotations
        required=required, runtime=runtime,
    )
    problem = check(option)
    if problem:
        raise TypeError(f"[{scope}] {option.key}: {problem}")
    return option


def check(option: Option) -> str | None:
    """What is wrong with a declaration, if anything. A ``key = value``
    option's converter must give its default back, from the default itself."""
    if option.form == "entries" and not option.key.startswith(option.prefix):
        return f"its key does not start with its prefix {option.prefix!r}"
    if option.form != "value":
        return None
    if option.convert is None:
        return "it has no converter"
    if option.default is None:
        return None
    try:
        again = option.convert(option.default)
    except ValueError as err:
        return f"its converter rejects its default {option.default!r}: {err}"
    if again != option.default:
        return f"its converter turns its default {option.default!r} into {again!r}"
    return None


def declared(cls: type) -> tuple[Option, ...]:
    """The options of a ``@section`` class, in field order."""
    return _DECLARED[cls]
