"""The DNS the exchange sees in tests: a table the test may change, injected through the egress policy's resolver
(`exchange.egress`), so no test depends on, or leaks to, the machine's resolver."""
from __future__ import annotations

PUBLIC = "93.184.216.34"  # a public unicast address (never connected to: outbound HTTP is mocked or local)
_PUBLIC_SUFFIXES = (".example.org", ".example.com", ".example.net", ".example")


class FakeDns:
    def __init__(self) -> None:
        self.answers: dict[str, list[list[str]]] = {"localhost": [["127.0.0.1", "::1"]]}
        self.calls: list[str] = []

    def set(self, name: str, *answers: list[str]) -> None:
        """`name` resolves to the first answer, then the next on each later lookup (the last one stays)."""
        self.answers[name.lower().rstrip(".")] = [list(a) for a in answers]

    async def resolve(self, host: str) -> list[str]:
        name = host.lower().rstrip(".")
        self.calls.append(name)
        answers = self.answers.get(name)
        if answers:
            return answers.pop(0) if len(answers) > 1 else list(answers[0])
        if name.endswith(_PUBLIC_SUFFIXES):
            return [PUBLIC]
        raise OSError("name does not resolve")
