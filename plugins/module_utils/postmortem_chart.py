# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""The post-mortem's chart: orders submitted vs answered per bucket, as PNG bytes.

matplotlib's object API with the Agg canvas (no pyplot, no display, no global state), used on the
control node only. The same series gives the same bytes (no timestamp in the PNG), so a rerun with
unchanged evidence changes nothing.
"""
from __future__ import annotations

import io
import traceback
from datetime import datetime, timezone

try:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    HAS_MATPLOTLIB = True
    MATPLOTLIB_IMPORT_ERROR = None
except ImportError:
    HAS_MATPLOTLIB = False
    MATPLOTLIB_IMPORT_ERROR = traceback.format_exc()


def render_png(series, title):
    """PNG bytes of the series from postmortem.series(); RuntimeError without matplotlib."""
    if not HAS_MATPLOTLIB:
        raise RuntimeError("matplotlib is not installed on the control node (pip install -r requirements.txt)")
    bucket, start = series["bucket_s"], series["start"]
    step = bucket / 60.0  # one bucket, in minutes: submitted on its left half, answered on its right half
    lefts = [i * step + step * 0.05 for i in range(len(series["submitted"]))]
    rights = [x + step * 0.45 for x in lefts]
    fig = Figure(figsize=(7.5, 3.4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(lefts, series["submitted"], width=step * 0.45, align="edge", label="ORDER_SUBMIT", color="#4c72b0")
    ax.bar(rights, series["answered"], width=step * 0.45, align="edge", label="answered (RESPONSE or ERROR)",
           color="#55a868")
    if any(series["errors"]):
        ax.bar(rights, series["errors"], width=step * 0.45, align="edge", label="of which ORDER_ERROR",
               color="#c44e52")
    for mark in series.get("marks") or []:
        x = (mark["ts"] - start) / 60.0
        ax.axvline(x, color="#555555", linestyle="--", linewidth=1)
        ax.annotate(mark["label"], (x, 0.98), xycoords=("data", "axes fraction"), rotation=90, va="top",
                    ha="right", fontsize=8, color="#555555")
    began = datetime.fromtimestamp(start, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    ax.set_xlabel("minutes since %s UTC (buckets of %g s)" % (began, bucket))
    ax.set_ylabel("orders")
    ax.set_xlim(0, len(lefts) * step)
    ax.set_ylim(0, max(series["submitted"] + series["answered"] + [1]) * 1.15)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=3, frameon=False)
    fig.suptitle(title, fontsize=10, x=0.99, ha="right")
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()
