"""The `audit` section: one line per client request that reached policy."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .fields import LIVE, _hint, _Strict

__all__ = ["DEFAULT_REDACT", "FACILITIES", "AuditSettings", "Facility"]

# Globs over argument key names, matched without regard to case: credentials a tool may be handed.
DEFAULT_REDACT = ["*password*", "*passwd*", "*token*", "*secret*", "*api_key*", "*api-key*", "*apikey*",
                  "*authorization*"]

Facility = Literal["auth", "authpriv", "daemon", "user", "local0", "local1", "local2", "local3", "local4", "local5",
                   "local6", "local7"]
FACILITIES = {"auth": 4, "authpriv": 10, "daemon": 3, "user": 1, "local0": 16, "local1": 17, "local2": 18,
              "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23}


class AuditSettings(_Strict):
    """The audit trail. Env: ``ONLY1MCP_AUDIT__<KEY>``."""

    enabled: Annotated[bool, LIVE] = Field(
        False,
        description="Write one JSON line per client request that reached policy: to `path`, else to the local "
        "syslog socket `syslog`, else to standard output. Each line is written before the request's answer is "
        "sent.",
    )
    path: Annotated[Path | None, LIVE] = Field(
        None,
        description="File the lines are appended to (created 0600; every worker appends to it). A file moved "
        "away (logrotate without `copytruncate`) is noticed by each worker before its next line and created "
        "again: no SIGHUP is needed to reopen it. The gateway refuses to start when it cannot append to it.",
        json_schema_extra=_hint("write the path of a file in an existing directory, e.g. "
                                "/var/log/only1mcp/audit.log"),
    )
    syslog: Annotated[str | None, LIVE] = Field(
        None,
        description="Path of the local syslog socket to send each line to as one datagram (e.g. /dev/log), "
        "instead of a file.",
        json_schema_extra=_hint("write the path of a local syslog socket, e.g. /dev/log, or use `path`"),
    )
    facility: Annotated[Facility, LIVE] = Field(
        "authpriv", description="Syslog facility of the lines sent to `syslog`.",
    )
    include_arguments: Annotated[bool, LIVE] = Field(
        False,
        description="Record the arguments of tools/call and prompts/get, with the value of every key matching "
        "`redact` (at any depth) replaced by \"***\".",
    )
    redact: Annotated[list[str], LIVE] = Field(
        default_factory=lambda: list(DEFAULT_REDACT),
        description="Glob patterns over argument key names (case-insensitive) whose values are masked. Listing "
        "them replaces the defaults; add the defaults back to keep them.",
        json_schema_extra=_hint("write a list of glob patterns such as \"*token*\""),
    )
    max_bytes: Annotated[int, LIVE] = Field(
        0,
        ge=0,
        le=1024**4,
        description="Rotate `path` when it reaches this size: it becomes `path`.1, older ones shift up to "
        "`backups`, the oldest is deleted. 0 never rotates here (rotate with logrotate instead).",
        json_schema_extra=_hint("write a number of bytes, e.g. 104857600 for 100 MiB, or 0"),
    )
    backups: Annotated[int, LIVE] = Field(
        5,
        ge=1,
        le=10_000,
        description="Rotated files kept by size-based rotation.",
        json_schema_extra=_hint("write a whole number from 1 to 10000"),
    )

    @field_validator("redact")
    @classmethod
    def _patterns(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            if not pattern:
                raise PydanticCustomError("empty_pattern", "redact patterns cannot be empty")
            re.compile(fnmatch.translate(pattern))
        return patterns

    @model_validator(mode="after")
    def _one_destination(self) -> AuditSettings:
        if self.path is not None and self.syslog is not None:
            raise PydanticCustomError(
                "audit_destinations", "audit has both `path` and `syslog`; write the lines to one of them")
        return self
