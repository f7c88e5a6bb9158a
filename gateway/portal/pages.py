"""The portal's pages: sign in, upload a CSV (checked before it is accepted), the history.

Server-rendered (Jinja2), no script. Every POST carries the session's CSRF token; pages
are never cached and may not be framed. Another partner's upload answers 404, exactly as
an upload that does not exist.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from canonical.errors import ConfigError
from channels.base import InboundMessage
from gateway.pipeline import intake
from gateway.portal import cells, checks, passwords, state, upload_guard
from gateway.portal.portal_settings import FORM_SLACK
from gateway.portal.sessions import COOKIE, CSRF_FIELD, Session, csrf_ok
from gateway.store import audit_log, db, uploads, users

log = logging.getLogger("edigw.portal")
router = APIRouter(prefix="/portal", include_in_schema=False)
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
CSS = (state.TEMPLATES.parent / "static" / "portal.css").read_bytes()


# ---- sessions ----------------------------------------------------------------------------

def _session(request: Request) -> tuple[state.Portal, Session | None]:
    """The portal and the browser's session, if its cookie is good and its user still active."""
    portal = state.of(request.app)
    found = portal.sessions.load(request.cookies.get(COOKIE))
    if found is not None and found.signed_in:
        with db.transaction(portal.ctx.engine, write=False) as s:
            user = users.active(s, found.username or "")
        if user is None or user.partner != found.partner:
            found = None  # disabled or removed since: signed out
    return portal, found


def _page(request: Request, portal: state.Portal, template: str, session: Session | None,
          status: int = 200, **values: Any) -> HTMLResponse:
    session = session or portal.sessions.new()
    response = portal.templates.TemplateResponse(
        request, template, {"session": session, "csrf_field": CSRF_FIELD,
                            "max_upload": portal.settings.max_upload_bytes, **values},
        status_code=status, headers=HEADERS)
    _set_cookie(request, response, portal, session)
    return response


def _set_cookie(request: Request, response: Response, portal: state.Portal,
                session: Session) -> None:
    response.set_cookie(COOKIE, portal.sessions.dump(session), httponly=True, samesite="lax",
                        secure=request.url.scheme == "https", path="/portal",
                        max_age=int(portal.settings.session_seconds))


def _redirect(request: Request, portal: state.Portal, to: str,
              session: Session | None = None) -> RedirectResponse:
    response = RedirectResponse(to, status_code=303, headers=HEADERS)
    if session is not None:
        _set_cookie(request, response, portal, session)
    return response


def _refused(request: Request, portal: state.Portal, session: Session | None, status: int,
             title: str, detail: str) -> HTMLResponse:
    return _page(request, portal, "message.html", session, status, title=title, detail=detail)


def _bad_token(request: Request, portal: state.Portal, session: Session | None) -> HTMLResponse:
    why = ("the form's security token is missing or out of date (the page was open too "
           "long, or the browser does not keep the portal's cookie)")
    log.warning("portal: %s %s refused: no valid CSRF token", request.method, request.url.path)
    return _refused(request, portal, session, 403, "Form refused",
                    f"This form was refused: {why}. Go back, reload the page and try again.")


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


# ---- pages -------------------------------------------------------------------------------

@router.get("")
@router.get("/")
def home(request: Request) -> Response:
    portal, session = _session(request)
    return _redirect(request, portal, "/portal/uploads" if session and session.signed_in
                     else "/portal/login")


@router.get("/static/portal.css")
def stylesheet() -> Response:
    return Response(CSS, media_type="text/css", headers={"Cache-Control": "max-age=3600"})


@router.get("/login")
def login_page(request: Request) -> Response:
    portal, session = _session(request)
    if session and session.signed_in:
        return _redirect(request, portal, "/portal/uploads")
    return _page(request, portal, "login.html", session)


