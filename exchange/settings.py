"""The exchange's configuration: one object, read from EXCHANGE_* environment variables.

Nothing else in the code base reads the environment; everything that can be configured is a field here.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


@dataclass(frozen=True)
class SearchLimits:
    """What one search may ask for (`Settings.search_limits`, read by the search parser): bounds the SQL a request
    can make."""
    or_values: int
    parameters: int
    value_length: int  # at most the width of the index columns: a longer value could never match
    offset: int


class DeadlineRule(BaseModel):
    """One row of the deadline table (`Settings.referral_deadlines`): the first row that matches a referral's
    priority and service type gives its deadlines (`exchange.referral.deadlines`)."""
    priority: Literal["routine", "urgent", "asap", "stat"] | None = None  # None: any priority
    service_type: str | None = None  # a gbv-service-type code, its descendants included; None: any service
    acknowledge_hours: float = Field(gt=0)  # from when the referral is sent
    action_hours: float = Field(gt=0)  # from when it is sent, or from the incident (below)
    from_incident: bool = False  # the action deadline counts from the incident date the referral carries, if any


# IASC inter-agency referral form: a response within 24 hours, 72 hours or two weeks; clinical management of rape
# must start within 72 hours of the incident (post-exposure prophylaxis and emergency contraception).
DEFAULT_DEADLINES = [
    DeadlineRule(service_type="clinical-management-of-rape", acknowledge_hours=1, action_hours=72,
                 from_incident=True),
    DeadlineRule(priority="stat", acknowledge_hours=1, action_hours=24),
    DeadlineRule(priority="asap", acknowledge_hours=4, action_hours=24),
    DeadlineRule(priority="urgent", acknowledge_hours=24, action_hours=72),
    DeadlineRule(acknowledge_hours=72, action_hours=14 * 24),  # routine, or no priority given
]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EXCHANGE_", extra="ignore")

    database_url: str = Field(
        default=f"sqlite+aiosqlite:///{Path.cwd() / 'exchange.db'}",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///file.db or postgresql+asyncpg://user@host/db",
    )
    host: str = "127.0.0.1"
    port: int = 8080
    public_base_url: str | None = Field(
        default=None,
        description="The externally visible base URL (https://exchange.example.org). Defaults to http://host:port.",
    )
    max_body_bytes: int = Field(default=1024 * 1024, description="Requests with a larger body get 413.")
    default_page_size: int = 20
    max_page_size: int = 200
    # Limits on what one request may ask of the exchange (bad or hostile input gets a 4xx, never a 5xx).
    max_json_depth: int = Field(default=64, description="Deepest nesting of objects and arrays in a JSON body.")
    bundle_max_entries: int = Field(default=100, description="Most entries in one batch or transaction Bundle.")
    request_max_resources: int = Field(
        default=1000, description="Most resources one request may return: a search's matches and included "
                                  "resources, and all the searches and reads of one batch or transaction.")
    search_max_or_values: int = Field(default=100, description="Most comma-separated values of one parameter.")
    search_max_parameters: int = Field(default=30, description="Most parameters of one search.")
    search_max_value_length: int = Field(default=255, description="Longest value of one search parameter.")
    search_max_offset: int = Field(default=100_000, description="Largest _offset of a search.")
    search_page_token_seconds: float = Field(
        default=900, description="How long the page token in the links of a search on identifying parameters "
                                 "(name, identifier, birthdate, ...) stays good.")
    migrate_on_start: bool = True
    database_pool_size: int = Field(
        default=40, gt=0, description="Connections each process may have open to PostgreSQL: opened as requests "
                                      "need them and kept for the next ones. A request that finds all of them in "
                                      "use waits for one (database_pool_timeout).")
    database_pool_timeout: float = Field(
        default=30, gt=0, description="Seconds a request waits for a free database connection (all of them in "
                                      "use by other requests) before it is answered 503 with Retry-After.")
    state_dir: Path = Field(
        default=Path.cwd() / "var",
        description="Where the exchange keeps local secrets (its signing key, demo client keys).",
    )
    key_encryption_key: SecretStr | None = Field(
        default=None, description="The key-encryption key (32 bytes, base64url) that seals the exchange's private "
                                  "keys in the database (exchange.custody). Takes precedence over the file.")
    key_encryption_key_file: Path | None = Field(
        default=None, description="A file holding the key-encryption key. Without either, a development key is "
                                  "generated in state_dir, and only when the base URL is plain http on loopback.")
    key_refresh_seconds: float = Field(
        default=60.0, description="How often a process reloads the exchange's keys (to pick up a rotation made by "
                                  "`exchange keys rotate` or another process).")
    audit_checkpoint_interval: float = Field(
        default=3600, description="Seconds between signed checkpoints of the exchange log while serving (0: off).")
    jobs_lease_retry_seconds: float = Field(
        default=5.0, description="How often a server process that does not run the deployment's background jobs "
                                 "checks whether it should take them over (PostgreSQL advisory lock).")
    audit_link_interval: float = Field(
        default=1.0, description="Seconds between the server's passes that link AuditEvents other processes left "
                                 "queued (a request links its own before it answers); 0: off.")
    retention_days: int | None = Field(
        default=None, description="Days after a referral closes before its survivor data is purged "
                                  "(`exchange audit purge`); None keeps it. The audit log is never purged.")

    # --- Operations (exchange.ops): readiness ----------------------------------------------------------------
    ready_timeout_seconds: float = Field(default=2.0, description="A readiness probe slower than this fails.")
    ready_max_notification_backlog: int = Field(
        default=10000, description="Readiness fails when more undelivered events than this wait for active "
                                   "subscriptions (those in error are not counted: one partner's outage is not ours).")
    ready_max_audit_unlinked: int = Field(
        default=10000, description="Readiness fails when more audit records than this wait to be linked into the "
                                   "chain (when the log links in batches).")
    metrics_enabled: bool = Field(default=True, description="Serve Prometheus metrics at /metrics.")
    metrics_allowed_networks: list[str] = Field(
        default=["127.0.0.0/8", "::1/128"], description="Client addresses (CIDR) /metrics answers; others get 403.")
    metrics_multiprocess_dir: Path | None = Field(
        default=None, description="A directory the server processes of one host share for their metrics "
                                  "(prometheus-client multiprocess mode); unset with one process.")
    log_format: Literal["text", "json"] = Field(
        default="text", description="`json`: one JSON object per log line, one access line per request (time, "
                                    "method, route template, status, duration, client id, request id).")
    rate_limit_enabled: bool = Field(default=True, description="Answer 429 past the limits below.")
    rate_limit_token_per_client: str = Field(
        default="300/60", description="Token requests per client (authenticated) per window: 'count/seconds'.")
    rate_limit_token_per_address: str = Field(
        default="3000/60", description="Token requests per source address per window: 'count/seconds'.")
    rate_limit_fhir_per_client: str = Field(
        default="60000/60", description="Bearer-authenticated requests per client per window: 'count/seconds'.")
    rate_limit_redis_url: str | None = Field(
        default=None, description="Count in Redis (redis://127.0.0.1:6379/0) instead of the database.")

    # --- OAuth 2 (SMART Backend Services), see exchange/auth ---------------------------------------------------
    access_token_seconds: int = Field(default=300, description="Lifetime of an access token.")
    assertion_max_seconds: int = Field(
        default=300, description="A client assertion's exp may be at most this far ahead (SMART: 5 minutes).")
    clock_skew_seconds: int = Field(default=5, description="Tolerance for clocks of partners and workers.")
    assertion_algorithms: list[str] = Field(
        default=["RS384", "ES384", "RS256", "ES256", "RS512", "ES512", "PS256", "PS384", "PS512"],
        description="Signature algorithms accepted on client assertions (never none or HMAC).")
    jwks_fetch_timeout_seconds: float = Field(default=5.0, description="Time-out of one JWKS URL fetch.")
    jwks_max_bytes: int = Field(default=64 * 1024, description="Largest JWK Set fetched from a JWKS URL.")
    jwks_cache_seconds: int = Field(default=300, description="How long a fetched JWK Set is reused.")
    jwks_refetch_interval_seconds: float = Field(
        default=5.0, description="At most one refetch per URL in this interval when an unknown kid arrives.")
    jwks_allow_loopback: bool = Field(
        default=False, description="Allow JWKS URLs on loopback (http too): development and tests only.")
    referral_deadlines: list[DeadlineRule] = Field(
        default_factory=lambda: list(DEFAULT_DEADLINES), min_length=1,
        description="The deadline table, first match wins: for a referral's priority (routine | urgent | asap | "
                    "stat, or any) and service type (a gbv-service-type code and its descendants, or any), hours "
                    "to acknowledge and hours to act, from when it is sent (the action from the incident date the "
                    "referral carries when from_incident). JSON, e.g. [{\"priority\": \"stat\", "
                    "\"acknowledge_hours\": 1, \"action_hours\": 24}, {\"acknowledge_hours\": 72, "
                    "\"action_hours\": 336}]; keep a last row without priority and service type.")
    referral_overdue_hours: float = Field(
        default=72.0, description="A referral Task stored before deadlines were set (without "
        "restriction.period.end) still open this long after authoredOn is marked overdue in businessStatus.")
    referral_escalation_hours: float = Field(
        default=24.0, ge=0, description="Hours after a referral was marked overdue before it is escalated to the "
        "coordinating organisation (when one is set).")
    coordinating_organization: str | None = Field(
        default=None, description="The Organization id of the deployment's coordinating organisation (e.g. the GBV "
                                  "sub-cluster lead): overdue referrals are escalated to it, and its `coordinator` "
                                  "clients see escalated referrals without anything about the survivor.")
    referral_sweep_seconds: float = Field(
        default=300.0, description="How often the deployment's referral sweep marks overdue referral Tasks and "
                                   "escalates late ones (0: never; it runs in one server process of the deployment).")
    referral_age_of_consent: int = Field(
        default=18, ge=1, le=21, description="Below this age (from Patient.birthDate when she consented) a "
        "survivor is a child: a caregiver consents for her, or a best-interest determination is recorded, with "
        "her assent (exchange/referral/consent_rules.py).")
    referral_emergency_service_types: list[str] = Field(
        default=["medical-care", "police-protection"], description="gbv-service-type codes (with their "
        "descendants) a referral may be made to without her consent under the emergency exception; [] turns the "
        "exception off.")

    # Statistics (exchange.stats): disclosure control and how fresh they are.
    stats_small_cell_threshold: int = Field(
        default=5, ge=2, description="Counts from 1 to this minus one are shown as \"<5\" (with this number), and "
                                     "enough other cells are hidden that no total gives them away.")
    stats_organization_min_referrals: int = Field(
        default=20, ge=1, description="Organisations that received fewer referrals than this in a report's period "
                                      "are not named in statistics: they are counted together.")
    stats_integrate_seconds: float = Field(
        default=60.0, description="How often the server reads new exchange-log records into the statistics "
                                  "(every statistics request also catches up first); 0: only on request.")

    # Notifications (exchange.notify): delivery of FHIR Subscriptions.
    notify_dispatch_in_server: bool = Field(
        default=True, description="Run the notification dispatcher inside `exchange serve` (the embedded default). "
                                  "Turn off when `exchange worker` processes deliver instead.")
    notify_poll_interval: float = Field(default=1.0, description="Seconds between dispatcher polls when idle.")
    notify_concurrency: int = Field(default=8, description="Subscriptions one dispatcher delivers to at once.")
    notify_lease_seconds: float = Field(
        default=60.0, description="How long a dispatcher's claim on a subscription lasts without renewal; a "
                                  "crashed worker's claim expires after this. Must exceed the delivery time-out.")
    notify_retry_base: float = Field(default=2.0, description="First retry delay in seconds (doubles each time).")
    notify_retry_max_delay: float = Field(default=300.0, description="Longest delay between two retries.")
    notify_retry_period: float = Field(
        default=3600.0, description="Seconds of failed deliveries after which a subscription goes to `error` "
                                    "(its undelivered events are kept and sent when it is re-activated).")
    notify_default_timeout: float = Field(default=10.0, description="Delivery time-out when the Subscription "
                                                                    "has no backport-timeout.")
    notify_max_timeout: float = Field(default=30.0, description="Largest backport-timeout accepted.")
    notify_max_count: int = Field(default=100, description="Largest backport-max-count (events per notification).")
    notify_min_heartbeat: int = Field(default=10, description="Smallest backport-heartbeat-period in seconds.")
    notify_allow_loopback: bool = Field(
        default=False, description="Accept channel endpoints on loopback (also over http): development and tests "
                                   "only. Otherwise the egress policy (exchange.egress) applies in full.")
    notify_allow_full_resource: bool = Field(
        default=False, description="Allow `full-resource` payloads (survivor data in notifications). Off by default: "
                                   "receivers fetch with their own token.")
    notify_events_max: int = Field(default=100, description="Most events one $events call returns.")

    # The web inbox and the auditor's view (exchange.web): staff accounts, sessions, alerts.
    web_session_idle_seconds: int = Field(default=900, description="A web session ends after this long unused.")
    web_session_absolute_seconds: int = Field(
        default=8 * 3600, description="A web session ends this long after sign-in, however busy.")
    web_lockout_failures: int = Field(
        default=5, description="Failed sign-ins in a row after which a staff account is locked.")
    web_lockout_seconds: int = Field(default=900, description="How long a locked staff account stays locked.")
    web_failure_delay_seconds: float = Field(
        default=1.0, description="Delay before answering a failed sign-in, times the failures so far (max 5).")
    web_argon2_time_cost: int = Field(default=3, description="argon2id passes for staff passwords.")
    web_argon2_memory_kib: int = Field(default=65536, description="argon2id memory for staff passwords (KiB).")
    web_exit_url: str = Field(
        default="https://www.google.com/",
        description="Where the quick-exit button leaves to (a neutral page; the session is cleared first).")
    web_default_locale: str = Field(default="en", description="Language of the web pages before one is chosen.")
    web_timezone: str = Field(default="UTC", description="Time zone in which the web pages show dates.")
    smtp_host: str | None = Field(default=None, description="SMTP relay for alert e-mails (unset: no e-mail).")
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = Field(default=True, description="Use STARTTLS with the relay.")
    smtp_timeout_seconds: float = 10.0
    mail_from: str = Field(default="exchange@localhost", description="Sender address of alert e-mails.")
    web_alert_poll_seconds: float = Field(
        default=30.0, description="How often the server sends pending alert e-mails (0: never).")
    cli_traceback: bool = Field(
        default=False, description="Show the traceback of an unexpected failure of an `exchange` command (for "
                                   "developers; otherwise one `error:` line).")

    @field_validator("database_url")
    @classmethod
    def _usable_database(cls, url: str) -> str:
        return usable_database_url(url)

    @field_validator("rate_limit_token_per_client", "rate_limit_token_per_address", "rate_limit_fhir_per_client")
    @classmethod
    def _count_per_seconds(cls, spec: str) -> str:
        count, _, seconds = spec.partition("/")
        if not (count.isdigit() and seconds.isdigit() and int(count) > 0 and int(seconds) > 0):
            raise ValueError("a rate limit is 'count/seconds', both positive integers (e.g. 300/60)")
        return spec

    @field_validator("referral_deadlines")
    @classmethod
    def _catch_all_last(cls, rules: list[DeadlineRule]) -> list[DeadlineRule]:
        last = rules[-1]
        if last.priority is not None or last.service_type is not None:
            raise ValueError("the last deadline rule must match every referral (no priority, no service_type)")
        return rules

    @field_validator("assertion_algorithms")
    @classmethod
    def _asymmetric_only(cls, algorithms: list[str]) -> list[str]:
        refused = [a for a in algorithms if a.lower() == "none" or a.upper().startswith("HS")]
        if refused:
            raise ValueError(f"client assertions must be signed asymmetrically; refused: {', '.join(refused)}")
        return algorithms

    @property
    def base_url(self) -> str:
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        return f"http://{self.host}:{self.port}"

    @property
    def fhir_base_url(self) -> str:
        return f"{self.base_url}/fhir"

    @property
    def search_limits(self) -> SearchLimits:
        return SearchLimits(self.search_max_or_values, self.search_max_parameters, self.search_max_value_length,
                            self.search_max_offset)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


DATABASE_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")


def usable_database_url(url: str) -> str:
    """The URL if the exchange can open it (an async driver it ships with); the message never repeats the URL, which
    may hold a password."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        driver = make_url(url).drivername
    except ArgumentError:
        raise ValueError("not a database URL; give sqlite+aiosqlite:///FILE.db or "
                         "postgresql+asyncpg://USER@HOST/DB") from None
    if driver not in DATABASE_DRIVERS:
        raise ValueError(f"the exchange opens {' or '.join(d + '://' for d in DATABASE_DRIVERS)} URLs, not "
                         f"{driver}:// (e.g. postgresql+asyncpg://USER@HOST/DB)")
    return url


def export_settings(settings: Settings, **overrides) -> None:
    """Hand `settings` to child processes (`serve --workers`): every field that differs from the environment's
    becomes an EXCHANGE_* variable of this process, which the children inherit and read back with `Settings()`."""
    import json
    import os

    exported = settings.model_copy(update=overrides)
    values = exported.model_dump(mode="json")
    for name in values:  # a secret is dumped masked ("**********"): the children need its value
        secret = getattr(exported, name)
        if isinstance(secret, SecretStr):
            values[name] = secret.get_secret_value()
    for name, value in values.items():
        if value is None:
            os.environ.pop(f"EXCHANGE_{name.upper()}", None)
        else:
            os.environ[f"EXCHANGE_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    get_settings.cache_clear()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
