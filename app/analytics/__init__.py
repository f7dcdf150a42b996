"""Per-day counts for ops: cases and documents by status (`GET /ops/analytics`)."""
