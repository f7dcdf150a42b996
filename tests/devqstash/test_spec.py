"""Publish headers turned into a message spec (protocol doc section 3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.devqstash.spec import parse_duration_s, parse_spec, spec_headers
from app.errors import BadRequest

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
URL = "https://example.com/workflows/demo?x=1"


def spec(headers: dict[str, str], body: bytes = b"{}", url: str = URL):
    return parse_spec(url, headers.items(), body, default_retries=3, now=NOW)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10), ("2m", 120), ("1h", 3600), ("1d", 86400), ("500ms", 0.5), ("1h30m", 5400), ("45", 45)],
)
def test_durations(text, seconds):
    assert parse_duration_s(text, header="Upstash-Delay") == seconds


@pytest.mark.parametrize("text", ["", "soon", "10x", "-5s", "1.5.2s"])
def test_bad_durations_are_refused(text):
    with pytest.raises(BadRequest):
        parse_duration_s(text, header="Upstash-Delay")


def test_headers_are_sorted_into_forwarded_control_and_callback_configuration():
    parsed = spec(
        {
            "content-type": "application/json",
            "upstash-forward-x-trace": "t1",
            "Upstash-Method": "put",
            "Upstash-Retries": "5",
            "Upstash-Timeout": "30s",
            "Upstash-Label": "nightly",
            "Upstash-Callback": "https://example.com/cb",
            "Upstash-Callback-Forward-Foo": "1",
            "Upstash-Callback-Retries": "0",
            "Upstash-Failure-Callback": "https://example.com/failed",
            "Upstash-Failure-Callback-Forward-Bar": "2",
            "Upstash-Workflow-RunId": "wfr_abc",
            "Authorization": "Bearer publisher-token",
        }
    )

    assert parsed.forward_headers == {"X-Trace": "t1"}
    assert (parsed.method, parsed.max_retries, parsed.timeout_s, parsed.label) == ("PUT", 5, 30, "nightly")
    assert parsed.callback_headers == {"Upstash-Forward-Foo": "1", "Upstash-Retries": "0"}
    assert parsed.failure_callback_headers == {"Upstash-Forward-Bar": "2"}
    assert parsed.control_headers == {"Upstash-Workflow-Runid": "wfr_abc"}
    assert parsed.not_before is None


def test_not_before_wins_over_delay():
    assert spec({"Upstash-Delay": "1h"}).not_before == NOW + timedelta(hours=1)
    both = spec({"Upstash-Delay": "1h", "Upstash-Not-Before": str(int(NOW.timestamp()) + 5)})
    assert both.not_before == NOW + timedelta(seconds=5)


def test_deduplication_keys():
    explicit = spec({"Upstash-Deduplication-Id": "a"})
    content = spec({"Upstash-Content-Based-Deduplication": "True", "Upstash-Forward-X": "1"})

    assert explicit.dedup_key == spec({"Upstash-Deduplication-Id": "a"}, body=b"other").dedup_key
    assert (
        content.dedup_key == spec({"upstash-content-based-deduplication": "true", "upstash-forward-x": "1"}).dedup_key
    )
    assert (
        content.dedup_key != spec({"Upstash-Content-Based-Deduplication": "true", "Upstash-Forward-X": "2"}).dedup_key
    )
    assert content.dedup_key != spec({"Upstash-Content-Based-Deduplication": "true"}, body=b"[]").dedup_key
    assert spec({"Upstash-Content-Based-Deduplication": "False"}).dedup_key is None


def test_a_stored_configuration_round_trips_through_its_headers():
    original = spec(
        {
            "Content-Type": "text/plain",
            "Upstash-Forward-A": "1",
            "Upstash-Retries": "2",
            "Upstash-Retry-Delay": "1000",
            "Upstash-Timeout": "1500ms",
            "Upstash-Callback": "https://e.com/cb",
            "Upstash-Callback-Forward-B": "2",
            "Upstash-Failure-Callback": "https://e.com/f",
            "Upstash-Label": "l",
        }
    )

    copy = parse_spec(URL, spec_headers(original), b"{}", default_retries=3, now=NOW)

    for name in (
        "method",
        "content_type",
        "forward_headers",
        "max_retries",
        "retry_delay",
        "timeout_s",
        "callback",
        "callback_headers",
        "failure_callback",
        "label",
    ):
        assert getattr(copy, name) == getattr(original, name), name


def test_callback_configuration_is_checked_at_publish():
    with pytest.raises(BadRequest):
        spec({"Upstash-Callback": "https://example.com/cb", "Upstash-Callback-Retries": "many"})
    with pytest.raises(BadRequest):
        spec({"Upstash-Failure-Callback": "not-a-url"})
