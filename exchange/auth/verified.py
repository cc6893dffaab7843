"""The access tokens this process has verified, so a token's signature is checked once, not on every request.

What is kept is only what cannot change during a token's life: that the exchange signed it (with which key) and
its claims. Each use checks again that the token has not expired (with the same clock-skew leeway as
`tokens.verify`) and that its key still verifies access tokens (`Keys.token_jwks`): an entry never outlives its
token, nor the key that signed it. Whether the token was revoked and whether its client is still usable are not
kept here: the bearer check reads them in the request's own transaction on every request, so a revocation or a
disabled client takes effect on the next request, in every process.

Bounded: at most `max_entries` tokens (least recently used dropped first); a token is about 1 kB, so the default
costs a few MB per process.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable

from exchange.auth import tokens

DEFAULT_MAX_ENTRIES = 4096


class VerifiedTokens:
    def __init__(self, leeway: int, max_entries: int = DEFAULT_MAX_ENTRIES,
                 clock: Callable[[], float] = time.time) -> None:
        self.leeway = leeway
        self.max_entries = max_entries
        self.clock = clock  # tests move it (no sleeping tests)
        self._entries: OrderedDict[str, tuple[tokens.AccessClaims, str]] = OrderedDict()
        self._kids: tuple[dict | None, frozenset[str]] = (None, frozenset())

    def __len__(self) -> int:
        return len(self._entries)

    def _kids_of(self, jwks: dict) -> frozenset[str]:
        """The key ids of the (cached, replaced on reload) JWKS dict: computed once per dict, not per request. The
        dict itself is kept and compared, not its id(): a reload frees the old dict, and the new one may be given
        the same address, which would have kept the old key ids (a retired key's tokens verifying on)."""
        if self._kids[0] is not jwks:
            self._kids = (jwks, frozenset(k.get("kid") for k in jwks.get("keys", [])))
        return self._kids[1]

    def verify(self, token: str, jwks: dict, settings) -> tokens.AccessClaims:  # noqa: ANN001
        """The token's claims, from memory if this process verified it before and it is still valid; else
        `tokens.verify` (which raises InvalidToken) and remember the result."""
        now = self.clock()
        entry = self._entries.get(token)
        if entry is not None:
            claims, kid = entry
            if now <= claims.expires_at + self.leeway and kid in self._kids_of(jwks):
                self._entries.move_to_end(token)
                return claims
            del self._entries[token]  # expired, or its key no longer verifies tokens: verify afresh (and refuse)
        claims = tokens.verify(token, jwks, settings, now=int(now))
        self._entries[token] = (claims, tokens.key_id(token))
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return claims
