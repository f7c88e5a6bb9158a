"""Purchase order chains in the store: chains, their documents and lines, the findings
emitted (once each, by key) and the deadlines (claimed with SKIP LOCKED on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, exists, func, select, update
from sqlalchemy.orm import Session

from gateway.store import db
from gateway.store.models import (
    Event,
    PoChain,
    PoChainDeadline,
    PoChainDocument,
    PoChainFinding,
    PoChainLine,
)

PENDING, MET, FIRED, CANCELLED = "pending", "met", "fired", "cancelled"


@dataclass(frozen=True)
class StoredLine:
    line_number: str | None
    item_ids: list[dict[str, str]]
    quantity: str | None
    unit: str | None
    unit_price: str | None
    dates: dict[str, str]


@dataclass(frozen=True)
class StoredDocument:
    id: int
    type: str
    doc_key: str
    number: str | None
    x12control: str | None
    message_id: int | None
    at: datetime
    facts: dict[str, Any]
    lines: list[StoredLine]


def chain(session: Session, partner: str, po_number: str, *, state: str,
          now: datetime) -> int:
    """The chain's id, made (in state) if it is new, and locked to this transaction until
    it ends: documents of one chain are checked one transaction after another, each
    seeing the ones before (two at once would each miss the other). SQLite has one
    writer at a time anyway."""
    q = select(PoChain.id).where(PoChain.partner == partner, PoChain.po_number == po_number)
    if not db.is_sqlite(session):
        q = q.with_for_update()
    found = session.scalar(q)
    if found is not None:
        return found
    made = session.scalar(db.insert_new(session, PoChain, PoChain.partner, PoChain.po_number)
                          .values(partner=partner, po_number=po_number, state=state,
                                  opened_at=now, updated_at=now).returning(PoChain.id))
    if made is not None:
        return made
    # Another transaction made it first (PostgreSQL): it is committed now; wait for its lock.
    return session.scalar(q)  # type: ignore[return-value]


def add_document(session: Session, chain_id: int, *, type: str, doc_key: str,
                 number: str | None, x12control: str | None, message_id: int | None,
                 at: datetime, facts: dict[str, Any], lines: Sequence[dict[str, Any]],
                 now: datetime) -> bool:
    """Keep a document and its lines once; whether it was new to the chain."""
    doc_id = session.scalar(
        db.insert_new(session, PoChainDocument, PoChainDocument.chain_id,
                      PoChainDocument.type, PoChainDocument.doc_key)
        .values(chain_id=chain_id, type=type, doc_key=doc_key, number=number,
                x12control=x12control, message_id=message_id, at=at, observed_at=now,
                facts=facts).returning(PoChainDocument.id))
    if doc_id is None:
        return False
    if lines:
        session.execute(PoChainLine.__table__.insert(),
                        [{"document_id": doc_id, **ln} for ln in lines])
    return True


def documents(session: Session, chain_id: int) -> list[StoredDocument]:
    """The chain's documents with their lines, in the order they were observed."""
    return documents_of(session, [chain_id]).get(chain_id, [])


def documents_of(session: Session, chain_ids: Sequence[int]) -> dict[int, list[StoredDocument]]:
    """The documents with their lines of each of these chains, in the order observed
    (two statements for all)."""
    if not chain_ids:
        return {}
    d = PoChainDocument.__table__.c
    docs = session.execute(select(d.id, d.chain_id, d.type, d.doc_key, d.number, d.x12control,
                                  d.message_id, d.at, d.facts)
                           .where(d.chain_id.in_(list(chain_ids))).order_by(d.id)).all()
    lines: dict[int, list[StoredLine]] = {row[0]: [] for row in docs}
    if docs:
        c = PoChainLine.__table__.c
        for row in session.execute(select(c.document_id, c.line_number, c.item_ids, c.quantity,
                                          c.unit, c.unit_price, c.dates)
                                   .where(c.document_id.in_(list(lines))).order_by(c.id)):
            lines[row[0]].append(StoredLine(*row[1:]))
    out: dict[int, list[StoredDocument]] = {}
    for row in docs:
        out.setdefault(row[1], []).append(StoredDocument(
            row[0], row[2], row[3], row[4], row[5], row[6], _utc(row[7]), row[8],
            lines[row[0]]))
    return out


