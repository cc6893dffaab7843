"""The subscription topics the exchange offers, and how a topic's filters match a resource.

A topic is a canonical URL (R4 has no SubscriptionTopic resource; the backport IG puts the canonical in
`Subscription.criteria`). Each topic names the resource type it watches, the interactions that trigger it and the
filters a subscriber may use in `backport-filter-criteria`, each backed by the store's own search parameter.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from exchange.need_to_know.organisations import organisations_of
from exchange.fhir.indexing import index_rows
from exchange.fhir.references import split_reference
from exchange.referral import codes
from exchange.store.repository import Repository

TOPIC_BASE = "http://gbv-exchange.org/fhir/SubscriptionTopic"


@dataclass(frozen=True)
class TopicFilter:
    name: str  # the search parameter (of the topic's resource type) the filter uses
    kind: str  # token | reference | id
    party: bool = False  # names an organisation party of the referral (entitlement is checked on it)
    documentation: str = ""


@dataclass(frozen=True)
class Topic:
    canonical: str
    title: str
    resource_type: str
    triggers: tuple[str, ...]  # create | update
    filters: dict[str, TopicFilter]
    description: str = ""
    # whether a change (the version before, None on a create; the version written) is an event of the topic at
    # all; None: every create or update of its resource type is
    fires: Callable[[Mapping | None, Mapping], bool] | None = None

    def fired_by(self, before: Mapping | None, after: Mapping) -> bool:
        return self.fires is None or self.fires(before, after)


def _filters(*items: TopicFilter) -> dict[str, TopicFilter]:
    return {f.name: f for f in items}


TASK_TOPIC = Topic(
    canonical=f"{TOPIC_BASE}/referral-task",
    title="Referral Task created or changed",
    resource_type="Task",
    triggers=("create", "update"),
    filters=_filters(
        TopicFilter("owner", "reference", party=True, documentation="Organization/[id] the Task is addressed to"),
        TopicFilter("requester", "reference", party=True, documentation="Organization/[id] that sent the referral"),
        TopicFilter("status", "token", documentation="Task.status after the change (e.g. accepted,rejected)"),
        TopicFilter("code", "token", documentation="Task.code (e.g. fulfill)"),
    ),
    description="A referral's Task was created or updated (sent, received, accepted, declined, completed ...).",
)

SERVICE_REQUEST_TOPIC = Topic(
    canonical=f"{TOPIC_BASE}/referral-service-request",
    title="Referral ServiceRequest created or changed",
    resource_type="ServiceRequest",
    triggers=("create", "update"),
    filters=_filters(
        TopicFilter("_id", "id", documentation="The ServiceRequest's id"),
        TopicFilter("requester", "reference", party=True, documentation="Organization/[id] that sent the referral"),
        TopicFilter("performer", "reference", party=True,
                    documentation="Organization/[id] asked to perform the service"),
    ),
    description="A referral's ServiceRequest was created or updated.",
)

def _late_marks(task: Mapping | None) -> set[str]:
    """What makes a Task late news: the overdue mark (businessStatus) and the escalation (the exchange's extension)."""
    if not task:
        return set()
    status = task.get("businessStatus") if isinstance(task.get("businessStatus"), Mapping) else {}
    marks = {"overdue"} if codes.OVERDUE in codes.codes_in(status, codes.REFERRAL_CODES) else set()
    if any(isinstance(e, Mapping) and e.get("url") == codes.EXT_ESCALATION for e in task.get("extension") or []):
        marks.add("escalated")
    return marks


OVERDUE_TOPIC = Topic(
    canonical=f"{TOPIC_BASE}/referral-overdue",
    title="Referral overdue or escalated",
    resource_type="Task",
    triggers=("update",),
    filters=_filters(
        TopicFilter("owner", "reference", party=True, documentation="Organization/[id] the Task is addressed to "
                                                                    "(the provider reminded)"),
        TopicFilter("requester", "reference", party=True, documentation="Organization/[id] that sent the referral "
                                                                        "(told that it is late)"),
    ),
    description="A referral passed the deadline it was waiting for (the exchange marked it overdue: the provider "
                "is reminded, the sender told) or, still late after the deployment's delay, was escalated to the "
                "coordinating organisation. Only these changes, made by the exchange itself.",
    fires=lambda before, after: bool(_late_marks(after) - _late_marks(before)),
)

TOPICS: dict[str, Topic] = {t.canonical: t for t in (TASK_TOPIC, SERVICE_REQUEST_TOPIC, OVERDUE_TOPIC)}
TOPIC_TYPES = frozenset(t.resource_type for t in TOPICS.values())


def topics_for(resource_type: str, interaction: str) -> list[Topic]:
    return [t for t in TOPICS.values() if t.resource_type == resource_type and interaction in t.triggers]


async def filter_matches(repo: Repository, topic: Topic, filters: dict[str, list[str]], resource_id: str,
                         body: dict) -> bool:
    """Whether the resource (as just written) satisfies every filter (AND), each filter any of its values (OR)."""
    rows = None
    for name, values in filters.items():
        spec = topic.filters[name]
        if spec.kind == "id":
            if resource_id not in values:
                return False
            continue
        if rows is None:
            rows = index_rows(topic.resource_type, body)
        mine = [r for r in rows if r.param == name]
        if spec.kind == "token":
            if not any(_token_match(r.system, r.value, v) for r in mine for v in values):
                return False
        else:
            wanted = {split_reference(v) for v in values}
            direct = {(r.system, r.value) for r in mine}
            if wanted & direct:
                continue
            # A HealthcareService or PractitionerRole stands for its organisation.
            refs = [f"{t}/{i}" for t, i in direct if t in ("HealthcareService", "PractitionerRole")]
            orgs = await organisations_of(repo, refs) if refs else set()
            if not any(w and w[0] == "Organization" and w[1] in orgs for w in wanted):
                return False
    return True


def _token_match(system: str | None, code: str | None, wanted: str) -> bool:
    if "|" in wanted:
        want_system, _, want_code = wanted.partition("|")
        return code == want_code and (not want_system or system == want_system)
    return code == wanted
