"""Reading and writing cassette files: readable YAML, atomic writes, clear errors.

vcrpy's own filesystem persister writes in place (a crash leaves half a file), treats an
unreadable cassette as empty (so recording silently overwrites it) and emits long prompts as
escaped one-line strings. This persister keeps vcrpy's cassette format, so plain vcrpy and
pytest-recording still load the files, and changes only those three things.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from vcr.persisters.filesystem import CassetteNotFoundError
from vcr.serialize import deserialize, serialize

from .errors import CassetteError
from .scrubbing import refuse_secrets


class _ReadableDumper(yaml.SafeDumper):
    """Multi-line strings (prompts, SSE streams) as literal blocks, so a review diff reads."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_ReadableDumper.add_representer(str, _represent_str)


class ReadableYamlSerializer:
    """vcrpy serializer interface (``serialize``/``deserialize``) with literal blocks."""

    @staticmethod
    def serialize(cassette_dict: dict[str, Any]) -> str:
        return yaml.dump(
            cassette_dict, Dumper=_ReadableDumper, allow_unicode=True, sort_keys=False, width=100
        )

    @staticmethod
    def deserialize(cassette_string: str) -> Any:
        # libyaml's loader, where present, reads a large cassette about 40x faster.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return yaml.load(cassette_string, Loader=loader)


class AtomicYamlPersister:
    """vcrpy persister: atomic writes, secrets refused, a corrupt file is an error naming it."""

    @classmethod
    def load_cassette(cls, cassette_path: str | os.PathLike[str], serializer: Any) -> Any:
        path = Path(cassette_path)
        if not path.is_file():
            raise CassetteNotFoundError()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise CassetteError(f"crewguard cannot read cassette {path}: {err}") from err
        if not text.strip():
            raise CassetteNotFoundError()
        try:
            return deserialize(text, serializer)
        except yaml.YAMLError as err:
            where = getattr(err, "problem_mark", None)
            at = f" at line {where.line + 1}" if where is not None else ""
            raise CassetteError(
                f"crewguard cannot load cassette {path}: it is not valid YAML{at} "
                f"({getattr(err, 'problem', None) or err}). Restore it from version control, "
                "or delete it and record again with --crewguard-record-mode=once."
            ) from err
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise CassetteError(
                f"crewguard cannot load cassette {path}: it is YAML but not a vcrpy cassette "
                f"(expected 'interactions' with 'request' and 'response' entries; {err!r}). "
                "Restore it from version control, or delete it and record again with "
                "--crewguard-record-mode=once."
            ) from err

    @staticmethod
    def save_cassette(
        cassette_path: str | os.PathLike[str], cassette_dict: dict[str, Any], serializer: Any
    ) -> None:
        path = Path(cassette_path)
        data = serialize(cassette_dict, serializer)
        refuse_secrets(str(path), data)
        atomic_write(path, data)


def atomic_write(path: Path, text: str) -> None:
    """Write beside the target, then rename over it: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
