"""Reading bench results and summing them up (python3 stdlib only).

A result file (raw.jsonl) holds one JSON object per runner run: the runner's own line (system,
scenario, count, jobs_per_s, ...) plus a "run" object added by bench/compare:
  group   "main" for the scenario x system grid, "concurrency" or "nodes" for the sweeps
  round   1-based round number
  x       the swept value (sweeps only)
  status  "ok", "skipped" (runner said unsupported) or "failed"
  args, wall_s, runner_cpu_s, pg_cpu_s, error
Medians are taken over the "ok" runs of one (group, scenario, system, x).
"""
import json
import statistics

# The figure each scenario is judged by, and whether higher is better.
HEADLINE = {
    "jobs": ("jobs_per_s", True), "chain": ("steps_per_s", True),
    "insert": ("inserts_per_s", True), "latency": ("p50_ms", False),
    "signal": ("p50_ms", False), "fanout": ("jobs_per_s", True),
    "large": ("jobs_per_s", True),
}
# Columns shown when any run of the scenario has them; cpu_per_1k and pg_cpu_s are derived.
METRICS = ["jobs_per_s", "steps_per_s", "inserts_per_s", "p50_ms", "p90_ms", "p99_ms",
           "max_ms", "cpu_s", "cpu_per_1k", "pg_cpu_s", "rss_mb"]
NAMES = {"cpu_per_1k": "cpu_s/1k", "pg_cpu_s": "pg_cpu_s*"}
PER_JOB = {"jobs", "large", "insert"}  # scenarios whose count is a count of jobs


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def value(rec, metric):
    """A metric of one record, derived ones included; None when absent."""
    if metric == "cpu_per_1k":
        cpu, count = rec.get("cpu_s"), rec.get("count")
        return cpu / count * 1000 if cpu is not None and count else None
    if metric == "pg_cpu_s":
        return rec.get("run", {}).get("pg_cpu_s")
    v = rec.get(metric)
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def select(records, group="main", scenario=None, system=None, x=None, status="ok"):
    out = []
    for r in records:
        run = r.get("run", {})
        if run.get("group", "main") != group or (status and run.get("status") != status):
            continue
        if scenario and r.get("scenario") != scenario or system and r.get("system") != system:
            continue
        if x is not None and run.get("x") != x:
            continue
        out.append(r)
    return out


def median(records, metric):
    vals = [v for v in (value(r, metric) for r in records) if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v):
    if v is None:
        return "–"
    if float(v).is_integer():
        return f"{int(v):,}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}" if abs(v) >= 1 else f"{v:.3f}"


def ordered(values, order):
    """values in the order of `order`, unknown ones last."""
    rank = {name: i for i, name in enumerate(order)}
    return sorted(set(values), key=lambda v: (rank.get(v, len(order)), str(v)))


def scenario_table(records, scenario, systems_order):
    """Markdown table of one scenario: medians per system and ours/system for the headline."""
    runs = select(records, scenario=scenario)
    head, higher = HEADLINE.get(scenario, ("jobs_per_s", True))
    cols = [m for m in METRICS if any(value(r, m) is not None for r in runs)
            and (m != "cpu_per_1k" or scenario in PER_JOB)
            and (m != "steps_per_s" or scenario == "chain")]
    systems = ordered([r["system"] for r in runs], systems_order)
    ours = median(select(runs, system="ours"), head)
    better = "higher" if higher else "lower"
    lines = [f"### {scenario} — headline {head} ({better} is better)", "",
             "| system | runs | count | conc. | " + " | ".join(NAMES.get(c, c) for c in cols)
             + f" | {head} min–max | ours ÷ system |",
             "|---" * (len(cols) + 6) + "|"]
    for system in systems:
        mine = select(runs, system=system)
        vals = [value(r, head) for r in mine if value(r, head) is not None]
        peer = median(mine, head)
        ratio = f"{ours / peer:.2f}×" if ours is not None and peer and system != "ours" else ""
        spread = f"{fmt(min(vals))}–{fmt(max(vals))}" if vals else "–"
        lines.append(f"| {system} | {len(mine)} | {fmt(median(mine, 'count'))} | "
                     f"{fmt(median(mine, 'concurrency'))} | "
                     + " | ".join(fmt(median(mine, c)) for c in cols)
                     + f" | {spread} | {ratio} |")
    return "\n".join(lines)


