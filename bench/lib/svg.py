"""A small hand-written SVG line chart (python3 stdlib only; no plotting library needed).

line_chart() draws one or more series over categorical x values (equally spaced, so powers of
two such as 1, 2, 4, ... 32 sit evenly), a y axis from zero with round ticks, each point's value
printed above it, and optional horizontal dashed reference lines labeled at the right.
"""
import math
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 760, 440
LEFT, RIGHT, TOP, BOTTOM = 78, 190, 56, 62  # margins around the plot area
SERIES_COLORS = ["#1f5fa8", "#c0392b", "#2e8b57"]
REF_COLORS = ["#7f8c8d", "#d35400", "#8e44ad", "#16a085", "#b7950b"]
FONT = "font-family='DejaVu Sans, Helvetica, Arial, sans-serif'"
HALO = "stroke='white' stroke-width='3' paint-order='stroke'"  # keeps labels readable on lines


def short(v):
    """45000 -> 45k, 1250000 -> 1.25M, 12.5 -> 12.5"""
    for size, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(v) >= size:
            return f"{v / size:.3g}{suffix}"
    return f"{v:.3g}"


def nice_ticks(top, count=5):
    """Round tick values from 0 to at least `top`."""
    if top <= 0:
        top = 1
    raw = top / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return [i * step for i in range(int(math.ceil(top / step - 1e-9)) + 1)]


def text(x, y, s, size=12, anchor="middle", color="#222", extra=""):
    return (f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}' text-anchor='{anchor}' "
            f"fill='{color}' {FONT} {extra}>{escape(str(s))}</text>")


def line_chart(title, subtitle, xlabel, ylabel, xs, series, refs=()):
    """Returns SVG text. series: [(name, {x: y})]; refs: [(name, y)] drawn as dashed lines."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    values = [y for _, pts in series for y in pts.values()] + [y for _, y in refs]
    ticks = nice_ticks(max(values, default=1) * 1.08)
    ymax = ticks[-1]

    def px(i):
        return LEFT + plot_w * (i + 0.5) / len(xs)

    def py(y):
        return TOP + plot_h * (1 - y / ymax)

    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{HEIGHT}' "
           f"viewBox='0 0 {WIDTH} {HEIGHT}'>",
           f"<rect width='{WIDTH}' height='{HEIGHT}' fill='white'/>",
           text(LEFT, 24, title, 16, "start", extra="font-weight='bold'"),
           text(LEFT, 42, subtitle, 11, "start", "#555")]
    for t in ticks:  # horizontal grid and y labels
        out.append(f"<line x1='{LEFT}' x2='{LEFT + plot_w}' y1='{py(t):.1f}' y2='{py(t):.1f}' "
                   f"stroke='{'#444' if t == 0 else '#e3e3e3'}' stroke-width='1'/>")
        out.append(text(LEFT - 8, py(t) + 4, short(t), 11, "end", "#444"))
    for i, x in enumerate(xs):  # x ticks and labels
        out.append(f"<line x1='{px(i):.1f}' x2='{px(i):.1f}' y1='{TOP + plot_h}' "
                   f"y2='{TOP + plot_h + 5}' stroke='#444'/>")
        out.append(text(px(i), TOP + plot_h + 19, x, 11, color="#444"))
    out.append(f"<line x1='{LEFT}' x2='{LEFT}' y1='{TOP}' y2='{TOP + plot_h}' stroke='#444'/>")
    out.append(text(LEFT + plot_w / 2, HEIGHT - 16, xlabel, 12))
    out.append(text(18, TOP + plot_h / 2, ylabel, 12,
                    extra=f"transform='rotate(-90 18 {TOP + plot_h / 2:.1f})'"))

    # Reference lines, labels at the right; labels pushed apart when lines are close.
    label_y = []
    for k, (name, y) in enumerate(sorted(refs, key=lambda r: -r[1])):
        color = REF_COLORS[k % len(REF_COLORS)]
        out.append(f"<line x1='{LEFT}' x2='{LEFT + plot_w}' y1='{py(y):.1f}' y2='{py(y):.1f}' "
                   f"stroke='{color}' stroke-width='1.5' stroke-dasharray='6 4'/>")
        ly = max(py(y) + 4, label_y[-1] + 14 if label_y else 0)
        label_y.append(ly)
        out.append(text(LEFT + plot_w + 8, ly, f"{name} {short(y)}", 11, "start", color))

    for k, (name, pts) in enumerate(series):
        color = SERIES_COLORS[k % len(SERIES_COLORS)]
        coords = [(px(i), py(pts[x]), pts[x]) for i, x in enumerate(xs) if x in pts]
        out.append(f"<polyline fill='none' stroke='{color}' stroke-width='2.5' points='"
                   + " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy, _ in coords) + "'/>")
        for cx, cy, v in coords:
            out.append(f"<circle cx='{cx:.1f}' cy='{cy:.1f}' r='4' fill='{color}'/>")
            out.append(text(cx, cy - 9, short(v), 11, color=color, extra=HALO))
        # Legend: top right, above the plot area.
        out.append(f"<line x1='{WIDTH - 150}' x2='{WIDTH - 130}' y1='{20 + 16 * k}' "
                   f"y2='{20 + 16 * k}' stroke='{color}' stroke-width='2.5'/>")
        out.append(text(WIDTH - 124, 24 + 16 * k, name, 11, "start", color))
    out.append("</svg>")
    return "\n".join(out) + "\n"