def chains(session: Session, keys: Sequence[tuple[str, str]], *, state: str,
           now: datetime) -> tuple[dict[tuple[str, str], tuple[int, str, str | None]],
                                   set[tuple[str, str]]]:
    """(id, state, direction) of the chain of each (partner, PO number), the missing ones
    made (in state); all locked to this transaction as chain() does. Also the keys of the
    chains made here: they hold no document yet."""
    c = PoChain.__table__.c

    by_partner: dict[str, list[str]] = {}
    for partner, po_number in keys:
        by_partner.setdefault(partner, []).append(po_number)

    def found() -> dict[tuple[str, str], tuple[int, str, str | None]]:
        # Per partner, PO numbers IN a list: PostgreSQL walks the unique index for it,
        # where a list of (partner, PO) pairs made it scan the table.
        out = {}
        for partner, numbers in by_partner.items():
            q = (select(c.id, c.partner, c.po_number, c.state, c.direction)
                 .where(c.partner == partner, c.po_number.in_(numbers)).order_by(c.id))
            if not db.is_sqlite(session):
                q = q.with_for_update()
            out.update({(r[1], r[2]): (r[0], r[3], r[4]) for r in session.execute(q)})
        return out

    if not keys:
        return {}, set()
    have = found()
    missing = list(dict.fromkeys(k for k in keys if k not in have))
    made: set[tuple[str, str]] = set()
    if missing:
        # The rows made here are this transaction's (locked) and known without a look;
        # one made meanwhile by another transaction (PostgreSQL) is looked up after it.
        stmt = db.insert_new(session, PoChain, PoChain.partner, PoChain.po_number).returning(
            c.id, c.partner, c.po_number)
        for chain_id, partner, po_number in db.core(session, stmt, [
                {"partner": p, "po_number": n, "state": state, "opened_at": now,
                 "updated_at": now} for p, n in missing]):
            have[(partner, po_number)] = (chain_id, state, None)
            made.add((partner, po_number))
        if len(made) < len(missing):
            have = found()
    return have, made


def add_documents(session: Session, rows: Sequence[dict[str, Any]],
                  lines: Sequence[Sequence[dict[str, Any]]]) -> dict[int, int]:
    """Keep documents (rows as add_document takes them, chain_id included) and their lines,
    each document once; the positions of those that were new, with their ids, in order."""
    if not rows:
        return {}
    t = PoChainDocument.__table__
    stmt = db.insert_new(session, t, t.c.chain_id, t.c.type, t.c.doc_key).returning(
        t.c.id, t.c.chain_id, t.c.type, t.c.doc_key)
    made = {(r[1], r[2], r[3]): r[0] for r in db.core(session, stmt, list(rows))}
    new, line_rows = {}, []
    for n, row in enumerate(rows):
        doc_id = made.pop((row["chain_id"], row["type"], row["doc_key"]), None)
        if doc_id is None:
            continue  # kept before, or twice in this batch
        new[n] = doc_id
        line_rows += [{"document_id": doc_id, **ln} for ln in lines[n]]
    if line_rows:
        db.core(session, PoChainLine.__table__.insert(), line_rows)
    return new


def as_stored(rows: Sequence[dict[str, Any]], lines: Sequence[Sequence[dict[str, Any]]],
              added: dict[int, int]) -> dict[int, list[StoredDocument]]:
    """The documents add_documents just kept (added: its answer), by chain, as documents_of
    would read them back: for a chain made in this transaction they are all it holds, and
    reading them again would only cost a look-up. (Their JSON values are the readings'
    own, JSON-shaped already: shared, not copied; nothing changes them.)"""
    out: dict[int, list[StoredDocument]] = {}
    for n, doc_id in added.items():
        row = rows[n]
        out.setdefault(row["chain_id"], []).append(StoredDocument(
            doc_id, row["type"], row["doc_key"], row["number"], row["x12control"],
            row["message_id"], _utc(row["at"]), row["facts"],
            [StoredLine(ln.get("line_number"), ln.get("item_ids", []), ln.get("quantity"),
                        ln.get("unit"), ln.get("unit_price"), ln.get("dates", {}))
             for ln in lines[n]]))
    return out


def _utc(at: datetime) -> datetime:
    # As documents_of reads a document's time back and as_stored hands it over.
    return at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)


