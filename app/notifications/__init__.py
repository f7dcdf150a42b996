"""Notifications to patients: reminders and digests, each recorded once by its idempotency key."""
