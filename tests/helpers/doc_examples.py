"""The Python and shell examples of the docs (README.md, docs/*.md, deployments/README.md), read as a user
reads them: fenced blocks tagged ``python`` or ``bash``.

A block that cannot run offline in a test says so in the document itself, on the line before its fence:
``<!-- no-run: the reason -->``. Every other block is run by tests/test_docs_examples.py. Every ``rl4rec ...``
line of every shell block, run or not, is parsed by the real command line.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("README.md", "docs/*.md", "deployments/README.md")
LANGS = {"python": "python", "bash": "bash", "sh": "bash", "shell": "bash"}
FENCE = re.compile(r"^```(\w*)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
NO_RUN = re.compile(r"<!--\s*no-run:\s*(.*?)\s*-->\s*$")


@dataclass(frozen=True)
class Example:
    path: str   # relative to the repository
    line: int   # the fence's line
    lang: str   # python | bash
    code: str
    no_run: str | None  # the reason it is not run, from the document

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"


def doc_files() -> list[Path]:
    return [p for pattern in DOCS for p in sorted(ROOT.glob(pattern))]


def examples() -> list[Example]:
    found = []
    for path in doc_files():
        text = path.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            lang = LANGS.get(m.group(1))
            if not lang:
                continue  # output samples, diagrams, file trees
            before = [ln for ln in text[:m.start()].splitlines() if ln.strip()]
            marker = NO_RUN.search(before[-1]) if before else None
            found.append(Example(str(path.relative_to(ROOT)), text[:m.start()].count("\n") + 1, lang,
                                 m.group(2), marker.group(1) if marker else None))
    return found


def shell_commands(code: str) -> list[str]:
    """The commands of a shell block: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    commands = []
    for line in joined.splitlines():
        line = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        commands.extend(part.strip() for part in line.split("&&") if part.strip())
    return commands


def rl4rec_argv(command: str) -> list[str] | None:
    """``rl4rec ...``'s arguments (after any ``NAME=value`` prefixes), or None for another program. Written
    alternatives (``[--flag a|b]``) and an elided part (``...``) are dropped: the rest must parse."""
    words = shlex.split(re.sub(r"\[[^\]]*\]", "", command))
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        words.pop(0)
    if not words or words[0] != "rl4rec":
        return None
    return [w for w in words[1:] if w != "..."]
