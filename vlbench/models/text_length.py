"""How many tokens a caption needs under a model's tokenizer, and the model's text context: what decides whether
a long caption is truncated (long-caption retrieval records it).

An adapter may answer itself with ``text_token_counts(texts) -> list[int]`` and ``text_context_length``;
otherwise its ``tokenizer`` is read: open_clip's ``SimpleTokenizer`` (its BPE plus the start and end tokens,
``context_length``), open_clip's ``HFTokenizer`` and transformers tokenizers (their ids with special tokens, no
truncation; the adapter's ``max_length`` or the tokenizer's ``context_length``). None when neither is known.
"""

from __future__ import annotations

from typing import Any, Sequence


def token_counts(adapter: Any, texts: Sequence[str]) -> tuple[list[int], int] | None:
    """(tokens each text needs, the context length) for this adapter, or None when it cannot be told."""
    own = getattr(adapter, "text_token_counts", None)
    if callable(own) and getattr(adapter, "text_context_length", None):
        return list(own(texts)), int(adapter.text_context_length)
    tokenizer = getattr(adapter, "tokenizer", None)
    if tokenizer is None:
        return None
    context = getattr(adapter, "max_length", None) or getattr(tokenizer, "context_length", None)
    encode = getattr(tokenizer, "encode", None)
    if getattr(tokenizer, "sot_token_id", None) is not None and callable(encode) and context:  # open_clip SimpleTokenizer
        return [len(encode(text)) + 2 for text in texts], int(context)
    inner = getattr(tokenizer, "tokenizer", tokenizer)  # open_clip's HFTokenizer wraps a transformers tokenizer
    if callable(inner) and hasattr(inner, "model_max_length") and context:
        ids = inner(list(texts), truncation=False, add_special_tokens=True)["input_ids"]
        return [len(row) for row in ids], int(context)
    return None
