"""supervisord's configuration files: bigtop.config.supervisor's reading and
translation (checked through build, as the loader uses them), then real
processes: what bigtopd starts from a supervisord.conf against what the
real supervisord starts from it."""

from __future__ import annotations

import configparser
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from bigtop.config import load
from bigtop.config.build import build
from bigtop.config.loader import looks_like_supervisor
from bigtop.config.model import Config
from bigtop.config.raw import RawSection
from bigtop.config.supervisor import (
    expand,
    load_supervisor,
    parse,
    parse_environment,
)
from bigtop.core.process import command_line, process_env

from .conftest import Daemon, free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "supervisor"
SUPERVISORD = ROOT / ".venv-supervisor" / "bin" / "supervisord"
ENV = {"HOME": "/home/me", "PATH": "/usr/bin:/bin", "X": "x-value"}

Result = tuple[list[RawSection], list[Any], list[str], tuple[str, ...]]


def read(tmp_path: Path, text: str, files: dict[str, str] | None = None,
         environ: dict[str, str] | None = None, strict: bool = False) -> Result:
    for name, body in (files or {}).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(body))
    path = tmp_path / "supervisord.conf"
    head = HEAD if text.startswith(HEAD) else ""
    path.write_text(head + textwrap.dedent(text[len(head):]))
    return load_supervisor(str(path), ENV if environ is None else environ, strict)


def config(tmp_path: Path, text: str, **kw: Any) -> Config:
    """The model bigtopd would run; fails on any problem."""
    sections, problems, warnings, files = read(tmp_path, text, **kw)
    assert not problems, "\n".join(map(str, problems))
    return build(sections, kw.get("environ", ENV), files, warnings)


def problems(tmp_path: Path, text: str, **kw: Any) -> list[str]:
    return [str(p) for p in read(tmp_path, text, **kw)[1]]


def warnings(tmp_path: Path, text: str, **kw: Any) -> list[str]:
    sections, found, warned, _ = read(tmp_path, text, **kw)
    assert not found, found
    return [w for w in warned if not raised_limit(w)]


def raised_limit(warning: str) -> bool:
    """A warning that depends on this machine's ulimits (minfds, minprocs)."""
    return "does not raise its limit" in warning


def key_of(message: str) -> str | None:
    """The key a problem or warning names: FILE:LINE: [section] key: ..."""
    match = re.search(r"\[[^\]]+\](?: (\S+))?:", message)
    return match.group(1) if match else "?"


HEAD = "[supervisord]\nnodaemon = true\n"  # (a test's text after it is dedented)


# -- detecting and parsing ---------------------------------------------------

def test_looks_like_supervisor() -> None:
    assert looks_like_supervisor("[supervisord]\n")
    assert looks_like_supervisor("; conf.d file\n[program:web]\ncommand = x\n")
    assert looks_like_supervisor("[include]\nfiles = *.conf\n")
    assert looks_like_supervisor("[rpcinterface:supervisor]\n")
    assert not looks_like_supervisor("[circus]\n[program:web]\n")
    assert not looks_like_supervisor("[watcher:web]\ncmd = x\n[group:g]\n")
    assert not looks_like_supervisor("[env]\nA = 1\n")
    assert not looks_like_supervisor("[program]\n")  # a kind with a name only
    assert not looks_like_supervisor("")


CONFIGPARSER_TEXT = textwrap.dedent("""\
    # a comment
    ; another
    [program:web]
    Command: /bin/echo a;b c ;comment
      continued x#not a comment#  #but this is
    \t  # a comment line inside the value

      last
    directory = /srv ; inline
    environment=A="1" #inline too
    empty =
    odd = a#b ;c #d
      [not:a header]
    [group:g]
      indented = key
    programs=web
    """)


def test_configparser_rules() -> None:
    [sec, group], found, warned = parse(CONFIGPARSER_TEXT, "f.conf")
    assert not found and not warned
    assert (sec.kind, sec.name, sec.line) == ("program", "web", 3)
    assert sec.values["command"].value == "/bin/echo a;b c\ncontinued x#not a comment#\n\nlast"
    assert sec.values["command"].line == 4  # the key's line, not the continuation's
    assert sec.values["directory"].value == "/srv"
    assert sec.values["environment"].value == 'A="1"'
    assert sec.values["empty"].value == ""
    assert (group.kind, group.name, group.line) == ("group", "g", 14)


def test_parsing_agrees_with_configparser() -> None:
    """supervisord reads with Python's RawConfigParser (inline comments
    ; and #, keys in lower case): the same values."""
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"), strict=False)
    parser.read_string(CONFIGPARSER_TEXT)
    ours = {s.title: {k: v.value for k, v in s.values.items()}
            for s in parse(CONFIGPARSER_TEXT, "f.conf")[0]}
    assert ours == {name: dict(parser[name]) for name in parser.sections()}


def test_parse_errors_and_twice_given_keys() -> None:
    sections, found, warned = parse("x = 1\n[program:a]\njust words\ncommand=1\ncommand=2\n",
                                    "f.conf")
    assert [str(p) for p in found] == [
        "f.conf:1: option before any section header such as [supervisord]",
        "f.conf:3: [program:a]: expected 'key = value', got 'just words'"]
    assert warned == ["f.conf:5: [program:a] command: given twice; line 4 is overridden"]
    assert sections[0].values["command"].value == "2"


