"""The kit's report: a rich table on the terminal, JSON, and JUnit XML for CI systems."""
from __future__ import annotations

import json
from xml.etree import ElementTree as ET

from rich.console import Console
from rich.table import Table

from conformance.runner import Result

STYLE = {"pass": "green", "fail": "bold red", "error": "bold red", "skip": "yellow"}


def table(results: list[Result], console: Console | None = None) -> None:
    console = console or Console()
    view = Table(title="GBV referral exchange: partner conformance", show_lines=False)
    for column in ("", "check", "rule", "source", "detail"):
        view.add_column(column, overflow="fold")
    for r in results:
        view.add_row(f"[{STYLE[r.status]}]{r.status.upper()}[/]", r.check.id, r.check.rule, r.check.source,
                     r.detail)
    console.print(view)
    counts = summary(results)
    console.print(f"{counts['pass']} passed, {counts['fail'] + counts['error']} failed, {counts['skip']} skipped")


def summary(results: list[Result]) -> dict[str, int]:
    counts = {"pass": 0, "fail": 0, "error": 0, "skip": 0}
    for r in results:
        counts[r.status] += 1
    return counts


def as_json(results: list[Result], base_url: str) -> str:
    return json.dumps({"base_url": base_url, "summary": summary(results), "checks": [
        {"id": r.check.id, "group": r.check.group, "rule": r.check.rule, "source": r.check.source,
         "status": r.status, "detail": r.detail, "seconds": round(r.seconds, 3)} for r in results]}, indent=2)


def as_junit(results: list[Result]) -> str:
    counts = summary(results)
    suite = ET.Element("testsuite", name="exchange-conformance", tests=str(len(results)),
                       failures=str(counts["fail"]), errors=str(counts["error"]), skipped=str(counts["skip"]),
                       time=f"{sum(r.seconds for r in results):.3f}")
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=f"conformance.{r.check.group}", name=r.check.id,
                             time=f"{r.seconds:.3f}")
        ET.SubElement(case, "properties").extend([
            ET.Element("property", name="rule", value=r.check.rule),
            ET.Element("property", name="source", value=r.check.source)])
        if r.status in ("fail", "error"):
            ET.SubElement(case, "failure" if r.status == "fail" else "error", message=r.detail).text = (
                f"{r.check.rule} ({r.check.source}): {r.detail}")
        elif r.status == "skip":
            ET.SubElement(case, "skipped", message=r.detail)
    return ET.tostring(ET.ElementTree(suite).getroot(), encoding="unicode", xml_declaration=True)
