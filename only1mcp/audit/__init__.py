"""The audit trail: one JSON line per client request that reached policy, written before its answer."""