def test_expand() -> None:
    names = {"here": "/etc", "process_num": 7, "ENV_HOME": "/root"}
    assert expand("%(here)s/x %(process_num)02d %(process_num)d 100%%", names) == \
        "/etc/x 07 7 100%"
    assert expand("%(ENV_HOME)s", names) == "/root"
    with pytest.raises(ValueError, match=r"%\(nope\) cannot be expanded"):
        expand("%(nope)s", names)
    with pytest.raises(ValueError, match="did you mean %\\(here\\)"):
        expand("%(her)s", names)
    with pytest.raises(ValueError, match="%%"):
        expand("date +%Y", names)
    with pytest.raises(ValueError, match="here"):
        expand("%(here)d", names)


def test_environment_tokenizer() -> None:
    assert parse_environment('A="1,2",B=\'x y\', C = plain ,D=a:b/c.d-e+f(g),E=""') == {
        "A": "1,2", "B": "x y", "C": "plain", "D": "a:b/c.d-e+f(g)", "E": ""}
    assert parse_environment("A=1,\n  B=2,") == {"A": "1", "B": "2"}
    assert parse_environment("A=1;B=2") == {"A": "1", "B": "2"}  # any mark separates
    assert parse_environment('K="$HOME, x"') == {"K": "$HOME, x"}
    assert parse_environment("A=x#y,B=2") == {"A": "x"}  # as supervisord: # is a comment
    assert parse_environment("") == {}
    for bad in ("A=$X", "A", "A=", "A=1 B=2", '"A"=1', 'A="open'):
        with pytest.raises(ValueError):
            parse_environment(bad)


# -- programs ------------------------------------------------------------------

def test_program_options(tmp_path: Path) -> None:
    c = config(tmp_path, HEAD + """
        [program:web]
        command = /bin/sleep 10
        directory = /tmp
        user = nobody
        umask = 027
        autostart = false
        autorestart = unexpected
        exitcodes = 0,2
        startsecs = 5
        startretries = 7
        stopsignal = QUIT
        stopwaitsecs = 3
        stopasgroup = true
        killasgroup = true
        priority = 20
        """)
    [w] = c.watchers
    assert (w.name, w.cmd, w.working_dir, w.uid, w.umask) == ("web", "/bin/sleep 10", "/tmp",
                                                                "nobody", 0o027)
    assert (w.autostart, w.restart, w.success_exit_codes) == (False, "on-failure", (0, 2))
    assert (w.backoff_reset, w.max_retry, w.graceful_timeout) == (5.0, 7, 3.0)
    assert (w.stop_signal, w.priority, w.numprocesses) == (signal.SIGQUIT, -20, 1)
    assert w.copy_env
    assert w.env == {"SUPERVISOR_ENABLED": "1", "SUPERVISOR_PROCESS_NAME": "web",
                     "SUPERVISOR_GROUP_NAME": "web"}


def test_program_defaults_are_supervisords(tmp_path: Path) -> None:
    [w] = config(tmp_path, HEAD + "[program:a]\ncommand = /bin/true\n").watchers
    assert (w.restart, w.success_exit_codes, w.backoff_reset, w.max_retry) == (
        "on-failure", (0,), 1.0, 3)
    assert (w.graceful_timeout, w.stop_signal, w.priority, w.autostart) == (
        10.0, signal.SIGTERM, -999, True)
    assert w.uid is None and w.working_dir is None and w.umask is None


@pytest.mark.parametrize(("value", "restart"), [("true", "always"), ("false", "never"),
                                                ("unexpected", "on-failure"), ("ON", "always")])
def test_autorestart(tmp_path: Path, value: str, restart: str) -> None:
    [w] = config(tmp_path, HEAD + f"[program:a]\ncommand=x\nautorestart={value}\n").watchers
    assert w.restart == restart


def test_every_value_names_the_supervisord_key_it_came_from(tmp_path: Path) -> None:
    sections, *_ = read(tmp_path, HEAD + textwrap.dedent("""\
        [program:a]
        command = /bin/true
        stopwaitsecs = 4
        stdout_logfile = /tmp/a.log
        """))
    watcher = next(s for s in sections if s.kind == "watcher")
    lines = {k: (Path(v.file).name, v.line) for k, v in watcher.values.items()}
    assert lines["cmd"] == ("supervisord.conf", 4)
    assert lines["graceful_timeout"] == ("supervisord.conf", 5)
    assert lines["stdout_stream.filename"] == ("supervisord.conf", 6)
    assert lines["autostart"] == ("supervisord.conf", 3)  # a default: the section's line


def test_numprocs_one_watcher_per_process_when_options_differ(tmp_path: Path) -> None:
    c = config(tmp_path, HEAD + """
        [program:web]
        command = /srv/web --port 80%(process_num)02d --of %(numprocs)d
        process_name = %(program_name)s-%(process_num)d
        numprocs = 3
        numprocs_start = 1
        """)
    assert [(w.name, w.cmd, w.numprocesses) for w in c.watchers] == [
        ("web-1", "/srv/web --port 8001 --of 3", 1), ("web-2", "/srv/web --port 8002 --of 3", 1),
        ("web-3", "/srv/web --port 8003 --of 3", 1)]
    assert c.watchers[1].env["SUPERVISOR_PROCESS_NAME"] == "web-2"


def test_numprocs_one_watcher_when_options_are_the_same(tmp_path: Path) -> None:
    [w] = config(tmp_path, HEAD + """
        [program:worker]
        command = /srv/worker
        process_name = worker_%(process_num)d
        numprocs = 4
        stdout_logfile = /var/log/worker.log
        redirect_stderr = true
        """).watchers
    assert (w.name, w.numprocesses) == ("worker", 4)
    assert "SUPERVISOR_PROCESS_NAME" not in w.env  # one watcher: not per process


