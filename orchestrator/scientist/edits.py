"""Applying a coder's edit to a script: SEARCH/REPLACE blocks, each replacing the first
occurrence of its SEARCH text. Anything else is a format error the coder is told about
(it counts as an attempt, so a coder that never conforms cannot loop forever)."""
from __future__ import annotations

import re

BLOCK = re.compile(r"<<<<<<< SEARCH\n(.*?)\n?=======\n(.*?)\n?>>>>>>> REPLACE", re.S)
FORMAT = ("<<<<<<< SEARCH\n<exact lines of the current file>\n=======\n<their replacement>\n>>>>>>> REPLACE")


class EditError(ValueError):
    """An edit that cannot be applied; the message says why, for the coder."""


def search_replace(search: str, replace: str) -> str:
    return f"<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE"


def apply_edit(script: str, edit: str) -> str:
    """The script after the edit's blocks, in order. An empty edit leaves it unchanged."""
    if not edit.strip():
        return script
    blocks = BLOCK.findall(edit)
    if not blocks:
        raise EditError(f"the edit did not conform to the edit format; use one or more blocks of\n{FORMAT}")
    for i, (search, replace) in enumerate(blocks, 1):
        if search not in script:
            raise EditError(f"block {i}: its SEARCH text is not in the file: {search[:200]!r}")
        script = script.replace(search, replace, 1)
    return script
