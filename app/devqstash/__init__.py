"""The embedded QStash-compatible server for development and tests (DESIGN 3.4).

`DevQStash(...)` gives a router to mount at `/qstash` and a delivery loop to `start()` and
`stop()` from the app's lifespan. See `server.py` for the overview.
"""

from app.devqstash.server import DevQStash

__all__ = ["DevQStash"]
