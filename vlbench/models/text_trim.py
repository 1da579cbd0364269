"""Text encoding without padding work, for text towers where padding cannot change the result.

A CLIP-style text tower (causal attention mask, features pooled at the end-of-text token) gives
the end-of-text token the same value whether the caption is padded to the context length or only
to the longest caption of its batch: under the causal mask no token sees the padding after it.
So such towers are run on token batches trimmed to their longest caption; results agree with
full padding to float tolerance (only matmul shapes change). Towers that attend over padding
(no causal mask, e.g. SigLIP) or pool elsewhere (first/last token, an appended class token) are
never trimmed; anything not recognised is treated as untrimmable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

EXACT_POOLING = ("argmax", "eos")  # both pool at the end-of-text token, which trimming keeps


def trim_padding(tokens: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """[N, C] token ids cut after the last non-pad position of any row (at least one column)."""
    used = (tokens != pad_id).any(dim=0).nonzero()
    length = int(used.max()) + 1 if len(used) else 1
    return tokens[:, :length]


@dataclass
class CausalTextTower:
    """The parts of an open_clip causal text tower, run on trimmed token batches."""

    token_embedding: Any
    positional_embedding: torch.Tensor
    transformer: Any
    attn_mask: torch.Tensor
    ln_final: Any
    text_projection: Any
    pool_type: str
    eos_id: int | None

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """What the tower's own forward computes, for a sequence shorter than its context."""
        from open_clip.transformer import text_global_pool

        length = tokens.shape[1]
        cast_dtype = self.transformer.get_cast_dtype()
        x = self.token_embedding(tokens).to(cast_dtype)
        x = x + self.positional_embedding[:length].to(cast_dtype)
        x = self.transformer(x, attn_mask=self.attn_mask[:length, :length])
        x = self.ln_final(x)
        x = text_global_pool(x, tokens, self.pool_type, eos_token_id=self.eos_id)
        if self.text_projection is None:
            return x
        if isinstance(self.text_projection, torch.nn.Linear):
            return self.text_projection(x)
        return x @ self.text_projection


def openclip_causal_tower(model: Any, tokenizer: Any) -> CausalTextTower | None:
    """The trimmable text tower of an open_clip model, or None when trimming might change results."""
    from open_clip.model import CLIP
    from open_clip.tokenizer import SimpleTokenizer
    from open_clip.transformer import TextTransformer, Transformer

    if not isinstance(tokenizer, SimpleTokenizer):  # pads with 0; end-of-text is the largest id
        return None
    text = getattr(model, "text", None)
    if isinstance(model, CLIP) and type(model).encode_text is CLIP.encode_text:
        source, pool_type, eos_id = model, model.text_pool_type, getattr(model, "text_eos_id", None)
    elif isinstance(text, TextTransformer) and type(text).forward is TextTransformer.forward:
        if text.cls_emb is not None or text.use_pad_mask:
            return None
        source, pool_type, eos_id = text, text.pool_type, getattr(text, "eos_id", None)
    else:
        return None
    if getattr(source, "attn_mask", None) is None or pool_type not in EXACT_POOLING:
        return None  # bidirectional attention over the padding, or pooling elsewhere
    if not isinstance(source.transformer, Transformer):
        return None
    return CausalTextTower(
        source.token_embedding, source.positional_embedding, source.transformer, source.attn_mask,
        source.ln_final, source.text_projection, pool_type, eos_id,
    )