@router.post("/login")
async def login(request: Request) -> Response:
    portal, session = await run_in_threadpool(_session, request)
    form = await request.form(max_files=0, max_fields=5)
    if not csrf_ok(session, form.get(CSRF_FIELD)):
        return _bad_token(request, portal, session)
    username = str(form.get("username") or "").strip().lower()[:200]
    password = str(form.get("password") or "")
    client = _client(request)
    wait = portal.throttle.wait(username, client)
    if wait > 0:
        await run_in_threadpool(_audit, portal, username, client, "portal.sign_in_throttled")
        minutes = max(1, round(wait / 60))
        return _page(request, portal, "login.html", session, 429, username=username,
                     error=f"Too many failed sign-ins. Try again in {minutes} minute"
                           f"{'s' if minutes != 1 else ''}.")
    user = await run_in_threadpool(_check_password, portal, username, password)
    if user is None:
        portal.throttle.failed(username, client)
        await run_in_threadpool(_audit, portal, username, client, "portal.sign_in_failed")
        return _page(request, portal, "login.html", session, 401, username=username,
                     error="Wrong username or password.")
    portal.throttle.succeeded(username, client)
    log.info("portal: %s (%s) signed in from %s", user[0], user[1], client)
    return _redirect(request, portal, "/portal/uploads", portal.sessions.sign_in(*user))


def _check_password(portal: state.Portal, username: str, password: str) -> tuple[str, str] | None:
    """(username, partner) when the password is right; the same work when the user is unknown."""
    with db.transaction(portal.ctx.engine, write=False) as s:
        user = users.active(s, username) if passwords.USERNAME.fullmatch(username) else None
        stored = user.password_hash if user else None
    if not passwords.verify(stored, password) or user is None:
        return None
    if passwords.needs_rehash(stored or ""):
        with db.transaction(portal.ctx.engine) as s:
            users.set_hash(s, user.id, passwords.rehash(password))
    return user.username, user.partner


def _audit(portal: state.Portal, username: str, client: str, action: str) -> None:
    try:
        with db.transaction(portal.ctx.engine) as s:
            audit_log.record(s, actor=f"portal:anonymous@{client}", action=action,
                             target=f"portal-user:{username[:64]}", reason=None,
                             details={"client": client})
    except Exception:  # the answer stands; the log keeps the trace
        log.exception("could not write the audit row of a refused sign-in")


@router.post("/logout")
async def logout(request: Request) -> Response:
    portal, session = await run_in_threadpool(_session, request)
    form = await request.form(max_files=0, max_fields=5)
    if not csrf_ok(session, form.get(CSRF_FIELD)):
        return _bad_token(request, portal, session)
    return _redirect(request, portal, "/portal/login", portal.sessions.new())


@router.get("/uploads")
def history(request: Request) -> Response:
    portal, session = _session(request)
    if session is None or not session.signed_in:
        return _redirect(request, portal, "/portal/login")
    with db.transaction(portal.ctx.engine, write=False) as s:
        rows = uploads.history(s, session.partner or "")
    return _page(request, portal, "uploads.html", session, uploads=rows,
                 partner=_partner_name(portal, session))


@router.post("/uploads")
async def upload(request: Request) -> Response:
    portal, session = await run_in_threadpool(_session, request)
    if session is None or not session.signed_in:
        return _refused(request, portal, session, 403, "Signed out",
                        "Your session has ended. Sign in again, then upload the file.")
    limit = portal.settings.max_upload_bytes
    too_large = _refused(request, portal, session, 413, "File too large",
                         f"The file is larger than the portal takes ({limit // 1024} KB). "
                         "Split it into smaller files.")
    # A declared length over the limit never gets here (upload_guard); a chunked body is
    # counted as it comes.
    body, more = bytearray(), True
    while more:
        message = await request.receive()
        if message["type"] != "http.request":  # the browser went away
            return Response(status_code=400)
        body += message.get("body", b"")
        more = message.get("more_body", False)
        if len(body) > limit + FORM_SLACK:
            if more:
                await upload_guard.drain(request.receive, len(body))
            return too_large
    request._body = bytes(body)  # what request.form() parses (Starlette reads _body first)
    form = await request.form(max_files=1, max_fields=5)
    if not csrf_ok(session, form.get(CSRF_FIELD)):
        return _bad_token(request, portal, session)
    file = form.get("file")
    if not isinstance(file, UploadFile) or not file.filename:
        return await run_in_threadpool(_with_problems, request, portal, session, "",
                                       [checks.Problem("Choose a CSV file to upload.")])
    data = await file.read(limit + 1)
    name = _display_name(file.filename)
    return await run_in_threadpool(_take, request, portal, session, name, data)