def sweep_table(records, group):
    runs = select(records, group=group)
    if not runs:
        return ""
    lines = [f"### ours, jobs vs {group}", "",
             f"| {group} | runs | count | jobs_per_s | min–max | cpu_s/1k | p99_ms |",
             "|---|---|---|---|---|---|---|"]
    for x in sorted({r["run"]["x"] for r in runs}):
        mine = select(runs, group=group, x=x)
        vals = [value(r, "jobs_per_s") for r in mine if value(r, "jobs_per_s") is not None]
        spread = f"{fmt(min(vals))}–{fmt(max(vals))}" if vals else "–"
        lines.append(f"| {x} | {len(mine)} | {fmt(median(mine, 'count'))} | "
                     f"{fmt(median(mine, 'jobs_per_s'))} | {spread} | "
                     f"{fmt(median(mine, 'cpu_per_1k'))} | {fmt(median(mine, 'p99_ms'))} |")
    return "\n".join(lines)


# ---- targets -------------------------------------------------------------------------------
# A figure is (scenario, system, metric) in the main grid, or (group, x, metric) for a sweep.

def figure(records, ref):
    if ref[0] in ("concurrency", "nodes"):
        group, x, metric = ref
        return median(select(records, group=group, x=x), metric)
    scenario, system, metric = ref
    return median(select(records, scenario=scenario, system=system), metric)


def ratio_target(label, mine, theirs, at_least):
    def check(records):
        a, b = figure(records, mine), figure(records, theirs)
        if a is None or b is None or not b:
            return None, "no data"
        return a / b >= at_least, f"{a / b:.2f}× ({fmt(a)} vs {fmt(b)} {mine[2]})"
    return label, check


def limit_target(label, mine, at_most):
    def check(records):
        a = figure(records, mine)
        if a is None:
            return None, "no data"
        return a <= at_most, f"{fmt(a)} {mine[2]}"
    return label, check


def below_target(label, mine, theirs):
    def check(records):
        a, b = figure(records, mine), figure(records, theirs)
        if a is None or b is None:
            return None, "no data"
        return a < b, f"{fmt(a)} vs {fmt(b)} {mine[2]}"
    return label, check


GW = "graphile-worker"
TARGETS = [
    ratio_target("jobs ≥ 1.5× graphile-worker jobs/s",
                 ("jobs", "ours", "jobs_per_s"), ("jobs", GW, "jobs_per_s"), 1.5),
    ratio_target("jobs ≥ 0.75× bare-sql jobs/s",
                 ("jobs", "ours", "jobs_per_s"), ("jobs", "bare-sql", "jobs_per_s"), 0.75),
    ratio_target("chain ≥ 30× dbos steps/s",
                 ("chain", "ours", "steps_per_s"), ("chain", "dbos", "steps_per_s"), 30),
    ratio_target("chain ≥ 1.5× graphile-worker steps/s",
                 ("chain", "ours", "steps_per_s"), ("chain", GW, "steps_per_s"), 1.5),
    ratio_target("insert ≥ 1.2× graphile-worker inserts/s",
                 ("insert", "ours", "inserts_per_s"), ("insert", GW, "inserts_per_s"), 1.2),
    limit_target("latency at 1000/s: p50 ≤ 1 ms", ("latency", "ours", "p50_ms"), 1),
    limit_target("latency at 1000/s: p99 ≤ 5 ms", ("latency", "ours", "p99_ms"), 5),
    below_target("latency p50 below graphile-worker's",
                 ("latency", "ours", "p50_ms"), ("latency", GW, "p50_ms")),
    below_target("latency p99 below graphile-worker's",
                 ("latency", "ours", "p99_ms"), ("latency", GW, "p99_ms")),
    limit_target("signal p50 ≤ 2 ms", ("signal", "ours", "p50_ms"), 2),
    ratio_target("large ≥ 0.8× jobs jobs/s (≤ 20% slower)",
                 ("large", "ours", "jobs_per_s"), ("jobs", "ours", "jobs_per_s"), 0.8),
    ratio_target("2 nodes ≥ 0.9× 1 node (total jobs/s)",
                 ("nodes", 2, "jobs_per_s"), ("nodes", 1, "jobs_per_s"), 0.9),
    ratio_target("4 nodes ≥ 0.9× 1 node (total jobs/s)",
                 ("nodes", 4, "jobs_per_s"), ("nodes", 1, "jobs_per_s"), 0.9),
    below_target("jobs: CPU s per 1000 jobs below graphile-worker's",
                 ("jobs", "ours", "cpu_per_1k"), ("jobs", GW, "cpu_per_1k")),
]


