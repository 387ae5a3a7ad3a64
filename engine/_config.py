"""Load a pydantic config model from a YAML/JSON file with one-line errors naming the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

__all__ = ["load_model_file"]

M = TypeVar("M", bound=BaseModel)


def load_model_file(path: str | Path, model: type[M], error: type[ValueError], what: str) -> M:
    """Read ``path`` into ``model``; any problem raises ``error`` naming the file and field."""
    source = Path(path)
    try:
        data: Any = yaml.safe_load(source.read_text())
    except yaml.YAMLError as exc:
        raise error(f"{source}: not valid YAML/JSON: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise error(f"{source}: expected a mapping of {what} fields")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        if not field:  # a check of the whole mapping: its message names the field itself
            raise error(f"{source}: {message}") from None
        got = json.dumps(err.get("input"), default=str)
        raise error(f"{source}: {field}: {message} (got {got})") from None
