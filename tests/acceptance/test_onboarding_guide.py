"""docs/onboarding.md, followed literally: its shell commands and files, in order, in a temp dir.

The guide's ```sh blocks are run line by line through the `edigw` CLI (in process);
`# exits N` after a command is the exit code it must give (0 otherwise). A ```yaml block
after `<!-- write: PATH -->` or `<!-- append: PATH -->` is written to (or appended to)
that file, as the reader is told to.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from tests.conftest import REPO

pytestmark = pytest.mark.acceptance

GUIDE = REPO / "docs" / "onboarding.md"
_BLOCK = re.compile(r"(?:<!-- (write|append): (\S+) -->\n)?```(\w*)\n(.*?)```", re.S)
_EXITS = re.compile(r"#\s*exits\s+(\d+)\s*$")


def steps(text: str) -> list[tuple[str, str, str]]:
    """("run", command line, expected exit) or ("write"/"append", path, content), in order."""
    out = []
    for m in _BLOCK.finditer(text):
        action, path, lang, body = m.groups()
        if action:
            out.append((action, path, body))
        elif lang == "sh":
            for line in body.splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    exits = _EXITS.search(line)
                    out.append(("run", _EXITS.sub("", line).strip(),
                                exits.group(1) if exits else "0"))
    return out


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    if not (REPO / "mappings" / "base" / "850.4010.yaml").is_file():
        # Only while the base mappings are being written (issue #3); the guide extends it.
        pytest.skip("mappings/base/850.4010.yaml is not in the repository yet")
    shutil.copytree(REPO / "mappings" / "base", tmp_path / "mappings" / "base")
    shutil.copytree(REPO / "docs" / "onboarding", tmp_path / "docs" / "onboarding")
    (tmp_path / "conf" / "partners").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_guide_has_every_step():
    found = [s[1].split()[:3] for s in steps(GUIDE.read_text()) if s[0] == "run"]
    commands = {" ".join(c[1:3]) if c[1] == "mapping" else c[1] for c in found}
    assert {"validate", "mapping new", "mapping check", "mapping test", "translate",
            "mapping coverage"} <= commands


def test_following_the_guide(workspace):
    runner = CliRunner()
    ran = []
    for kind, what, arg in steps(GUIDE.read_text()):
        if kind in ("write", "append"):
            target = workspace / what
            assert kind == "write" or target.is_file(), f"the guide appends to {what} before it exists"
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("a" if kind == "append" else "w", encoding="utf-8") as f:
                f.write(arg)
            continue
        argv = shlex.split(what)
        assert argv[0] == "edigw", f"the guide runs {what!r}; only edigw commands are followed"
        result = runner.invoke(app, argv[1:])
        assert result.exit_code == int(arg), (
            f"`{what}` exited {result.exit_code}, the guide says {arg}\n{result.output}")
        ran.append((what, result))
    translated = [r for cmd, r in ran if cmd.startswith("edigw translate")]
    (event,) = json.loads(translated[-1].stdout)
    assert event["partner"] == "zenith"
    lines = event["data"]["lines"]
    assert {line["quantity"]["unit"] for line in lines} == {"EA"}  # step 3
    assert lines[0]["extensions"] == {"packing": "Gift box"}
    coverage = [r for cmd, r in ran if cmd.startswith("edigw mapping coverage")][-1]
    assert "PKG05" not in coverage.stdout and "PKG02 = '68'" in coverage.stdout
