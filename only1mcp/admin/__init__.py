"""The admin API's documents: what its read endpoints answer (built from the supervisor's status and a
worker's state), the settings with secrets masked, and the files it serves (OpenAPI document, status page)."""