def test_numprocs_with_auto_log_files_is_one_watcher_per_process(tmp_path: Path) -> None:
    """supervisord gives each process AUTO files of its own."""
    c = config(tmp_path, HEAD + """
        [program:worker]
        command = /srv/worker
        process_name = worker_%(process_num)d
        numprocs = 2
        """)
    assert [(w.name, w.numprocesses, os.path.basename(w.stderr_stream.options["filename"]))
            for w in c.watchers] == [("worker_0", 1, "worker_0-stderr.log"),
                                     ("worker_1", 1, "worker_1-stderr.log")]


def test_numprocs_split_by_environment_and_log_file(tmp_path: Path) -> None:
    c = config(tmp_path, HEAD + """
        [program:a]
        command = /srv/a %(ENV_SLOT)s
        process_name = a%(process_num)d
        numprocs = 2
        environment = SLOT="s%(process_num)d"
        [program:b]
        command = /srv/b
        process_name = b%(process_num)d
        numprocs = 2
        stdout_logfile = /tmp/b-%(process_num)d.log
        """)
    by_name = {w.name: w for w in c.watchers}
    assert by_name["a1"].cmd == "/srv/a s1"  # the program's environment as %(ENV_X)s
    assert by_name["a1"].env["SLOT"] == "s1"
    assert by_name["b0"].stdout_stream.options["filename"] == "/tmp/b-0.log"


def test_numprocs_refusals(tmp_path: Path) -> None:
    found = problems(tmp_path, HEAD + """
        [program:a]
        command = x
        numprocs = 2
        [program:b]
        command = x
        numprocs = 10001
        process_name = b%(process_num)d
        [program:c]
        command = x
        numprocs = -1
        """)
    assert found == [
        f"{tmp_path}/supervisord.conf:6: [program:a] numprocs: with numprocs > 1, "
        "process_name must hold %(process_num)",
        f"{tmp_path}/supervisord.conf:9: [program:b] numprocs: at most 10000 processes",
        f"{tmp_path}/supervisord.conf:13: [program:c] numprocs: '-1' must not be negative"]


def test_names_bigtop_cannot_take_and_duplicates(tmp_path: Path) -> None:
    found = problems(tmp_path, HEAD + """
        [program:a]
        command = x
        process_name = -a
        [program:b]
        command = x
        process_name = dup
        [program:c]
        command = x
        process_name = dup
        [program:d e]
        command = x
        """)
    assert len(found) == 3
    assert "[program:a] process_name: '-a' cannot name a bigtop watcher" in found[1]
    assert re.search(r"supervisord.conf:12: \[program:c\] process_name: process name 'dup' is "
                     r"also one of \[program:b\] \(.*supervisord.conf:7\)", found[2])
    assert "[program:d e]: a name may not hold spaces" in found[0]


def test_one_problem_for_a_program_of_many_processes(tmp_path: Path) -> None:
    found = problems(tmp_path, HEAD + """
        [program:a]
        command = /srv/a %(process_num)d
        process_name = -%(process_num)d
        numprocs = 1000
        """)
    assert len(found) == 1 and "'-0' cannot name a bigtop watcher" in found[0]


def test_expansion_problems_name_file_line_and_key(tmp_path: Path) -> None:
    found = problems(tmp_path, HEAD + """
        [program:a]
        command = /bin/echo %(nope)s
        directory = %(here)s/%Y
        priority = %(process_num)d
        """)
    assert found[0].startswith(f"{tmp_path}/supervisord.conf:7: [program:a] priority: "
                               "%(process_num) cannot be expanded")  # not per process
    assert found[1] == (f"{tmp_path}/supervisord.conf:6: [program:a] directory: "
                        "a % must be written %% or start %(NAME)s")
    assert found[2].startswith(f"{tmp_path}/supervisord.conf:5: [program:a] command: "
                               "%(nope) cannot be expanded")
    assert len(found) == 3  # and not "missing 'command'"


def test_expansion_names(tmp_path: Path) -> None:
    [w] = config(tmp_path, HEAD + """
        [group:g]
        programs = a
        [program:a]
        command = /bin/echo %(program_name)s %(group_name)s %(host_node_name)s %(ENV_X)s 5%%
        directory = %(here)s
        """).watchers
    assert w.cmd == f"/bin/echo a g {platform.node()} x-value 5%"
    assert w.working_dir == str(tmp_path)


def test_bad_values(tmp_path: Path) -> None:
    found = problems(tmp_path, HEAD + """
        [program:a]
        command = x
        autorestart = sometimes
        stopsignal = NOPE
        exitcodes = 0,300
        umask = 9
        user = no-such-user-here
        stdout_logfile_maxbytes = 5XB
        stopasgroup = true
        killasgroup = false
        """)
    assert [key_of(p) for p in found] == ["killasgroup", "autorestart", "exitcodes", "stopsignal", "user", "umask",
                    "stdout_logfile_maxbytes"]


def test_missing_command(tmp_path: Path) -> None:
    assert problems(tmp_path, HEAD + "[program:a]\nautostart = true\n") == [
        f"{tmp_path}/supervisord.conf:3: [program:a]: missing 'command' (the program to run)"]


