"""Need to know: who is a party of a referral resource, how its parties change, and what that lets a caller see.

A referral resource (`kinds.REFERRAL_TYPES`) exists for an organisation only while a `resource_party` row names it;
the directory (`kinds.DIRECTORY_TYPES`) is seen by every client. One module per job:
- `kinds.py`: which resource types carry parties and which are the directory's;
- `organisations.py`: the organisations behind a reference (an Organization, a HealthcareService's or a
  PractitionerRole's);
- `parties.py`: the element table (which elements name a resource's parties, which point at what they share), once;
  and whether an organisation is a party of a resource now;
- `assign.py`: the parties a write records (the writer, the sender and receiver, what they point at);
- `claim.py`, `performers.py`: after a claim or a change of a request's performers, parties follow the current
  lists (`rules.py`, the write rule that asks for it);
- `withdrawal.py`: the parties a withdrawn consent removes;
- `visibility.py`: what a caller may see: the store filter.

It sits above the kernel and below every package that asks it (auth's access policy registers its filter and its
write step into the kernel; referral, audit, notify and the web inbox import it), and it holds no role or scope:
whether a client may read or write a type at all is `exchange.auth.access`'s.
"""
