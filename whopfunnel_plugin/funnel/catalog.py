"""Many funnel files at once: expand directories, validate each, catch clashing ids."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FunnelError, Problem
from .model import Funnel, check_file


@dataclass
class Checked:
    path: str
    funnel: Funnel | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


TEST_SUFFIXES = (".test.yaml", ".test.yml")  # `whopfunnel test` scripts, not funnels


def expand(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; directories become their `*.yaml` and `*.yml` files, sorted (the
    `*.test.yaml` conversation scripts beside them excepted)."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()
                          and not p.name.endswith(TEST_SUFFIXES))
        else:
            out.append(path)
    return out


def check_paths(paths: Iterable[str | Path], **context) -> list[Checked]:
    """Validate every file; a funnel id used by two files is an error on the second."""
    results: list[Checked] = []
    seen: dict[str, str] = {}
    for path in expand(paths):
        funnel, problems = check_file(path, **context)
        result = Checked(str(path), funnel, problems)
        if funnel is not None:
            if funnel.id in seen:
                result.problems.append(Problem(str(path), 1, 1, f"funnel id {funnel.id!r} is "
                                               f"already used by {seen[funnel.id]}"))
                result.funnel = None
            else:
                seen[funnel.id] = str(path)
        results.append(result)
    return results


def load_all(paths: Iterable[str | Path], **context) -> dict[str, Funnel]:
    """Load funnels by id, raising FunnelError with every error of every file."""
    results = check_paths(paths, **context)
    errors = [p for r in results for p in r.errors]
    if errors:
        raise FunnelError(errors)
    return {r.funnel.id: r.funnel for r in results if r.funnel is not None}
