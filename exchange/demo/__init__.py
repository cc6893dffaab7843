"""The demo wing: what `make run` (`exchange serve --demo`) seeds, and nothing else imports.

`directory.py` the demo organisations, `story.py` the referral story told through the partners' own interactions,
`clients.py` one demo client per organisation (with keys in state_dir), `staff.py` the web inbox's demo accounts,
`cli.py` `exchange demo ...` and `exchange clients demo`. Built on the same interactions and rules partners use; no
package below imports it.
"""
