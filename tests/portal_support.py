"""A gateway with the portal for tests: a site, its users and the app (served with
tests.http_support.serving)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from gateway.api.api_settings import ApiSettings
from gateway.api.app import create_app
from gateway.pipeline.context import Context
from gateway.pipeline.worker import Worker
from gateway.portal import passwords
from gateway.portal.portal_settings import PortalSettings
from gateway.portal.state import Portal
from gateway.store import db, users
from tests.conftest import REPO
from tests.pipeline_support import Site
from tests.store_support import migrated

GOOD_CSV = REPO / "mappings" / "partners" / "evergreen" / "examples" / "asn-EG-55012.csv"
PASSWORD = "correct horse battery staple"
# Each partner's people: evergreen uploads ship notices; brightline is the other partner.
PEOPLE = {"ana": "evergreen", "ben": "brightline"}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class PortalSite:
    """A gateway site (store, conf, var/erp) with portal users and the app over it."""

    def __init__(self, root: Path, *, routes: list[dict[str, Any]] | None = None,
                 max_upload: int = 512 * 1024) -> None:
        self.root = root
        self.events_file = root / "var" / "erp" / "events.jsonl"
        extra = {"routes": routes} if routes is not None else {}
        self.site = Site(root, destinations={"erp": {"type": "file", "config": {
            "path": str(self.events_file)}}}, **extra)
        migrated(self.site.store_url).dispose()
        self.events_file.parent.mkdir(parents=True, exist_ok=True)  # as `edigw run` does
        self.engine = db.make_engine(self.site.store_url)
        hashed = passwords.hash_password(PASSWORD)
        with db.transaction(self.engine) as s:
            for name, partner in PEOPLE.items():
                users.add(s, username=name, partner=partner, password_hash=hashed)
        self.clock = Clock()
        api = ApiSettings(store_url=self.site.store_url,
                          api_keys_file=root / "conf" / "api-keys.yaml",
                          partners_dir=REPO / "conf" / "partners",
                          mappings_root=REPO / "mappings")
        self.app: FastAPI = create_app(api)
        self.app.state.portal = Portal.build(
            engine=self.app.state.engine, partners_dir=api.partners_dir,
            mappings_root=api.mappings_root, clock=self.clock,
            settings=PortalSettings(key_file=root / "var" / "portal" / "session.key",
                                    max_upload_bytes=max_upload))

    def run_pipeline(self) -> int:
        """Work the queue until idle, as `edigw run` would; the items done."""
        ctx = Context.load(str(self.site.config))
        try:
            return Worker(ctx).run(until_idle=True)
        finally:
            ctx.close()

    def close(self) -> None:
        self.app.state.engine.dispose()
        self.engine.dispose()


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)
