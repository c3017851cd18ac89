"""The retrieval service's checks of a call's input: each bad value is one ``ValueError`` naming it, raised
before any state is touched, so the service (or the actor holding it) keeps serving."""

from __future__ import annotations

import torch


def check_texts(texts) -> list[str]:
    if isinstance(texts, str):
        raise ValueError("texts must be a list of strings, got a single string; wrap it: [text]")
    texts = list(texts) if texts is not None else []
    if not texts:
        raise ValueError("texts is empty; pass at least one generated text")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise ValueError(f"texts must all be strings; item {bad[0]} is {type(texts[bad[0]]).__name__}")
    return texts


def check_targets(targets, batch_size: int, num_items: int) -> torch.Tensor:
    try:
        t = torch.as_tensor(targets)
    except (TypeError, ValueError) as e:
        raise ValueError(f"targets must be a list of item indices: {e}") from e
    if t.dim() != 1 or len(t) != batch_size:
        raise ValueError(f"targets must have one item index per text ({batch_size}), got shape {tuple(t.shape)}")
    if t.is_floating_point() or t.dtype == torch.bool:
        raise ValueError(f"targets must be integer item indices, got {t.dtype}")
    t = t.long().cpu()
    if t.min() < 0 or t.max() >= num_items:
        raise ValueError(f"target index out of range: got {t.min().item()}..{t.max().item()}, items are 0..{num_items - 1}")
    return t


def check_histories(histories, batch_size: int, num_items: int):
    if histories is None:
        return None
    try:
        histories = [[int(i) for i in h] for h in histories]
    except (TypeError, ValueError) as e:
        raise ValueError(f"histories must be lists of integer item indices: {e}") from e
    if len(histories) != batch_size:
        raise ValueError(f"got {len(histories)} histories for {batch_size} texts; pass one (possibly empty) list per text")
    flat = [i for h in histories for i in h]
    if flat and (min(flat) < 0 or max(flat) >= num_items):
        raise ValueError(f"history item index out of range 0..{num_items - 1}: got {min(flat)}..{max(flat)}")
    return histories


def check_k(k, num_items: int, dataset_name: str, name: str = "k") -> int:
    """``k`` as an int in ``1..num_items``."""
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise ValueError(f"{name} must be a positive integer, got {k!r}")
    if k > num_items:
        raise ValueError(f"{name}={k} is more than the {num_items} items of {dataset_name!r}; use {name} <= {num_items}")
    return k
