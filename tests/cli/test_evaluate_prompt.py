"""``rl4rec evaluate --policy ...`` and ``--checkpoint`` generate with the prompt settings and the token budget
of training: the same settings model builds both policies (before, evaluation built ``RecPolicy(model)`` with
32 tokens and the noun "item" while training used 24 tokens and the dataset's noun)."""

from __future__ import annotations

import dataclasses
import json

from flows.cli import EXTRA_COMMANDS
from rl4rec_core.cli import COMMANDS, build_parser, main
from rl4rec_core.cli.evaluate import SETTINGS, policies
from rl4rec_core.cli.flags import groups_from_args
from rl4rec_core.cli.train import settings_from_args
from rl4rec_core.data import load_dataset
from rl4rec_core.embeddings.files import generate_item_embeddings
from rl4rec_core.training.trainer import build_trainer
from tests.helpers.tiny_recdata import WordVectorEncoder, make_service, write_tiny_dataset

PROMPT = ["--history_len", "3", "--response_prefix", "The user will like"]


def _parse(*words: str):
    return build_parser(commands={**COMMANDS, **EXTRA_COMMANDS}).parse_args(list(words))


def _trained_policy(name: str, dataset, *flags: str):
    """The policy `rl4rec train` builds for these flags (build_trainer, the one way to a trainer)."""
    settings = settings_from_args(_parse("train", "--dataset_name", name, *flags))
    return build_trainer(settings, make_service(dataset, WordVectorEncoder()), dataset, progress=False).policy


def _evaluated_policy(*words: str):
    args = _parse("evaluate", *words)
    ds = load_dataset(args.dataset_name)
    (label, policy), *rest = policies(args, groups_from_args(args, SETTINGS), ds)
    return label, policy


def test_an_untrained_policy_is_evaluated_as_training_builds_it(rl4rec_dirs, tiny_lm, one_thread):
    name = write_tiny_dataset(rl4rec_dirs["data"], name="ml-tiny")  # a MovieLens name: the noun is "movie"
    ds = load_dataset(name)
    trained = _trained_policy(name, ds, "--policy_model", tiny_lm, *PROMPT)
    label, evaluated = _evaluated_policy("--dataset_name", name, "--policy_model", tiny_lm, *PROMPT)
    assert label == f"policy:{tiny_lm.rsplit('/', 1)[-1]}"
    assert evaluated.config.policy == trained.config.policy  # every prompt and sampling setting
    p = evaluated.config.policy
    assert (p.max_new_tokens, p.item_noun, p.history_len) == (24, "movie", 3)
    histories = [["Toy Story (1995)", "Heat (1995)"]]
    assert evaluated.build_prompts(histories) == trained.build_prompts(histories)


def test_a_checkpoint_is_evaluated_with_the_settings_it_was_trained_with(rl4rec_dirs, tmp_path, tiny_lm, one_thread,
                                                                         capsys):
    name = write_tiny_dataset(rl4rec_dirs["data"], name="ml-tiny")
    ds = load_dataset(name)
    generate_item_embeddings(ds, backend="sentence-transformers")
    run = tmp_path / "run"
    flags = ["--policy_model", tiny_lm, "--max_new_tokens", "5", *PROMPT, "--num_steps", "1", "--batch_size", "4",
             "--group_size", "2"]
    assert main(["train", "--dataset_name", name, *flags, "--service", "local", "--no_progress",
                 "--checkpoint_dir", str(run)]) == 0
    trained = _trained_policy(name, ds, *flags)
    label, evaluated = _evaluated_policy("--dataset_name", name, "--checkpoint", str(run / "checkpoint_final"))
    assert label == "policy:checkpoint_final"
    # the same settings, but the device the evaluation asked for
    assert evaluated.config.policy == trained.config.policy and evaluated.config.policy.max_new_tokens == 5
    assert dataclasses.replace(evaluated.config, device="cpu") == dataclasses.replace(trained.config, device="cpu")

    # the whole command, end to end: the checkpoint, its start and the baselines on the same 4 users
    capsys.readouterr()
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--dataset_name", name, "--checkpoint", str(run / "checkpoint_final"),
                 "--eval_split", "valid", "--eval_users", "4", "--baselines", "popularity",
                 "--emb_backend", "sentence-transformers", "--output", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert set(saved["results"]) == {"policy:checkpoint_final", "untrained", "popularity"}
    assert {len(r) for r in saved["ranks"].values()} == {4}


def test_policy_flags_with_a_checkpoint_are_refused(rl4rec_dirs, capsys):
    name = write_tiny_dataset(rl4rec_dirs["data"], name="ml-tiny")
    assert main(["evaluate", "--dataset_name", name, "--checkpoint", "x", "--max_new_tokens", "8"]) == 2
    assert "own saved settings; drop --max_new_tokens" in capsys.readouterr().err
