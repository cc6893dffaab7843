"""The kernel: the running exchange (`exchange.py`: settings, database, keys, and the hooks, rules and access policy
every package registers), the unit of work (`unit.py`: one transaction per request, its events, hooks before commit),
the write-rule interface (`change.py`: the immutable change a rule sees and the follow-ups it returns), the access
policy interface (`access.py`: what the FHIR layer asks before it reads, writes or shows) and who is calling
(`caller.py`: the one FastAPI dependency every authenticated route declares).

It imports nothing above it (store, keys, settings, errors and the request context sit below): every package plugs
its rules in through `install(exchange)`, the access policy and the authenticator included (`exchange.auth.install`).
"""
