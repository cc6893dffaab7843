"""The exchange log: one BALP-shaped AuditEvent per interaction, hash-chained, signed checkpoints, review.

Modules: `tables` (storage), `builder` (Event/Failure -> AuditEvent), `chain` (canonical form and hashes),
`hook` (the UnitHook that appends to the chain inside the request's transaction), `checkpoint` (signed heads),
`verify` (database and exported segments), `review` (auditor search and export), `rest` (HTTP), `retention`
(purge of closed referrals' content), `cli` (`exchange audit ...`), `wiring` (registration in the Exchange).
"""
