"""`RuntimeConfig`: the runtime's settings (the app builds it from `WORKFLOW_*`, `app.main.runtime_config`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    inline_budget_ms: int = 2000
    max_step_output_bytes: int = 65536
    step_timeout_s: float = 300.0
    default_retries: int = 3
    retry_base_delay_s: float = 2.0
    retry_max_delay_s: float = 3600.0
    lease_ttl_s: float = 20.0
    lease_wait_s: float = 2.0
    message_retries: int = 3
    notification_ttl_s: float = 86400.0
    watchdog_interval_s: float = 5.0
    watchdog_stuck_after_s: float = 30.0
