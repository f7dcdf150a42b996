"""providers domain."""
