"""File in, ERP out: `edigw run --once` on files dropped into partners' inboxes (issue #4).

Each scenario runs on SQLite with one worker; the last ones again on PostgreSQL with two
worker processes (skipped locally without PostgreSQL, required in CI).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from canonical import envelope
from channels.erp_sim import running_simulator
from gateway.cli import app
from tests.conftest import REPO
from tests.integration.conftest import pg_dsn, pg_url  # noqa: F401 - fixtures
from tests.pipeline_support import SAMPLES, Site, cwd

pytestmark = pytest.mark.acceptance

ACME = SAMPLES / "acme-850-4010.edi"
GLOBEX = sorted(SAMPLES.glob("globex-*.edi"))


def _check_event(event: dict, partner: str) -> None:
    """Schema-valid, and its id is the one the control numbers give."""
    parsed = envelope.from_json(json.dumps(event))  # checks the envelope and the data
    keys = envelope.x12_keys(event["x12control"])
    assert parsed.id == envelope.event_id(partner, parsed.event_type, keys)
    assert parsed.partner == partner


def test_a_dropped_file_becomes_one_event_and_a_997(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.drop("acme", ACME)
    out = site.run()
    events = site.events()
    assert len(events) == 1, out
    _check_event(events[0], "acme")
    assert events[0]["type"] == "com.edi-gateway.purchase_order.v1"
    acks = site.acks("acme")
    [ack997] = [a for a in acks if a.name.startswith("997_")]
    text = ack997.read_text("ascii")
    assert "AK1*PO*1001~" in text and "AK5*A~" in text and "AK9*A*1*1*1~" in text
    assert not (tmp_path / "var" / "inbox" / "acme" / ACME.name).exists()
    assert (tmp_path / "var" / "inbox" / "acme" / ".done" / ACME.name).exists()
    assert site.dead_letters() == []
    assert "delivered 1" in out


def test_the_same_file_again_or_renamed_has_no_second_effect(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.drop("acme", ACME)
    site.run()
    first = site.events()
    acks = site.acks("acme")
    site.drop("acme", ACME)
    site.drop("acme", ACME, name="copy-of-po.edi")
    site.run()
    assert site.events() == first
    assert site.acks("acme") == acks  # no second 997 for the same group
    assert site.dead_letters() == []


def test_every_sample_of_every_partner(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.drop("acme", ACME)
    for f in GLOBEX:
        site.drop("globex", f)
    site.run()
    events = site.events()
    assert sorted(e["type"].split(".")[2] for e in events) == [
        "invoice", "po_acknowledgment", "purchase_order", "ship_notice"]
    for e in events:
        _check_event(e, e["partner"])
    names = [a.name[:4] for a in site.acks("globex")]
    assert names.count("997_") == 2 and names.count("999_") == 1  # 004010 x2, 005010 x1


def test_a_rejected_file_is_dead_lettered_at_validate_with_its_reason(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.drop("acme", SAMPLES / "broken" / "acme-850-4010-errors.edi")
    site.drop("acme", b"this is not X12 at all\n", name="garbage.edi")
    site.run()
    assert site.events() == []
    letters = {d.reason.split(":")[0]: d for d in site.dead_letters()}
    rejected = letters["rejected by validation"]
    assert rejected.stage == "validate" and rejected.message_id is not None
    assert "PO102" in rejected.reason
    unreadable = letters["cannot be read as X12"]
    assert unreadable.stage == "validate" and unreadable.message_id is not None
    # The partner still hears why: a 997 with AK5 R for the rejected set.
    [ack] = [a for a in site.acks("acme") if a.name.startswith("997_")]
    assert "AK5*R" in ack.read_text("ascii")


def test_a_partners_agreed_errors_are_accepted_mapped_and_delivered(tmp_path: Path) -> None:
    # Acme's descriptions run past PID05's 80 characters, and both sides have agreed to it.
    partners = tmp_path / "partners"
    partners.mkdir()
    (partners / "acme.yaml").write_text(
        (REPO / "conf" / "partners" / "acme.yaml").read_text("utf-8")
        + "validation:\n  accept_with_errors: [AK403-5, AK304-8]\n", "utf-8")
    site = Site(tmp_path, partners={"folder": str(partners), "mappings": str(REPO / "mappings")})
    long_pid = b"PID*F****" + b"Widget, blue, with a description longer than PID05 allows " * 2
    site.drop("acme", ACME.read_bytes().replace(b"PID*F****Widget, blue", long_pid),
              name="acme-long-pid.edi")
    out = site.run()
    [event] = site.events()
    _check_event(event, "acme")
    assert event["type"] == "com.edi-gateway.purchase_order.v1"
    [ack997] = [a for a in site.acks("acme") if a.name.startswith("997_")]
    text = ack997.read_text("ascii")
    # Accepted with errors noted: the 997 still says which element was wrong.
    assert "AK3*PID*15*PID*8~AK4*5*352*5*" in text
    assert "AK5*E*5~" in text and "AK9*E*1*1*1~" in text
    assert site.dead_letters() == []
    assert "delivered 1" in out


def test_an_unknown_sender_is_dead_lettered_with_its_ids(tmp_path: Path) -> None:
    site = Site(tmp_path)
    stranger = ACME.read_bytes().replace(b"ZZ*ACMERETAIL     *", b"ZZ*STRANGERCO     *", 1)
    site.drop("acme", stranger, name="from-a-stranger.edi")
    site.run()
    [letter] = site.dead_letters()
    assert letter.stage == "validate"
    assert letter.reason.startswith("unknown partner")
    assert "ZZ:STRANGERCO" in letter.reason
    assert site.events() == [] and site.acks("acme") == []  # strangers get no 997


def test_the_same_isa13_with_other_content_is_quarantined(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.drop("acme", ACME)
    site.run()
    changed = ACME.read_bytes().replace(b"BEG*00*SA*4500012345", b"BEG*00*SA*4500099999")
    site.drop("acme", changed, name="same-isa13.edi")
    site.run()
    assert len(site.events()) == 1
    [letter] = site.dead_letters()
    assert letter.stage == "validate" and letter.reason.startswith("quarantined")
    assert "000001001" in letter.reason


def test_too_large_is_refused_unread(tmp_path: Path) -> None:
    site = Site(tmp_path, limits={"max_input_bytes": 100})
    site.drop("acme", ACME)
    site.run()
    [letter] = site.dead_letters()
    assert letter.reason.startswith(f"{ACME.name}: refused unread: too large")
    assert letter.message_id is None
    assert (tmp_path / "var" / "inbox" / "acme" / ".rejected" / ACME.name).exists()


def _http_site(root: Path, url: str, store_url: str | None = None) -> Site:
    return Site(root, store_url=store_url,
                destinations={"erp": {"type": "http", "config": {"url": url}}})


def test_over_http_each_event_is_applied_once(tmp_path: Path) -> None:
    with running_simulator() as sim:
        site = _http_site(tmp_path, sim.events_url)
        site.drop("acme", ACME)
        for f in GLOBEX:
            site.drop("globex", f)
        site.run()
        site.drop("acme", ACME, name="again.edi")
        site.run()
        stats = sim.stats()
        assert len(sim.effects()) == 4, stats
        assert len({e["key"] for e in sim.effects()}) == 4


def test_run_once_says_it_left_a_scheduled_retry_pending_and_exits_3(tmp_path: Path) -> None:
    # Nothing listens on port 1: the delivery fails for now and is retried an hour later.
    site = _http_site(tmp_path, "http://127.0.0.1:1/events")
    doc = yaml.safe_load(site.config.read_text())
    doc["destinations"]["erp"]["retry"] = {"redelivery_delay": 3600}
    site.config.write_text(yaml.safe_dump(doc))
    site.drop("acme", ACME)
    with cwd(tmp_path):
        result = CliRunner().invoke(app, ["run", "--once", "--config", str(site.config)])
    assert result.exit_code == 3, result.output
    assert "left 1 work item(s) pending" in result.stderr
    assert "waiting work items 1" in result.stdout


@pytest.mark.integration
def test_on_postgresql_with_two_workers(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    with running_simulator() as sim:
        site = _http_site(tmp_path, sim.events_url, store_url=pg_url)
        site.drop("acme", ACME)
        for f in GLOBEX:
            site.drop("globex", f)
        site.drop("acme", SAMPLES / "broken" / "acme-850-4010-errors.edi", name="broken.edi")
        stranger = ACME.read_bytes().replace(b"ZZ*ACMERETAIL     *", b"ZZ*STRANGERCO     *", 1)
        site.drop("globex", stranger, name="stranger.edi")
        out = site.run("--workers", "2")
        site.drop("acme", ACME, name="again.edi")
        site.run("--workers", "2")
        assert len(sim.effects()) == 4, (out, sim.stats())
        reasons = sorted(d.reason.split(":")[0] for d in site.dead_letters())
        assert reasons == ["rejected by validation", "unknown partner"]
        assert len([a for a in site.acks("acme") if a.name.startswith("997_")]) == 2


def test_a_mapping_fault_is_dead_lettered_then_fixed_replayed_and_delivered_once(
        tmp_path: Path) -> None:
    # Acme's own mapping, broken: the PO number read from an element Acme leaves empty,
    # so the schema (po_number required, non-empty) rejects the event at map.
    partners_dir, mappings_dir = tmp_path / "partners", tmp_path / "mappings"
    (mappings_dir / "partners" / "acme").mkdir(parents=True)
    shutil.copytree(REPO / "mappings" / "base", mappings_dir / "base")
    mapping = mappings_dir / "partners" / "acme" / "850.yaml"
    broken = ("extends: ../../base/850.4010.yaml\nname: acme-850\n"
              "fields:\n  po_number: BEG04\n")
    mapping.write_text(broken, encoding="utf-8")
    partners_dir.mkdir()
    acme = (REPO / "conf" / "partners" / "acme.yaml").read_text("utf-8")
    (partners_dir / "acme.yaml").write_text(
        acme + 'mappings:\n  "850": partners/acme/850.yaml\n', encoding="utf-8")
    site = Site(tmp_path, partners={"folder": str(partners_dir), "mappings": str(mappings_dir)})
    site.drop("acme", ACME)
    site.run()
    assert site.events() == []
    [letter] = site.dead_letters()
    assert letter.stage == "map" and "po_number" in letter.reason, letter.reason

    # The analyst fixes the mapping; the operator replays the dead letter.
    mapping.write_text(broken.replace("BEG04", "BEG03"), encoding="utf-8")
    with cwd(tmp_path):
        result = CliRunner().invoke(app, ["dlq", "replay", str(letter.id), "--reason",
                                          "mapping fixed", "--store", site.store_url])
    assert result.exit_code == 0, result.output
    site.run()
    site.run()  # and again: nothing more happens
    [event] = site.events()
    _check_event(event, "acme")
    assert event["data"]["po_number"] == "4500012345"
    [letter] = site.dead_letters()
    assert letter.status == "replayed"


def _acme_interchange(n: int, sets: list[str], iea01: str = "1") -> str:
    """The acme sample's envelope with ISA13 00000100n and GS06 100n around `sets` (ST..SE)."""
    lines = ACME.read_text("ascii").splitlines()
    isa = lines[0].replace("000001001", f"00000100{n}")
    gs = lines[1].replace("*1001*", f"*100{n}*")
    return "\n".join([isa, gs, *sets, f"GE*{len(sets)}*100{n}~",
                      f"IEA*{iea01}*00000100{n}~"]) + "\n"


