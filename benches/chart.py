"""Draw fan-out bench results as an SVG bar chart for the README.

Reads the JSONL that benches/compare.sh (or benches/shared-bench.sh) writes
(one run per line), takes
the median of the runs of each (target, scenario), field by field, and draws
two log-scale panels side by side: delivered events/s and p99 latency, one
group of bars per scenario. A bar whose median run lost events says how many.
Standard library only:

    python3 benches/chart.py benches/results/2026-11-29-compare.jsonl benches/results/2026-11-29-compare.svg
"""
import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from xml.sax.saxutils import escape

TARGETS = {  # drawing order and colour: ours highlighted, the peers muted
    "sse-server": "#e8590c",
    "axum-broadcast": "#8fa3b8",
    "raw-floor": "#a5b38f",
    "thread-naive": "#b3a3b8",
    "go-seedlike": "#c8b496",
}
SCENARIOS = ["max", "paced", "large", "idle10k"]
FIELDS = ["delivered_per_s", "lat_p99_us", "loss_pct"]
W, H = 900, 420
TOP, BOTTOM = 90, 360  # y range of both plot areas
FONT = "-apple-system, 'Segoe UI', Helvetica, Arial, sans-serif"
COUNT = [(1e6, "M"), (1e3, "k"), (1, "")]
MICROS = [(1e6, " s"), (1e3, " ms"), (1, " µs")]


def human(v, units):
    """v to 3 significant figures in the largest unit it reaches: 8922494 -> '8.92M'."""
    v = float(f"{v:.3g}")
    scale, unit = next((s, u) for s, u in units if v >= s)
    return f"{v / scale:g}{unit}"


def el(tag, content="", **attrs):
    """An SVG element; attribute names use _ for -, content is raw markup."""
    a = "".join(f' {k.replace("_", "-")}="{round(v, 1) if isinstance(v, float) else v}"'
                for k, v in attrs.items())
    return f"<{tag}{a}>{content}</{tag}>"


def load(path):
    """{(target, scenario): {field: median}} plus each scenario's parameters."""
    runs, params = defaultdict(list), {}
    for line in open(path, encoding="utf-8"):
        if line.strip():
            r = json.loads(line)
            if r["target"] in TARGETS and r["scenario"] in SCENARIOS:
                runs[r["target"], r["scenario"]].append(r)
                params[r["scenario"]] = r
    cells = {k: {f: statistics.median(r[f] for r in rs) for f in FIELDS} | {"runs": len(rs)}
             for k, rs in runs.items()}
    return cells, params


def panel(x0, title, axis, field, units, cells, show_loss):
    """One panel's elements, its plot area starting 76 px right of x0."""
    px, pw = x0 + 76, 360
    vals = [c[field] for c in cells.values()]
    lo = math.floor(math.log10(min(vals)))
    hi = math.ceil(math.log10(max(vals)) + 0.5)  # headroom for the value labels
    y = lambda v: BOTTOM - (math.log10(v) - lo) / (hi - lo) * (BOTTOM - TOP)
    out = [el("text", escape(title), x=px + pw / 2, y=TOP - 14, text_anchor="middle",
              font_size=13, font_weight="bold"),
           el("text", escape(axis), transform=f"translate({x0 + 16},{(TOP + BOTTOM) / 2}) rotate(-90)",
              text_anchor="middle")]
    for k in range(lo, hi + 1):
        gy = y(10 ** k)
        out.append(el("line", x1=px, x2=px + pw, y1=gy, y2=gy, stroke="#444" if k == lo else "#e3e6ea"))
        out.append(el("text", human(10 ** k, units), x=px - 6, y=gy + 4, text_anchor="end", fill="#555"))
    for i, s in enumerate(SCENARIOS):
        gx = px + pw * (i + 0.5) / len(SCENARIOS)
        out.append(el("text", s, x=gx, y=BOTTOM + 17, text_anchor="middle", font_size=12, font_weight="bold"))
        present = [t for t in TARGETS if any(k[0] == t for k in cells)]
        for j, t in enumerate(present):
            if (t, s) not in cells:
                continue
            colour = TARGETS[t]
            c, cx = cells[t, s], gx + (j - (len(present) - 1) / 2) * 25
            out.append(el("rect", x=cx - 10, y=y(c[field]), width=20, height=BOTTOM - y(c[field]), fill=colour))
            label = escape(human(c[field], units))
            if show_loss and c["loss_pct"] > 0:
                label += el("tspan", f" · {c['loss_pct']:.3g}% lost", fill="#c92a2a", font_weight="bold")
            out.append(el("text", label, transform=f"translate({cx + 4},{y(c[field]) - 4}) rotate(-90)"))
    return out


def scenario_note(s, r):
    size = f"{r['B'] // 1024} KiB" if r["B"] >= 1024 else f"{r['B']} B"
    rate = f"{1e6 / r['interval_us']:g} events/s" if r["interval_us"] else "unpaced"
    return f"{s} = {r['N']:,} clients, {size}, {rate}"


def main(src, dst):
    cells, params = load(src)
    runs = "–".join(str(n) for n in sorted({c["runs"] for c in cells.values()}))
    title = f"Fan-out bench, {Path(src).stem}, 2 vCPUs, medians of {runs}"
    body = [el("rect", width=W, height=H, fill="#fff"),
            el("text", escape(title), x=W / 2, y=26, text_anchor="middle", font_size=16, font_weight="bold")]
    present = [t for t in TARGETS if any(k[0] == t for k in cells)]
    lx = W / 2 - sum(36 + 7 * len(t) for t in present) / 2
    for t in present:
        colour = TARGETS[t]
        body.append(el("rect", x=lx, y=41, width=12, height=12, fill=colour))
        body.append(el("text", t, x=lx + 17, y=51, font_size=12,
                       font_weight="bold" if t == "sse-server" else "normal"))
        lx += 36 + 7 * len(t)
    body += panel(0, "Delivered events/s (higher is better)", "events/s, log scale",
                  "delivered_per_s", COUNT, cells, show_loss=True)
    body += panel(W / 2, "p99 latency (lower is better)", "p99 latency, log scale",
                  "lat_p99_us", MICROS, cells, show_loss=False)
    note = " · ".join(scenario_note(s, params[s]) for s in SCENARIOS if s in params)
    body.append(el("text", escape(note), x=W / 2, y=H - 12, text_anchor="middle", fill="#555"))
    svg = el("svg", "\n".join(body), xmlns="http://www.w3.org/2000/svg", width=W, height=H,
             viewBox=f"0 0 {W} {H}", font_family=FONT, font_size=11)
    Path(dst).write_text(svg + "\n", encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(*sys.argv[1:])
