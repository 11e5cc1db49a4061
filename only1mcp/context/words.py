"""The words search compares: identifiers split, stop words dropped, synonyms added to queries, stems."""

from __future__ import annotations

import re
from collections.abc import Iterable

import Stemmer

from .synonyms import PHRASES, SYNONYMS

__all__ = ["Words", "split_identifier"]

_CHUNK = re.compile(r"[A-Za-z0-9]+")
# A query that names a file (notes.txt, README.md) is about a file; one with a number is about a number.
_FILE_NAME = re.compile(r"\b[\w-]+\.[A-Za-z][A-Za-z0-9]{0,4}\b")
_NUMBER = re.compile(r"\b\d+\b")
# Shapes of data that say what a task is about, as a file name or a number does: a chat channel (#deploys), an
# emoji code (:tada:), a person's handle (@jenna).
_SHAPES = ((re.compile(r"(?<![\w&])#[A-Za-z][\w-]*"), ("channel",)),
           (re.compile(r"(?<!\w):[a-z0-9_+-]+:(?!\w)"), ("reaction", "emoji")),
           (re.compile(r"(?<![\w.])@[A-Za-z][\w.-]*"), ("user",)))
# A phrase's two words may have this many words between them ("take them all back").
_PHRASE_GAP = 2
# 'single', "double" or “curly” quotes around a text; an apostrophe inside a word (don't) opens none.
_QUOTED = re.compile("(?<!\\w)'[^']*'(?!\\w)|\"[^\"]*\"|\u201c[^\u201d]*\u201d|\u2018[^\u2019]*\u2019")
# camelCase, PascalCase, ACRONYMWord and digits: getPRFiles -> get, PR, Files
_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_STOP = frozenset({"a", "an", "and", "are", "as", "at", "be", "by", "can", "could", "do", "does", "for", "from",
                   "how", "i", "if", "in", "into", "is", "it", "its", "me", "my", "of", "on", "or", "our", "please",
                   "should", "that", "the", "their", "them", "then", "there", "these", "this", "those", "to", "us",
                   "was", "we", "were", "what", "when", "where", "which", "will", "with", "would", "you",
                   "your"})


def _split(text: str) -> Iterable[str]:
    for chunk in _CHUNK.findall(text):
        for part in _PART.findall(chunk):
            yield part.lower()


def split_identifier(text: str) -> list[str]:
    """A name or text as lower-case words: snake_case, camelCase and digits split (get_PRFiles: get, pr, files)."""
    return list(_split(text))


class Words:
    """One stemmer (PyStemmer, Snowball English) and the rules around it; a search index holds its own."""

    __slots__ = ("_stemmer", "stemming", "synonyms")

    def __init__(self, *, stemming: bool = True, synonyms: bool = True) -> None:
        self._stemmer = Stemmer.Stemmer("english")
        self.stemming = stemming
        self.synonyms = synonyms

    def _stems(self, words: list[str]) -> list[str]:
        return self._stemmer.stemWords(words) if self.stemming else words

    def of_text(self, text: str) -> list[str]:
        """The words of a tool's field: split, stop words dropped, stemmed."""
        return self._stems([w for w in _split(text) if w not in _STOP])

    def of_query(self, text: str) -> list[str]:
        """The words of a query: as a field's, plus the synonyms of its task words. Quoted text is the task's
        data (a commit message 'fix typo', a text to find), not words for what to do: it gets no synonyms."""
        words = [w for w in _split(text) if w not in _STOP]
        if self.synonyms:
            words += self._expansions(_QUOTED.sub(" ", text))
            words += ["file"] * bool(_FILE_NAME.search(text)) + ["number"] * bool(_NUMBER.search(text))
            words += [extra for shape, extras in _SHAPES if shape.search(text) for extra in extras]
        return self._stems(words)

    def _expansions(self, task: str) -> list[str]:
        """The tool words for a query's task words (outside quotes) and its two-word phrases."""
        out = [extra for word in _split(task) if word not in _STOP for extra in SYNONYMS.get(word, ())]
        written = [chunk.lower() for chunk in _CHUNK.findall(task)]
        for position, first in enumerate(written):
            for second in written[position + 1:position + 2 + _PHRASE_GAP]:
                out += PHRASES.get(f"{first} {second}", ())
        return out

    @staticmethod
    def named(text: str) -> set[str]:
        """The words of a text as written, lower-cased, not split further ("GitHub" is github, never git):
        to see which backends a query names."""
        return {chunk.lower() for chunk in _CHUNK.findall(text)}
