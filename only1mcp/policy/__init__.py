"""Who may use what: rbac roles compiled into per-role-set permissions that a request checks in a lookup."""