def set_states(session: Session, rows: Sequence[tuple[int, str, str | None]],
               now: datetime) -> None:
    """(chain id, state, direction) of chains whose checks saw them change."""
    if rows:
        c = PoChain.__table__.c
        session.execute(update(PoChain.__table__).where(c.id == bindparam("cid")).values(
            state=bindparam("st"), direction=func.coalesce(bindparam("dir"), c.direction),
            updated_at=now), [{"cid": i, "st": st, "dir": d} for i, st, d in rows])


def meet_many(session: Session, rows: Sequence[tuple[int, str, datetime]]) -> None:
    """(chain id, deadline kind, when) of documents that pending deadlines waited for."""
    if rows:
        c = PoChainDeadline.__table__.c
        session.execute(update(PoChainDeadline.__table__).where(
            c.chain_id == bindparam("cid"), c.kind == bindparam("k"), c.state == PENDING)
            .values(state=MET, closed_at=bindparam("at")),
            [{"cid": i, "k": k, "at": at} for i, k, at in rows])


def finding_keys_of(session: Session, chain_ids: Sequence[int]) -> dict[int, set[str]]:
    """The keys of the findings emitted so far, per chain."""
    out: dict[int, set[str]] = {}
    if chain_ids:
        for cid, key in session.execute(select(PoChainFinding.chain_id, PoChainFinding.finding_key)
                                        .where(PoChainFinding.chain_id.in_(list(chain_ids)))):
            out.setdefault(cid, set()).add(key)
    return out


def add_findings(session: Session, chain_id: int | None, found: Iterable[tuple[Any, ...]], *,
                 now: datetime, routed: bool) -> None:
    """Keep findings once per key, their events already kept: (key, kind, event id) of one
    chain, or (chain id, key, kind, event id) with chain_id None. routed: their events have
    deliveries, or a message's route stage will make them."""
    rows = [dict(zip(("chain_id", "finding_key", "kind", "event_id"),
                     f if chain_id is None else (chain_id, *f), strict=True)) for f in found]
    if rows:
        session.execute(db.insert_new(session, PoChainFinding, PoChainFinding.chain_id,
                                      PoChainFinding.finding_key),
                        [r | {"created_at": now, "routed_at": now if routed else None}
                         for r in rows])


def findings(session: Session, chain_id: int) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(key, kind, event id, envelope) of the chain's findings, in the order emitted."""
    rows = session.execute(select(PoChainFinding.finding_key, PoChainFinding.kind,
                                  PoChainFinding.event_id, Event.envelope)
                           .join(Event, Event.event_id == PoChainFinding.event_id)
                           .where(PoChainFinding.chain_id == chain_id)
                           .order_by(PoChainFinding.id))
    return [tuple(r) for r in rows]  # type: ignore[misc]


def claim_unrouted(session: Session, limit: int) -> list[tuple[int, str, dict[str, Any]]]:
    """(finding id, event id, envelope) of findings whose events have no deliveries yet,
    locked for this transaction (others skip them on PostgreSQL)."""
    q = (select(PoChainFinding.id, PoChainFinding.event_id, Event.envelope)
         .join(Event, Event.event_id == PoChainFinding.event_id)
         .where(PoChainFinding.routed_at.is_(None)).order_by(PoChainFinding.id).limit(limit))
    if not db.is_sqlite(session):
        q = q.with_for_update(of=PoChainFinding, skip_locked=True)
    return [tuple(r) for r in session.execute(q)]  # type: ignore[misc]


def mark_routed(session: Session, finding_ids: Sequence[int], now: datetime) -> None:
    """These findings' events have their deliveries now."""
    if finding_ids:
        session.execute(update(PoChainFinding).where(PoChainFinding.id.in_(list(finding_ids)))
                        .values(routed_at=now), execution_options={"synchronize_session": False})


def add_deadlines(session: Session, chain_id: int,
                  due: Iterable[tuple[str, datetime, float]]) -> None:
    """Pending deadlines (kind, due_at, hours) for the chain; a kind it has already is kept."""
    rows = [{"chain_id": chain_id, "kind": k, "state": PENDING, "due_at": at, "hours": h}
            for k, at, h in due]
    if rows:
        session.execute(db.insert_new(session, PoChainDeadline, PoChainDeadline.chain_id,
                                      PoChainDeadline.kind), rows)


