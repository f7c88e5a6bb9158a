"""`edigw dlq` and `edigw api-key new` as an operator uses them: tables, JSON, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from gateway.api import keys
from gateway.cli import app
from gateway.store import db
from gateway.store.models import Audit
from tests import deadletter_support as seed
from tests.store_support import migrated

pytestmark = pytest.mark.unit
runner = CliRunner()


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    migrated(url).dispose()
    return url


def run(store: str, *args: str):
    return runner.invoke(app, list(args), env={"EDIGW_STORE_URL": store, "USER": "ops", "LOGNAME": "ops", "COLUMNS": "200"})


def test_list_show_replay_discard(store: str) -> None:
    ids = seed.seed_many(db.make_engine(store), 3)
    r = run(store, "dlq", "list", "--stage", "deliver", "--format", "json")
    assert r.exit_code == 0, r.output
    assert [i["id"] for i in json.loads(r.output)["items"]] == ids[::-1]
    r = run(store, "dlq", "list", "--partner", "acme", "--since", "2024-03-01")
    assert r.exit_code == 0 and "HTTP 422" in r.output and "erp:orders" in r.output
    assert run(store, "dlq", "list", "--partner", "nobody").exit_code == 1
    assert run(store, "dlq", "list", "--stage", "parse").exit_code == 2

    r = run(store, "dlq", "show", str(ids[0]))
    assert r.exit_code == 0, r.output
    assert "DeliveryRejected" in r.output and "raw input" in r.output and "parked" in r.output
    shown = json.loads(run(store, "dlq", "show", str(ids[0]), "-f", "json").output)
    assert shown["raw"]["content"].startswith("ISA*acme*")
    assert run(store, "dlq", "show", "999").exit_code == 1

    r = run(store, "dlq", "replay", str(ids[0]), "--dry-run")
    assert r.exit_code == 0 and "would-replay" in r.output, r.output
    assert run(store, "dlq", "replay", str(ids[0])).exit_code == 2  # no reason
    r = run(store, "dlq", "replay", str(ids[0]), "--reason", "ERP fixed")
    assert r.exit_code == 0 and "replayed" in r.output and "work item" in r.output
    assert run(store, "dlq", "replay", str(ids[0]), "--reason", "again").exit_code == 1
    r = run(store, "dlq", "replay", "--filter", "stage=deliver partner=acme", "--reason", "x",
            "-f", "json")
    assert [o["result"] for o in json.loads(r.output)] == ["replayed", "replayed"]
    assert run(store, "dlq", "replay", "--filter", "stage=deliver", "--reason", "x").exit_code == 1
    assert run(store, "dlq", "replay", "--filter", "colour=red", "--reason", "x").exit_code == 2

    assert run(store, "dlq", "discard", str(ids[0]), "--reason", "late").exit_code == 1
    with db.transaction(db.make_engine(store), write=False) as s:
        actors = {a.actor for a in s.scalars(select(Audit))}
        assert actors == {"cli:ops"}


def test_api_key_new_prints_the_key_once_and_its_hash_line() -> None:
    r = runner.invoke(app, ["api-key", "new", "--role", "partner", "--partner", "acme"])
    assert r.exit_code == 0, r.output
    key = r.stdout.splitlines()[0]
    assert key.startswith("edigw_") and len(key) > 40
    assert f"sha256: {keys.hash_key(key)}, role: partner, partner: acme" in r.stderr
    assert key not in r.stderr
    bad = runner.invoke(app, ["api-key", "new", "--role", "partner"])
    assert bad.exit_code == 2 and "needs the partner's id" in bad.stderr


def _serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key_lines: str):
    """`edigw api serve` in a folder whose conf/api-keys.yaml holds key_lines; what it
    would have served (uvicorn is stopped before it listens)."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "api-keys.yaml").write_text(key_lines)
    monkeypatch.chdir(tmp_path)
    import uvicorn

    served: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(app))
    url = f"sqlite:///{tmp_path}/s.db"
    migrated(url).dispose()
    r = runner.invoke(app, ["api", "serve"], env={"EDIGW_STORE_URL": url})
    return r, served


def test_api_serve_names_a_store_that_is_not_there(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["api", "serve"], env={"EDIGW_STORE_URL": ""})
    assert r.exit_code == 2 and "no store at var/edigw.db" in r.stderr
    assert not (tmp_path / "var").exists()


def test_api_serve_after_following_api_key_new_on_the_shipped_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = runner.invoke(app, ["api-key", "new", "--role", "operator"])
    line = made.stderr.strip().splitlines()[-1]
    shipped = (Path(__file__).resolve().parents[2] / "conf" / "api-keys.yaml").read_text()
    (tmp_path / "new").mkdir()
    r, served = _serve(tmp_path / "new", monkeypatch, shipped + line + "\n")
    assert r.exit_code == 0 and len(served) == 1, r.output
    # A file from before, with `keys: []`: one line naming the file and what to change.
    (tmp_path / "old").mkdir()
    r, served = _serve(tmp_path / "old", monkeypatch, "keys: []\n" + line + "\n")
    assert r.exit_code == 2 and not served
    assert "api-keys.yaml:2" in r.stderr and "keys: []" in r.stderr
    assert "Traceback" not in r.output


def test_api_serve_with_an_unknown_role_says_which_entry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r, served = _serve(tmp_path, monkeypatch,
                       "keys:\n  - {name: ops, sha256: " + "a" * 64 + ", role: admin}\n")
    assert r.exit_code == 2 and not served
    assert "keys[0]" in r.stderr and "'admin' is not one of operator, partner" in r.stderr


def test_dlq_takes_the_store_from_c(store: str, tmp_path: Path) -> None:
    ids = seed.seed_many(db.make_engine(store), 1)
    conf = tmp_path / "gw.yaml"
    conf.write_text(f"store:\n  url: '{store}'\n")
    r = runner.invoke(app, ["dlq", "show", str(ids[0]), "-c", str(conf)])
    assert r.exit_code == 0 and "DeliveryRejected" in r.output, r.output
    r = runner.invoke(app, ["dlq", "list", "-c", str(tmp_path / "missing.yaml")])
    assert r.exit_code == 2 and "missing.yaml: no such file" in r.stderr


def test_discard_and_dry_run_of_a_missing_dead_letter_change_nothing(store: str) -> None:
    engine = db.make_engine(store)
    [kept] = seed.seed_many(engine, 1)
    r = run(store, "dlq", "discard", "999", "--reason", "gone")
    assert (r.exit_code, r.output) == (1, "999: not-found: no dead letter 999\n")
    r = run(store, "dlq", "replay", "999", "--dry-run", "-f", "json")
    assert r.exit_code == 1, r.output
    assert [(o["dead_letter_id"], o["result"], o["detail"]) for o in json.loads(r.output)] == [
        (999, "not-found", "no dead letter 999")]
    # A dry run of a real one and a missing one: the real one is reported, so exit 0.
    r = run(store, "dlq", "replay", str(kept), "999", "--dry-run", "-f", "json")
    assert r.exit_code == 0, r.output
    assert [o["result"] for o in json.loads(r.output)] == ["would-replay", "not-found"]
    with db.transaction(engine, write=False) as s:
        assert list(s.scalars(select(Audit))) == []  # nothing done, nothing audited
    assert json.loads(run(store, "dlq", "show", str(kept), "-f", "json").output)["status"] == \
        "parked"
