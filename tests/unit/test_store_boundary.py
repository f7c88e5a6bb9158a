"""All SQL lives in gateway/store/ (issue #12): the rest of the application calls store
functions named for what they do, and never builds or runs a statement itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.unit

# What builds or runs SQL: SQLAlchemy's statement builders and the calls that execute.
BUILDERS = {"select", "insert", "update", "delete", "text", "exists", "func", "literal_column",
            "bindparam", "and_", "or_", "union", "case"}
RUNNERS = {"execute", "scalar", "scalars", "exec_driver_sql"}


def _findings(path: Path) -> list[str]:
    tree = ast.parse(path.read_text("utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            if (node.module or "").startswith("sqlalchemy.dialects"):
                found.append(f"{node.lineno}: imports {node.module}")
            found += [f"{node.lineno}: imports sqlalchemy's {a.name}" for a in node.names
                      if a.name in BUILDERS]
        elif isinstance(node, ast.Attribute) and node.attr in BUILDERS | RUNNERS and \
                isinstance(node.value, ast.Name) and node.value.id in ("sa", "sqlalchemy"):
            found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in RUNNERS:
            found.append(f"{node.lineno}: .{node.func.attr}(...)")
    return found


def test_no_sql_outside_the_store() -> None:
    outside = [p for p in sorted((REPO / "gateway").rglob("*.py"))
               if "store" not in p.relative_to(REPO / "gateway").parts[:1]]
    assert outside, "no modules found: the scan itself is broken"
    problems = [f"{p.relative_to(REPO)}:{f}" for p in outside for f in _findings(p)]
    assert problems == [], "SQL outside gateway/store/:\n" + "\n".join(problems)


def test_the_scan_sees_sql(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("from sqlalchemy import select, update\n"
                      "def f(session):\n    return session.scalars(select(X))\n", "utf-8")
    assert [f.split(": ", 1)[1] for f in _findings(sample)] == [
        "imports sqlalchemy's select", "imports sqlalchemy's update", ".scalars(...)"]
