"""What recording metrics costs a proxied tools/call: metrics on against off, side by side in one run.

    python -m bench.metrics_cost [--seconds 8] [--rounds 3] [--instructions]

Two gateways in turn, each 1 worker in front of bench.fast_backend: ``metrics.enabled: false`` and the
default (on). Each is loaded with wrk (c32, one session) and its CPU per call read from /proc, the two
alternating for ``--rounds`` rounds (medians; bench.auth_overhead's method). The difference moves with the
VM, so the recording itself is also timed in one process: exactly what the dispatcher records for one
proxied tools/call (its request, its tool, its backend exchange), into real metric files, with timeit.
``--instructions`` counts each worker's instructions per call under callgrind (bench/instructions.py),
which does not move with the VM's speed. Target of issue 14: at most 3 us of recording per call.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

from only1mcp.workers.dispatch import Dispatcher

from only1mcp.audit.outcome import Outcome
from only1mcp.catalog.view import CatalogView
from only1mcp.metrics import Metrics, RequestMetrics, prepare_dir

from .proxy_overhead import HERE, _spawn, _wait_line
from .side_by_side import arguments, compare, report
from .stats import save

MODES = {"off": "metrics: {enabled: false}\n", "on": ""}


class _Gateway:
    """What Dispatcher.measure reads of a worker's gateway: its recorder and its catalog view."""

    def __init__(self, recorder: RequestMetrics) -> None:
        self.request_metrics = recorder
        self.view = CatalogView({"tools": [{"name": "h_echo", "inputSchema": {"type": "object"}}],
                                 "routes": {"tools": {"h_echo": ["h", "echo"]}}}, 100)


def recording_cost(number: int = 200_000, repeat: int = 5) -> dict[str, float]:
    """Microseconds to record one proxied tools/call: the worker's own Dispatcher.measure (its backend lookup
    included) and the backend exchange _forward_to records, with their clock reads (the best of ``repeat``
    runs of ``number`` calls; the label children are bound by the first call, as in a worker)."""
    with tempfile.TemporaryDirectory(prefix="only1mcp-metrics-bench-") as scratch:
        metrics = Metrics(prepare_dir(Path(scratch)))
        recorder = RequestMetrics(metrics)
        dispatcher = Dispatcher(_Gateway(recorder))  # type: ignore[arg-type]
        params = {"name": "h_echo", "arguments": {"text": "hi"}}
        clock = time.perf_counter

        def one_call() -> None:
            started = clock()
            began = clock()
            if recorder.on:
                recorder.exchange("h", clock() - began)
            dispatcher.measure("tools/call", params, Outcome.OK, started)

        def nothing() -> None:
            pass

        one_call()
        measured = min(timeit.repeat(one_call, number=number, repeat=repeat)) / number * 1e6
        empty = min(timeit.repeat(nothing, number=number, repeat=repeat)) / number * 1e6
        metrics.close()
    return {"recording_us_per_call": round(measured - empty, 3)}


def run(seconds: float, rounds: int, count_instructions: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"seconds": seconds, "rounds": rounds, **recording_cost()}
    backend = _spawn([sys.executable, "-m", "bench.fast_backend", "--port", "0"], "1", stdout=subprocess.PIPE,
                     cwd=HERE.parent)
    try:
        backend_url = _wait_line(backend, r"listening on (\S+)").group(1)
        result["modes"] = compare(MODES, backend_url, seconds, rounds, count_instructions, label="metrics ")
        return result
    finally:
        backend.terminate()
        backend.wait(10)


def main() -> None:
    args = arguments(__doc__)
    result = run(args.seconds, args.rounds, args.instructions)
    path = save("metrics_cost", result)
    print(f"recording alone: {result['recording_us_per_call']:.2f} us per proxied call (target <= 3)")
    report(result["modes"], "metrics ", 3)
    print(f"({path})")


if __name__ == "__main__":
    main()
