"""Context economy: what a client's model is sent of the catalog (tool modes, compact schemas, tool search)."""
