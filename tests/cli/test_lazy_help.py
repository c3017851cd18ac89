"""``rl4rec --help`` imports no sub-command (so none of torch, pandas, Prefect, Ray, MLflow, transformers), and
``rl4rec <cmd> --help`` imports that command's module alone, builds its flags from the settings alone (no heavy
module) and still shows all its flags.

Times are printed by ``benchmarks/bench_help.py`` (or ``python -X importtime -m flows.cli CMD --help``), not
asserted here."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from flows.cli import EXTRA_COMMANDS
from rl4rec_core.cli import COMMANDS, build_parser, chosen_command

HEAVY = ("torch", "pandas", "prefect", "ray", "mlflow", "transformers")
# runs `rl4rec ARGS` in a fresh interpreter and prints the modules it loaded
PROBE = """
import json, sys
from flows.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _loaded(*args: str) -> tuple[str, set[str]]:
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)
    modules = set(json.loads(out.stderr.strip().splitlines()[-1]))
    return out.stdout, modules


def test_top_level_help_lists_every_command_and_imports_nothing_heavy():
    text, modules = _loaded("--help")
    assert all(name in text for name in [*COMMANDS, *EXTRA_COMMANDS]) and {"run", "ab"} <= set(EXTRA_COMMANDS)
    assert {m.split(".")[0] for m in modules} & set(HEAVY) == set()
    assert not any(m.startswith("rl4rec_core.cli.") or m in ("flows.run_cli", "flows.ab_cli") for m in modules)


@pytest.mark.parametrize("command, flag", [("train", "--num_steps"), ("run", "--quick"), ("ab", "--n_bootstrap"),
                                           ("assets", "fetch"), ("data", "prepare"), ("embed", "--embed_batch_size"),
                                           ("tune-retrieval", "--betas"), ("evaluate", "--checkpoint"),
                                           ("serve", "--status"), ("sft", "--sft_steps")])
def test_a_command_help_imports_its_module_alone_with_all_its_flags_and_nothing_heavy(command, flag):
    text, modules = _loaded(command, "--help")
    assert flag in text
    module = {**COMMANDS, **EXTRA_COMMANDS}[command][0]
    others = {m for m, _ in {**COMMANDS, **EXTRA_COMMANDS}.values()} - {module}
    assert module in modules and not (modules & others)
    assert {m.split(".")[0] for m in modules} & set(HEAVY) == set(), f"rl4rec {command} --help imports a heavy module"


@pytest.mark.parametrize("action", ["prepare", "info"])
def test_a_data_action_help_imports_nothing_heavy(action):
    text, modules = _loaded("data", action, "--help")
    assert "--dataset_name" in text and {m.split(".")[0] for m in modules} & set(HEAVY) == set()


def test_the_table_says_what_each_module_registers():
    parser = build_parser(commands={**COMMANDS, **EXTRA_COMMANDS})
    sub = next(a for a in parser._actions if a.dest == "command")
    registered = {a.dest: a.help for a in sub._choices_actions}
    assert registered == {name: text for name, (_, text) in {**COMMANDS, **EXTRA_COMMANDS}.items()}


def test_the_command_is_the_first_word_that_is_not_an_option():
    assert chosen_command(["-v", "train", "--dataset_name", "x"], COMMANDS) == "train"
    assert chosen_command(["--help"], COMMANDS) is None
    assert chosen_command(["bogus"], COMMANDS) is None
