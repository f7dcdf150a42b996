"""The usage chart: messages per day, stacked by workflow, against the daily quota (inline SVG)."""

from __future__ import annotations

from html import escape

from app.ops.schemas import UsageRead

PALETTE = ("#2e90fa", "#12b76a", "#f79009", "#7a5af8", "#ee46bc", "#06aed4", "#667085")
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 900, 240, 44, 36, 14


def usage_chart(usage: UsageRead) -> str:
    days = usage.days
    peak = max([usage.daily_quota, *(d.messages for d in days), 1])
    plot_h, plot_w = HEIGHT - BOTTOM - TOP, WIDTH - LEFT - 10
    slot = plot_w / max(len(days), 1)
    colours = {w: PALETTE[i % len(PALETTE)] for i, w in enumerate(usage.workflows)}

    def y(value: float) -> float:
        return TOP + plot_h - value / peak * plot_h

    parts = [
        f'<svg role="img" aria-label="QStash messages per day" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="100%" style="max-width:{WIDTH}px;background:#fff;border:1px solid #e4e7ec">'
    ]
    for tick in (0, peak / 2, peak):
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - 10}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#f2f4f7"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:.0f}</text>')
    for i, day in enumerate(days):
        x, base = LEFT + i * slot + slot * 0.15, 0
        for workflow, count in sorted(day.by_workflow.items()):
            top = y(base + count)
            height = y(base) - top
            parts.append(
                f'<rect class="bar" data-day="{day.day}" data-workflow="{escape(workflow)}" x="{x:.1f}" '
                f'y="{top:.1f}" width="{slot * 0.7:.1f}" height="{height:.1f}" fill="{colours[workflow]}">'
                f"<title>{day.day} {escape(workflow)}: {count}</title></rect>"
            )
            base += count
        parts.append(
            f'<text x="{x + slot * 0.35:.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle">{day.day[5:]}</text>'
        )
    quota_y = y(usage.daily_quota)
    parts.append(
        f'<line class="quota" x1="{LEFT}" x2="{WIDTH - 10}" y1="{quota_y:.1f}" y2="{quota_y:.1f}" '
        f'stroke="#d92d20" stroke-dasharray="6 4"/>'
    )
    parts.append(
        f'<text x="{WIDTH - 12}" y="{quota_y - 4:.1f}" text-anchor="end" style="fill:#d92d20">'
        f"quota {usage.daily_quota}/day</text>"
    )
    for i, (workflow, colour) in enumerate(colours.items()):
        lx = LEFT + i * 170
        parts.append(
            f'<rect x="{lx}" y="{HEIGHT - 14}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{lx + 14}" y="{HEIGHT - 5}">{escape(workflow)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
