"""The R4 backport Subscription profile: parse a Subscription into what the dispatcher needs, refusing (422) what
the exchange does not support.

criteria = a topic canonical; filters in `backport-filter-criteria` extensions on `_criteria`; channel `rest-hook`
with an endpoint, optional `header`s, `payload` application/fhir+json whose `backport-payload-content` is `empty` or
`id-only` (the default) or, when the deployment allows, `full-resource`; `backport-heartbeat-period`,
`backport-timeout` and `backport-max-count` on the channel.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from urllib.parse import parse_qsl

import orjson

from exchange.errors import Issue, Unprocessable
from exchange.egress import url_problem
from exchange.notify.topics import TOPICS, Topic
from exchange.settings import Settings

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport"
EXT = f"{BACKPORT}/StructureDefinition"
FILTER_CRITERIA = f"{EXT}/backport-filter-criteria"
PAYLOAD_CONTENT = f"{EXT}/backport-payload-content"
HEARTBEAT_PERIOD = f"{EXT}/backport-heartbeat-period"
TIMEOUT = f"{EXT}/backport-timeout"
MAX_COUNT = f"{EXT}/backport-max-count"
SUBSCRIPTION_PROFILE = f"{EXT}/backport-subscription"

PAYLOAD_CONTENTS = ("empty", "id-only", "full-resource")
PAYLOAD_TYPES = ("application/fhir+json", "application/json")
_HEADER = re.compile(r"^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([^\r\n]*)$")
RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "x-exchange-signature",
                              "transfer-encoding", "connection"})


@dataclass
class SubscriptionSpec:
    topic: str
    filters: dict[str, list[str]]
    endpoint: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    payload: str = "id-only"
    content_type: str = "application/fhir+json"
    heartbeat: int | None = None
    timeout: float = 10.0
    max_count: int = 1
    end: str | None = None  # Subscription.end (ISO instant, UTC): no events after it; the dispatcher turns it off

    def ended(self, now: datetime) -> bool:
        return self.end is not None and now >= datetime.fromisoformat(self.end)

    @property
    def topic_definition(self) -> Topic:
        return TOPICS[self.topic]

    def dumps(self) -> str:
        return orjson.dumps(asdict(self)).decode()

    @classmethod
    def loads(cls, text: str) -> "SubscriptionSpec":
        data = orjson.loads(text)
        data["headers"] = [tuple(h) for h in data.get("headers", [])]
        return cls(**data)


def _extensions(node: object, url: str) -> list[dict]:
    if not isinstance(node, dict):
        return []
    return [e for e in node.get("extension") or [] if isinstance(e, dict) and e.get("url") == url]


def _one_value(node: object, url: str, key: str, where: str, issues: list[Issue]) -> object:
    found = _extensions(node, url)
    if len(found) > 1:
        issues.append(Issue("error", "business-rule", f"{url.rsplit('/', 1)[-1]} may appear once", [where]))
    if not found:
        return None
    value = found[0].get(key)
    if value is None:
        issues.append(Issue("error", "value", f"{url.rsplit('/', 1)[-1]} needs {key}", [where]))
    return value


def parse_filters(topic: Topic, texts: list[object], issues: list[Issue]) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    for i, text in enumerate(texts):
        where = f"Subscription.criteria.extension[{i}]"
        if not isinstance(text, str) or "?" not in text:
            issues.append(Issue("error", "value", f"backport-filter-criteria must be '{topic.resource_type}?name="
                                                  f"value'", [where]))
            continue
        resource_type, _, query = text.partition("?")
        if resource_type != topic.resource_type:
            issues.append(Issue("error", "business-rule", f"The topic {topic.canonical} filters "
                                                          f"{topic.resource_type} only", [where]))
            continue
        for name, value in parse_qsl(query, keep_blank_values=True):
            spec = topic.filters.get(name)
            if spec is None:
                supported = ", ".join(topic.filters)
                issues.append(Issue("error", "not-supported", f"This topic supports the filters {supported} "
                                                              "(the unknown filter's name is not repeated)", [where]))
                continue
            values = [v.strip() for v in value.split(",") if v.strip()]
            if not values:
                issues.append(Issue("error", "value", f"Filter '{name}' has no value", [where]))
                continue
            filters.setdefault(name, []).extend(values)
    return filters


def parse_subscription(body: dict, settings: Settings) -> SubscriptionSpec:
    """The Subscription as the dispatcher will use it; raises Unprocessable listing every unsupported part."""
    issues: list[Issue] = []
    criteria = body.get("criteria")
    topic = TOPICS.get(criteria) if isinstance(criteria, str) else None
    if topic is None:
        issues.append(Issue("error", "not-supported", f"criteria must be a supported topic canonical "
                                                      f"({', '.join(TOPICS)})", ["Subscription.criteria"]))
        raise Unprocessable(issues[0].diagnostics, issues=issues)
    texts = [e.get("valueString") for e in _extensions(body.get("_criteria"), FILTER_CRITERIA)]
    filters = parse_filters(topic, texts, issues)
    channel = body.get("channel") or {}
    if channel.get("type") != "rest-hook":
        issues.append(Issue("error", "not-supported", "channel.type must be rest-hook",
                            ["Subscription.channel.type"]))
    endpoint = channel.get("endpoint")
    if not isinstance(endpoint, str):
        issues.append(Issue("error", "required", "channel.endpoint is required for rest-hook",
                            ["Subscription.channel.endpoint"]))
    else:
        problem = url_problem(endpoint, settings.notify_allow_loopback)  # DNS is checked by the rule
        if problem:
            issues.append(Issue("error", "business-rule", f"channel.endpoint {problem}",
                                ["Subscription.channel.endpoint"]))
    content_type = channel.get("payload") or "application/fhir+json"
    if content_type not in PAYLOAD_TYPES:
        issues.append(Issue("error", "not-supported", "channel.payload must be application/fhir+json",
                            ["Subscription.channel.payload"]))
    payload = _one_value(channel.get("_payload"), PAYLOAD_CONTENT, "valueCode", "Subscription.channel.payload",
                         issues) or "id-only"
    if payload not in PAYLOAD_CONTENTS:
        issues.append(Issue("error", "not-supported", f"backport-payload-content must be one of "
                                                      f"{', '.join(PAYLOAD_CONTENTS)}",
                            ["Subscription.channel.payload.extension"]))
    elif payload == "full-resource" and not settings.notify_allow_full_resource:
        issues.append(Issue("error", "business-rule", "full-resource payloads are refused: notifications must not "
                                                      "carry survivor data; use id-only and read with your token",
                            ["Subscription.channel.payload.extension"]))
    headers: list[tuple[str, str]] = []
    for i, header in enumerate(channel.get("header") or []):
        m = _HEADER.match(header) if isinstance(header, str) else None
        if not m:
            issues.append(Issue("error", "value", "channel.header must be 'Name: value'",
                                [f"Subscription.channel.header[{i}]"]))
        elif m.group(1).lower() in RESERVED_HEADERS:
            issues.append(Issue("error", "business-rule", f"channel.header may not set {m.group(1)}",
                                [f"Subscription.channel.header[{i}]"]))
        else:
            headers.append((m.group(1), m.group(2)))
    heartbeat = _one_value(channel, HEARTBEAT_PERIOD, "valueUnsignedInt", "Subscription.channel.extension", issues)
    if heartbeat is not None and (not isinstance(heartbeat, int) or heartbeat < settings.notify_min_heartbeat):
        issues.append(Issue("error", "business-rule", f"backport-heartbeat-period must be at least "
                                                      f"{settings.notify_min_heartbeat} seconds",
                            ["Subscription.channel.extension"]))
    timeout = _one_value(channel, TIMEOUT, "valueUnsignedInt", "Subscription.channel.extension", issues)
    if timeout is not None and (not isinstance(timeout, int) or not 1 <= timeout <= settings.notify_max_timeout):
        issues.append(Issue("error", "business-rule", f"backport-timeout must be 1 to "
                                                      f"{settings.notify_max_timeout:g} seconds",
                            ["Subscription.channel.extension"]))
    max_count = _one_value(channel, MAX_COUNT, "valuePositiveInt", "Subscription.channel.extension", issues)
    if max_count is not None and (not isinstance(max_count, int) or not 1 <= max_count <= settings.notify_max_count):
        issues.append(Issue("error", "business-rule", f"backport-max-count must be 1 to {settings.notify_max_count}",
                            ["Subscription.channel.extension"]))
    end = None
    if isinstance(body.get("end"), str):
        from exchange.fhir.dates import parse_fhir_date

        try:
            end = parse_fhir_date(body["end"])[0].astimezone(timezone.utc).replace(tzinfo=None).isoformat()
        except ValueError:
            issues.append(Issue("error", "value", "end must be an instant", ["Subscription.end"]))
    if issues:
        raise Unprocessable(issues[0].diagnostics, issues=issues)
    return SubscriptionSpec(end=end, topic=topic.canonical, filters=filters, endpoint=endpoint, headers=headers,
                            payload=payload, content_type=content_type, heartbeat=heartbeat,
                            timeout=float(timeout or settings.notify_default_timeout), max_count=max_count or 1)
