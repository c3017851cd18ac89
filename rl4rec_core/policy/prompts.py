"""Prompt templates: a user's item history (item texts, oldest first) -> the text the policy continues.

The policy's output is embedded and matched against item texts such as
``"Toy Story (1995). Genres: Animation, Children's, Comedy"``, so the default template asks for exactly
that kind of line: the retrieval reward is highest when the generated text *looks like an item text*,
not like marketing copy. The original's two templates are kept for comparison (``compelling`` is its
customisation example, ``plain`` a bare continuation prompt that suits base models such as GPT-2).

With a tokenizer that has a chat template (SmolLM2-Instruct, Llama-2-chat, ...) the rendered text is
sent as the user message and the assistant header is appended, so the model answers instead of
continuing the question.
"""

from __future__ import annotations

from dataclasses import dataclass

from rl4rec_core.errors import ConfigError


@dataclass(frozen=True)
class PromptTemplate:
    """``text`` is formatted with ``history`` (the rendered item list), ``n`` (how many items it
    shows), ``last`` (the most recent item), ``item_noun`` (``movie``, ``product``, ...) and, in a
    template that shows them, ``candidates`` (the base recommender's top-K, numbered) and ``k``.
    ``history_len``: last-N items shown by default.
    ``numbered``: one item per line with numbers (else comma separated, as the original)."""

    name: str
    text: str
    history_len: int
    numbered: bool
    system: str | None = None  # system message for chat models (formatted with item_noun); None = model default


# the template with the base recommender's candidates (``policy_config`` picks it when ``fusion.base`` is set)
CANDIDATES_TEMPLATE = "candidates"

PROMPT_TEMPLATES: dict[str, PromptTemplate] = {
    t.name: t
    for t in (
        PromptTemplate(
            name="next_item",
            # tried on SmolLM2-135M-Instruct: asking for "the same style: title (year). Genres: genres"
            # made it echo the instruction; this wording gets new titles in the item-text format
            # untrained, SmolLM2 named the *first* listed title; spelling out the most recent one points
            # it at the end of the list, where the signal for the next item is
            text=(
                "{Item_noun}s the user liked, oldest first:\n{history}\n\n"
                "The most recent one is {last}. "
                "Which other {item_noun} will the user like next? Answer with its title, year and genres only."
            ),
            history_len=10,
            numbered=True,
            system="You are a {item_noun} recommender. You answer with one {item_noun} only.",
        ),
        # the original's customisation example (last 5 purchases, "a compelling description")
        PromptTemplate(
            name="compelling",
            text=(
                "User Profile:\n- Recent purchases: {history}\n- Preferences: High-quality products\n\n"
                "Generate a compelling description for the next recommended product:"
            ),
            history_len=5,
            numbered=False,
        ),
        # the fused recipe (docs/recipe.md, "Fusion"): the base recommender's top-K, numbered, and the policy
        # names the one that comes next; the prompt is built from the history and the candidates only
        PromptTemplate(
            name=CANDIDATES_TEMPLATE,
            text=(
                "{Item_noun}s the user liked, oldest first:\n{history}\n\n"
                "Candidates for the next {item_noun}:\n{candidates}\n\n"
                "Which candidate will the user watch next? Answer with its title only."
            ),
            history_len=10,
            numbered=True,
            system="You are a {item_noun} recommender. You answer with one candidate's title only.",
        ),
        # bare continuation: works for base LMs without instruction tuning
        PromptTemplate(
            name="plain",
            text="User history: {history}\nNext {item_noun}:",
            history_len=10,
            numbered=False,
        ),
    )
}

EMPTY_HISTORY = "(no history yet)"


def get_template(template: str | PromptTemplate) -> PromptTemplate:
    """A template by name, a ``PromptTemplate``, or a custom format string containing ``{history}``."""
    if isinstance(template, PromptTemplate):
        return template
    if template in PROMPT_TEMPLATES:
        return PROMPT_TEMPLATES[template]
    if "{history}" in template:
        return PromptTemplate(name="custom", text=template, history_len=10, numbered=False)
    raise ConfigError(
        f"unknown prompt template {template!r}; use one of {', '.join(PROMPT_TEMPLATES)} "
        "or a format string containing {history} (and optionally {n}, {item_noun})"
    )


def shows_candidates(template: str | PromptTemplate) -> bool:
    """Whether the template has a ``{candidates}`` field (the fused recipe's prompt)."""
    return "{candidates}" in get_template(template).text


def render_candidates(candidates: list[str]) -> str:
    """``1. Title`` per line, in the base's order (best first)."""
    return "\n".join(f"{i}. {str(c).strip()}" for i, c in enumerate(candidates, 1))


