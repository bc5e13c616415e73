"""A coder's edit applied to a script: SEARCH/REPLACE blocks, or else one fenced Python block that
replaces the whole file. Anything else, or a block whose SEARCH text is not in the file, is an
`EditError` whose message is what the coder is told when it is asked again (a reflection).

A SEARCH text matches exactly, or else line by line ignoring trailing whitespace (coders often
drop it); each block replaces its first match, in order.
"""
from __future__ import annotations

import re

BLOCK = re.compile(r"<<<<<<< SEARCH\n(.*?)\n?=======\n(.*?)\n?>>>>>>> REPLACE", re.S)
WHOLE_FILE = re.compile(r"```(?:python|py)?\n(.*?)```", re.S)
FORMAT = ("either SEARCH/REPLACE blocks\n<<<<<<< SEARCH\n<exact lines of the current file>\n=======\n"
          "<their replacement>\n>>>>>>> REPLACE\nor the whole new file in one ```python fenced block")


class EditError(ValueError):
    """An edit that cannot be applied; the message says why, for the coder."""


def search_replace(search: str, replace: str) -> str:
    return f"<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE"


def whole_file(script: str) -> str:
    return f"```python\n{script}```"


def apply_edit(script: str, edit: str) -> tuple[str, str]:
    """(the new script, "blocks" or "whole_file"). Raises EditError; an edit that leaves the
    script as it was is one too (nothing would be learned from running it)."""
    blocks = BLOCK.findall(edit)
    if blocks:
        new, mode = script, "blocks"
        for i, (search, replace) in enumerate(blocks, 1):
            new = _replace_first(new, search, replace, i)
    else:
        fenced = WHOLE_FILE.findall(edit)
        if len(fenced) != 1:
            raise EditError(f"the edit is in neither format; use {FORMAT}")
        new, mode = fenced[0], "whole_file"
    if new == script:
        raise EditError("the edit leaves the script unchanged")
    return new, mode


def _replace_first(script: str, search: str, replace: str, index: int) -> str:
    if not search.strip():
        raise EditError(f"block {index}: its SEARCH text is empty")
    if search in script:
        return script.replace(search, replace, 1)
    lines, wanted = script.split("\n"), [s.rstrip() for s in search.split("\n")]
    stripped = [s.rstrip() for s in lines]
    for start in range(len(lines) - len(wanted) + 1):
        if stripped[start:start + len(wanted)] == wanted:
            return "\n".join(lines[:start] + replace.split("\n") + lines[start + len(wanted):])
    raise EditError(f"block {index}: its SEARCH text is not in the file: {search[:200]!r}")
