"""The README's purchase order commands run as written, in a shell, on a copy of a fresh
clone (issue #13's done-when): the 850 in globex's outbox, the 855 cutting a line giving
exactly one exception at the ERP naming the PO, the line, the ordered and acknowledged
quantities, and `edigw chains show` showing the chain."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.acceptance


def _blocks(after: str) -> list[str]:
    """The commands of the first ```sh block after the line starting with `after`."""
    text = (REPO / "README.md").read_text("utf-8")
    start = text.index("\n" + after)
    block = re.search(r"```sh\n(.*?)```", text[start:], re.S)
    assert block is not None, after
    return [ln.split("  #")[0].strip() for ln in block.group(1).splitlines()
            if ln.strip() and not ln.lstrip().startswith("#")]


def test_the_readme_order_and_chain_commands_work_as_written(tmp_path: Path) -> None:
    for part in ("conf", "mappings", "samples"):
        shutil.copytree(REPO / part, tmp_path / part)
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    assert (tmp_path / ".venv/bin/edigw").exists()
    sends = _blocks("The ERP's purchase orders go out")
    answers = _blocks("Globex answering the order")
    assert any("chains show" in c for c in answers)
    outputs = []
    for command in [*sends, *answers]:
        done = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        outputs.append(done.stdout)
    assert [p.name for p in (tmp_path / "var/outbox/globex").glob("850_*")] == [
        "850_globex_4500012345_000000001.x12"]
    events = [json.loads(ln) for ln in
              (tmp_path / "var/erp/events.jsonl").read_text("utf-8").splitlines()]
    found = [(e["data"]["kind"], e["data"]["po_number"], e["data"]["line_number"],
              e["data"]["expected"], e["data"]["actual"])
             for e in events if e["type"] == "com.edi-gateway.exception.v1"]
    assert found == [("acknowledged_quantity", "4500012345", "2", "10", "8"),
                     ("three_way_quantity", "4500012345", "2", "6", "8")]
    shown = next(o for c, o in zip([*sends, *answers], outputs, strict=True)
                 if "chains show" in c)
    assert "PO 4500012345 of globex: open (outbound)" in shown
    assert "acknowledged_quantity: PO 4500012345 line 2: acknowledged 8 CA against 10" in shown