def render_prompt(
    history: list[str], template: str | PromptTemplate = "next_item", history_len: int | None = None,
    item_noun: str = "item", candidates: list[str] | None = None,
) -> str:
    """The template filled with the last ``history_len`` items of ``history`` (oldest first) and, for a
    template that shows them, ``candidates`` (titles, best first)."""
    tpl = get_template(template)
    wants = shows_candidates(tpl)
    if wants and not candidates:
        raise ConfigError(f"prompt template {tpl.name!r} shows the base recommender's candidates but none were "
                          "given; set --base (sasrec or echo+prior) or pick a template without {candidates}")
    if candidates is not None and not wants:
        raise ConfigError(f"candidates were given but prompt template {tpl.name!r} does not show them; use "
                          f"--prompt_template {CANDIDATES_TEMPLATE} or a format string with {{candidates}}")
    n = tpl.history_len if history_len is None else history_len
    if n < 1:
        raise ConfigError(f"history_len must be ≥ 1, got {n}")
    recent = [str(h).strip() for h in history[-n:]]
    if not recent:
        shown = EMPTY_HISTORY
    elif tpl.numbered:
        shown = "\n".join(f"{i}. {h}" for i, h in enumerate(recent, 1))
    else:
        shown = ", ".join(recent)
    try:
        extra = {"candidates": render_candidates(candidates), "k": len(candidates)} if wants else {}
        return tpl.text.format(history=shown, n=len(recent), last=recent[-1] if recent else EMPTY_HISTORY,
                               item_noun=item_noun, Item_noun=item_noun.capitalize(), **extra)
    except (KeyError, IndexError) as e:
        raise ConfigError(
            f"prompt template {tpl.name!r} uses an unknown field {e}; the fields are {{history}}, {{n}}, "
            f"{{last}}, {{item_noun}}, {{Item_noun}}, and {{candidates}}, {{k}} in a template with candidates"
        ) from None


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def apply_chat(text: str, tokenizer, system: str | None = None) -> str:
    """Wrap ``text`` as the user turn and open the assistant turn (text, not token ids)."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def build_prompts(
    user_histories: list[list[str]],
    tokenizer=None,
    template: str | PromptTemplate = "next_item",
    history_len: int | None = None,
    item_noun: str = "item",
    use_chat_template: bool | None = None,
    system: str | None = None,
    response_prefix: str = "",
    candidates: list[list[str]] | None = None,
) -> list[str]:
    """One prompt per history; ``candidates``: per user, the base recommender's top-K titles (best first), for
    a template that shows them (``candidates``); None for the others. ``use_chat_template=None`` applies the chat template when the tokenizer
    has one; ``True`` without one is an error. ``system`` overrides the template's system message.

    ``response_prefix`` starts the answer for the model (after the assistant header): e.g.
    ``The user will like "`` makes a small model name one title and close the quote, instead of
    repeating the question's header or chatting. The generated text, which is what gets embedded and
    rewarded, is the continuation after the prefix.
    """
    if isinstance(user_histories, (str, bytes)) or any(isinstance(h, (str, bytes)) for h in user_histories):
        raise ConfigError(
            "user_histories must be a list of histories, each a list of item texts, "
            "e.g. [['Product A', 'Product B'], ['Product C']]"
        )
    chat = has_chat_template(tokenizer) if use_chat_template is None else use_chat_template
    if chat and not has_chat_template(tokenizer):
        raise ConfigError(
            "use_chat_template=True but the tokenizer has no chat template; leave it unset (auto) or pick "
            "an instruction-tuned model"
        )
    if candidates is not None and len(candidates) != len(user_histories):
        raise ConfigError(f"got candidates for {len(candidates)} users and {len(user_histories)} histories; "
                          "give one candidate list per user")
    per_user = candidates if candidates is not None else [None] * len(user_histories)
    texts = [render_prompt(h, template, history_len, item_noun, c) for h, c in zip(user_histories, per_user)]
    if chat:
        tpl_system = get_template(template).system
        system = system if system is not None else (tpl_system.format(item_noun=item_noun) if tpl_system else None)
        texts = [apply_chat(t, tokenizer, system) for t in texts]
    elif response_prefix:
        texts = [t + " " for t in texts]  # "Next movie:" + " " + prefix, as a continuation reads
    prefix = response_prefix.replace("{item_noun}", item_noun)  # replace, not format: other braces stay as typed
    return [t + prefix for t in texts]


# what the prompts call an item, by dataset name prefix (ML: movies; Amazon categories: products)
_ITEM_NOUNS = (("ml-", "movie"), ("movielens", "movie"), ("beauty", "product"), ("sports", "product"),
               ("toys", "product"), ("amazon", "product"), ("yelp", "business"))


def item_noun_for(dataset_name: str) -> str:
    """``movie`` for MovieLens, ``product`` for the Amazon sets, ``business`` for Yelp, else ``item``.

    The word matters to small models: SmolLM2-135M names real films when asked for a "movie" and
    rambles about "the item" otherwise.
    """
    from rl4rec_core.dataset_list import parse_names

    nouns = {next((noun for prefix, noun in _ITEM_NOUNS if name.lower().startswith(prefix)), "item")
             for name in parse_names(dataset_name)}
    # several datasets (ml-100k,beauty): their noun when they share one, else the generic word
    return nouns.pop() if len(nouns) == 1 else "item"
