"""Serve an ASGI app over real HTTP on 127.0.0.1, inside the test's event loop."""

from app.serving import bind_socket
from app.serving import serve_in_loop as serve

__all__ = ["bind_socket", "serve"]
