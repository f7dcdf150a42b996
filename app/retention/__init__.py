"""Retention: the record of stale-session cleanup batches, so a batch is never done twice."""
