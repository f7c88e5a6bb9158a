"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.api import chain_routes, order_routes, problems, routes, webhooks
from gateway.api.api_settings import ApiSettings
from gateway.api.keys import KeyRing
from gateway.api.limits import BodyLimit
from gateway.dry_run import Remapper
from gateway.portal import pages as portal_pages
from gateway.store import db


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """The REST API over the store settings name (OpenAPI docs at /docs)."""
    settings = settings or ApiSettings.from_env()
    app = FastAPI(
        title="edi-gateway",
        summary="Partners' signed webhooks; dead letters and message timelines; purchase "
                "orders to partners. Send an API "
                "key as `Authorization: Bearer <key>` or `X-API-Key` (webhooks are signed "
                "instead).",
        version="1",
    )
    # Endpoints are plain `def`: FastAPI runs them in its thread pool, so the blocking
    # database calls never stall the event loop.
    app.state.settings = settings
    app.state.engine = db.make_engine(settings.store_url)
    app.state.keys = KeyRing(settings.api_keys_file)
    app.state.remapper = Remapper(partners_dir=settings.partners_dir,
                                  mappings_root=settings.mappings_root)
    # Webhooks read their bodies themselves, up to each partner's max_bytes.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, exempt=(webhooks.PREFIX,))
    problems.install(app)
    # The webhooks first: the one route partners call at volume is matched before the
    # others are tried (no other route takes its path, so the order changes nothing else).
    webhooks.install(app, settings.partners_dir, settings.mappings_root)
    app.include_router(routes.router)
    app.include_router(order_routes.router)
    app.include_router(chain_routes.router)  # PO chains and goods receipts
    portal_pages.install(app)  # the partner portal's pages under /portal
    return app


def from_env() -> FastAPI:
    """For `uvicorn --factory gateway.api.app:from_env`: settings from conf and environment."""
    return create_app(ApiSettings.from_env())
