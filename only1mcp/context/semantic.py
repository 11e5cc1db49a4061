"""The embedding model behind ``proxy.lazy.rerank: semantic``: WordLlama's default model, from its own wheel.

wordllama is an optional extra (``pip install 'only1mcp[semantic]'``) and is imported only when a lazy view
with the switch on builds its first index, so a worker that does not re-rank never loads it. Nothing is ever
downloaded: the weights and the tokenizer are read from the installed package, and a missing file is an error.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = ["INSTALL", "MODULE", "SemanticModel", "installed"]

MODULE = "wordllama"
INSTALL = "pip install 'only1mcp[semantic]'"
# The default model the wheel ships (wordllama/weights/, wordllama/tokenizers/): 256 dimensions, 16 MB.
_CONFIG = "l2_supercat"
_DIM = 256
_FILES = (f"weights/{_CONFIG}_{_DIM}.safetensors", f"tokenizers/{_CONFIG}_tokenizer_config.json")


def installed() -> bool:
    """Whether wordllama can be imported here, without importing it (a module set to None counts as absent,
    as Python's import does)."""
    if MODULE in sys.modules:
        return sys.modules[MODULE] is not None
    return importlib.util.find_spec(MODULE) is not None


class SemanticModel:
    """Text to unit vectors. Loads the model on first use and keeps it: one per process, shared by every view."""

    __slots__ = ("_model",)

    def __init__(self) -> None:
        self._model: Any = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def encode(self, texts: list[str]) -> np.ndarray:
        """One L2-normalised float32 row per text (a text with no known word gives a zero row)."""
        if self._model is None:
            self._model = _load()
        return self._model.embed(texts, norm=True)


def _load() -> Any:
    # wordllama's inference module calls logging.basicConfig(level=INFO) on import: the root logger is put back
    # as it was, so the gateway's own logging setup decides what is printed.
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    # Imported here: wordllama brings tokenizers, safetensors and requests, needed only with the switch on.
    import wordllama  # noqa: PLC0415
    import wordllama.inference  # noqa: PLC0415

    root.handlers[:] = handlers
    root.setLevel(level)

    home = Path(wordllama.__file__).parent
    missing = [name for name in _FILES if not (home / name).is_file()]
    if missing:
        raise FileNotFoundError(f"wordllama at {home} lacks its bundled model ({', '.join(missing)}); reinstall "
                                f"it with `{INSTALL}` (the gateway never downloads a model)")
    # cache_dir is the package itself: wordllama looks for the tokenizer under <cache_dir>/tokenizers/ (its
    # own project-root lookup misses it), and disable_download makes any file not found there an error.
    return wordllama.WordLlama.load(_CONFIG, cache_dir=home, dim=_DIM, disable_download=True)
