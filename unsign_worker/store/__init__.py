"""The store: the only code that reads or writes job records, agreement claims, dead letters,
hook records, the breaker, campaign keys and the leases of messages."""
