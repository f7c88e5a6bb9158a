"""What the REST API and the operator commands need to know: store, keys, limits, mappings."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gateway import settings
from gateway.store import db

GATEWAY_CONF = Path("conf/gateway.yaml")
API_KEYS = Path("conf/api-keys.yaml")
# Every request body the API takes is a small JSON object; a megabyte is generous.
MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ApiSettings:
    """Settings of one API process."""

    store_url: str = db.DEFAULT_URL
    api_keys_file: Path = API_KEYS
    partners_dir: Path = Path("conf/partners")
    mappings_root: Path = Path("mappings")
    max_body_bytes: int = MAX_BODY_BYTES
    routes: tuple[settings.Route, ...] = ()  # where exceptions from posted receipts go

    @classmethod
    def from_env(cls, conf: Path = GATEWAY_CONF) -> ApiSettings:
        """From conf/gateway.yaml (checked by gateway.settings, the one loader), each value
        overridable by an EDIGW_* environment variable."""
        gw = settings.load(conf if conf.is_file() else None)
        env = os.environ.get
        return cls.from_settings(gw, store_url=env("EDIGW_STORE_URL"),
                                 partners_dir=env("EDIGW_PARTNERS_DIR"),
                                 mappings_root=env("EDIGW_MAPPINGS_DIR"))

    @classmethod
    def from_settings(cls, gw: settings.Settings, *, store_url: str | None = None,
                      partners_dir: str | None = None,
                      mappings_root: str | None = None) -> ApiSettings:
        """From loaded gateway settings (`edigw run` serves its own store and partners);
        the API keys file and the body limit still from EDIGW_* variables."""
        env = os.environ.get
        return cls(
            store_url=store_url or gw.store_url,
            api_keys_file=Path(env("EDIGW_API_KEYS") or API_KEYS),
            partners_dir=Path(partners_dir or gw.partners_folder),
            mappings_root=Path(mappings_root or gw.mappings_root),
            max_body_bytes=int(env("EDIGW_API_MAX_BODY") or MAX_BODY_BYTES),
            routes=tuple(gw.routes))
