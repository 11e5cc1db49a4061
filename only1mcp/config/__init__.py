"""Config models, loaders for YAML/TOML/JSON, and the client-format importer.

Import what you need from the submodules (``only1mcp.config.loader``, ``.models``): workers only need the
models, and the loaders (ruamel.yaml, pydantic-settings sources) cost them 0.35 s of boot.
"""