def test_serverurl_and_output_options_are_explained(tmp_path: Path) -> None:
    warned = warnings(tmp_path, HEAD + """
        [program:a]
        command = x
        serverurl = http://localhost:9001
        stdout_capture_maxbytes = 1MB
        stderr_events_enabled = true
        stdout_syslog = true
        """)
    assert [key_of(w) for w in warned] == [
        "serverurl", "stdout_capture_maxbytes", "stderr_events_enabled", "stdout_syslog",
        None]  # the last: AUTO log files
    assert "SUPERVISOR_SERVER_URL is not set" in warned[0]


# -- environment and the $ sign --------------------------------------------------

def test_environment_and_dollars_reach_the_child_as_written(tmp_path: Path) -> None:
    c = config(tmp_path, """
        [supervisord]
        nodaemon = true
        environment = GLOBAL="g $X",G2="$$",SUPERVISOR_GROUP_NAME=mine
        [program:a]
        command = /bin/echo $HOME "$(circus.wid)" %(ENV_GLOBAL)s %(ENV_OWN)s
        environment = OWN="$HOME, and a comma",G2=own
        """)
    assert c.env == {"GLOBAL": "g $X", "G2": "$$", "SUPERVISOR_GROUP_NAME": "mine"}
    [w] = c.watchers
    assert w.env == {"GLOBAL": "g $X", "G2": "own", "SUPERVISOR_GROUP_NAME": "mine",
                     "SUPERVISOR_ENABLED": "1", "SUPERVISOR_PROCESS_NAME": "a",
                     "OWN": "$HOME, and a comma"}
    # What the spawn does with them: nothing more.
    env = process_env(w, 1, {})
    assert env["OWN"] == "$HOME, and a comma" and env["GLOBAL"] == "g $X"
    argv = command_line(w, 1, {}, env)
    assert argv[:2] == ["/bin/echo", "$HOME"]
    assert argv[3:] == ["g", "$X", "$HOME,", "and", "a", "comma"]
    assert argv[2] == "1"  # $(circus.wid): bigtop's, which supervisord does not have; said so:
    assert any("$(circus.X)" in w for w in c.warnings)


def test_supervisord_section(tmp_path: Path) -> None:
    c = config(tmp_path, f"""
        [supervisord]
        logfile = %(here)s/sv.log
        loglevel = trace
        pidfile = {tmp_path}/sv.pid
        user = nobody
        directory = /tmp
        [program:a]
        command = x
        [program:b]
        command = x
        user = root
        directory = /srv
        """)
    assert c.settings.logoutput == f"{tmp_path}/sv.log"
    assert (c.settings.loglevel, c.settings.pidfile) == ("debug", f"{tmp_path}/sv.pid")
    assert c.settings.umask == 0o022  # supervisord sets it when it detaches
    a, b = c.watchers
    assert (a.uid, a.working_dir, b.uid, b.working_dir) == ("nobody", "/tmp", "root", "/srv")
    text = "\n".join(c.warnings)
    assert "bigtopd stays in the foreground unless started with --daemon" in text
    assert "programs without user run as nobody" in text
    assert "does not rotate its own log file" in text


def test_supervisord_section_in_the_foreground(tmp_path: Path) -> None:
    c = config(tmp_path, """
        [supervisord]
        nodaemon = true
        logfile = syslog
        directory = /tmp
        [program:a]
        command = x
        """)
    assert c.settings.logoutput == "syslog://" and c.settings.umask is None
    assert c.watchers[0].working_dir is None  # supervisord changes directory only to detach
    assert [w for w in c.warnings if "AUTO log files" not in w and not raised_limit(w)] == []


def test_no_supervisord_section(tmp_path: Path) -> None:
    assert "no [supervisord] section" in warnings(tmp_path, "[program:a]\ncommand=x\n")[0]
    assert "no [supervisord] section" in problems(tmp_path, "[program:a]\ncommand=x\n",
                                                  strict=True)[0]


def test_bad_loglevel(tmp_path: Path) -> None:
    assert problems(tmp_path, "[supervisord]\nnodaemon=true\nloglevel=loud\n") == [
        f"{tmp_path}/supervisord.conf:3: [supervisord] loglevel: 'loud' is not a level: "
        "critical, error, warn, info, debug, trace, blather"]


def test_minfds_warns_when_the_limit_is_lower(tmp_path: Path) -> None:
    import resource

    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] == resource.RLIM_INFINITY:
        pytest.skip("no open-file limit here")
    _, found, warned, _ = read(tmp_path, HEAD + "minfds = 1000000000\n")
    assert not found
    assert [key_of(w) for w in warned if raised_limit(w)] == ["minfds"]


# -- output ------------------------------------------------------------------

def test_log_files(tmp_path: Path) -> None:
    c = config(tmp_path, HEAD + f"""
        childlogdir = {tmp_path}
        [program:file]
        command = x
        stdout_logfile = ~/out.log
        stdout_logfile_maxbytes = 1KB
        stdout_logfile_backups = 3
        stderr_logfile = NONE
        [program:auto]
        command = x
        [program:devnull]
        command = x
        stdout_logfile = off
        stderr_logfile = /dev/stderr
        stderr_logfile_maxbytes = 1GB
        """)
    by = {w.name: w for w in c.watchers}
    assert by["file"].stdout_stream.options == {
        "class": "FileStream", "filename": os.path.expanduser("~/out.log"), "max_bytes": "1024",
        "backup_count": "3"}
    assert by["file"].close_child_stderr and not by["file"].close_child_stdout
    assert by["auto"].stdout_stream.options["filename"] == f"{tmp_path}/auto-stdout.log"
    assert by["auto"].stderr_stream.options["filename"] == f"{tmp_path}/auto-stderr.log"
    assert by["auto"].stdout_stream.options["max_bytes"] == str(50 * 1024 * 1024)
    assert by["devnull"].close_child_stdout
    assert by["devnull"].stderr_stream.options["max_bytes"] == "0"  # a device: not rotated
    assert any("AUTO log files" in w for w in c.warnings)


