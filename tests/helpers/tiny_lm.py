"""A tiny random causal LM and a word-level tokenizer, built locally (no hub), for policy tests.

``make_tiny_lm(folder)`` saves both into ``folder`` so it can be passed anywhere a model name goes
(``RecPolicy(PolicyConfig.from_fields(policy_model=str(folder)))``). The model is a 2-layer Llama with hidden size 32 (~20 k
parameters): random, so its text is word salad, but every code path of a real LM is exercised.
"""

from __future__ import annotations

from pathlib import Path

SPECIAL = ["[PAD]", "[UNK]", "[BOS]", "[EOS]", "<user>", "<assistant>"]

# enough words for item texts ("Toy Story (1995). Genres: Comedy") and the prompt templates
WORDS = (
    "a user liked these items movies movie oldest first recommend the one item this will like next answer "
    "with single line in same style title year genres no explanation user profile recent purchases "
    "preferences high quality products generate compelling description for recommended product history "
    "toy story heat jumanji casino golden eye comedy drama action thriller romance animation children "
    "great good bad fun dark ( ) . , : ; - ! ? 1 2 3 4 5 6 7 8 9 0 1995 1996 1997 product a b c"
).split()

# minimal chat format: "<user> {content} <assistant>"
CHAT_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}<user> {{ m['content'] }} {% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


def make_tiny_tokenizer(chat: bool = True):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL + sorted(set(WORDS)))}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tk.normalizer = normalizers.Lowercase()
    # digits split one by one, punctuation apart, so years and "(1995)." tokenise without [UNK]
    tk.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation(), pre_tokenizers.Digits(individual_digits=False)]
    )
    tk.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]", eos_token="[EOS]",
        additional_special_tokens=["<user>", "<assistant>"],
    )
    if chat:
        tok.chat_template = CHAT_TEMPLATE
    return tok


def make_tiny_lm(folder: str | Path, chat: bool = True, seed: int = 0) -> str:
    """Save a tiny random Llama + tokenizer into ``folder``; return the folder as a string."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    tok = make_tiny_tokenizer(chat)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        tie_word_embeddings=False,
        # wider than the default 0.02: with hidden size 32 and a final RMSNorm, 0.02 caps every logit near
        # ±0.6, so adapters (which cannot touch the output layer) could barely move the distribution
        initializer_range=0.2,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)
