"""A RecPolicy checkpoint whose files do not fit the model (crafted, or for another model) is a one-line
``DataError`` before anything is loaded, and the policy is left as it was (issue 22)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from rl4rec_core.errors import DataError
from rl4rec_core.policy.checkpoint import STATE_FILE
from tests.policy.test_rec_policy import HISTORIES, make_policy, trainable

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def saved(tiny_lm, tmp_path):
    """A LoRA policy after one update, saved; and the policy itself."""
    policy = make_policy(tiny_lm)
    prompts = policy.build_prompts(HISTORIES)
    policy.update(prompts, policy.generate(prompts, num_samples=4), torch.arange(8, dtype=torch.float32))
    policy.save(tmp_path / "ckpt")
    return tmp_path / "ckpt", policy


def _adapter(folder, change) -> None:
    path = folder / "adapter_model.safetensors"
    weights = load_file(str(path))
    change(weights)
    save_file(weights, str(path))


def _training_state(folder, change) -> None:
    state = torch.load(folder / STATE_FILE, weights_only=True)
    change(state)
    torch.save(state, folder / STATE_FILE)


def _first(weights):
    return sorted(weights)[0]


CRAFTED = {
    "an adapter of another rank": (lambda f: _adapter(f, lambda w: w.update({_first(w): w[_first(w)][:-1].clone()})),
                                   "does not match this model:"),
    "an adapter with a tensor too many": (lambda f: _adapter(f, lambda w: w.update({"extra.weight": torch.zeros(2)})),
                                          "unexpected ['extra.weight']"),
    "an adapter in int64": (lambda f: _adapter(f, lambda w: w.update({_first(w): w[_first(w)].to(torch.int64)})),
                            "is I64"),
    "an optimizer for other parameters": (
        lambda f: _training_state(f, lambda s: s["optimizer"]["param_groups"][0].update(params=[0])),
        "(optimizer) is damaged or for another model"),
    "optimizer moments of another shape": (
        lambda f: _training_state(f, lambda s: s["optimizer"]["state"][0].update(exp_avg=torch.zeros(3))),
        "(optimizer state 0.exp_avg) is damaged or for another model"),
    "a learning rate of inf": (
        lambda f: _training_state(f, lambda s: s["optimizer"]["param_groups"][0].update(lr=float("inf"))),
        "lr is inf"),
    "a negative update count": (lambda f: _training_state(f, lambda s: s.update(num_updates=-1)), "is not a count"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_a_crafted_policy_checkpoint_is_refused_before_loading(saved, tiny_lm, case):
    folder, _ = saved
    craft, says = CRAFTED[case]
    craft(folder)
    fresh = make_policy(tiny_lm)
    before = trainable(fresh)
    with pytest.raises(DataError) as e:
        fresh.load(folder)
    assert says in str(e.value) and "\n" not in str(e.value), str(e.value)
    for name, p in trainable(fresh).items():  # nothing was applied
        assert torch.equal(p, before[name])
