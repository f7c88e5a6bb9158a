"""Migrations: the migrated schema is the models' schema, and upgrading twice is harmless."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, text

from gateway.store import db, migrate, models
from tests.store_support import migrated, schema_diff

pytestmark = pytest.mark.unit


def test_the_migrated_schema_equals_the_models(tmp_path: Path) -> None:
    engine = migrated(f"sqlite:///{tmp_path / 'store.db'}")
    assert schema_diff(engine) == []


def test_the_comparison_would_see_a_difference(tmp_path: Path) -> None:
    # Guards the test above against comparing nothing at all.
    engine = migrated(f"sqlite:///{tmp_path / 'store.db'}")
    with db.transaction(engine) as s:
        s.execute(text("DROP INDEX ix_work_items_ready"))
    changed = MetaData(naming_convention=models.NAMING)
    for table in models.Base.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["payloads"].append_column(Column("extra", Integer))
    found = {d[0] for d in schema_diff(engine, changed)}
    assert {"add_column", "add_index"} <= found


def test_upgrade_is_repeatable_and_records_the_head(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert migrate.current(url) is None
    migrate.upgrade(url)
    migrate.upgrade(url)
    assert migrate.current(url) == migrate.head()


def test_upgrade_needs_no_ini_file_and_makes_the_folder(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    migrate.upgrade()  # the default URL: ./var/edigw.db
    assert (tmp_path / "var" / "edigw.db").is_file()
    assert not list(tmp_path.glob("*.ini"))
