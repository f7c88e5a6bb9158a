"""A FastAPI app served by a real uvicorn on a free loopback port, in a thread, for tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI

from tests.sshd_support import free_port

# How long uvicorn may take to listen on a busy machine before the test gives up.
START_WAIT = 20.0


@contextmanager
def serving(app: FastAPI, **options: Any) -> Iterator[str]:
    """The app served on 127.0.0.1 until the block ends; its base URL.

    options go to uvicorn.Config (log_config=None keeps the test's own logging, say)."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port,
                            **{"log_level": "warning", **options})
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_WAIT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(START_WAIT)
