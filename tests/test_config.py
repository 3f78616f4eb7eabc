"""The configuration layer: files in (INI, Circus-compatible; TOML), one typed model out.

Every test writes real files under tmp_path and goes through ``load()``, the
only door the daemon uses; the CLI tests run ``bigtopd --check`` for real.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bigtop.config import (
    Config,
    ConfigError,
    HookSpec,
    Problem,
    ReadySpec,
    StreamSpec,
    load,
)
from bigtop.config.render import render

ROOT = Path(__file__).resolve().parent.parent


def write(path: Path, text: str | bytes) -> Path:
    """Write a config file; text is dedented so line 1 is its first real line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def load_text(tmp_path: Path, text: str, name: str = "bigtop.ini",
              environ: dict[str, str] | None = None, strict: bool = False) -> Config:
    return load(str(write(tmp_path / name, text)), environ={} if environ is None else environ,
                strict=strict)


def problems_of(tmp_path: Path, text: str, name: str = "bigtop.ini") -> list[Problem]:
    """The problems of a file read with --strict (unknown keys are errors)."""
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text, name, strict=True)
    return info.value.problems


def show(problems: list[Problem]) -> str:
    return "\n".join(str(p) for p in problems)


# ---------------------------------------------------------------------------
# 1. Broken configurations: one fault each, reported at its line
# ---------------------------------------------------------------------------


def web(*lines: str) -> str:
    """A valid watcher on lines 1-2; the given lines start at line 3."""
    return "\n".join(["[watcher:web]", "cmd = sleep 1", *lines]) + "\n"


def case(case_id: str, text: str | bytes | None, line: int | None, message: str,
         name: str = "bigtop.ini") -> object:
    return pytest.param(text, name, line, message, id=case_id)


TOML = "bigtop.toml"

BROKEN = [
    # -- INI syntax ---------------------------------------------------------
    case("unknown-option-did-you-mean", web("numprocess = 2"), 3,
         "unknown option (did you mean 'numprocesses'?)"),
    case("unknown-section-did-you-mean", "[watchr:web]\ncmd = x\n", 1,
         "did you mean [watcher:web]?"),
    case("section-without-name", "[watcher]\ncmd = x\n", 1,
         "section [watcher] needs a name, as in [watcher:NAME]"),
    case("env-section-empty-name", "[env:]\nA = 1\n", 1, "needs a name"),
    case("malformed-section-header", "[watcher:web\ncmd = x\n", 1,
         "malformed section header"),
    case("option-before-any-section", "cmd = x\n[watcher:web]\ncmd = x\n", 1,
         "option before any section header"),
    case("line-without-equals", web("numprocesses 2"), 3,
         "expected 'key = value', got 'numprocesses 2'"),
    case("indented-line-outside-a-value", "[watcher:web]\n  cmd = x\n", 2,
         "indented line outside a value"),
    case("not-utf8", b"[watcher:web]\ncmd = caf\xe9\n", None, "cannot read: not UTF-8 text"),
    case("missing-file", None, None, "cannot read: No such file or directory"),
    # -- watcher options ----------------------------------------------------
    case("missing-cmd", "[watcher:web]\nnumprocesses = 2\n", 1, "missing 'cmd'"),
    case("empty-cmd", "[watcher:web]\ncmd =\n", 2, "'cmd' is empty"),
    case("empty-quoted-cmd", '[watcher:web]\ncmd = ""\n', 2, "'cmd' is empty"),
    case("cmd-unclosed-quote", "[watcher:web]\ncmd = sh -c 'echo\n", 2,
         "cannot be split into words: No closing quotation"),
    case("cmd-quote-cut-by-inline-comment", "[watcher:web]\ncmd = sh -c 'a ;b'\n", 2,
         "in INI, ' ;' starts a comment"),
    case("bad-watcher-name", "[watcher:we b]\ncmd = x\n", 1,
         "'we b' cannot name a watcher: letters, digits and _ . - @ only"),
    case("numprocesses-not-integer", web("numprocesses = two"), 3, "'two' is not an integer"),
    case("numprocesses-negative", web("numprocesses = -1"), 3, "'-1' must not be negative"),
    case("bad-boolean", web("autostart = maybe"), 3, "'maybe' is not a boolean"),
    case("bad-float", web("graceful_timeout = soon"), 3, "'soon' is not a number"),
    case("bad-signal-name", web("stop_signal = SIGFOO"), 3, "'SIGFOO' is not a signal"),
    case("bad-signal-number", web("stop_signal = 99"), 3, "'99' is not a valid signal number"),
    case("delay-beyond-ready-timeout", web("ready = delay:5", "ready_timeout = 5"), 3,
         "delay:5 can never pass within ready_timeout = 5"),
    case("umask-not-octal", web("umask = 999"), 3, "'999' is not an octal mode such as 022"),
    case("umask-not-a-number", web("umask = abc"), 3, "'abc' is not an octal mode"),
    case("umask-too-large", web("umask = 1000"), 3, "not a mode between 000 and 777"),
    case("rlimit-unknown-name", web("rlimit_nofiles = 10"), 3,
         "unknown option (did you mean 'rlimit_nofile'?)"),
    case("rlimit-bad-value", web("rlimit_nofile = lots"), 3, "'lots' is not an integer"),
    case("rlimit-negative", web("rlimit_nofile = -5"), 3, "must not be negative"),
    case("bad-restart-policy", web("restart = sometimes"), 3,
         "'sometimes' is not one of always, on-failure, never"),
    case("ready-unknown-kind", web("ready = http:foo"), 3,
         "'http:foo' is not a readiness check"),
    case("ready-tcp-without-port", web("ready = tcp:host"), 3,
         "'tcp:host' is not a readiness check"),
    case("ready-negative-delay", web("ready = delay:-1"), 3, "must not be negative"),
    case("exit-code-out-of-range", web("success_exit_codes = 0, 300"), 3,
         "exit code 300 is not between 0 and 255"),
    case("singleton-with-numprocesses-2", web("singleton = true", "numprocesses = 2"), 4,
         "a singleton watcher runs at most 1 process"),
    case("respawn-false-with-restart-always", web("respawn = false", "restart = always"), 4,
         "respawn = false contradicts restart = always"),
    case("backoff-factor-below-1", web("backoff_factor = 0.5"), 3, "must be at least 1"),
    case("max-retry-below-minus-1", web("max_retry = -2"), 3, "must be -1 (retry forever)"),
    case("env-item-without-equals", web("env = A=1, B"), 3, "'B' is not NAME=VALUE"),
    case("virtualenv-missing", web("virtualenv = /nonexistent/venv"), 3,
         "'/nonexistent/venv' is not a directory"),
    case("hook-name-typo", web("hooks.before_strat = app.hooks.check"), 3,
         "unknown option (did you mean 'hooks.before_start'?)"),
    case("hook-target-not-a-path", web("hooks.before_start = not a path"), 3,
         "'not a path' is not a dotted path"),
    case("hook-bad-ignore-failure", web("hooks.before_start = app.check, perhaps"), 3,
         "'perhaps' is not a boolean"),
    # -- dependencies -------------------------------------------------------
    case("depends-on-unknown-watcher",
         web("", "[watcher:app]", "cmd = x", "depends_on = wbe"), 6,
         "no watcher named 'wbe' (did you mean 'web'?)"),
    case("depends-on-itself", web("depends_on = web"), 3, "a watcher cannot depend on itself"),
    case("dependency-cycle", """
         [watcher:a]
         cmd = x
         depends_on = b
         [watcher:b]
         cmd = x
         depends_on = c
         [watcher:c]
         cmd = x
         depends_on = a
         """, 3, "dependency cycle: a -> b -> c -> a"),
    # -- sockets ------------------------------------------------------------
    case("sockets-names-unknown-socket", web("sockets = nope"), 3, "no socket named 'nope'"),
    case("sockets-did-you-mean", web("sockets = wbe", "[socket:web]", "port = 0"), 3,
         "no socket named 'wbe' (did you mean 'web'?)"),
    case("stdin-socket-unknown", web("stdin_socket = nope"), 3, "no socket named 'nope'"),
    case("socket-path-with-af-inet", "[socket:s]\npath = /tmp/s.sock\nfamily = AF_INET\n", 3,
         "a socket with a path must have family = AF_UNIX"),
    case("socket-path-too-long", f"[socket:s]\npath = /tmp/{'s' * 103}.sock\n", 2,
         "a Unix socket's path is at most 107 bytes (the kernel's limit), this one is 113"),
    case("socket-af-unix-without-path", "[socket:s]\nfamily = AF_UNIX\n", 1,
         "family = AF_UNIX needs a path"),
    case("socket-bad-family", "[socket:s]\nfamily = AF_FOO\n", 2,
         "'AF_FOO' is not one of AF_INET, AF_INET6, AF_UNIX"),
    case("socket-bad-type", "[socket:s]\ntype = SOCK_FOO\n", 2, "'SOCK_FOO' is not one of"),
    case("socket-port-too-large", "[socket:s]\nport = 70000\n", 2,
         "'70000' is not a port between 0 and 65535"),
    case("socket-same-host-port", """
         [socket:a]
         host = 127.0.0.1
         port = 8000
         [socket:b]
         host = 127.0.0.1
         port = 8000
         """, 4, "same address as socket 'a'"),
    # -- plugins, [circus], includes ----------------------------------------
    case("plugin-without-use", "[plugin:p]\nhost = localhost\n", 1,
         "missing 'use' (the plugin class, as module.Class)"),
    case("circus-unknown-option", "[circus]\nendpont = ipc:///tmp/x\n", 2,
         "unknown option (did you mean 'endpoint'?)"),
    case("circus-bad-loglevel", "[circus]\nloglevel = loud\n", 2, "'loud' is not a log level"),
    case("circus-bad-httpd-port", "[circus]\nhttpd_port = http\n", 2, "'http' is not an integer"),
    # -- TOML -----------------------------------------------------------------
    case("toml-syntax", '[watchers.web]\ncmd = "x"\nnumprocesses =\n', 3,
         "invalid TOML: Invalid value", TOML),
    case("toml-unterminated-string", '[watchers.web]\n\ncmd = "x\n', 3, "invalid TOML", TOML),
    case("toml-unknown-top-table", '[watcher.web]\ncmd = "x"\n', 1,
         "unknown table [watcher] (did you mean [watchers]?)", TOML),
    case("toml-unknown-key", '[watchers.web]\ncmd = "x"\n\nnumprocess = 2\n', 4,
         "unknown option (did you mean 'numprocesses'?)", TOML),
    case("toml-unknown-key-second-watcher",
         '[watchers.a]\ncmd = "x"\nnumprocesses = 1\n[watchers.b]\ncmd = "x"\nnumprocess = 1\n',
         6, "unknown option (did you mean 'numprocesses'?)", TOML),
    case("toml-string-for-int", '[watchers.web]\ncmd = "x"\nnumprocesses = "two"\n', 3,
         "'two' is not an integer", TOML),
    case("toml-bool-for-int", '[watchers.web]\ncmd = "x"\nnumprocesses = true\n', 3,
         "True is not an integer", TOML),
    case("toml-float-for-int", '[watchers.web]\ncmd = "x"\nnumprocesses = 2.5\n', 3,
         "2.5 is not an integer", TOML),
    case("toml-bad-dotted-hook", '[watchers.web]\ncmd = "x"\nhooks.before_strat = "a.b"\n', 3,
         "did you mean 'hooks.before_start'?", TOML),
    case("toml-watchers-not-a-table", 'watchers = 3\n', 1, "watchers must be a table", TOML),
    case("toml-watcher-not-a-table", '[watchers]\nweb = 3\n', 2,
         "[watchers.web] must be a table", TOML),
    case("toml-nested-too-deep", '[watchers.w]\ncmd = "x"\nenv = ' + "[" * 10_000 + "]" * 10_000,
         None, "invalid TOML: nested too deep", TOML),
    case("duplicate-section", "[watcher:web]\ncmd = a\n\n[watcher:Web]\nnumprocesses = 2\n", 4,
         "section [watcher:Web] again (first at line 1)"),
    case("nul-in-cmd", web("args = a\x00b"), 3, "a NUL character"),
    case("nul-in-env", web("env = A=a\x00b"), 3, "a NUL character"),
    case("toml-nul-in-env", '[watchers.w]\ncmd = "x"\nenv = {A = "a\\u0000b"}\n', 3,
         "a NUL character", TOML),
    case("toml-name-ending-in-a-newline", '[watchers."web\\n"]\ncmd = "x"\n', 1,
         "'web\\n' cannot name a watcher", TOML),
    case("toml-name-with-a-slash", '[watchers."../x"]\ncmd = "x"\n', 1,
         "'../x' cannot name a watcher", TOML),
    case("toml-name-with-markup", '[watchers."<img src=x>"]\ncmd = "x"\n', 1,
         "cannot name a watcher", TOML),
    case("toml-name-too-long", f'[watchers.{"w" * 10_000}]\ncmd = "x"\n', 1,
         "10000 characters, 64 at most", TOML),
    case("toml-socket-name-with-a-colon", '[sockets."a:b"]\nhost = "127.0.0.1"\nport = 1\n', 1,
         "'a:b' cannot name a socket", TOML),
    case("numprocesses-past-the-bound", web("numprocesses = 1000000000"), 1,
         "web: 1000000000 processes, more than the machine's limit"),
    case("max-processes", "[circus]\nmax_processes = 10\n" + web("numprocesses = 7")[:-1]
         + "\n[watcher:two]\ncmd = x\nnumprocesses = 6\n", 3,
         "13 processes in all, more than max_processes (10)"),
    case("toml-socket-bad-port", '[sockets.s]\nhost = "127.0.0.1"\n\nport = 70000\n', 4,
         "70000 is not a port", TOML),
]


