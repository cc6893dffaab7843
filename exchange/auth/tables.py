"""The authorisation server's tables: registered clients, assertion ids already used, revoked access tokens.

Declared on the store's shared `metadata`; the migration `0100_auth` creates them.
"""
from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, Index, PrimaryKeyConstraint, String, Table, Text

from exchange.store.tables import metadata

# One row per partner system. Keys by value (a public JWK Set) or by URL (fetched, cached); never a secret.
auth_client = Table(
    "auth_client", metadata,
    Column("client_id", String(64), primary_key=True),
    Column("organization_id", String(64), nullable=False),
    Column("role", String(16), nullable=False),  # exchange.auth.roles.ROLES
    Column("scopes", Text, nullable=False),  # space-separated SMART v2 scopes the client may be granted
    Column("jwks", Text),  # a public JWK Set as JSON, or NULL when jwks_url is used
    Column("jwks_url", Text),
    Column("label", String(200)),
    Column("active", Boolean, nullable=False),
    # the admin client whose HTTP registration or re-key awaits confirmation (a second admin, or the CLI);
    # NULL once confirmed. A pending client gets no token and its tokens do not work (migration 0101).
    Column("pending_by", String(64)),
    Column("created", DateTime(timezone=False), nullable=False),
    Column("updated", DateTime(timezone=False), nullable=False),
    Index("ix_auth_client_org", "organization_id"),
)

# Client-assertion `jti`s seen within their lifetime: the primary key makes a replay fail in every worker,
# even when two copies arrive at the same moment.
auth_used_jti = Table(
    "auth_used_jti", metadata,
    Column("client_id", String(64), nullable=False),
    Column("jti", String(255), nullable=False),
    Column("expires", DateTime(timezone=False), nullable=False),
    PrimaryKeyConstraint("client_id", "jti"),
    Index("ix_auth_used_jti_expires", "expires"),
)

# Access tokens revoked before they expire (RFC 7009), by the token's own `jti`.
auth_revoked_token = Table(
    "auth_revoked_token", metadata,
    Column("jti", String(64), primary_key=True),
    Column("client_id", String(64), nullable=False),
    Column("expires", DateTime(timezone=False), nullable=False),
    Index("ix_auth_revoked_expires", "expires"),
)
