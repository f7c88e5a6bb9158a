"""Every `edigw` command with hostile arguments: no traceback, only the exit codes it documents.

The commands are found by walking the Typer app, so a new command is covered the day it is
added; a new required parameter without a benign value below fails the test and says so.
Each parameter gets, one at a time, the hostile values of its type (huge and negative
numbers, missing and unwritable paths, a FIFO, a folder, path escapes, wrong and
unreachable stores in -c) while the others keep a benign value.
"""

from __future__ import annotations

import os
import shutil
import signal
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from gateway.cli import app
from tests.conftest import REPO

pytestmark = pytest.mark.unit

SAMPLE = REPO / "samples" / "x12" / "acme-850-4010.edi"
# Exit codes each command documents in its help; 0, 1 and 2 for all, `run --once` adds 3.
DOCUMENTED = {"run": {0, 2, 3}}
DEFAULT_CODES = {0, 1, 2}
# A command that never answers is as bad as a traceback; every one here ends in well under.
HANG_SECONDS = 60
# Stores that cannot be used, each for another reason: nothing listens, no such database,
# no driver installed, not a URL at all.
BAD_STORES = ["postgresql+psycopg://nobody@127.0.0.1:1/none",
              "postgresql+psycopg://postgres@127.0.0.1:5432/no_such_database_here",
              "mysql://x@127.0.0.1/y", "not a url",
              # under a regular file of the site: a folder that can never be made (and no
              # test leaves folders at the root of the machine)
              "sqlite:///plain-file/below/x.db"]


def _commands() -> list[tuple[str, ...]]:
    found = []

    def walk(cmd: Any, path: tuple[str, ...]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, (*path, name))
        else:
            found.append(path)

    walk(typer.main.get_command(app), ())
    return found


def _command(path: tuple[str, ...]) -> Any:
    cmd = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]
    return cmd


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder of its own (conf/, mappings/), a FIFO and a file to misuse; servers
    are stopped before they listen (a hostile argument that gets that far is fine)."""
    root = tmp_path / "site"
    shutil.copytree(REPO / "conf", root / "conf")
    for part in ("base", "partners"):
        shutil.copytree(REPO / "mappings" / part, root / "mappings" / part)
    shutil.copyfile(SAMPLE, root / "sample.edi")
    shutil.copyfile(REPO / "samples/orders/globex-po.json", root / "order.json")
    os.mkfifo(root / "fifo")
    (root / "plain-file").write_text("not a folder\n")
    (root / "bad.yaml").write_text("store: [unclosed\n")
    for n, url in enumerate(BAD_STORES):
        (root / f"store{n}.yaml").write_text(f"store:\n  url: '{url}'\n")
    monkeypatch.chdir(root)
    monkeypatch.delenv("EDIGW_STORE_URL", raising=False)
    import uvicorn

    from channels import erp_sim
    from gateway.pipeline import runner

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)
    monkeypatch.setattr(erp_sim, "serve", lambda *a, **k: None)
    monkeypatch.setattr(runner, "_serve", lambda *a, **k: None)
    return root


# Benign values of required parameters, by name: enough for the command to run.
BENIGN: dict[str, list[str]] = {
    "path": ["sample.edi"], "paths": ["sample.edi"], "files": ["mappings/base/850.4010.yaml"],
    "--partner": ["--partner", "acme"], "--from": ["--from", "sample.edi"],
    "--role": ["--role", "operator"], "--reason": ["--reason", "a test"],
    "dead_letter_id": ["1"], "username": ["ana"], "file": ["order.json"],
    "po_number": ["4500012345"],
}

HOSTILE_INTS = ["99999999999999999999999", "-1", "0", "-99999999999999999999999"]
HOSTILE_FLOATS = ["1e309", "-1", "nan"]
HOSTILE_PATHS = ["no/such/file.edi", "fifo", ".", "plain-file/below", "/dev/null", ""]
HOSTILE_TEXTS = ["../../../escaped", "", "x" * 5000, "-", "é\u202e"]
HOSTILE_CONFIGS = ["no-such.yaml", ".", "fifo", "bad.yaml",
                   *(f"store{n}.yaml" for n in range(len(BAD_STORES)))]


def _base_type(annotation: Any) -> Any:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (list, tuple) and args:
        return args[0]
    return annotation


def _hostile(param: Any) -> list[str]:
    kind = _base_type(param.type_descriptor.annotation)
    if param.name == "config":
        return HOSTILE_CONFIGS
    if param.name == "store":
        return BAD_STORES
    if kind is bool:
        return []
    if kind is int:
        return HOSTILE_INTS
    if kind is float:
        return HOSTILE_FLOATS
    if kind is Path:
        return HOSTILE_PATHS
    return HOSTILE_TEXTS


def _as_args(param: Any, value: str) -> list[str]:
    if param.param_type_name == "argument":
        return [value]
    return [param.opts[0], value]


def _benign(param: Any) -> list[str]:
    key = param.name if param.param_type_name == "argument" else param.opts[0]
    if key not in BENIGN:
        pytest.fail(f"no benign value for the required {key} of a command: add one to BENIGN")
    return BENIGN[key]


def _cases() -> Iterator[Any]:
    for path in _commands():
        cmd = _command(path)
        for param in cmd.params:
            if param.name == "help":
                continue
            kind = _base_type(param.type_descriptor.annotation)
            if kind is bool and param.param_type_name == "option":
                yield pytest.param(path, param.name, None, id=f"{' '.join(path)} {param.opts[0]}")
            for value in _hostile(param):
                shown = value if len(value) < 30 else value[:10] + "..."
                yield pytest.param(path, param.name, value,
                                   id=f"{' '.join(path)} {param.name}={shown!r}")


def _argv(path: tuple[str, ...], name: str, value: str | None) -> list[str]:
    cmd = _command(path)
    argv = list(path)
    # `run` without --once would serve; it is stopped anyway, --once keeps it short.
    if path == ("run",) and name != "once":
        argv.append("--once")
    options, arguments = [], []
    for param in cmd.params:
        target = arguments if param.param_type_name == "argument" else options
        if param.name == name:
            target += [param.opts[0]] if value is None else _as_args(param, value)
        elif param.required:
            target += _benign(param)
    # `--` so that a hostile argument starting with a dash is taken as a value.
    return argv + options + (["--", *arguments] if arguments else [])


class _Hang(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Hang


@pytest.mark.parametrize(("path", "name", "value"), list(_cases()))
def test_no_traceback_and_a_documented_exit_code(site: Path, path: tuple[str, ...], name: str,
                                                  value: str | None) -> None:
    argv = _argv(path, name, value)
    shown = " ".join(a if len(a) < 40 else a[:20] + "..." for a in argv)
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(HANG_SECONDS)
    try:
        result = CliRunner().invoke(app, argv)
    except _Hang:
        pytest.fail(f"edigw {shown} did not end in {HANG_SECONDS} s")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    said = result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"edigw {shown} raised {result.exception!r}:\n{said}")
    assert "Traceback" not in said, f"edigw {shown}:\n{said}"
    allowed = DOCUMENTED.get(path[0], DEFAULT_CODES)
    assert result.exit_code in allowed, (
        f"edigw {shown} exited {result.exit_code}, not one of {sorted(allowed)}:\n{said}")
    # Nothing is written outside the project folder, whatever a path argument says.
    assert not (site.parent / "escaped").exists() and not (site / "escaped").exists()


def test_every_command_is_covered() -> None:
    covered = {p.values[0] for p in _cases()}
    assert set(_commands()) <= covered
    assert {("validate",), ("dlq", "show"), ("run",), ("api", "serve")} <= covered
