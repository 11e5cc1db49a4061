"""Read a gateway's /metrics as a test would: the text format parsed into samples, and promtool's verdict."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from .gateway import Gateway

Key = tuple[str, frozenset[tuple[str, str]]]


class Scrape:
    """One /metrics answer: its text, and each sample's value by (name, labels)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[Key, float] = {}
        self.types: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        """A sample's value; 0 when the series does not exist (yet)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}

    def series(self, name: str) -> dict[frozenset[tuple[str, str]], float]:
        return {labels: value for (sample, labels), value in self.samples.items() if sample == name}


async def scrape(gateway: Gateway, path: str = "/metrics") -> Scrape:
    status, body = await gateway.fetch_text(path)
    assert status == 200, f"{path} answered {status}: {body[:300]}"
    return Scrape(body)


def promtool_check(text: str) -> str:
    """What ``promtool check metrics`` says about ``text`` ('' when it finds nothing). Missing promtool is a
    failure, never a skip: ``make test`` installs it (Debian's prometheus package)."""
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is not installed: run `make test` (it installs Debian's prometheus) or " \
                                 "apt-get install prometheus"
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30,
                            check=False)
    return (result.stdout + result.stderr).strip() if result.returncode != 0 or result.stdout or result.stderr \
        else ""


def counters(scrape: Scrape) -> dict[Key, Any]:
    """Every sample that may only grow: counters, and histograms' buckets, counts and sums (durations are
    never negative)."""
    growing = {name for name, kind in scrape.types.items() if kind in ("counter", "histogram")}
    return {key: value for key, value in scrape.samples.items()
            if any(key[0] == name or key[0].startswith(name + "_") for name in growing)}
