"""The kernel: the running exchange (`exchange.py`: settings, database, keys, and the hooks, rules and access policy
every package registers), the unit of work (`unit.py`: one transaction per request, its events, hooks before commit)
and the write-rule interface (`change.py`: the immutable change a rule sees and the follow-ups it returns).

It imports nothing above it (store, keys, settings, errors and the request context sit below): every package plugs
its rules in through `install(exchange)`, the access policy included (`exchange.auth.install`).
"""
