"""The digest's picture: the week's funnel and leads per day by source, drawn with matplotlib off screen.

Drawn with the Agg backend through matplotlib's object API (no pyplot, so no global figure state and
no display), in the scheduler's thread, never on a request path. Returns PNG bytes.
"""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bot.reports.digest import WeeklyDigest

#: Calm colours that stay apart for the colour-blind (Okabe–Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")


def render_chart(digest: WeeklyDigest) -> bytes:
    figure = Figure(figsize=(10, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    funnel_axes, daily_axes = figure.subplots(1, 2, width_ratios=(1, 1.3))

    stages, counts = zip(*digest.funnel, strict=True)
    bars = funnel_axes.barh(range(len(stages)), counts, color=PALETTE[0])
    funnel_axes.set_yticks(range(len(stages)), labels=stages)
    funnel_axes.invert_yaxis()
    funnel_axes.bar_label(bars, padding=3)
    funnel_axes.set_title("This week's leads, step by step")
    funnel_axes.spines[["top", "right"]].set_visible(False)
    funnel_axes.set_xlim(0, max(max(counts), 1) * 1.15)

    days = [day for day, _ in digest.leads_per_day]
    sources = sorted({source for _, counts_by_source in digest.leads_per_day for source, _ in counts_by_source})
    bottoms = [0] * len(days)
    for index, source in enumerate(sources):
        heights = [dict(counts_by_source).get(source, 0) for _, counts_by_source in digest.leads_per_day]
        daily_axes.bar(range(len(days)), heights, bottom=bottoms, label=source, color=PALETTE[index % len(PALETTE)])
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    daily_axes.set_xticks(range(len(days)), labels=[day.strftime("%a\n%b %-d") for day in days])
    daily_axes.set_title("Leads per day, by source")
    daily_axes.spines[["top", "right"]].set_visible(False)
    daily_axes.yaxis.get_major_locator().set_params(integer=True)
    if sources:
        daily_axes.legend(frameon=False, fontsize="small")
    else:
        daily_axes.text(0.5, 0.5, "No new leads this week", ha="center", va="center", transform=daily_axes.transAxes)

    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()
