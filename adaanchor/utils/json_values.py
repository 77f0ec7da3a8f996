"""Reading json files and checking their values, shared by the dataset loader and the evaluator (framework-free)."""

import json
import math
import os
from typing import Any, Union

import numpy as np

__all__ = ["is_finite_number", "is_id", "is_number", "read_json"]


def is_number(value: Any) -> bool:
    """A json (or numpy) number; booleans are not numbers here."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def is_finite_number(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)


def is_id(value: Any) -> bool:
    """An integer id (COCO ids are integers; annotation ids can exceed int32)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def read_json(path: Union[str, os.PathLike], what: str) -> Any:
    """The parsed content of a json file.

    Raises:
        FileNotFoundError: ``"<path>: <what> file not found"``.
        ValueError: ``"<path>: not valid JSON (<reason>)"`` (also for a file that is not UTF-8 text).
    """
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{os.fspath(path)}: {what} file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{os.fspath(path)}: not valid JSON ({e})") from None
