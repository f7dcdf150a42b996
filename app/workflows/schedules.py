"""The cron schedules the app declares (DESIGN 4, "scheduled-jobs").

`curaway schedules sync` upserts them to QStash by name; each tick reaches
`POST /schedules/<name>` (`app.runtime.cron`) and starts one run of the schedule's workflow,
never a second while one is unfinished (the tick is then skipped and recorded). The embedded
QStash server fires them in development. Times are in `ZONE`, evaluated across daylight-saving
changes by cronsim: a daily job fires once each local day, never skipped, never twice.
`curaway schedules list` shows them; `curaway jobs run NAME` starts one now.
"""

from __future__ import annotations

from app.runtime.schedules import Schedule

ZONE = "Europe/Berlin"

SCHEDULES: list[Schedule] = [
    Schedule("exchange-rate-refresh", "15 6 * * *", "exchange-rate-refresh", {}, timezone=ZONE),
    Schedule("intake-reminders", "5 * * * *", "intake-reminders", {}, timezone=ZONE),
    Schedule("stale-session-cleanup", "30 2 * * *", "stale-session-cleanup", {}, timezone=ZONE),
    Schedule("notification-digest", "0 8 * * *", "notification-digest", {}, timezone=ZONE),
    Schedule("analytics-refresh", "20 * * * *", "analytics-refresh", {}, timezone=ZONE),
]
