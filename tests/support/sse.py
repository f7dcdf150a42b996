"""Tests read SSE streams with the app's own reader."""

from app.sse_client import SseEvent, read_events

__all__ = ["SseEvent", "read_events"]
