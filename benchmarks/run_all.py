"""Run every benchmark script in this folder (``make bench``) and write the results.

Writes ``benchmarks/results/latest.md`` (the date, the machine and every script's output, the
load tables with their Patter / plain Pipecat ratios), a PNG chart per load figure, the
barge-in timeline picture, and refreshes the headline table in the top-level README.md
(between its ``bench:headline`` markers).
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _charts import load_charts  # noqa: E402
from _load_figures import BOT_NAMES, ratio  # noqa: E402

RESULTS = HERE / "results"
README = HERE.parent / "README.md"
SKIP = {"run_all.py", "pipecat_baseline.py", "profile_shares.py"}
"""Scripts that are not benchmarks: this one, the plain bot, and the reader of py-spy profiles."""
LOAD_JSON = RESULTS / "load.json"
LOAD_LATENCY_JSON = RESULTS / "load-vendor-latency.json"
RUNS: dict[str, list[list[str]]] = {
    "load.py": [["--calls", "1,3,10", "--repeat", "3", "--ceiling", "--soak", "200",
                 "--json", str(LOAD_JSON)],
                ["--calls", "1,6", "--vendor-latency", "--json", str(LOAD_LATENCY_JSON)]],
    "barge_in.py": [["--calls", "2"]],
    "barge_in_timeline.py": [["--png", str(RESULTS / "barge_in_timeline.png")]],
}
"""Each script's runs (its options); a script not listed runs once with its defaults."""
HEADLINE = (
    ("CPU per call (% of a core)", "cpu_pct_per_call", "{:.1f}"),
    ("CPU seconds per call", "cpu_s_per_call", "{:.2f}"),
    ("memory growth per concurrent call (MB)", "growth_mb_per_call", "{:.1f}"),
    ("memory before any call (MB)", "rss_before_mb", "{:.0f}"),
    ("memory the first call loads, once (MB)", "first_call_mb", "{:.0f}"),
    ("end of speech → answer heard, median (ms)", "latency_median_ms", "{:.0f}"),
    ("outbound pacing lateness p99 (ms)", "jitter_p99_ms", "{:.1f}"),
)
HEADLINE_CALLS = 3
MANY_CALLS = 10
"""The headline's second load: CPU and memory per call with this many calls at once."""
MANY_CALLS_KEYS = ("cpu_pct_per_call", "cpu_s_per_call", "growth_mb_per_call")
"""The ``HEADLINE`` figures repeated for ``MANY_CALLS``."""
START, END = "<!-- bench:headline:start -->", "<!-- bench:headline:end -->"


