"""The cron schedules the app declares (DESIGN 4, "scheduled-jobs").

`curaway schedules sync` upserts them to QStash by name; each tick reaches
`POST /schedules/<name>` (`app.runtime.cron`) and starts one run of the schedule's workflow,
never a second while one is unfinished. Example:

    Schedule("exchange-rates", "0 * * * *", workflow="exchange-rate-refresh", payload={},
             timezone="Europe/Berlin")
"""

from __future__ import annotations

from app.runtime.schedules import Schedule

SCHEDULES: list[Schedule] = []