def renew(session: Session, chain_id: int, due: Iterable[tuple[str, datetime, float]]) -> None:
    """Deadlines (kind, due_at, hours) pending again from a new due time, whatever they
    came to before (our PO sent again: its own 997 and 855 are awaited)."""
    for kind, at, hours in due:
        session.execute(update(PoChainDeadline).where(
            PoChainDeadline.chain_id == chain_id, PoChainDeadline.kind == kind).values(
            state=PENDING, due_at=at, hours=hours, closed_at=None),
            execution_options={"synchronize_session": False})


def meet(session: Session, chain_id: int, kind: str, at: datetime) -> None:
    """The document a pending deadline waited for came in."""
    session.execute(update(PoChainDeadline).where(
        PoChainDeadline.chain_id == chain_id, PoChainDeadline.kind == kind,
        PoChainDeadline.state == PENDING).values(state=MET, closed_at=at),
        execution_options={"synchronize_session": False})


def cancel(session: Session, chain_id: int, kind: str, at: datetime) -> None:
    """A pending deadline that nothing can meet any more (no 855 follows a rejected 850)."""
    session.execute(update(PoChainDeadline).where(
        PoChainDeadline.chain_id == chain_id, PoChainDeadline.kind == kind,
        PoChainDeadline.state == PENDING).values(state=CANCELLED, closed_at=at),
        execution_options={"synchronize_session": False})


@dataclass(frozen=True)
class Due:
    id: int
    chain_id: int
    partner: str
    po_number: str
    kind: str
    due_at: datetime
    hours: float


def anything_due(session: Session, now: datetime) -> bool:
    """Whether a deadline is due by now or a finding waits to be routed: one read on the
    two indexes, so that a tick with nothing to do takes no write lock."""
    due = exists().where(PoChainDeadline.state == PENDING, PoChainDeadline.due_at <= now)
    waiting = exists().where(PoChainFinding.routed_at.is_(None))
    return bool(session.scalar(select(due | waiting)))


def claim_due(session: Session, now: datetime, limit: int) -> list[Due]:
    """Pending deadlines due by now, oldest first, locked for this transaction (others
    skip them on PostgreSQL; SQLite has one writer at a time)."""
    q = (select(PoChainDeadline.id, PoChainDeadline.chain_id, PoChain.partner,
                PoChain.po_number, PoChainDeadline.kind, PoChainDeadline.due_at,
                PoChainDeadline.hours)
         .join(PoChain, PoChain.id == PoChainDeadline.chain_id)
         .where(PoChainDeadline.state == PENDING, PoChainDeadline.due_at <= now)
         .order_by(PoChainDeadline.due_at, PoChainDeadline.id).limit(limit))
    if not db.is_sqlite(session):
        q = q.with_for_update(of=PoChainDeadline, skip_locked=True)
    return [Due(*row) for row in session.execute(q)]


def fire(session: Session, deadline_id: int, now: datetime) -> bool:
    """Mark a claimed deadline fired; False if it was met or fired meanwhile."""
    done = session.execute(update(PoChainDeadline).where(
        PoChainDeadline.id == deadline_id, PoChainDeadline.state == PENDING)
        .values(state=FIRED, closed_at=now), execution_options={"synchronize_session": False})
    return bool(done.rowcount)  # type: ignore[attr-defined]


def deadlines(session: Session, chain_id: int) -> list[tuple[str, str, datetime, datetime | None]]:
    """(kind, state, due_at, closed_at) of the chain's deadlines."""
    rows = session.execute(select(PoChainDeadline.kind, PoChainDeadline.state,
                                  PoChainDeadline.due_at, PoChainDeadline.closed_at)
                           .where(PoChainDeadline.chain_id == chain_id)
                           .order_by(PoChainDeadline.id))
    return [tuple(r) for r in rows]  # type: ignore[misc]


def of_po(session: Session, po_number: str, partner: str | None = None) -> list[PoChain]:
    """The chains with this PO number (one per partner), or the partner's one."""
    q = select(PoChain).where(PoChain.po_number == po_number)
    if partner is not None:
        q = q.where(PoChain.partner == partner)
    return list(session.scalars(q.order_by(PoChain.partner)))


def listing(session: Session, *, open_only: bool, partner: str | None = None,
            limit: int = 100) -> list[PoChain]:
    """Chains, newest first; open_only: those not yet matched (waiting or open)."""
    q = select(PoChain)
    if open_only:
        q = q.where(PoChain.state != "matched")
    if partner is not None:
        q = q.where(PoChain.partner == partner)
    return list(session.scalars(q.order_by(PoChain.id.desc()).limit(limit)))