def targets_table(records):
    lines = ["| target | measured | result |", "|---|---|---|"]
    for label, check in TARGETS:
        ok, text = check(records)
        result = "n/a" if ok is None else ("met" if ok else "**missed**")
        lines.append(f"| {label} | {text} | {result} |")
    return "\n".join(lines)


def problems(records, quick=False):
    """Lines about skipped and failed runs, and cells whose runs were too short or long to
    trust (outside 2-20 s; --quick runs are short on purpose)."""
    out, timings = [], {}
    for r in records:
        run = r.get("run", {})
        cell = f"{run.get('group', 'main')} {r.get('scenario')}/{r.get('system')}" + \
            (f" x={run['x']}" if "x" in run else "")
        if run.get("status") == "skipped":  # the same every round: said once below
            out.append(f"- skipped: {cell}: {run.get('error')}")
        elif run.get("status") == "failed":
            out.append(f"- failed: {cell} round {run.get('round')}: {run.get('error', '')}")
        elif r.get("elapsed_s") is not None:
            timings.setdefault(cell, []).append(r["elapsed_s"])
    for cell, times in timings.items():
        odd = [t for t in times if not 2 <= t <= 20]
        if odd and not quick:
            out.append(f"- note: {cell} timed {', '.join(f'{t:.1f}' for t in odd)} s in "
                       f"{len(odd)} of {len(times)} runs (aim: 3–15 s; adjust PLAN)")
    return "\n".join(dict.fromkeys(out))


def render(records, meta, systems_order):
    parts = ["# gen_durable benchmark comparison", ""]
    parts += [f"- {k}: {v}" for k, v in meta.get("machine", {}).items()]
    parts += ["", "Postgres settings that differ from the defaults: " + ", ".join(
        f"`{k}={v}`" for k, v in meta.get("settings", {}).items()), "",
        f"Durability: {meta.get('durability', '?')}. "
        f"Command: `{meta.get('command', '')}`; rounds: {meta.get('rounds', '?')}, "
        f"in {meta.get('total_s', '?')} s; "
        "medians over the rounds. `cpu_s` is the runner process's own CPU; `cpu_s/1k` is that "
        "per 1000 jobs (count); `pg_cpu_s*` is all Postgres server CPU over the whole run, "
        "untimed setup included.", ""]
    scenarios = ordered([r["scenario"] for r in select(records, status=None)],
                        list(HEADLINE))
    for scenario in scenarios:
        if select(records, scenario=scenario):
            parts += [scenario_table(records, scenario, systems_order), ""]
    for group in ("concurrency", "nodes"):
        table = sweep_table(records, group)
        if table:
            parts += [table, ""]
    parts += ["## Targets", "", targets_table(records), ""]
    notes = problems(records, meta.get("quick"))
    if notes:
        parts += ["## Skipped, failed and out-of-range runs", "", notes, ""]
    return "\n".join(parts)