def _acme_set(control: str, edit: tuple[str, str] | None = None) -> str:
    lines = ACME.read_text("ascii").splitlines()
    body = "\n".join(lines[2:-2]).replace("1001001", control)
    return body.replace(*edit) if edit else body


def test_a_foreign_digit_rejects_its_own_set_or_interchange_and_the_rest_is_delivered(
        tmp_path: Path) -> None:
    # Issue #10: a superscript two (Latin-1 0xB2) in a date made validation raise, so the
    # whole file was retried and dead-lettered without a 997 and its good sets were lost.
    site = Site(tmp_path)
    bad_date = ("DTM*002*20261201", "DTM*002*2026120\u00b2")
    text = (_acme_interchange(1, [_acme_set("1001001"), _acme_set("1001002", bad_date),
                                  _acme_set("1001003")])
            + _acme_interchange(2, [_acme_set("1002001")], iea01="\u00b2")
            + _acme_interchange(3, [_acme_set("1003001")]))
    site.drop("acme", text.encode("latin-1"), name="foreign-digits.edi")
    site.run()
    delivered = sorted(e["x12control"] for e in site.events())
    assert delivered == ["000001001.1001.1001001", "000001001.1001.1001003",
                         "000001003.1003.1003001"]
    acks = {a.name: a.read_text("ascii") for a in site.acks("acme")}
    [first] = [t for t in acks.values() if "AK1*PO*1001~" in t]
    assert "AK2*850*1001002~" in first and "AK4*2*373*" in first
    assert first.count("AK5*A~") == 2 and "AK9*P*3*3*2~" in first
    [ta1] = [t for n, t in acks.items() if n.startswith("TA1_") and "TA1*000001002*" in t]
    assert "*R*021~" in ta1
    assert not any("AK1*PO*1002~" in t for t in acks.values())  # a rejected envelope: TA1 only
    [letter] = site.dead_letters()
    assert letter.stage == "validate" and letter.reason.startswith("rejected by validation")
    assert "1001002" in letter.reason and "000001002" in letter.reason
    assert letter.attempts <= 1
