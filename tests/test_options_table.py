"""The option table: every option declared once, on the model's fields.

These tests hold the declarations to what the rest of bigtop relied on
before they existed (the restart, text and hook lists other layers kept),
and docs/config.md to the table.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from bigtop import config
from bigtop.config import convert, doc, options
from bigtop.config.declare import Option, declared, entries, option, section
from bigtop.config.model import WatcherSpec

# What core/watcher.py's PROCESS_OPTIONS, cli/ctlcommands.py's TEXT_OPTIONS
# and HOOKS listed before the table replaced them.
PROCESS_OPTIONS = {
    "cmd", "args", "shell", "shell_args", "executable", "working_dir", "uid", "gid", "umask",
    "copy_env", "copy_path", "env", "rlimits", "use_sockets", "sockets", "virtualenv",
    "virtualenv_py_ver", "close_child_stdin", "close_child_stdout", "close_child_stderr",
    "stdin_socket", "stdin_pipe", "ready",
}
CLI_TEXT_OPTIONS = {
    "cmd", "args", "working_dir", "executable", "shell_args", "uid", "gid", "umask",
    "virtualenv", "virtualenv_py_ver", "stdin_socket", "ready", "restart", "stop_signal",
    "on_daemon_crash",
}
CLI_HOOKS = {
    "before_start", "after_start", "before_stop", "after_stop", "before_spawn", "after_spawn",
    "before_signal", "after_signal", "before_reap", "after_reap", "extended_stats",
}
NOT_OPTIONS = {"name", "origin"}  # a section's name and where it was read


# -- the declarations ----------------------------------------------------------

@pytest.mark.parametrize("scope", list(options.SCOPES))
def test_every_field_is_declared(scope: str) -> None:
    for cls in options.SCOPES[scope]:
        fields = {f.name for f in dataclasses.fields(cls)}
        # [cluster] name is an option: the section itself has no name.
        assert {o.name for o in declared(cls)} | (fields & NOT_OPTIONS) == fields, cls.__name__
        assert all(o.scope == scope for o in declared(cls))


def test_options_are_unique_within_a_scope() -> None:
    for scope in options.SCOPES:
        names = [o.name for o in options.OPTIONS if o.scope == scope]
        assert len(names) == len(set(names)) == len(options.table(scope)), scope


def _plain_options() -> list[Option]:
    nested = [n for o in options.OPTIONS for n in o.entries]
    return [o for o in [*options.OPTIONS, *nested] if o.form == "value"]


@pytest.mark.parametrize("opt", _plain_options(), ids=lambda o: f"{o.scope}.{o.key}")
def test_every_converter_accepts_its_own_default(opt: Option) -> None:
    assert opt.convert is not None
    if opt.required:
        assert opt.default is None
    elif opt.default is not None:
        assert opt.convert(opt.default) == opt.default
    if isinstance(opt.default, (str, int, float)):
        # The INI spelling of the default converts to it too (bools as true/false).
        spelled = str(opt.default).lower() if isinstance(opt.default, bool) else str(opt.default)
        assert opt.convert(spelled) == opt.default


def test_defaults_are_the_dataclass_defaults() -> None:
    spec = WatcherSpec("web", "run")
    for opt in options.table("watcher").values():
        if not opt.required:
            assert getattr(spec, opt.name) == opt.default, opt.name
    assert options.table("watcher")["cmd"].required
    assert options.table("plugin")["use"].required


def test_types_are_the_annotations() -> None:
    watcher = options.table("watcher")
    assert watcher["numprocesses"].type == "int"
    assert watcher["args"].type == "str | None"
    assert watcher["hooks"].type == "dict[str, HookSpec]"


def test_restart_flags_are_the_old_process_options() -> None:
    assert options.RESTART_OPTIONS == PROCESS_OPTIONS
    assert {o.name for o in options.OPTIONS if o.restarts} == PROCESS_OPTIONS


def test_set_changes_every_watcher_option_and_nothing_else() -> None:
    assert set(options.table("watcher")) == options.RUNTIME_OPTIONS
    runtime_scopes = {o.scope for o in options.OPTIONS if o.runtime}
    assert runtime_scopes == {"watcher", "flapping"}


def test_text_options_are_the_old_cli_ones() -> None:
    assert options.TEXT_OPTIONS == CLI_TEXT_OPTIONS
    assert {o.name for o in options.OPTIONS if o.text} == CLI_TEXT_OPTIONS


def test_hook_names() -> None:
    assert set(options.HOOK_NAMES) == CLI_HOOKS
    assert options.table("watcher")["hooks"].keys == options.HOOK_NAMES


def test_entries_options() -> None:
    watcher = options.table("watcher")
    assert {k: o.prefix for k, o in watcher.items() if o.form == "entries"} == {
        "rlimits": "rlimit_", "hooks": "hooks.", "flapping": "flapping.",
        "stdout_stream": "stdout_stream.", "stderr_stream": "stderr_stream."}
    assert [k for k, o in watcher.items() if o.form == "table"] == ["env"]
    assert options.sub_tables(watcher) == ("hooks", "flapping", "stdout_stream",
                                            "stderr_stream")
    assert watcher["rlimits"].entry("nofile") is convert.to_rlimit
    assert watcher["rlimits"].entry("nofiles") is None
    flapping = options.table("flapping")
    assert watcher["flapping"].keys == tuple(flapping)
    assert watcher["flapping"].entry("window") is flapping["window"].convert
    assert watcher["stdout_stream"].entry("anything") is convert.to_text
    assert options.table("plugin")["options"].entry("host") is convert.to_text


def test_locate_and_suggestions() -> None:
    watcher = options.table("watcher")
    assert options.locate(watcher, "numprocesses") == (watcher["numprocesses"], "")
    assert options.locate(watcher, "hooks.before_start") == (watcher["hooks"], "before_start")
    assert options.locate(watcher, "env") is None  # read whole, by the builder
    assert options.locate(watcher, "numprocess") is None
    known = options.suggestions(watcher)
    assert {"cmd", "env", "rlimit_*", "hooks.*", "flapping.*"} <= set(known)


def test_section_refuses_an_undeclared_field() -> None:
    with pytest.raises(TypeError, match="declare it"):
        @section("test")
        class Broken:
            size: int = 1


def test_section_refuses_a_default_its_converter_rejects() -> None:
    with pytest.raises(TypeError, match="rejects its default"):
        @section("test")
        class Broken:
            size: int = option(convert.positive(convert.to_int), default=0, accepts="n",
                               doc="d")


def test_section_refuses_a_default_its_converter_changes() -> None:
    with pytest.raises(TypeError, match="turns its default"):
        @section("test")
        class Broken:
            name: str = option(convert.to_lower, default="Web", accepts="s", doc="d")


def test_entries_take_a_converter_or_a_section() -> None:
    with pytest.raises(TypeError, match="either a converter or a section"):
        entries(factory=dict, key="x.NAME", prefix="x.", accepts="a", doc="d")
    with pytest.raises(TypeError, match="either a converter or a section"):
        entries(convert.to_int, of=options.SCOPES["flapping"][0], factory=dict, key="x.NAME",
                prefix="x.", accepts="a", doc="d")


def test_a_declared_section_is_a_frozen_dataclass() -> None:
    @section("test", plain=("name",))
    class Demo:
        name: str
        size: int = option(convert.to_int, default=1, accepts="integer", doc="How big.")
        tags: dict[str, Any] = entries(convert.to_text, factory=dict, key="tag.NAME",
                                       prefix="tag.", accepts="text", doc="Labels.")

    demo = Demo("x")
    assert (demo.size, demo.tags) == (1, {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        demo.size = 2  # type: ignore[misc]
    size, tags = declared(Demo)
    assert (size.key, size.default, size.type, size.runtime) == ("size", 1, "int", False)
    assert (tags.key, tags.form, tags.default) == ("tag.NAME", "entries", {})


# -- one boolean parser ------------------------------------------------------------

@pytest.mark.parametrize("text", ["1", "yes", "true", "on", "YES", "True", " On ", True])
def test_to_bool_true(text: Any) -> None:
    assert config.to_bool(text) is True


@pytest.mark.parametrize("text", ["0", "no", "false", "off", "NO", "False", " off", False])
def test_to_bool_false(text: Any) -> None:
    assert config.to_bool(text) is False


@pytest.mark.parametrize("text", ["", "2", "yep", "nope", "t", None])
def test_to_bool_refuses(text: Any) -> None:
    with pytest.raises(ValueError, match="is not a boolean"):
        config.to_bool(text)


def test_one_to_bool() -> None:
    """Booleans are parsed by config.to_bool alone: no other module spells
    out its own list of true and false words."""
    assert config.to_bool is convert.to_bool
    spelled = re.compile(r"""["'](?:1|true|yes)["'],\s*["'](?:true|yes|on)["']""", re.I)
    package = Path(config.__file__).resolve().parent.parent
    found = [str(path.relative_to(package)) for path in package.rglob("*.py")
             if path.name != "convert.py" and spelled.search(path.read_text(encoding="utf-8"))]
    assert not found, f"booleans parsed outside config.to_bool: {found}"


