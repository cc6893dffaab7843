"""Checks as data: each names its rule and the rule's source; the runner runs them in order and records results."""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

import httpx


class Failed(AssertionError):
    """The deployment broke the check's rule."""


class Skipped(Exception):
    """The check could not run here (e.g. no peer client given)."""


@dataclass(frozen=True)
class Check:
    id: str
    group: str
    rule: str  # what must hold
    source: str  # where the rule comes from (FHIR page, SMART section, the guide's profile)
    run: Callable[["Kit"], None]


@dataclass
class Result:
    check: Check
    status: str  # pass | fail | skip | error
    detail: str = ""
    seconds: float = 0.0


CHECKS: list[Check] = []


def check(id: str, group: str, rule: str, source: str) -> Callable:  # noqa: A002
    def register(fn: Callable[["Kit"], None]) -> Callable[["Kit"], None]:
        CHECKS.append(Check(id, group, rule, source, fn))
        return fn
    return register


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise Failed(message)


def expect_status(response: httpx.Response, *statuses: int) -> httpx.Response:
    if response.status_code not in statuses:
        body = response.text[:300].replace("\n", " ")
        raise Failed(f"{response.request.method} {response.request.url.path} answered {response.status_code}, "
                     f"expected {' or '.join(map(str, statuses))}: {body}")
    return response


def outcome_rule(response: httpx.Response) -> str:
    """The rule id an OperationOutcome names first (diagnostics start with it, after an entry prefix)."""
    body = response.json()
    diagnostics = body["issue"][0].get("diagnostics", "")
    if diagnostics.startswith("Bundle.entry["):
        diagnostics = diagnostics.split(": ", 1)[-1]
    return diagnostics.split(":")[0]


@dataclass
class Kit:
    base_url: str
    me: object  # session.Party
    peer: object | None = None
    token_url: str = ""
    discovery: dict = field(default_factory=dict)
    notify_endpoint: str | None = None
    receiver: object | None = None
    state: dict = field(default_factory=dict)

    def need_peer(self) -> object:
        if self.peer is None or not getattr(self.peer, "token", ""):
            raise Skipped("needs --peer-client-id and --peer-key (a second organisation)")
        return self.peer


def run(kit: Kit, selected: list[Check] | None = None) -> list[Result]:
    results = []
    for item in selected or CHECKS:
        started = time.perf_counter()
        try:
            item.run(kit)
            result = Result(item, "pass")
        except Failed as exc:
            result = Result(item, "fail", str(exc))
        except Skipped as exc:
            result = Result(item, "skip", str(exc))
        except Exception as exc:  # noqa: BLE001 - a crash of a check is reported, never hidden
            last = traceback.extract_tb(exc.__traceback__)[-1]
            result = Result(item, "error", f"{type(exc).__name__}: {exc} ({last.filename.rsplit('/', 1)[-1]}:"
                                           f"{last.lineno})")
        result.seconds = time.perf_counter() - started
        results.append(result)
    return results
