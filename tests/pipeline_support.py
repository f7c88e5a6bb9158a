"""Helpers for pipeline tests: a gateway in a temporary folder, files dropped in, the store read."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from gateway.cli import app
from gateway.store import db
from gateway.store.models import DeadLetter
from tests.conftest import REPO

SAMPLES = REPO / "samples" / "x12"


@contextmanager
def cwd(path: Path) -> Iterator[None]:
    """Run the block with path as the working directory (spawned workers inherit it)."""
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


class Site:
    """A gateway deployment in a folder: conf/gateway.yaml, var/inbox, var/outbox, var/erp."""

    def __init__(self, root: Path, *, store_url: str | None = None,
                 destinations: dict[str, Any] | None = None, **extra: Any) -> None:
        self.root = root
        self.config = root / "conf" / "gateway.yaml"
        self.store_url = store_url or f"sqlite:///{root / 'var' / 'edigw.db'}"
        doc: dict[str, Any] = {
            "store": {"url": self.store_url},
            "partners": {"folder": str(REPO / "conf" / "partners"),
                         "mappings": str(REPO / "mappings")},
            "inbound": {"folder": {"stable_for": 0}},
            # A free port each: sites run side by side, and 8080 may be anyone's.
            "http": {"listen": "127.0.0.1:0"},
        }
        if destinations is not None:
            doc["destinations"] = destinations
        doc.update(extra)
        self.config.parent.mkdir(parents=True, exist_ok=True)
        self.config.write_text(yaml.safe_dump(doc), encoding="utf-8")

    def drop(self, partner: str, source: Path | bytes, name: str | None = None) -> Path:
        """Put a file into a partner's inbox, as the partner's upload would."""
        folder = self.root / "var" / "inbox" / partner
        folder.mkdir(parents=True, exist_ok=True)
        if isinstance(source, Path):
            target = folder / (name or source.name)
            shutil.copyfile(source, target)
        else:
            target = folder / (name or "input.edi")
            target.write_bytes(source)
        return target

    def run(self, *args: str, expect: int = 0) -> str:
        """`edigw run --once` in the site's folder; its output (fails the test on another exit
        code than `expect`: 0 all done, 3 work left waiting for a scheduled retry)."""
        with cwd(self.root):
            result = CliRunner().invoke(app, ["run", "--once", "--config", str(self.config),
                                              *args])
        assert result.exit_code == expect, (result.output, result.exception)
        return result.output

    def events(self) -> list[dict[str, Any]]:
        """The lines of var/erp/events.jsonl."""
        path = self.root / "var" / "erp" / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]

    def acks(self, partner: str) -> list[Path]:
        """The acknowledgment files written for a partner."""
        folder = self.root / "var" / "outbox" / partner
        return sorted(folder.glob("*.x12")) if folder.is_dir() else []

    def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter in the store, oldest first."""
        engine = db.make_engine(self.store_url)
        try:
            with db.transaction(engine, write=False) as s:
                return list(s.scalars(select(DeadLetter).order_by(DeadLetter.id)))
        finally:
            engine.dispose()