@pytest.mark.parametrize("target", ["mymodule.my_hook", "mymodule:my_hook", "pkg.mod:Cls.method"])
def test_hooks_name_a_dotted_path_or_module_colon_attribute(target: str) -> None:
    assert convert.to_hook(f"{target}, true") == config.HookSpec(target, True)


@pytest.mark.parametrize("target", ["my_hook", "mymodule:", ":my_hook", "1mod.hook"])
def test_hooks_refuse_what_names_no_attribute(target: str) -> None:
    with pytest.raises(ValueError, match="is not a dotted path"):
        convert.to_hook(target)


# -- docs/config.md ----------------------------------------------------------------

def test_docs_tables_match_the_table() -> None:
    text = doc.CONFIG_MD.read_text(encoding="utf-8")
    assert doc.render(text) == text, f"docs/config.md is out of date: run {doc.COMMAND}"
    assert doc.main(["--check"]) == 0


def test_docs_list_every_option() -> None:
    text = doc.CONFIG_MD.read_text(encoding="utf-8")
    for opt in options.OPTIONS:
        prefix = "flapping." if opt.scope == "flapping" else ""
        assert f"| `{prefix}{opt.key}` |" in text, opt.key


def test_docs_render_refuses_unknown_and_missing_blocks() -> None:
    every = "".join(f"<!-- options:{b} --><!-- /options:{b} -->" for b in doc.BLOCKS)
    doc.render(every)
    with pytest.raises(ValueError, match="no <!-- options:NAME -->"):
        doc.render("no tables here")
    with pytest.raises(ValueError, match="unknown block"):
        doc.render(every + "<!-- options:nope --><!-- /options:nope -->")


def test_docs_check_finds_a_stale_file(tmp_path: Any) -> None:
    stale = tmp_path / "config.md"
    row = "| `numprocesses` | integer ≥ 0 | `1` |"
    text = doc.CONFIG_MD.read_text(encoding="utf-8")
    assert row in text
    stale.write_text(text.replace(row, row.replace("`1`", "`2`")), encoding="utf-8")
    assert doc.main(["--check", str(stale)]) == 1
    assert doc.main([str(stale)]) == 0
    assert doc.main(["--check", str(stale)]) == 0


def test_default_text() -> None:
    watcher = options.table("watcher")
    assert doc.default_text(watcher["numprocesses"]) == "`1`"
    assert doc.default_text(watcher["shell"]) == "`false`"
    assert doc.default_text(watcher["args"]) == "none"
    assert doc.default_text(watcher["cmd"]) == "—"
    assert doc.default_text(watcher["success_exit_codes"]) == "`0`"
    assert doc.default_text(watcher["ready"]) == "`spawned`"
    assert doc.default_text(watcher["stop_signal"]) == "`SIGTERM`"