def test_auto_log_files_default_to_the_temporary_directory(tmp_path: Path) -> None:
    [w] = config(tmp_path, HEAD + "[program:a]\ncommand = x\n").watchers
    assert w.stdout_stream.options["filename"] == os.path.join(tempfile.gettempdir(),
                                                               "a-stdout.log")


def test_redirect_stderr_shares_stdouts_file(tmp_path: Path) -> None:
    c = config(tmp_path, HEAD + """
        [program:rotated]
        command = x
        redirect_stderr = true
        stdout_logfile = /tmp/r.log
        stderr_logfile = /tmp/ignored.log
        [program:plain]
        command = x
        redirect_stderr = true
        stdout_logfile = /tmp/p.log
        stdout_logfile_maxbytes = 0
        [program:closed]
        command = x
        redirect_stderr = true
        stdout_logfile = NONE
        """)
    by = {w.name: w for w in c.watchers}
    rotated = by["rotated"]
    # Both streams name one file, which the daemon's writer then opens once
    # (see test_shared_log_file_rotates_whole_lines).
    assert rotated.stdout_stream.options == rotated.stderr_stream.options
    assert rotated.stderr_stream.options["class"] == "FileStream"
    assert by["plain"].stderr_stream.options == {
        "class": "FileStream", "filename": "/tmp/p.log", "max_bytes": "0", "backup_count": "10"}
    assert by["closed"].close_child_stdout and by["closed"].close_child_stderr
    assert any("stderr_logfile: ignored: redirect_stderr" in w for w in c.warnings)


def test_syslog_log_file(tmp_path: Path) -> None:
    c = config(tmp_path, HEAD + "[program:a]\ncommand=x\nstdout_logfile=syslog\n")
    assert not c.watchers[0].stdout_stream.options and not c.watchers[0].close_child_stdout
    assert any("stdout_logfile: not applied: bigtop has no syslog stream" in w
               for w in c.warnings)


def test_backups_zero_grows(tmp_path: Path) -> None:
    warned = warnings(tmp_path, HEAD + "[program:a]\ncommand=x\nstdout_logfile=/tmp/x\n"
                      "stdout_logfile_backups=0\n")
    assert any("stdout_logfile_backups: supervisord empties the file" in w for w in warned)


# -- groups, priorities, fcgi ----------------------------------------------------

def test_groups(tmp_path: Path) -> None:
    c = config(tmp_path, HEAD + """
        [group:jobs]
        programs = a, b,
        priority = 100
        [program:a]
        command = x
        priority = 1
        [program:b]
        command = x
        priority = 2
        [program:alone]
        command = x
        priority = 50
        """)
    by = {w.name: w for w in c.watchers}
    assert by["a"].env["SUPERVISOR_GROUP_NAME"] == "jobs"
    assert by["alone"].env["SUPERVISOR_GROUP_NAME"] == "alone"
    # supervisord's order: alone (50), then the group (100): a, b.
    order = sorted(c.watchers, key=lambda w: -w.priority)
    assert [w.name for w in order] == ["alone", "a", "b"]


def test_group_problems(tmp_path: Path) -> None:
    found = problems(tmp_path, HEAD + """
        [group:g1]
        programs = a,missing,wokrer
        [group:g2]
        programs = a
        [program:a]
        command = x
        [program:worker]
        command = x
        """)
    assert found == [
        f"{tmp_path}/supervisord.conf:5: [group:g1] programs: names no [program:missing] or "
        "[fcgi-program:missing]",
        f"{tmp_path}/supervisord.conf:5: [group:g1] programs: names no [program:wokrer] or "
        "[fcgi-program:wokrer] (did you mean 'worker'?)",
        f"{tmp_path}/supervisord.conf:7: [group:g2] programs: 'a' is already in [group:g1]"]


def test_fcgi_programs(tmp_path: Path) -> None:
    c = config(tmp_path, HEAD + f"""
        [fcgi-program:php]
        command = /usr/bin/php-cgi
        socket = tcp://LocalHost:9000
        socket_backlog = 16
        process_name = php%(process_num)d
        numprocs = 2
        stdout_logfile = /tmp/php.log
        redirect_stderr = true
        [fcgi-program:Unix]
        command = /usr/bin/php-cgi
        socket = unix://{tmp_path}/%(program_name)s.sock
        socket_mode = 0660
        """)
    php, unix = sorted(c.sockets, key=lambda s: s.name)
    assert (php.name, php.host, php.port, php.backlog) == ("php", "localhost", 9000, 16)
    assert (unix.name, unix.path, unix.family, unix.umask, unix.replace) == (
        "unix", f"{tmp_path}/Unix.sock", "AF_UNIX", 0o117, True)
    assert unix.backlog == socket.SOMAXCONN
    by = {w.name: w for w in c.watchers}
    assert (by["php"].stdin_socket, by["php"].numprocesses) == ("php", 2)
    assert by["Unix"].stdin_socket == "unix"


