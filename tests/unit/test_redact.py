"""redact(): the userinfo of every URL in a text hidden, nothing else touched."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canonical import redact

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("text", "clean"), [
    ("erp:http http://user:s3cret@erp.example/events",
     "erp:http http://***@erp.example/events"),
    ("https://s3cret@erp.example", "https://***@erp.example"),
    ("postgresql+psycopg://edigw:s3cret@db:5432/edigw", "postgresql+psycopg://***@db:5432/edigw"),
    ("raw @ in it: http://user:s3c@ret@erp.example/x?a=b@c",
     "raw @ in it: http://***@erp.example/x?a=b@c"),
    ("two: http://a:s3cret@h1/ and 'https://b:s3cret@h2'",
     "two: http://***@h1/ and 'https://***@h2'"),
    ("no credentials: http://erp.example/events?to=ops@example.com",
     "no credentials: http://erp.example/events?to=ops@example.com"),
    ("mail ops@example.com about http://erp.example/", "mail ops@example.com about http://erp.example/"),
    ("", ""),
])
def test_redact(text: str, clean: str) -> None:
    assert redact.redact(text) == clean


NOT_IN_USERINFO = "/?#@'\"<>[] \t\n\r\x0b\x0c"  # the URL's delimiters, and ASCII spaces


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",),
                                      blacklist_characters=NOT_IN_USERINFO), min_size=1),
       st.sampled_from(["http", "https", "postgresql+psycopg", "sftp"]), st.text(max_size=40))
def test_a_password_never_survives(password: str, scheme: str, around: str) -> None:
    text = f"{around} {scheme}://user:{password}@host/path {around}"
    assert f"{scheme}://***@host/path" in redact.redact(text)
    assert f":{password}@" not in redact.redact(text)


def test_the_filter_redacts_messages_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.redact")
    redact.install(logger)
    redact.install(logger)  # once is enough
    assert logger.filters.count(redact.FILTER) == 1
    with caplog.at_level(logging.INFO, logger="tests.redact"):
        logger.info("POST %s", "http://u:s3cret@erp/events")
        try:
            raise ValueError("cannot reach https://u:s3cret@erp/")
        except ValueError:
            logger.exception("failed")
    assert "s3cret" not in caplog.text
    assert "http://***@erp/events" in caplog.text and "https://***@erp/" in caplog.text
