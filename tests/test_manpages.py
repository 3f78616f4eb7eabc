"""The man pages bigtop/cli/manpages.py writes from the five commands'
parsers: one page per command, every option on it, roff that groff reads
without a warning."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tomllib

import pytest

from bigtop.cli import manpages
from bigtop.cli.ctlcommands import COMMANDS

from .conftest import ROOT

SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
PAGES = {page.name: page for page in manpages.PAGES}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The pages, as ``python -m bigtop.cli.manpages OUTDIR`` (make man) writes them."""
    outdir = tmp_path_factory.mktemp("man")
    done = subprocess.run([sys.executable, "-m", "bigtop.cli.manpages", str(outdir)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin", "SOURCE_DATE_EPOCH": "1800000000"})
    assert done.returncode == 0, done.stderr
    return {path.stem: path.read_text(encoding="ascii") for path in outdir.iterdir()}


def test_one_page_per_command(written):
    assert set(written) == set(SCRIPTS) == set(PAGES)
    for name, text in written.items():
        assert f'.TH "{name.upper()}" "1" "2027-01-15" "bigtop ' in text  # SOURCE_DATE_EPOCH
        for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "SEE ALSO"):
            assert f"\n.SH {section}\n" in text, (name, section)
        assert f"\n{manpages.roff(name)} \\- " in text, "NAME: name \\- what it is"


def test_each_page_has_its_commands_parser():
    for name, target in SCRIPTS.items():
        assert PAGES[name].parser().prog == name, target


def options_of(parser: argparse.ArgumentParser) -> list[str]:
    found = []
    for action in parser._actions:
        if action.help == argparse.SUPPRESS:
            continue
        found += action.option_strings
    return found


def test_every_option_is_on_its_page(written):
    for name, page in PAGES.items():
        parser = page.parser()
        options = options_of(parser)
        assert options, name
        for option in options:
            assert manpages.roff(option) in written[name], (name, option)
        for action in parser._actions:
            if not action.option_strings and action.help:
                assert action.help.split()[0] in written[name], (name, action.dest)


def test_bigtopctl_lists_every_command_with_its_help(written):
    text = written["bigtopctl"]
    assert "\n.SH COMMANDS\n" in text and "\n.SH EXIT STATUS\n" in text
    commands = text.split("\n.SH COMMANDS\n")[1].split("\n.SH ")[0]
    for spec in COMMANDS.values():
        assert manpages.bold(f"bigtopctl {spec.name}") in commands, spec.name
        assert manpages.words(spec.summary) in commands, spec.name
        for option in options_of(spec.parser()):
            if option not in ("-h", "--help"):
                assert manpages.roff(option) in commands, (spec.name, option)


def test_roff_escapes():
    assert manpages.roff("--log-level") == "\\-\\-log\\-level"
    assert manpages.roff("a\\b") == "a\\eb"  # the backslash first, then the rest
    assert manpages.roff(".hidden\n'quoted") == "\\&.hidden\n\\&'quoted"
    assert manpages.roff("caf\u00e9 \u2014") == "caf\\[u00E9] \\[u2014]"


def test_no_bare_hyphen_or_backslash_in_the_text(written):
    """In text lines (requests and comments aside) every hyphen is ``\\-``
    and every backslash starts an escape."""
    for name, text in written.items():
        for line in text.splitlines():
            if line.startswith("."):
                continue
            assert not re.search(r"(?<!\\)-", line), (name, line)
            assert not re.search(r"\\(?![-efBIR&%\[ ])", line), (name, line)


GROFF = shutil.which("groff")


@pytest.mark.skipif(GROFF is None, reason="no groff (apt-get install groff-base): not rendered")
def test_groff_renders_each_page_without_a_warning(written, tmp_path):
    for name, text in written.items():
        page = tmp_path / f"{name}.1"
        page.write_text(text)
        checked = subprocess.run([GROFF, "-man", "-Tutf8", "-ww", "-z", str(page)],
                                 capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0 and not checked.stderr, (name, checked.stderr)
        # As text, the options read as typed: ASCII hyphens.
        shown = subprocess.run([GROFF, "-man", "-Tascii", "-P-cbou", str(page)],
                               capture_output=True, text=True, timeout=30)
        assert shown.returncode == 0, shown.stderr
        flat = " ".join(shown.stdout.split())
        for option in options_of(PAGES[name].parser()):
            assert option in flat, (name, option)
