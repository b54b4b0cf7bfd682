"""Finding the pinned OpenAPI documents (`shared/specs/` beside the repository)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

__all__ = ["locate"]


def locate(
    file_name: str,
    *,
    env_var: str,
    what: str,
    explicit: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """``explicit``, else ``$env_var``, else ``shared/specs/<file_name>`` in a parent folder."""
    if explicit is not None:
        candidates = [Path(explicit)]
    elif environ is not None and environ.get(env_var):
        candidates = [Path(environ[env_var])]
    else:
        here = Path(__file__).resolve()
        candidates = [parent / "shared" / "specs" / file_name for parent in here.parents]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{what} was not found (looked at {candidates[0]}"
        f"{' and above' if len(candidates) > 1 else ''}); set {env_var} to its path"
    )