def test_fcgi_problems(tmp_path: Path) -> None:
    found = problems(tmp_path, HEAD + """
        [fcgi-program:a]
        command = x
        [fcgi-program:b]
        command = x
        socket = tcp://host
        [fcgi-program:c]
        command = x
        socket = tcp://127.0.0.1:9000
        socket_mode = 0600
        [fcgi-program:d]
        command = x
        socket = unix://relative.sock
        """)
    assert [p.split(": ", 1)[1] for p in found] == [
        "[fcgi-program:a]: missing 'socket' (tcp://HOST:PORT or unix:///PATH)",
        "[fcgi-program:b] socket: 'tcp://host' is not tcp://HOST:PORT or unix:///PATH",
        "[fcgi-program:c] socket_mode: socket_owner and socket_mode are for unix:// sockets only",
        "[fcgi-program:d] socket: 'relative.sock' is not an absolute path"]


# -- sections and keys bigtop does not run, strictness -----------------------------

def test_sections_explained_once_each(tmp_path: Path) -> None:
    warned = warnings(tmp_path, HEAD + """
        [unix_http_server]
        file = /tmp/s.sock
        [inet_http_server]
        port = 127.0.0.1:9001
        [supervisorctl]
        serverurl = unix:///tmp/s.sock
        [rpcinterface:supervisor]
        supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
        [eventlistener:mem]
        command = memmon
        events = TICK_60
        [ctlplugin:x]
        supervisor.ctl_factory = x:y
        """)
    titles = [re.search(r"\[([^\]]+)\]", w).group(1) for w in warned]  # type: ignore[union-attr]
    assert titles == ["unix_http_server", "inet_http_server", "supervisorctl",
                      "rpcinterface:supervisor", "eventlistener:mem", "ctlplugin:x"]
    assert "bigtopctl" in warned[0] and "bigtop-web" in warned[1]
    assert "bigtopctl listen" in warned[4]


def test_unknown_sections_and_keys(tmp_path: Path) -> None:
    text = HEAD + "[progam:a]\ncommand=x\n[program:b]\ncomand=x\ncommand=x\n"
    assert warnings(tmp_path, text) == [
        f"{tmp_path}/supervisord.conf:3: [progam:a]: unknown section (did you mean "
        "[program:a]?), ignored (an error with --strict)",
        f"{tmp_path}/supervisord.conf:6: [program:b] comand: unknown option (did you mean "
        "'command'?), ignored (an error with --strict)",
        f"{tmp_path}/supervisord.conf:5: [program:b]: AUTO log files are PROCESS-stdout.log "
        f"and PROCESS-stderr.log in {tempfile.gettempdir()}, kept across restarts (supervisord "
        "names them at random and removes old ones at start)"]
    assert problems(tmp_path, text, strict=True) == [
        f"{tmp_path}/supervisord.conf:3: [progam:a]: unknown section (did you mean "
        "[program:a]?)",
        f"{tmp_path}/supervisord.conf:6: [program:b] comand: unknown option (did you mean "
        "'command'?)"]


def test_default_section(tmp_path: Path) -> None:
    a, b = config(tmp_path, HEAD + """
        [DEFAULT]
        stopwaitsecs = 30
        unrelated = 1
        [program:a]
        command = x
        [program:b]
        command = x
        stopwaitsecs = 2
        """).watchers
    assert (a.graceful_timeout, b.graceful_timeout) == (30.0, 2.0)


# -- includes ------------------------------------------------------------------

def test_includes_from_the_data_directory() -> None:
    sections, found, warned, files = load_supervisor(str(DATA / "supervisord.conf"), ENV, False)
    assert not found
    assert [Path(f).name for f in files] == ["supervisord.conf", "10-web.conf", "20-jobs.conf",
                                             "web-again.conf"]
    c = build(sections, ENV, files, warned)
    web = {w.name: w for w in c.watchers}
    assert sorted(web) == ["web_00", "web_01", "worker"]
    assert web["web_01"].working_dir == str(DATA / "conf.d")  # %(here)s: the included file's
    assert web["web_01"].stdout_stream.options["filename"] == str(DATA / "conf.d/web-1.log")
    assert web["web_00"].priority == -5  # [program:web] again, in a later file
    assert web["worker"].stop_signal == signal.SIGQUIT
    assert web["worker"].env["SUPERVISOR_GROUP_NAME"] == "jobs"
    assert c.settings.loglevel == "debug" and c.settings.logoutput == \
        "/var/log/supervisord.log"
    text = "\n".join(warned)
    assert "'extra/missing-*.conf' matches no file" in text
    assert "20-jobs.conf:10: [include]: not followed: supervisord reads the [include] of the " \
        "main file only" in text


def test_a_file_included_twice_is_read_once(tmp_path: Path) -> None:
    _, found, _, files = read(tmp_path, HEAD + "[include]\nfiles = a/*.conf a/one.conf *.conf\n",
                              files={"a/one.conf": "[program:one]\ncommand=x\n"})
    assert not found
    assert [Path(f).relative_to(tmp_path).as_posix() for f in files] == [
        "supervisord.conf", "a/one.conf"]


def test_include_problems(tmp_path: Path) -> None:
    assert problems(tmp_path, HEAD + "[include]\n") == [
        f"{tmp_path}/supervisord.conf:3: [include]: missing 'files' (globs, separated by spaces)"]
    assert "cannot read: Is a directory" in problems(
        tmp_path, HEAD + "[include]\nfiles = d*\n", files={"dir/x": ""})[0]


def test_a_bad_value_is_a_problem_with_its_place(tmp_path: Path) -> None:
    assert problems(tmp_path, HEAD + "[program:a]\ncommand=x\nstartsecs=-1\n") == [
        f"{tmp_path}/supervisord.conf:5: [program:a] startsecs: '-1' must not be negative"]