def _take(request: Request, portal: state.Portal, session: Session, name: str,
          data: bytes) -> Response:
    """Check an upload with the partner's mapping; accept it into the pipeline if good."""
    try:
        partner = portal.partners.get(session.partner or "")
    except ConfigError:
        log.error("portal: user %s belongs to partner %r, which is not configured",
                  session.username, session.partner)
        return _with_problems(request, portal, session, name, [checks.Problem(
            "Your company is not set up to upload here yet; please contact us.")])
    stored_as = f"{db.utcnow():%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}.csv"
    verdict = checks.check(data, partner=partner, name=stored_as,
                           max_bytes=portal.settings.max_upload_bytes)
    if not verdict.ok:
        return _with_problems(request, portal, session, name, verdict.problems, verdict.more)
    username = session.username or ""
    got = intake.accept(portal.ctx, [InboundMessage(
        partner.id, stored_as, data, {"endpoint": f"{uploads.CHANNEL_PREFIX}{username}"})])[0]
    assert got.message_id is not None
    if got.outcome == "new":
        with db.transaction(portal.ctx.engine) as s:
            uploads.record(s, message_id=got.message_id, partner=partner.id,
                           username=username, original_name=name, size=len(data))
        log.info("portal: %s uploaded %s as %s: message %s", username, name, stored_as,
                 got.message_id)
        return _redirect(request, portal, f"/portal/uploads/{got.message_id}?accepted=1")
    with db.transaction(portal.ctx.engine, write=False) as s:
        earlier = uploads.one(s, partner.id, got.message_id)
    if earlier is not None:
        return _redirect(request, portal, f"/portal/uploads/{got.message_id}?repeat=1")
    return _with_problems(request, portal, session, name, [checks.Problem(
        "This exact file was received before on another channel; nothing new was sent.")])


def _with_problems(request: Request, portal: state.Portal, session: Session, name: str,
                   problems: list[checks.Problem], more: bool = False) -> HTMLResponse:
    with db.transaction(portal.ctx.engine, write=False) as s:
        rows = uploads.history(s, session.partner or "")
    return _page(request, portal, "uploads.html", session, 422, uploads=rows,
                 partner=_partner_name(portal, session), problems=problems, more=more,
                 rejected_name=name)


@router.get("/uploads.csv")
def export(request: Request) -> Response:
    """The history as CSV, every cell neutralised for spreadsheets."""
    portal, session = _session(request)
    if session is None or not session.signed_in:
        return _redirect(request, portal, "/portal/login")
    with db.transaction(portal.ctx.engine, write=False) as s:
        rows = uploads.history(s, session.partner or "", limit=10_000)
    text = cells.to_csv(
        ["upload", "file", "stored as", "uploaded by", "uploaded at (UTC)", "bytes",
         "status", "reason"],
        [[u.id, u.name, u.stored_as, u.username, f"{u.uploaded_at:%Y-%m-%d %H:%M:%S}",
          u.size, u.status, u.reason] for u in rows])
    return Response(text.encode("utf-8-sig"), media_type="text/csv; charset=utf-8",
                    headers={**HEADERS, "Content-Disposition":
                             'attachment; filename="uploads.csv"'})


@router.get("/uploads/{upload_id}")
def detail(request: Request, upload_id: str) -> Response:
    portal, session = _session(request)
    if session is None or not session.signed_in:
        return _redirect(request, portal, "/portal/login")
    found = None
    if upload_id.isdigit() and len(upload_id) < 19:
        with db.transaction(portal.ctx.engine, write=False) as s:
            found = uploads.one(s, session.partner or "", int(upload_id))
    if found is None:
        return _refused(request, portal, session, 404, "No such upload",
                        "There is no upload with that number among yours.")
    return _page(request, portal, "upload.html", session, upload=found,
                 partner=_partner_name(portal, session),
                 accepted="accepted" in request.query_params,
                 repeat="repeat" in request.query_params)


def _partner_name(portal: state.Portal, session: Session) -> str:
    try:
        return portal.partners.get(session.partner or "").name or session.partner or ""
    except Exception:
        return session.partner or ""


def _display_name(filename: str) -> str:
    """The browser's file name, for display only: no folders, no control characters."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(c for c in base if c.isprintable())[:200] or "upload.csv"


def install(app: FastAPI) -> None:
    """Mount the portal on the app: its pages, and its page for too-large uploads."""
    app.include_router(router)
    app.add_middleware(upload_guard.UploadGuard)  # outermost: added last