def run(script: Path, args: list[str]) -> tuple[int, str]:
    """Run one script, echoing its output as it comes; (exit code, stdout)."""
    print(f"\n=== {script.name} {' '.join(args)} ===", flush=True)
    process = subprocess.Popen([sys.executable, "-P", str(script), *args],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    return process.wait(), "".join(lines)


def section(script: str, args: list[str], code: int, output: str) -> str:
    """A script's output for latest.md: load.py prints Markdown, the others plain text."""
    title = f"## {script} {' '.join(args).replace(f'{HERE}/', '')}".rstrip()
    status = "" if code == 0 else f"\n**failed with exit code {code}**\n"
    output = output.replace(f"{HERE}/", "")
    body = output if script == "load.py" else f"```text\n{output.rstrip()}\n```"
    return f"{title}\n{status}\n{body.rstrip()}\n"


def headline(data: dict[str, Any], vendor_latency: dict[str, Any] | None = None) -> str:
    """The README's short table: the load figures at ``HEADLINE_CALLS`` concurrent calls, CPU
    and memory at ``MANY_CALLS``, the concurrency ceiling, and the single call's reply with
    vendor latency (from the second load run, when it ran)."""
    pair = _pair(data, HEADLINE_CALLS)
    if len(pair) < 2:
        return ""
    repeats = len((data.get("rounds") or {}).get(str(HEADLINE_CALLS), []))
    of_runs = (f" (of {repeats} runs of each bot, the run with the median ratio of CPU seconds; "
               "every run's ratios in results/latest.md)") if repeats > 1 else ""
    lines = [f"{HEADLINE_CALLS} concurrent calls against the loopback fakes (instant vendors), "
             f"{data['machine']['cores']} cores, pipecat {data['machine']['pipecat']}{of_runs}:",
             "",
             f"| | {BOT_NAMES['patter']} | {BOT_NAMES['pipecat']} | ratio |",
             "|---|---|---|---|"]
    rows = [(label, pair, key, fmt) for label, key, fmt in HEADLINE]
    many = _pair(data, MANY_CALLS)
    if len(many) == 2:
        rows += [(f"{label}, {MANY_CALLS} calls", many, key, fmt) for label, key, fmt in HEADLINE
                 if key in MANY_CALLS_KEYS]
    single = _pair(vendor_latency, 1) if vendor_latency else {}
    if len(single) == 2:
        rows.append(("end of speech → answer heard, vendors with latency, 1 call (ms)", single,
                     "latency_median_ms", "{:.0f}"))
    ceilings = data.get("ceilings") or {}
    if len(ceilings) == 2:
        rows.append(("concurrency ceiling (calls; pacing p99 < 20 ms, no dead air, reply within "
                     "1.2x of one call)", {bot: {"ceiling": n} for bot, n in ceilings.items()},
                     "ceiling", "{}"))
    for label, figures, key, fmt in rows:
        patter, pipecat = figures["patter"][key], figures["pipecat"][key]
        lines.append(f"| {label} | {fmt.format(patter)} | {fmt.format(pipecat)} | "
                     f"{ratio(patter, pipecat)} |")
    return "\n".join(lines)


def _pair(data: dict[str, Any], calls: int) -> dict[str, dict[str, float]]:
    """Each bot's figures at ``calls`` concurrent calls, by bot name."""
    return {r["bot"]: r["figures"] for r in data["loads"] if r["calls"] == calls}


def refresh_readme(table: str) -> None:
    """Replace the README's headline table between its markers (if both are there)."""
    text = README.read_text()
    if START in text and END in text and table:
        head, rest = text.split(START, 1)
        README.write_text(f"{head}{START}\n{table}\n{END}{rest.split(END, 1)[1]}")


def main() -> int:
    """Run each ``benchmarks/*.py`` script, then write the results; non-zero if any failed."""
    RESULTS.mkdir(exist_ok=True)
    started = datetime.datetime.now(datetime.UTC)
    sections, failed = [], 0
    for script in sorted(HERE.glob("*.py")):
        if script.name in SKIP or script.name.startswith("_"):
            continue
        for args in RUNS.get(script.name, [[]]):
            code, output = run(script, args)
            failed += code != 0
            sections.append(section(script.name, args, code, output))
    charts: list[Path] = []
    loads = {}
    for tag, path in (("", LOAD_JSON), ("-vendor-latency", LOAD_LATENCY_JSON)):
        if path.exists():
            loads[tag] = json.loads(path.read_text())
            charts += load_charts(loads[tag], RESULTS, tag=tag)
    machine = loads[""]["machine"] if "" in loads else {}
    table = headline(loads[""], loads.get("-vendor-latency")) if "" in loads else ""
    pictures = "\n".join(f"![{p.stem}]({p.name})" for p in
                         [*charts, RESULTS / "barge_in_timeline.png"] if p.exists())
    (RESULTS / "latest.md").write_text(
        f"# Benchmark results\n\nMeasured {started:%Y-%m-%d %H:%M} UTC with `make bench` on "
        f"{machine.get('cores', '?')} cores, Python {machine.get('python', '?')}, "
        f"pipecat-ai {machine.get('pipecat', '?')} ({machine.get('platform', '?')}). "
        "Compare ratios rather than absolute figures; see benchmarks/README.md for the "
        "method.\n\n" + (f"## Headline\n\n{table}\n\n" if table else "")
        + "\n".join(sections) + f"\n## Charts\n\n{pictures}\n")
    refresh_readme(table)
    print(f"\nresults written to {RESULTS / 'latest.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
