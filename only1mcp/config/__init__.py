"""Config models, loaders for YAML/TOML/JSON, and the client-format importer."""

from .document import ConfigErrors, Document, Position, Problem
from .loader import load_settings, read_document
from .models import Settings

__all__ = ["ConfigErrors", "Document", "Position", "Problem", "Settings", "load_settings", "read_document"]
