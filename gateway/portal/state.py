"""The portal's parts in one server process: sessions, throttle, partners, templates."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.templating import Jinja2Templates
from sqlalchemy.engine import Engine

from gateway import partners as partners_mod
from gateway import settings as settings_mod
from gateway.pipeline.context import Context
from gateway.portal import sessions, throttle
from gateway.portal.portal_settings import PortalSettings

TEMPLATES = Path(__file__).resolve().parent / "templates"
_lock = threading.Lock()


@dataclass
class Portal:
    """What the portal's pages share."""

    settings: PortalSettings
    sessions: sessions.Sessions
    throttle: throttle.Throttle
    partners: partners_mod.Partners
    ctx: Context  # for gateway.pipeline.intake.accept
    templates: Jinja2Templates
    clock: Callable[[], float]

    @classmethod
    def build(cls, *, engine: Engine, partners_dir: Path, mappings_root: Path,
              settings: PortalSettings, clock: Callable[[], float] = time.time) -> Portal:
        registry = partners_mod.load_all(partners_dir, mappings_root=mappings_root)
        # The intake needs only the engine; the rest of the context is the deployment's.
        gw = settings_mod.load()
        templates = Jinja2Templates(directory=str(TEMPLATES))  # autoescapes .html
        return cls(settings=settings,
                   sessions=sessions.Sessions(sessions.signing_key(settings.key_file),
                                              max_age=settings.session_seconds, clock=clock),
                   throttle=throttle.Throttle(clock, per_user=settings.attempts_per_user,
                                              per_client=settings.attempts_per_client,
                                              window=settings.attempts_window),
                   partners=registry, ctx=Context(gw, registry, engine),
                   templates=templates, clock=clock)


def of(app: FastAPI) -> Portal:
    """The app's portal, made from its API settings on first use (tests set their own)."""
    portal = getattr(app.state, "portal", None)
    if portal is None:
        with _lock:
            portal = getattr(app.state, "portal", None)
            if portal is None:
                api = app.state.settings
                portal = Portal.build(engine=app.state.engine, partners_dir=api.partners_dir,
                                      mappings_root=api.mappings_root,
                                      settings=PortalSettings.from_env(api.max_body_bytes))
                app.state.portal = portal
    return portal