@pytest.mark.parametrize(("text", "name", "line", "message"), BROKEN)
def test_broken_config_reports_file_line_and_message(tmp_path, text, name, line, message):
    path = tmp_path / name
    if text is not None:
        write(path, text)
    with pytest.raises(ConfigError) as info:
        load(str(path), environ={}, strict=True)
    problems = info.value.problems
    assert len(problems) == 1, show(problems)
    (problem,) = problems
    assert message in problem.message, show(problems)
    assert problem.file == str(path)
    assert problem.line == line, show(problems)
    where = f"{path}:{line}: " if line else f"{path}: "
    assert str(problem).startswith(where)
    assert str(info.value) == str(problem)


def test_problem_str_names_file_line_section_and_key(tmp_path):
    (problem,) = problems_of(tmp_path, web("numprocesses = two"))
    assert problem.section == "watcher:web"
    assert problem.key == "numprocesses"
    assert str(problem) == (
        f"{tmp_path / 'bigtop.ini'}:3: [watcher:web] numprocesses: 'two' is not an integer"
    )


def test_several_problems_in_one_file_are_reported_together(tmp_path):
    problems = problems_of(tmp_path, """
        [circus]
        loglevel = loud
        [socket:web]
        port = 70000
        [watcher:web]
        cmd = app --fd $(circus.sockets.web)
        numprocesses = two
        stop_signal = SIGFOO
        rlimit_nofiles = 10
        [watcher:app]
        cmd = x
        depends_on = nope
        [plugin:p]
        host = localhost
        """)
    found = {(p.line, p.key) for p in problems}
    assert found == {
        (2, "loglevel"),
        (4, "port"),
        (7, "numprocesses"),
        (8, "stop_signal"),
        (9, "rlimit_nofiles"),
        (12, "depends_on"),
        (13, None),  # [plugin:p] without use
    }, show(problems)