# -- real processes --------------------------------------------------------------

SLEEPER = "import sys, time\ntime.sleep(600)\n"
# Variables the two managers set differently, left out of the comparison:
FILTERED = {
    "SUPERVISOR_SERVER_URL",  # supervisord's XML-RPC server; bigtopd has none
    "BIGTOP_WATCHER", "BIGTOP_WID", "BIGTOP_DAEMON",  # bigtop's own (core/tree.py, leftovers.py)
    "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",  # bigtop passes sockets as systemd does
    "NOTIFY_SOCKET",  # bigtop's readiness notification (ready = notify)
    "BIGTOP_RUNTIME_DIR",  # the tests' private runtime directory
}


def umask_of(pid: int) -> str:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^Umask:\s*(\d+)", text, re.M)
    return match.group(1) if match else "?"


def stdin_of(proc: psutil.Process) -> str:
    try:
        target = os.readlink(f"/proc/{proc.pid}/fd/0")
    except OSError:
        return "?"
    if target.startswith("pipe:"):
        return "a pipe"  # supervisord's, held open: reads wait
    if not target.startswith("socket:"):
        return target
    for conn in proc.net_connections("inet"):
        if conn.fd == 0:
            return f"listening on {conn.laddr.ip}:{conn.laddr.port}"
    return "a socket"


def snapshot(children: list[psutil.Process]) -> list[dict[str, Any]]:
    """What each process of a manager is: argv, directory, user, umask,
    standard input and environment."""
    out = []
    for proc in children:
        env = proc.environ()
        out.append({
            "name": env.get("SUPERVISOR_PROCESS_NAME", "?"), "cmdline": proc.cmdline(),
            "cwd": proc.cwd(), "uid": proc.uids().real, "gid": proc.gids().real,
            "umask": umask_of(proc.pid), "stdin": stdin_of(proc),
            "env": {k: v for k, v in env.items() if k not in FILTERED}})
    return sorted(out, key=lambda p: (p["name"], p["cmdline"]))


def managed(pid: int) -> list[psutil.Process]:
    """The live children of a manager that have run their program (not
    one just forked, still the manager's code)."""
    found = []
    try:
        kids = psutil.Process(pid).children()
    except psutil.Error:
        return []
    for kid in kids:
        try:
            if kid.status() != psutil.STATUS_ZOMBIE and "sleeper.py" in " ".join(kid.cmdline()) \
                    or kid.cmdline()[:1] == ["sleep"]:
                found.append(kid)
        except psutil.Error:
            continue
    return found


def write_comparison(tmp_path: Path, port: int) -> tuple[str, int]:
    """A supervisord.conf with an include, numprocs, directories,
    environments, a group, a FastCGI program (and a user when root)."""
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    (tmp_path / "logs").mkdir()
    (tmp_path / "conf.d" / "work").mkdir(parents=True)
    py, sleeper = sys.executable, tmp_path / "sleeper.py"
    (tmp_path / "conf.d" / "apps.conf").write_text(textwrap.dedent(f"""\
        [program:web]
        command = {py} {sleeper} web %(process_num)d $HOME 100%% "two words"
        process_name = web_%(process_num)02d
        numprocs = 3
        directory = %(here)s/work
        umask = 027
        environment = PORT="80%(process_num)02d",LITERAL="$HOME, with a comma",EMPTY=""
        priority = 10

        [program:worker]
        command = {py} {sleeper} worker
        process_name = worker_%(process_num)d
        numprocs = 2
        stdout_logfile = NONE
        redirect_stderr = true

        [program:once]
        command = {py} {sleeper} once %(group_name)s
        environment = ONLY="once",SHARED="overridden"

        [fcgi-program:fcgi]
        command = {py} {sleeper} fcgi
        socket = tcp://127.0.0.1:{port}
        """))
    nobody = "\n[program:nobody]\ncommand = sleep 600\nuser = nobody\n" \
        if os.geteuid() == 0 else ""
    text = textwrap.dedent(f"""\
        [unix_http_server]
        file = {tmp_path}/supervisor.sock

        [supervisord]
        nodaemon = true
        logfile = {tmp_path}/supervisord.log
        pidfile = {tmp_path}/supervisord.pid
        childlogdir = {tmp_path}/logs
        environment = GLOBAL="from supervisord",SHARED="$DOLLAR"

        [rpcinterface:supervisor]
        supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

        [supervisorctl]
        serverurl = unix://{tmp_path}/supervisor.sock

        [group:jobs]
        programs = worker,once

        [include]
        files = conf.d/*.conf
        """) + nobody
    (tmp_path / "supervisord.conf").write_text(text)
    return text, 3 + 2 + 1 + 1 + (1 if nobody else 0)


