"""forwardings domain."""
