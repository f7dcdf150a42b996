"""progress notify: NOTIFY curaway_progress at the commit of a progress event (Postgres only)

Every process's case progress feed LISTENs on `curaway_progress` and walks the `events` table
when woken (app/cases/progress.py), so a progress event reaches SSE clients in milliseconds
instead of at the next poll. The trigger fires only for progress rows (the prefixes of
`app.cases.progress.PROGRESS_PREFIXES`); NOTIFYs of one transaction with the same payload are
delivered once, at commit. SQLite has no NOTIFY: there the feed is woken in-process and polls.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 09:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROGRESS_PREFIXES = ("document.", "notification.", "consent.", "forwarding.")  # as in app/cases/progress.py


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION curaway_notify_progress() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('curaway_progress', '');
            RETURN NULL;
        END
        $$
        """
    )
    when = " OR ".join(f"NEW.type LIKE '{prefix}%'" for prefix in PROGRESS_PREFIXES)
    op.execute(
        f"CREATE TRIGGER events_notify_progress AFTER INSERT ON events FOR EACH ROW WHEN ({when}) "
        "EXECUTE FUNCTION curaway_notify_progress()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS events_notify_progress ON events")
    op.execute("DROP FUNCTION IF EXISTS curaway_notify_progress()")