def test_several_syntax_problems_are_reported_together(tmp_path):
    problems = problems_of(tmp_path, """
        [watchr:a]
        cmd = x
        [watcher:b]
        cmd = x
        numprocesses 2
        [watcher]
        cmd = y
        """)
    assert [(p.line, p.message.split(" ")[0]) for p in problems] == [
        (1, "unknown"),
        (5, "expected"),
        (6, "section"),
    ], show(problems)


def test_problems_in_several_files_are_reported_together(tmp_path):
    write(tmp_path / "extra.ini", "[watcher:b]\ncmd = x\nnumprocesses = -3\n")
    write(tmp_path / "bad.toml", "[watchers.c\n")
    problems = problems_of(tmp_path, """
        [circus]
        include = extra.ini bad.toml
        [watcher:a]
        cmd = x
        [watchr:oops]
        """)
    # Both files that do not parse are reported. (Problems found while
    # building, like extra.ini's -3, are reported only once every file parses.)
    assert {(Path(p.file).name, p.line) for p in problems} >= {
        ("bigtop.ini", 5), ("bad.toml", 1)
    }, show(problems)


def test_directory_as_config_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(str(tmp_path), environ={})
    assert [str(p) for p in info.value.problems] == [f"{tmp_path}: cannot read: Is a directory"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_config_file(tmp_path):
    path = write(tmp_path / "bigtop.ini", "[watcher:w]\ncmd = x\n")
    path.chmod(0)
    with pytest.raises(ConfigError) as info:
        load(str(path), environ={})
    assert [str(p) for p in info.value.problems] == [f"{path}: cannot read: Permission denied"]


def test_problem_in_included_file_points_at_that_file(tmp_path):
    extra = write(tmp_path / "conf.d" / "extra.ini", web("numprocesses = many"))
    (problem,) = problems_of(tmp_path, "[circus]\ninclude_dir = conf.d\n")
    assert (problem.file, problem.line) == (str(extra), 3)


def test_problem_in_included_toml_file_points_at_its_line(tmp_path):
    extra = write(tmp_path / "extra.toml", """
        [watchers.web]
        cmd = "x"
        # a comment

        ready = "http:foo"
        """)
    (problem,) = problems_of(tmp_path, "[circus]\ninclude = extra.toml\n")
    assert (problem.file, problem.line, problem.key) == (str(extra), 5, "ready")


def test_circus_section_with_a_name_says_it_takes_none(tmp_path):
    (problem,) = problems_of(tmp_path, "[circus:main]\nendpoint = ipc:///tmp/x\n")
    assert problem.line == 1
    assert "[circus:NAME]" not in problem.message
    assert "[circus]" in problem.message


def test_dependency_on_a_broken_watcher_is_not_reported_as_missing(tmp_path):
    problems = problems_of(tmp_path, """
        [watcher:app]
        cmd = x
        depends_on = web
        [watcher:web]
        numprocesses = 1
        """)
    assert [(p.line, p.message) for p in problems] == [
        (4, "missing 'cmd' (the command to run)")
    ], show(problems)


def test_toml_cmd_of_the_wrong_type_is_one_problem(tmp_path):
    problems = problems_of(tmp_path, '[watchers.web]\ncmd = ["sleep", "1"]\n', TOML)
    assert [(p.line, p.key) for p in problems] == [(2, "cmd")], show(problems)


@pytest.mark.parametrize("option", ["graceful_timeout", "backoff_factor", "warmup_delay"])
def test_nan_is_not_a_duration(tmp_path, option):
    (problem,) = problems_of(tmp_path, web(f"{option} = nan"))
    assert (problem.line, problem.key) == (3, option)


def test_toml_env_table_inside_env_is_rejected(tmp_path):
    problems = problems_of(tmp_path, """
        [env.web]
        A = "1"

        [watchers.web]
        cmd = "x"
        """, TOML)
    assert [p.line for p in problems] == [1], show(problems)


# ---------------------------------------------------------------------------
# 2. Good configurations: INI and TOML give the same model; env and substitution
# ---------------------------------------------------------------------------

FULL_INI = """
    [circus]
    endpoint = ipc:///tmp/bigtop-test/ctl
    umask = 027
    loglevel = WARN
    check_delay = 2.5
    httpd = on

    [env]
    LANG = C.UTF-8

    [socket:web]
    host = 127.0.0.1
    port = 8000
    umask = 022
    backlog = 128

    [socket:local]
    path = /tmp/bigtop-test/app.sock

    [watcher:web]
    cmd = python -m app --fd $(circus.sockets.web)
    args = --wid $(circus.wid)
    numprocesses = 4
    working_dir = /srv/app
    umask = 002
    stop_signal = SIGQUIT
    graceful_timeout = 5
    sockets = web, local
    use_sockets = yes
    env = PORT=8000, MODE=prod
    rlimit_nofile = 4096
    rlimit_core = unlimited
    hooks.before_start = app.hooks.check, true
    hooks.after_stop = app.hooks.cleanup
    stdout_stream.class = FileStream
    stdout_stream.filename = /var/log/web.out
    stdout_stream.max_bytes = 1048576
    success_exit_codes = 0, 3
    restart = on-failure
    ready = tcp:127.0.0.1:8000
    depends_on = db
    priority = 10

    [watcher:db]
    cmd = postgres -D /srv/db
    singleton = true
    ready = notify
    ready_timeout = 30
    respawn = false

    [plugin:statsd]
    use = bigtop.plugins.StatsdEmitter
    priority = 1
    host = localhost
    port = 8125
    """

FULL_TOML = """
    [circus]
    endpoint = "ipc:///tmp/bigtop-test/ctl"
    umask = "0o027"
    loglevel = "warn"
    check_delay = 2.5
    httpd = true

    [env]
    LANG = "C.UTF-8"

    [sockets.web]
    host = "127.0.0.1"
    port = 8000
    umask = "022"
    backlog = 128

    [sockets.local]
    path = "/tmp/bigtop-test/app.sock"

    [watchers.web]
    cmd = "python -m app --fd $(circus.sockets.web)"
    args = "--wid $(circus.wid)"
    numprocesses = 4
    working_dir = "/srv/app"
    umask = "002"
    stop_signal = "QUIT"
    graceful_timeout = 5
    sockets = ["web", "local"]
    use_sockets = true
    env = {PORT = "8000", MODE = "prod"}
    rlimit_nofile = 4096
    rlimit_core = "unlimited"
    hooks.before_start = ["app.hooks.check", true]
    hooks.after_stop = "app.hooks.cleanup"
    stdout_stream = {class = "FileStream", filename = "/var/log/web.out", max_bytes = 1048576}
    success_exit_codes = [0, 3]
    restart = "on-failure"
    ready = "tcp:127.0.0.1:8000"
    depends_on = ["db"]
    priority = 10

    [watchers.db]
    cmd = "postgres -D /srv/db"
    singleton = true
    ready = "notify"
    ready_timeout = 30
    respawn = false

    [plugins.statsd]
    use = "bigtop.plugins.StatsdEmitter"
    priority = 1
    host = "localhost"
    port = "8125"
    """


def test_full_ini_config_values(tmp_path):
    config = load_text(tmp_path, FULL_INI)
    assert config.settings.umask == 0o027
    assert config.settings.loglevel == "warning"
    assert config.settings.check_delay == 2.5
    assert config.settings.httpd is True
    assert config.env == {"LANG": "C.UTF-8"}
    assert [w.name for w in config.watchers] == ["db", "web"]
    webw = config.watcher("web")
    assert webw is not None
    assert webw.cmd == "python -m app --fd $(circus.sockets.web)"
    assert webw.args == "--wid $(circus.wid)"
    assert webw.numprocesses == 4
    assert webw.umask == 0o002
    assert webw.stop_signal == signal.SIGQUIT
    assert webw.graceful_timeout == 5.0
    assert webw.sockets == ("web", "local")
    assert webw.use_sockets is True
    assert webw.env == {"LANG": "C.UTF-8", "PORT": "8000", "MODE": "prod"}
    assert webw.rlimits == {"nofile": 4096, "core": resource.RLIM_INFINITY}
    assert webw.hooks == {
        "before_start": HookSpec("app.hooks.check", ignore_failure=True),
        "after_stop": HookSpec("app.hooks.cleanup", ignore_failure=False),
    }
    assert webw.stdout_stream == StreamSpec(
        {"class": "FileStream", "filename": "/var/log/web.out", "max_bytes": "1048576"})
    assert webw.stdout_stream.cls == "FileStream"
    assert webw.stderr_stream == StreamSpec()
    assert webw.success_exit_codes == (0, 3)
    assert webw.restart == "on-failure"
    assert webw.ready == ReadySpec("tcp", host="127.0.0.1", port=8000)
    assert webw.depends_on == ("db",)
    assert webw.priority == 10
    assert webw.origin is not None and webw.origin.line == 20
    db = config.watcher("db")
    assert db is not None
    assert (db.singleton, db.ready.kind, db.ready_timeout) == (True, "notify", 30.0)
    assert (db.respawn, db.restart) == (False, "never")  # respawn = false implies never
    assert [s.name for s in config.sockets] == ["local", "web"]
    local, websock = config.sockets
    assert (local.path, local.family) == ("/tmp/bigtop-test/app.sock", "AF_UNIX")
    assert (websock.host, websock.port, websock.umask, websock.backlog) == (
        "127.0.0.1", 8000, 0o022, 128)
    (plugin,) = config.plugins
    assert (plugin.name, plugin.use, plugin.priority) == (
        "statsd", "bigtop.plugins.StatsdEmitter", 1)
    assert plugin.options == {"host": "localhost", "port": "8125"}


def test_ini_and_toml_give_equal_models(tmp_path):
    ini = load_text(tmp_path, FULL_INI)
    toml = load_text(tmp_path, FULL_TOML, TOML)
    assert ini.watchers == toml.watchers
    assert ini.sockets == toml.sockets
    assert ini.plugins == toml.plugins
    assert ini.settings == toml.settings
    assert ini.env == toml.env
    assert ini == toml
    # origin is excluded from equality on purpose: it differs here.
    assert ini.watchers[0].origin != toml.watchers[0].origin


@pytest.mark.parametrize(("ini_line", "toml_line", "section"), [
    ("port = 8125", "port = 8125", "plugin"),
    ("flush = true", "flush = true", "plugin"),
    ("stdout_stream.utc = true", "stdout_stream.utc = true", "watcher"),
    ("env = DEBUG=true", "env = {DEBUG = true}", "watcher"),
], ids=["plugin-int", "plugin-bool", "stream-bool", "env-bool"])
def test_toml_scalars_in_free_form_tables_equal_ini_strings(tmp_path, ini_line, toml_line,
                                                            section):
    if section == "plugin":
        ini_text = f"[plugin:p]\nuse = a.B\n{ini_line}\n"
        toml_text = f'[plugins.p]\nuse = "a.B"\n{toml_line}\n'
    else:
        ini_text = f"[watcher:w]\ncmd = x\n{ini_line}\n"
        toml_text = f'[watchers.w]\ncmd = "x"\n{toml_line}\n'
    ini = load_text(tmp_path, ini_text)
    toml = load_text(tmp_path, toml_text, TOML)
    assert ini.plugins == toml.plugins
    assert ini.watchers == toml.watchers


def test_env_sections_globs_and_precedence(tmp_path):
    config = load_text(tmp_path, """
        [env]
        LEVEL = global
        G = 1

        [env:web,work*]
        LEVEL = section
        S = 2

        [env:nomatch]
        X = 1

        [watcher:web]
        cmd = x
        env = LEVEL=watcher, W=3

        [watcher:worker1]
        cmd = x

        [watcher:worker2]
        cmd = x
        env: A=1,
             B=2

        [watcher:db]
        cmd = x
        """)
    env = {w.name: w.env for w in config.watchers}
    assert env["web"] == {"LEVEL": "watcher", "G": "1", "S": "2", "W": "3"}
    assert env["worker1"] == {"LEVEL": "section", "G": "1", "S": "2"}
    assert env["worker2"] == {"LEVEL": "section", "G": "1", "S": "2", "A": "1", "B": "2"}
    assert env["db"] == {"LEVEL": "global", "G": "1"}
    assert config.env == {"LEVEL": "global", "G": "1"}
    assert any("'nomatch' matches no watcher" in w for w in config.warnings), config.warnings


def test_toml_env_table_and_global_env(tmp_path):
    config = load_text(tmp_path, """
        [env]
        G = "1"

        [watchers.web]
        cmd = "x"
        env = {A = "1", N = 2}

        [watchers.db]
        cmd = "x"

        [watchers.db.env]
        B = "$A-${G}"
        """, TOML, environ={"A": "from-environ"})
    assert config.watcher("web").env == {"G": "1", "A": "1", "N": "2"}
    assert config.watcher("db").env == {"G": "1", "B": "from-environ-1"}


def test_dollar_var_expansion_in_env_values(tmp_path):
    environ = {"HOME": "/home/ann", "home": "/lower", "Path": "/bin", "USER": "ann"}
    config = load_text(tmp_path, """
        [env]
        H = $HOME/x
        LOWER = $home
        MIXED = ${Path}:/usr/bin
        [watcher:web]
        cmd = x
        env = A=$USER, B=${A}-again, C=cost $$5, D=$UNSET., E=$$HOME, F=${H}
        """, environ=environ)
    assert config.watcher("web").env == {
        "H": "/home/ann/x",
        "LOWER": "/lower",  # Circus matched upper-case names only
        "MIXED": "/bin:/usr/bin",
        "A": "ann",
        "B": "ann-again",  # sees the variables set before it
        "C": "cost $5",
        "D": ".",  # an unset variable expands to nothing
        "E": "$HOME",
        "F": "/home/ann/x",
    }


def test_circus_env_substitution_in_any_value_any_case(tmp_path):
    environ = {"RUNDIR": "/run/app", "user": "ann", "Port": "9000"}
    config = load_text(tmp_path, """
        [circus]
        endpoint = ipc://$(circus.env.rundir)/ctl
        pidfile = ((CIRCUS.ENV.RUNDIR))/bigtopd.pid
        [env]
        OWNER = $(circus.env.USER)
        [socket:web]
        port = $(Circus.Env.PORT)
        [socket:sock]
        path = ((circus.env.rundir))/web.sock
        [watcher:web]
        cmd = app --user $(circus.env.user) --fd $(circus.sockets.web) --wid $(circus.wid)
        args = ((circus.env.owner)) $(circus.env.nope)
        working_dir = $(circus.env.RunDir)
        rlimit_nofile = $(circus.env.port)
        stdout_stream.filename = $(circus.env.rundir)/web.log
        env = DIR=$(circus.env.rundir)/web
        [plugin:p]
        use = app.Plugin
        dir = ((circus.env.rundir))
        """, environ=environ)
    assert config.settings.endpoint == "ipc:///run/app/ctl"
    assert config.settings.pidfile == "/run/app/bigtopd.pid"
    assert config.env == {"OWNER": "ann"}
    assert config.sockets[0].path == "/run/app/web.sock"
    assert config.sockets[1].port == 9000
    w = config.watcher("web")
    # $(circus.sockets.X) and $(circus.wid) are for spawn time: left as written.
    assert w.cmd == "app --user ann --fd $(circus.sockets.web) --wid $(circus.wid)"
    # The watcher's own env is visible; unknown names stay in place.
    assert w.args == "ann $(circus.env.nope)"
    assert w.working_dir == "/run/app"
    assert w.rlimits == {"nofile": 9000}
    assert w.stdout_stream.options == {"filename": "/run/app/web.log"}
    assert w.env == {"OWNER": "ann", "DIR": "/run/app/web"}
    assert config.plugins[0].options == {"dir": "/run/app"}


def test_environ_argument_defaults_to_os_environ(tmp_path, monkeypatch):
    monkeypatch.setenv("BIGTOP_TEST_VALUE", "from-os")
    path = write(tmp_path / "bigtop.ini", "[watcher:w]\ncmd = x $(circus.env.bigtop_test_value)\n")
    assert load(str(path)).watcher("w").cmd == "x from-os"
    assert load(str(path), environ={}).watcher("w").cmd == "x $(circus.env.bigtop_test_value)"


def test_circus_env_substitution_in_hooks(tmp_path):
    config = load_text(tmp_path, web("hooks.before_start = $(circus.env.mod).hooks.check"),
                       environ={"MOD": "app"})
    assert config.watcher("web").hooks == {"before_start": HookSpec("app.hooks.check")}


# ---------------------------------------------------------------------------
# 3. Includes
# ---------------------------------------------------------------------------


def test_includes_are_relative_to_the_including_file_and_later_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths must not depend on the cwd
    top = tmp_path / "etc"
    write(top / "bigtop.ini", """
        [circus]
        include = extra.ini other/*.ini
        include_dir = conf.d

        [watcher:web]
        cmd = web
        numprocesses = 1
        priority = 1
        """)
    write(top / "extra.ini", """
        [watcher:web]
        numprocesses = 2
        graceful_timeout = 7
        """)
    write(top / "other" / "a.ini", """
        [circus]
        include = nested/*.ini

        [watcher:web]
        numprocesses = 3
        """)
    write(top / "other" / "nested" / "n.ini", "[watcher:nested]\ncmd = n\n")
    write(top / "other" / "b.ini", "[watcher:web]\npriority = 5\n")
    write(top / "conf.d" / "10-db.ini", "[watcher:db]\ncmd = db\n")
    write(top / "conf.d" / "20-db.toml", '[watchers.db]\nnumprocesses = 2\n')
    write(top / "conf.d" / "ignored.txt", "not a config")

    config = load(str(top / "bigtop.ini"), environ={})
    w = config.watcher("web")
    assert (w.cmd, w.numprocesses, w.graceful_timeout, w.priority) == ("web", 3, 7.0, 5)
    assert config.watcher("db").numprocesses == 2
    assert config.watcher("nested").cmd == "n"
    assert [Path(f).relative_to(top).as_posix() for f in config.files] == [
        "bigtop.ini",
        "extra.ini",
        "other/a.ini",
        "other/nested/n.ini",
        "other/b.ini",
        "conf.d/10-db.ini",
        "conf.d/20-db.toml",
    ]
    assert config.warnings == ()


def test_included_file_overrides_the_including_file(tmp_path):
    write(tmp_path / "override.ini", "[watcher:web]\nnumprocesses = 9\n")
    config = load_text(tmp_path, """
        [circus]
        include = override.ini
        [watcher:web]
        cmd = x
        numprocesses = 1
        """)
    assert config.watcher("web").numprocesses == 9  # Circus kept the first value


def test_missing_include_is_a_warning_not_an_error(tmp_path):
    config = load_text(tmp_path, """
        [circus]
        include = nothing-*.ini absent.ini
        [watcher:web]
        cmd = x
        """)
    assert [w.name for w in config.watchers] == ["web"]
    path = tmp_path / "bigtop.ini"
    assert config.warnings == (
        f"{path}:2: include 'nothing-*.ini' matches no file",
        f"{path}:2: include 'absent.ini' matches no file",
    )


def test_include_cycles_terminate(tmp_path):
    write(tmp_path / "a.ini", "[circus]\ninclude = b.ini a.ini\n[watcher:a]\ncmd = a\n")
    write(tmp_path / "b.ini", "[circus]\ninclude = a.ini ./b.ini\n[watcher:b]\ncmd = b\n")
    config = load(str(tmp_path / "a.ini"), environ={})
    assert [w.name for w in config.watchers] == ["a", "b"]
    assert [Path(f).name for f in config.files] == ["a.ini", "b.ini"]


def test_toml_includes_and_env_substitution_in_include(tmp_path):
    write(tmp_path / "sub" / "web.ini", "[watcher:web]\ncmd = web\n")
    config = load_text(tmp_path, """
        [circus]
        include = ["$(circus.env.confdir)/web.ini"]
        include_dir = "sub"
        """, TOML, environ={"CONFDIR": "sub"})
    assert [w.name for w in config.watchers] == ["web"]
    assert len(config.files) == 2  # sub/web.ini is read once, not twice


# ---------------------------------------------------------------------------
# 4. Circus INI dialect
# ---------------------------------------------------------------------------


def test_ini_dialect(tmp_path):
    config = load_text(tmp_path, """
        # a comment
        ; another comment
        [watcher:web] ; comment after a header
        cmd: python
            -m http.server
          # an indented comment line is skipped
            8000 ; port
        args = ""
        shell_args = a;b ;c
        working_dir = /srv/#not-a-comment
        numprocesses = 2
        numprocesses = 3
        """)
    w = config.watcher("web")
    assert w.cmd == "python\n-m http.server\n8000"
    assert w.args == ""
    assert w.shell_args == "a;b"  # ';' is a comment only after white space
    assert w.working_dir == "/srv/#not-a-comment"
    assert w.numprocesses == 3  # last wins...
    path = tmp_path / "bigtop.ini"
    assert config.warnings == (  # ...with a warning
        f"{path}:12: [watcher:web] numprocesses given twice; line 11 is overridden",
    )


def test_ini_same_section_in_two_files_merges(tmp_path):
    """Written twice in one file, a section is an error (BROKEN above); an
    include may add to a section of the file that includes it."""
    write(tmp_path / "more.ini", "[watcher:web]\nnumprocesses = 2\n")
    config = load_text(tmp_path, """
        [circus]
        include = more.ini
        [watcher:web]
        cmd = x
        numprocesses = 1
        """)
    assert config.watcher("web").numprocesses == 2
    assert config.warnings == ()


def test_ini_blank_value_with_continuation(tmp_path):
    config = load_text(tmp_path, """
        [watcher:web]
        cmd =
            sleep 1
        env =
            A=1
            B=2
        """)
    w = config.watcher("web")
    assert (w.cmd, w.env) == ("sleep 1", {"A": "1", "B": "2"})


# ---------------------------------------------------------------------------
# 5. Converters, through load()
# ---------------------------------------------------------------------------


def watcher_option(tmp_path: Path, key: str, value: str) -> object:
    config = load_text(tmp_path, web(f"{key} = {value}"))
    spec = config.watcher("web")
    if key.startswith("rlimit_"):
        return spec.rlimits[key[len("rlimit_"):]]
    return getattr(spec, key)


def toml_watcher_option(tmp_path: Path, key: str, value: str) -> object:
    config = load_text(tmp_path, f'[watchers.web]\ncmd = "x"\n{key} = {value}\n', TOML)
    return getattr(config.watcher("web"), key)


@pytest.mark.parametrize(("text", "number"), [
    ("15", signal.SIGTERM),
    ("TERM", signal.SIGTERM),
    ("SIGTERM", signal.SIGTERM),
    ("sigterm", signal.SIGTERM),
    ("Quit", signal.SIGQUIT),
    ("SIGRTMIN+2", signal.SIGRTMIN + 2),
    ("rtmin", signal.SIGRTMIN),
])
def test_signal_forms(tmp_path, text, number):
    assert watcher_option(tmp_path, "stop_signal", text) == number


def test_toml_signal_forms(tmp_path):
    assert toml_watcher_option(tmp_path, "stop_signal", "9") == signal.SIGKILL
    assert toml_watcher_option(tmp_path, "stop_signal", '"sigint"') == signal.SIGINT


@pytest.mark.parametrize("text", ["022", "0o022", "0O22", "22"])
def test_umask_is_octal(tmp_path, text):
    assert watcher_option(tmp_path, "umask", text) == 0o022


def test_socket_umask_is_octal_not_decimal(tmp_path):
    config = load_text(tmp_path, "[socket:s]\nport = 0\numask = 077\n")
    assert config.sockets[0].umask == 0o077  # Circus read this as decimal 77


def test_toml_umask_must_be_a_string(tmp_path):
    # A TOML number cannot say whether 22 meant octal: ask for a string.
    assert toml_watcher_option(tmp_path, "umask", '"022"') == 0o022
    assert toml_watcher_option(tmp_path, "umask", '"0o022"') == 0o022
    for number in ("22", "0o22"):
        problems = problems_of(tmp_path, f"[watchers.web]\ncmd = \"x\"\numask = {number}\n",
                               TOML)
        assert [(p.line, p.key) for p in problems] == [(3, "umask")], show(problems)
        assert "as a string of octal digits" in problems[0].message


@pytest.mark.parametrize(("text", "value"), [
    ("yes", True), ("YES", True), ("on", True), ("On", True), ("1", True),
    ("true", True), ("TRUE", True), ("tRuE", True),
    ("no", False), ("No", False), ("off", False), ("OFF", False), ("0", False),
    ("false", False), ("False", False),
])
def test_boolean_forms(tmp_path, text, value):
    assert watcher_option(tmp_path, "copy_env", text) is value


@pytest.mark.parametrize("text", ["unlimited", "UNLIMITED", "infinity", "-1", ""])
def test_rlimit_without_limit(tmp_path, text):
    assert watcher_option(tmp_path, "rlimit_nofile", text) == resource.RLIM_INFINITY


def test_rlimit_number(tmp_path):
    assert watcher_option(tmp_path, "rlimit_nofile", "1024") == 1024
    config = load_text(tmp_path, '[watchers.web]\ncmd = "x"\nrlimit_core = 0\n', TOML)
    assert config.watcher("web").rlimits == {"core": 0}


@pytest.mark.parametrize(("text", "codes"), [
    ("0", (0,)), ("0, 3", (0, 3)), ("0 3", (0, 3)), ("0,3,255", (0, 3, 255)),
])
def test_success_exit_codes(tmp_path, text, codes):
    assert watcher_option(tmp_path, "success_exit_codes", text) == codes


def test_toml_success_exit_codes_list(tmp_path):
    assert toml_watcher_option(tmp_path, "success_exit_codes", "[0, 3]") == (0, 3)


@pytest.mark.parametrize(("text", "ready"), [
    ("spawned", ReadySpec("spawned")),
    ("notify", ReadySpec("notify")),
    ("NOTIFY", ReadySpec("notify")),
    ("tcp:127.0.0.1:80", ReadySpec("tcp", host="127.0.0.1", port=80)),
    ("tcp:[::1]:80", ReadySpec("tcp", host="::1", port=80)),
    ("tcp:localhost:8080", ReadySpec("tcp", host="localhost", port=8080)),
    ("tcp::80", ReadySpec("tcp", host="127.0.0.1", port=80)),
    ("delay:1.5", ReadySpec("delay", delay=1.5)),
    ("delay:0", ReadySpec("delay", delay=0.0)),
])
def test_ready_forms(tmp_path, text, ready):
    assert watcher_option(tmp_path, "ready", text) == ready


@pytest.mark.parametrize(("text", "value"), [
    ("always", "always"), ("on-failure", "on-failure"), ("on_failure", "on-failure"),
    ("NEVER", "never"),
])
def test_restart_forms(tmp_path, text, value):
    assert watcher_option(tmp_path, "restart", text) == value


def test_respawn_false_alone_means_restart_never(tmp_path):
    assert watcher_option(tmp_path, "respawn", "false") is False
    config = load_text(tmp_path, web("respawn = false", "restart = never"))
    assert config.watcher("web").restart == "never"


@pytest.mark.parametrize(("text", "value"), [
    ("web", ("web",)), ("web, admin", ("web", "admin")), ("web admin", ("web", "admin")),
])
def test_list_forms(tmp_path, text, value):
    config = load_text(tmp_path, web("[watcher:admin]", "cmd = x",
                                     "[watcher:app]", "cmd = x", f"depends_on = {text}"))
    assert config.watcher("app").depends_on == value


def test_socket_defaults_and_forms(tmp_path):
    config = load_text(tmp_path, """
        [socket:a]
        replace = false
        [socket:b]
        host = ::1
        port = 0
        family = inet6
        type = dgram
        [socket:c]
        host = 127.0.0.1
        port = 0
        [socket:d]
        path = /tmp/d.sock
        """)
    a, b, c, d = config.sockets
    assert (a.host, a.port, a.family, a.type, a.backlog) == (
        "localhost", 8080, "AF_INET", "SOCK_STREAM", 2048)
    assert (b.family, b.type) == ("AF_INET6", "SOCK_DGRAM")
    assert c.port == 0  # two port-0 sockets on one host do not clash
    assert d.family == "AF_UNIX"


def test_so_reuseport_allows_the_same_address(tmp_path):
    config = load_text(tmp_path, """
        [socket:a]
        port = 8000
        so_reuseport = true
        [socket:b]
        port = 8000
        so_reuseport = true
        """)
    assert [s.name for s in config.sockets] == ["a", "b"]


# ---------------------------------------------------------------------------
# 6. render(): what `bigtopd --check` prints loads back into the same model
# ---------------------------------------------------------------------------

RICH_INI = """
    [circus]
    endpoint = ipc:///tmp/bigtop-test/ctl
    umask = 027
    debug = true

    [env]
    LANG = C.UTF-8
    QUOTED = say "hi" \\ bye

    [env:web*]
    TIER = front

    [socket:web]
    host = 127.0.0.1
    port = 8000
    umask = 002

    [socket:unix-sock]
    path = /tmp/bigtop-test/app.sock
    umask = 077

    [watcher:web.v2@blue]
    cmd = python -m app
        --fd $(circus.sockets.web)
    args = --wid $(circus.wid)
    numprocesses = 2
    umask = 022
    stop_signal = HUP
    copy_env = true
    sockets = web, unix-sock
    env = A=1, B=$A-x, a.b=dotted, U=é
    rlimit_nofile = 1024
    rlimit_core = unlimited
    hooks.before_start = app.hooks.check, true
    hooks.after_stop = app.hooks.cleanup
    stdout_stream.class = FileStream
    stdout_stream.filename = /tmp/web.log
    stderr_stream.class = StdoutStream
    success_exit_codes = 0, 3
    restart = on-failure
    ready = tcp:[::1]:8000
    ready_timeout = 12.5
    backoff_initial = 0.25
    depends_on = db
    max_retry = -1

    [watcher:db]
    cmd = db
    singleton = true
    respawn = false
    ready = delay:2.5
    virtualenv_py_ver = 3.11

    [plugin:statsd]
    use = bigtop.plugins.StatsdEmitter
    priority = 2
    port = 8125
    sample.rate = 0.5
    """


def roundtrip(tmp_path: Path, config: Config) -> tuple[str, Config]:
    text = render(config)
    again = load(str(write(tmp_path / "rendered.toml", text)), environ={})
    return text, again


def test_render_loads_back_into_an_equal_model(tmp_path):
    config = load_text(tmp_path, RICH_INI)
    text, again = roundtrip(tmp_path, config)
    assert again.watchers == config.watchers
    assert again.sockets == config.sockets
    assert again.plugins == config.plugins
    assert again.settings == config.settings
    assert again.env == config.env
    # Sanity: the config is not trivial, and render shows resolved values.
    w = config.watcher("web.v2@blue")
    assert w.env == {"LANG": "C.UTF-8", "QUOTED": 'say "hi" \\ bye', "TIER": "front",
                     "A": "1", "B": "1-x", "a.b": "dotted", "U": "é"}
    assert w.stop_signal == signal.SIGHUP and w.umask == 0o022
    assert text.startswith(f"# resolved from {tmp_path / 'bigtop.ini'}")
    assert '[watchers."web.v2@blue"]' in text
    assert 'stop_signal = "SIGHUP"' in text
    assert 'umask = "022"' in text
    assert 'rlimit_core = "unlimited"' in text
    # Rendering the reloaded model gives the same text, apart from its source.
    assert render(again).splitlines()[1:] == text.splitlines()[1:]


def test_render_of_toml_config_loads_back(tmp_path):
    config = load_text(tmp_path, FULL_TOML, TOML)
    _, again = roundtrip(tmp_path, config)
    assert again == config


def test_render_of_minimal_config(tmp_path):
    config = load_text(tmp_path, "[watcher:w]\ncmd = sleep 1\n")
    text, again = roundtrip(tmp_path, config)
    assert again == config
    assert "[watchers.w]" in text and 'cmd = "sleep 1"' in text


def test_render_realtime_stop_signal(tmp_path):
    config = load_text(tmp_path, web("stop_signal = SIGRTMIN+2"))
    _, again = roundtrip(tmp_path, config)
    assert again.watchers == config.watchers


def test_render_keeps_ready_delay_exact(tmp_path):
    config = load_text(tmp_path, web("ready = delay:1234567", "ready_timeout = 0"))
    _, again = roundtrip(tmp_path, config)
    assert again.watcher("web").ready == ReadySpec("delay", delay=1234567.0)


def test_render_keeps_literal_dollar_in_env(tmp_path):
    config = load_text(tmp_path, web("env = PRICE=$$5, LIT=$$HOME"))
    assert config.watcher("web").env == {"PRICE": "$5", "LIT": "$HOME"}
    write(tmp_path / "rendered.toml", render(config))
    again = load(str(tmp_path / "rendered.toml"), environ={"HOME": "/root"})
    assert again.watcher("web").env == {"PRICE": "$5", "LIT": "$HOME"}


# ---------------------------------------------------------------------------
# 7. The CLI: bigtopd --check
# ---------------------------------------------------------------------------


def bigtopd(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bigtop.cli.bigtopd", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=20,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})


def test_cli_check_prints_toml_and_exits_0(tmp_path):
    path = write(tmp_path / "bigtop.ini", RICH_INI)
    done = bigtopd("--check", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"# resolved from {path}")
    rendered = write(tmp_path / "out.toml", done.stdout)
    assert load(str(rendered), environ={}) == load(str(path), environ={})


def test_cli_check_prints_warnings_on_stderr(tmp_path):
    path = write(tmp_path / "bigtop.ini", "[circus]\ninclude = none.ini\n[watcher:w]\ncmd = x\n")
    done = bigtopd("--check", str(path), cwd=tmp_path)
    assert done.returncode == 0
    assert f"bigtopd: warning: {path}:2: include 'none.ini' matches no file" in done.stderr


@pytest.mark.parametrize("check", [True, False], ids=["check", "run"])
def test_cli_broken_config_exits_2_and_starts_nothing(tmp_path, check):
    marker = tmp_path / "started"
    path = write(tmp_path / "bigtop.ini", f"""
        [socket:web]
        host = 127.0.0.1
        port = 0
        [watcher:touch]
        cmd = touch {marker}
        [watcher:web]
        cmd = sleep 100
        numprocesses = two
        stop_signal = SIGFOO
        """)
    done = bigtopd(*(["--check"] if check else []), str(path), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert f"{path}:8: [watcher:web] numprocesses: 'two' is not an integer" in done.stderr
    assert f"{path}:9: [watcher:web] stop_signal: 'SIGFOO' is not a signal" in done.stderr
    assert "nothing started" in done.stderr
    assert not marker.exists()


def test_cli_missing_config_exits_2(tmp_path):
    done = bigtopd("--check", str(tmp_path / "nope.ini"), cwd=tmp_path)
    assert done.returncode == 2
    assert f"{tmp_path / 'nope.ini'}: cannot read: No such file or directory" in done.stderr


# ---------------------------------------------------------------------------
# 8. What Circus tolerates: warnings with file:line, errors under --strict
# ---------------------------------------------------------------------------


def test_unknown_ini_option_is_a_warning_with_a_hint(tmp_path):
    config = load_text(tmp_path, web("numprocess = 2", "restart_on_error = true"))
    path = tmp_path / "bigtop.ini"
    assert config.watcher("web").numprocesses == 1
    assert list(config.warnings) == [
        f"{path}:3: [watcher:web] numprocess: unknown option (did you mean 'numprocesses'?), "
        "ignored (an error with --strict)",
        f"{path}:4: [watcher:web] restart_on_error: unknown option (did you mean 'restart'?), "
        "ignored (an error with --strict)",
    ]


def test_unknown_ini_option_is_an_error_under_strict(tmp_path):
    problems = problems_of(tmp_path, web("stdout_stream.refresh_time = 0.3", "env.NAME = value"))
    assert [(p.line, p.key) for p in problems] == [(4, "env.NAME"),
                                                   (3, "stdout_stream.refresh_time")]


def test_unknown_ini_section_is_a_warning(tmp_path):
    config = load_text(tmp_path, "[watchr:a]\ncmd = x\n[watcher:b]\ncmd = y\n")
    assert [w.name for w in config.watchers] == ["b"]
    (warning,) = config.warnings
    assert warning.startswith(f"{tmp_path / 'bigtop.ini'}:1: unknown section [watchr:a] "
                              "(did you mean [watcher:a]?)")


@pytest.mark.parametrize("text", ["[circus]\ninclude_dir = conf.d\n",
                                  "[circus]\ninclude_dir = bigtop.ini\n"],
                         ids=["missing", "a-file"])
def test_include_dir_that_is_not_a_directory_is_a_warning(tmp_path, text):
    config = load_text(tmp_path, text + "[watcher:w]\ncmd = x\n")
    (warning,) = config.warnings
    assert warning.startswith(f"{tmp_path / 'bigtop.ini'}:2: include_dir ")
    assert "is not a directory; nothing read from it" in warning


def test_empty_include_dir_is_a_warning(tmp_path):
    (tmp_path / "conf.d").mkdir()
    config = load_text(tmp_path, "[circus]\ninclude_dir = conf.d\n[watcher:w]\ncmd = x\n")
    assert config.warnings == (
        f"{tmp_path / 'bigtop.ini'}:2: include_dir 'conf.d' matches no *.ini or *.toml file",)


def test_a_bad_value_of_an_unused_option_is_a_warning(tmp_path):
    config = load_text(tmp_path, "[circus]\ncheck_delay = -1\n[watcher:w]\ncmd = x\n")
    assert config.settings.check_delay == 5.0
    assert config.warnings == (
        f"{tmp_path / 'bigtop.ini'}:2: [circus] check_delay: '-1' must not be negative; "
        "ignored (bigtop does not use check_delay)",)


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:5555", "tcp://localhost:5555",
                                      "tcp://[::1]:5555", "tcp://127.0.1.1:5555"])
def test_keyless_tcp_on_loopback_is_a_warning(tmp_path, endpoint):
    config = load_text(tmp_path, f"[circus]\nendpoint = {endpoint}\n[watcher:w]\ncmd = x\n")
    assert config.settings.endpoint == endpoint
    (warning,) = config.warnings
    assert warning.startswith(f"{tmp_path / 'bigtop.ini'}:2: [circus] endpoint: served on "
                              "loopback without CurveZMQ keys")


@pytest.mark.parametrize("endpoint", ["tcp://0.0.0.0:5555", "tcp://*:5555",
                                      "tcp://192.0.2.1:5555", "tcp://eth0:5555"])
def test_keyless_tcp_elsewhere_is_refused(tmp_path, endpoint):
    (problem,) = problems_of(tmp_path, f"[circus]\npubsub_endpoint = {endpoint}\n")
    assert (problem.line, problem.key) == (2, "pubsub_endpoint")
    assert "outside the loopback address needs CurveZMQ keys" in problem.message


def test_keyless_tcp_with_insecure_has_no_config_warning(tmp_path):
    config = load_text(tmp_path, "[circus]\nendpoint = tcp://0.0.0.0:5555\ninsecure = true\n"
                                 "[watcher:w]\ncmd = x\n")
    assert config.warnings == ()


def test_render_ini_loads_back_into_an_equal_model(tmp_path):
    config = load_text(tmp_path, RICH_INI)
    text = render(config, "ini")
    again = load(str(write(tmp_path / "rendered.ini", text)), environ={}, strict=True)
    assert again == config
    assert again.env == config.env
    assert "[watcher:web.v2@blue]" in text and "[env:web.v2@blue]" in text
    assert render(again, "ini").splitlines()[1:] == text.splitlines()[1:]


def test_render_ini_of_toml_config_loads_back(tmp_path):
    config = load_text(tmp_path, FULL_TOML, TOML)
    text = render(config, "ini")
    assert load(str(write(tmp_path / "rendered.ini", text)), environ={}, strict=True) == config


def test_render_ini_refuses_what_ini_cannot_hold(tmp_path):
    config = load_text(tmp_path, '[watchers.w]\ncmd = "x"\nenv = {A = " padded"}\n', TOML)
    with pytest.raises(ValueError, match="INI cannot hold the value ' padded'; use --to toml"):
        render(config, "ini")


def test_cli_check_to_ini_and_strict(tmp_path):
    path = write(tmp_path / "bigtop.ini", RICH_INI)
    done = bigtopd("--check", "--to", "ini", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rendered = write(tmp_path / "out.ini", done.stdout)
    assert load(str(rendered), environ={}) == load(str(path), environ={})
    sloppy = write(tmp_path / "sloppy.ini", web("numprocess = 2"))
    done = bigtopd("--check", str(sloppy), cwd=tmp_path)
    assert done.returncode == 0
    assert "numprocess: unknown option (did you mean 'numprocesses'?)" in done.stderr
    done = bigtopd("--check", "--strict", str(sloppy), cwd=tmp_path)
    assert done.returncode == 2
    assert f"{sloppy}:3: [watcher:web] numprocess: unknown option" in done.stderr
    done = bigtopd("--to", "ini", str(path), cwd=tmp_path)
    assert done.returncode == 2 and "--to goes with --check" in done.stderr


def test_socket_variable_naming_no_socket_is_a_warning(tmp_path):
    config = load_text(tmp_path, "[socket:web]\nport = 0\n[watcher:w]\ncmd = x\n"
                                 "args = --fd $(circus.sockets.wbe)\n")
    assert config.warnings == (
        f"{tmp_path / 'bigtop.ini'}:5: [watcher:w] args: $(circus.sockets.wbe) names no "
        "[socket:wbe] (did you mean 'web'?): left as written, as Circus does",)


def test_empty_sections_are_skipped_with_a_warning(tmp_path):
    config = load_text(tmp_path, "[socket:s]\n[plugin:p]\n[watcher:e]\n[watcher:w]\ncmd = x\n")
    assert (config.sockets, config.plugins) == ((), ())
    assert [w.name for w in config.watchers] == ["w"]
    assert [w.split(": ", 1)[1] for w in config.warnings] == [
        "[watcher:e]: empty section, skipped (as Circus does)",
        "[socket:s]: empty section, skipped (as Circus does)",
        "[plugin:p]: empty section, skipped (as Circus does)",
    ]


def test_circus_section_sees_the_env_section(tmp_path):
    config = load_text(tmp_path, "[circus]\nendpoint = ipc://$(circus.env.RUN)/c.sock\n"
                                 "[env]\nRUN = /srv\n[watcher:w]\ncmd = x\n")
    assert config.settings.endpoint == "ipc:///srv/c.sock"


def test_unix_socket_without_umask_is_a_warning_in_ini(tmp_path):
    config = load_text(tmp_path, "[socket:s]\npath = /tmp/s.sock\n")
    (warning,) = config.warnings
    assert "[socket:s]: no umask: the socket file gets the daemon's umask" in warning
    toml = load_text(tmp_path, '[sockets.s]\npath = "/tmp/s.sock"\n', TOML)
    assert toml.warnings == ()


def test_streams_sharing_a_file_with_other_rotation_is_a_warning(tmp_path):
    config = load_text(tmp_path, web("stdout_stream.class = FileStream",
                                     "stdout_stream.filename = /tmp/web.log",
                                     "stderr_stream.class = FileStream",
                                     "stderr_stream.filename = /tmp/web.log",
                                     "stderr_stream.max_bytes = 10"))
    (warning,) = config.warnings
    assert warning == (f"{tmp_path / 'bigtop.ini'}:1: [watcher:web] stderr_stream: writes "
                       "/tmp/web.log as web stdout_stream does, with other rotation options; "
                       "the file follows web stdout_stream's")


@pytest.mark.parametrize(("line", "message"), [
    ("restart = always", "is never restarted after it succeeded"),
    ("on_demand = true", "cannot start on demand"),
])
def test_one_shot_rules(tmp_path, line, message):
    (problem,) = problems_of(tmp_path, web("ready = exited", line))
    assert problem.line == 4 and message in problem.message
    assert load_text(tmp_path, web("ready = exited", "restart = on-failure")).watcher(
        "web").ready.one_shot


def test_only_bounded_regular_files_are_read(tmp_path):
    """A FIFO would freeze a reload until someone writes to it, /dev/zero
    would never end, a garbage file would report a problem per line."""
    fifo = tmp_path / "fifo.ini"
    os.mkfifo(fifo)
    (tmp_path / "huge.ini").write_bytes(b"#" * (4 * 1024 * 1024 + 1))
    main = write(tmp_path / "bigtop.ini", "[circus]\ninclude = fifo.ini /dev/zero huge.ini\n"
                                          "[watcher:w]\ncmd = x\n")
    with pytest.raises(ConfigError) as info:
        load(str(main), environ={})
    assert [p.message for p in info.value.problems] == [
        "cannot read: not a regular file", "cannot read: not a regular file",
        "cannot read: 4,194,305 bytes, 4,194,304 at most"]

    garbage = write(tmp_path / "garbage.ini", "[watcher:w]\n" + "no equals sign\n" * 5000)
    with pytest.raises(ConfigError) as info:
        load(str(garbage), environ={})
    assert len(info.value.problems) == 5000
    shown = str(info.value).splitlines()
    assert len(shown) == 51 and shown[-1] == "... and 4,950 more problems"


def test_includes_are_bounded(tmp_path):
    (tmp_path / "conf.d").mkdir()
    for n in range(1001):
        (tmp_path / "conf.d" / f"{n:04}.ini").write_text(f"[watcher:w{n}]\ncmd = x\n")
    main = write(tmp_path / "bigtop.ini", "[circus]\ninclude_dir = conf.d\n")
    with pytest.raises(ConfigError) as info:
        load(str(main), environ={})
    assert [p.message for p in info.value.problems] == [
        "not read: more than 1000 files included"]


def test_cli_check_shows_the_cluster_but_not_its_etcd_password(tmp_path):
    path = tmp_path / "node.ini"
    path.write_text("[cluster]\nnode = n1\nlabels = role=web zone=a\netcd_user = ops\n"
                    "etcd_password = s3cret\n[watcher:a]\ncmd = sleep 1\n")
    done = bigtopd("--check", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "[cluster]" in done.stdout and 'labels = "role=web zone=a"' in done.stdout
    assert "s3cret" not in done.stdout and 'etcd_password = "********"' in done.stdout
