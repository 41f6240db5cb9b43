"""Pure rules and values: the playbook, the business, send times, reply rules, templates.

No database, vendor or web code; only the standard library and values handed in.
"""
