"""A/B: one bench run in two checkouts, interleaved, so a change is judged within one run of this VM.

    python -m bench.ab --baseline ../base [--rounds 3] proxy_overhead -- --seconds 5 --workers 1 --repeat 1
    python -m bench.ab --baseline ../base instructions

Each round runs the bench in both checkouts (the baseline first in odd rounds, this one first in even
ones), each with its own virtualenv (``<checkout>/.venv``), and reads the results file each wrote. Printed:
the median of each figure per side and this checkout's ratio to the baseline. Results go to
``bench/results/ab_<bench>.json``. Make the baseline checkout with ``git worktree add ../base <commit>``
and ``python -m venv ../base/.venv && ../base/.venv/bin/pip install -e ../base``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .stats import save

HERE = Path(__file__).resolve().parents[1]

Figures = Callable[[dict[str, Any]], dict[str, float]]


def _proxy_overhead(result: dict[str, Any]) -> dict[str, float]:
    figures: dict[str, float] = {}
    for row in result["scenarios"]:
        workers = row["workers"]
        for key, measured in row.items():
            if key == "workers":
                continue
            figures[f"{workers}w {key} cpu_us"] = measured["gateway_cpu_us_per_call"]
            figures[f"{workers}w {key} rps"] = measured["rps"]
            figures[f"{workers}w {key} p50_ms"] = measured["p50_ms"]
    return figures


def _instructions(result: dict[str, Any]) -> dict[str, float]:
    # the worker's count, and the stdio host's when the calls went through it (--backend stdio)
    return {key: value for key, value in result.items() if key.endswith("instructions_per_call")}


FIGURES: dict[str, Figures] = {"proxy_overhead": _proxy_overhead, "instructions": _instructions}


def _run(checkout: Path, bench: str, arguments: list[str], results: str) -> dict[str, float]:
    python = checkout / ".venv" / "bin" / "python"
    subprocess.run([str(python), "-m", f"bench.{bench}", *arguments], cwd=checkout, check=True,
                   stdout=subprocess.DEVNULL)
    result = json.loads((checkout / "bench" / "results" / f"{results}.json").read_text())
    return FIGURES[bench](result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, help="the other checkout (with its own .venv)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--results", help="the results file the bench writes, when not <bench>.json "
                        "(instructions --backend stdio writes instructions_stdio)")
    parser.add_argument("bench", choices=sorted(FIGURES))
    parser.add_argument("arguments", nargs="*", help="passed to the bench (after --)")
    args = parser.parse_args()
    sides = {"baseline": args.baseline.resolve(), "this": HERE}
    runs: dict[str, list[dict[str, float]]] = {"baseline": [], "this": []}
    for round_ in range(args.rounds):
        order = ["baseline", "this"] if round_ % 2 == 0 else ["this", "baseline"]
        for side in order:
            runs[side].append(_run(sides[side], args.bench, args.arguments, args.results or args.bench))
            print(f"round {round_ + 1} {side}: done", file=sys.stderr)
    medians = {side: {key: statistics.median(run[key] for run in results) for key in results[0]}
               for side, results in runs.items()}
    rows = {key: {"baseline": medians["baseline"][key], "this": value,
                  "ratio": round(value / medians["baseline"][key], 4) if medians["baseline"][key] else None}
            for key, value in medians["this"].items() if key in medians["baseline"]}
    path = save(f"ab_{args.results or args.bench}", {"baseline": str(sides["baseline"]), "rounds": args.rounds,
                                     "arguments": args.arguments, "figures": rows})
    for key, row in rows.items():
        print(f"{key:32} baseline {row['baseline']:>12,.3f}  this {row['this']:>12,.3f}  ratio {row['ratio']}")
    print(f"({path})")


if __name__ == "__main__":
    main()
