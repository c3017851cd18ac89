"""Ray's private modules in the package: only the ones Ray 2.60 offers no public API for, each named with why.

A new ``ray._private`` import (or a removed one) fails here until this table and docs/architecture.md ("Ray
internals") say what it is for; they are also why pyproject allows only Ray's bug-fix releases (2.60.x).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rl4rec_core", "tasks", "flows")

# (module, imported name) -> why there is no public API for it in Ray 2.60
ALLOWED = {
    ("ray._private.services", "get_ray_address_from_environment"):
        "the cluster ray.init(address) will join (RAY_ADDRESS, else the one `ray start` recorded), needed before "
        "ray.init to decide loopback binding; Ray exposes no resolver",
    ("ray._private.authentication.authentication_token_setup", "_enable_token_auth"):
        "turns token authentication on after Ray read its config at import; setting RAY_AUTH_MODE alone is "
        "too late then",
    ("ray._private", "ray_constants"):
        "ENABLE_RAY_CLUSTER, read by Ray at each use but fixed at import from RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER",
    ("ray._private", "state"):
        "an actor's and a job's GCS record (state, restarts, death cause, driver pid) without the dashboard; "
        "ray.util.state needs the dashboard, which rl4rec keeps off",
}


def _private_imports() -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ray._private"):
                    for alias in node.names:
                        found.setdefault((node.module, alias.name), []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.name.startswith("ray._private"):
                            found.setdefault((alias.name, ""), []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_only_the_named_ray_internals_are_imported():
    found = _private_imports()
    new = {k: v for k, v in found.items() if k not in ALLOWED}
    assert not new, f"ray._private imports without a reason in ALLOWED (use Ray's public API, or name why not): {new}"
    gone = set(ALLOWED) - set(found)
    assert not gone, f"no longer imported, drop them from ALLOWED and docs/architecture.md: {sorted(gone)}"


def test_the_note_names_each_of_them():
    note = (ROOT / "docs" / "architecture.md").read_text()
    for module, name in ALLOWED:
        assert f"{module}.{name}" in note, f"docs/architecture.md (Ray internals) does not name {module}.{name}"