@pytest.fixture
def same_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both managers start with the same environment; HOME, USER and
    LOGNAME set, as bigtop fills in those it lacks for a uid (supervisord
    never does)."""
    monkeypatch.setenv("HOME", os.environ.get("HOME", "/root"))
    monkeypatch.setenv("USER", "tester")
    monkeypatch.setenv("LOGNAME", "tester")
    monkeypatch.setenv("DOLLAR", "must-not-be-expanded")


def run_supervisord(tmp_path: Path, count: int) -> list[dict[str, Any]]:
    log = open(tmp_path / "supervisord.out", "wb")  # noqa: SIM115
    proc = subprocess.Popen([str(SUPERVISORD), "-c", str(tmp_path / "supervisord.conf"), "-n"],
                            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, env=dict(os.environ))
    try:
        def ready() -> list[psutil.Process] | None:
            assert proc.poll() is None, (tmp_path / "supervisord.out").read_text()
            kids = managed(proc.pid)
            return kids if len(kids) == count else None

        kids: list[psutil.Process] = wait_for(ready, 20, message="supervisord's children")  # type: ignore[assignment]
        return snapshot(kids)
    finally:
        kids_left = managed(proc.pid)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        for kid in kids_left:
            try:
                kid.kill()
            except psutil.Error:
                pass


@pytest.mark.skipif(not SUPERVISORD.exists(),
                    reason="no .venv-supervisor/bin/supervisord (`make test` installs it)")
def test_bigtopd_starts_what_supervisord_starts(
        tmp_path: Path, daemon: Callable[..., Daemon], same_environment: None) -> None:
    text, count = write_comparison(tmp_path, free_port())
    theirs = run_supervisord(tmp_path, count)
    for process in theirs:
        if process["name"].startswith("worker_"):
            # numprocs without %(process_num) elsewhere: one bigtop watcher
            # of 2 processes, which cannot each have their own name.
            del process["env"]["SUPERVISOR_PROCESS_NAME"]
            process["name"] = "?"
    theirs.sort(key=lambda p: (p["name"], p["cmdline"]))
    d = daemon(text, name="supervisord.conf", args=("--log-output", "-"))
    ours = snapshot(wait_for(lambda: len(managed(d.pid)) == count and managed(d.pid), 20,  # type: ignore[arg-type]
                             message=f"bigtopd's children\n{d.log_text()[-3000:]}"))
    assert [p["name"] for p in ours] == [p["name"] for p in theirs]
    for mine, its in zip(ours, theirs, strict=True):
        assert mine == its, f"{mine['name']}: bigtopd\n{mine}\nsupervisord\n{its}"
    web = next(p for p in ours if p["name"] == "web_01")
    assert web["cmdline"][2:] == ["web", "1", "$HOME", "100%", "two words"]
    assert web["env"]["LITERAL"] == "$HOME, with a comma"
    assert web["env"]["SHARED"] == "$DOLLAR"


def test_shared_log_file_rotates_whole_lines(tmp_path: Path,
                                             daemon: Callable[..., Daemon]) -> None:
    """redirect_stderr with a rotated file: both streams' lines, whole,
    each in one of the files, and no file much past maxbytes."""
    lines = 2000
    (tmp_path / "spew.py").write_text(textwrap.dedent(f"""\
        import sys
        for i in range({lines}):
            out = sys.stdout if i % 2 else sys.stderr
            out.write(f"line {{i:05d}} " + "x" * 40 + "\\n")
            out.flush()
        """))
    text = textwrap.dedent(f"""\
        [supervisord]
        nodaemon = true
        [program:spew]
        command = {sys.executable} {tmp_path}/spew.py
        redirect_stderr = true
        stdout_logfile = {tmp_path}/spew.log
        stdout_logfile_maxbytes = 4KB
        stdout_logfile_backups = 100
        autorestart = false
        startsecs = 0
        """)
    d = daemon(text, name="supervisord.conf")
    log = tmp_path / "spew.log"

    def written() -> list[str]:
        try:
            return [line for f in tmp_path.glob("spew.log*")
                    for line in f.read_text().splitlines()]
        except FileNotFoundError:  # rotated while read: again
            return []

    wait_for(lambda: len(written()) == lines, 20, message=f"{lines} lines\n{d.log_text()}")
    d.stop()
    assert sorted(written()) == [f"line {i:05d} " + "x" * 40 for i in range(lines)]
    sizes = [f.stat().st_size for f in tmp_path.glob("spew.log*")]
    assert len(sizes) > 10 and max(sizes) <= 2 * 4096 + 100, sizes
    assert log.exists()


def test_dollars_reach_bigtopd_children_literally(tmp_path: Path,
                                                  daemon: Callable[..., Daemon]) -> None:
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    d = daemon(f"""\
        [supervisord]
        nodaemon = true
        environment = G="$HOME"
        [program:a]
        command = {sys.executable} {tmp_path}/sleeper.py $HOME ${{HOME}} 5%%
        environment = X="$X and $$"
        """, name="supervisord.conf")
    wait_for(lambda: d.children("a"), message=f"a process\n{d.log_text()}")
    [child] = d.children("a")
    assert child.cmdline()[2:] == ["$HOME", "${HOME}", "5%"]
    env = child.environ()
    assert (env["X"], env["G"], env["SUPERVISOR_PROCESS_NAME"]) == ("$X and $$", "$HOME", "a")


@pytest.mark.parametrize("form", ["toml", "ini"])
def test_check_converts_a_supervisord_file_for_good(tmp_path: Path, form: str) -> None:
    """`bigtopd --check --to FORM supervisord.conf`: a bigtop file that
    loads back into the same configuration, with --strict."""
    from bigtop.config.render import render

    original = load(str(DATA / "supervisord.conf"), environ=ENV)
    done = subprocess.run([sys.executable, "-m", "bigtop.cli.bigtopd", "--check", "--to", form,
                           str(DATA / "supervisord.conf")], capture_output=True, text=True,
                          timeout=20, env={**ENV, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout == render(original, form) + "\n"
    converted = tmp_path / f"site.{form}"
    converted.write_text(done.stdout)
    again = load(str(converted), environ=ENV, strict=True)
    assert again == original and again.env == original.env
