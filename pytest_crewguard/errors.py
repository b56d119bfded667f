"""The exceptions crewguard raises. Each message names the thing that is wrong and the fix."""

from __future__ import annotations


class CrewguardError(Exception):
    """Base class: a problem crewguard found, reported as one readable message."""


class ConfigError(CrewguardError):
    """A bad marker argument, option value, price file or schema reference."""


class CassetteError(CrewguardError):
    """A cassette that cannot be read or must not be written (corrupt, holds a secret)."""
