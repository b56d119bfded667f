"""Loading the sample of CrewAI's recorded cassettes in ``tests/data/crewai_cassettes``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from pytest_crewguard.usage import Exchange, classify_exchange

CASSETTES = Path(__file__).resolve().parent / "data" / "crewai_cassettes"


@dataclass(frozen=True)
class Recorded:
    """One interaction of a vcrpy cassette."""

    file: str
    index: int
    method: str
    uri: str
    request_body: bytes | str | None
    status: int
    headers: dict[str, list[str]]
    body: bytes | str | None

    def classify(self) -> Exchange:
        return classify_exchange(
            self.method, self.uri, self.request_body, self.status, self.headers, self.body
        )


def load(path: Path, root: Path = CASSETTES) -> list[Recorded]:
    """Every interaction of the cassette at ``path``."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader is 10x faster
    with path.open(encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=loader)
    recorded = []
    for index, item in enumerate(data.get("interactions") or []):
        request, response = item["request"], item["response"]
        body = response.get("body")
        # vcrpy stores {"string": ...}; bytes appear as !!binary, which yaml decodes to bytes.
        body = body.get("string") if isinstance(body, dict) else body
        recorded.append(
            Recorded(
                file=path.relative_to(root).as_posix(),
                index=index,
                method=request["method"],
                uri=request["uri"],
                request_body=request.get("body"),
                status=response["status"]["code"],
                headers=response.get("headers") or {},
                body=body,
            )
        )
    return recorded


def recorded(file: str, index: int) -> Recorded:
    """Interaction ``index`` of the sample cassette ``file``."""
    return load(CASSETTES / file)[index]


def sample() -> list[Recorded]:
    """Every interaction of every sample cassette."""
    return [rec for path in sorted(CASSETTES.rglob("*.yaml")) for rec in load(path)]
