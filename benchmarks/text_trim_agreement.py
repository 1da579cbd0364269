"""Do trimmed text batches give the same SugarCrepe decisions as full padding?

Encodes every caption of the real SugarCrepe files (``../shared/data/sugarcrepe/*.json``; captions
only, no images needed) with an open_clip text tower twice: as vlbench does by default (sorted by
length, each batch trimmed to its longest caption) and padded to the full context length. Each
item gets a fixed random unit "image" embedding; its margin is image . positive - image . negative.
A flip is an item whose decision (margin > 0) differs between the two paths; flips with
|margin| > 1e-5 would mean trimming changes results beyond float tolerance. Also prints the largest
embedding difference and the time of both paths.

    python benchmarks/text_trim_agreement.py --model openclip:ViT-S-32@random
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
# the shared annotation folder beside the checkout (or beside the folder holding it)
SUGARCREPE = next((p for p in (REPO.parent / "shared" / "data" / "sugarcrepe", REPO.parents[1] / "shared" / "data" / "sugarcrepe") if p.is_dir()), REPO.parent / "shared" / "data" / "sugarcrepe")


def encode(encoder_model, captions: list[str], trim: bool, batch_size: int) -> tuple[torch.Tensor, float]:
    from vlbench.encoding.encoder import Encoder

    encoder_model.allow_text_trimming = trim
    encoder = Encoder(encoder_model, text_batch_size=batch_size)
    started = time.perf_counter()
    embeddings = encoder.texts(captions)
    return embeddings, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="openclip:ViT-S-32@random")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--limit", type=int, default=None, help="only the first N items of each subset")
    parser.add_argument("--tolerance", type=float, default=1e-5)
    args = parser.parse_args()

    from vlbench.spec.catalog import Catalog
    from vlbench.models import MODEL_ADAPTERS

    items = []
    for path in sorted(SUGARCREPE.glob("*.json")):
        values = list(json.loads(path.read_text()).values())[: args.limit]
        items += [(path.stem, v["caption"], v["negative_caption"]) for v in values]
    captions = list(dict.fromkeys(c for _, pos, neg in items for c in (pos, neg)))
    spec = Catalog.load().resolve_model(args.model)
    model = MODEL_ADAPTERS.get(spec.adapter)(spec, device="cpu")
    if not model.trims_text_padding:
        raise SystemExit(f"{args.model}: its text tower is not trimmed (not a causal tower pooled at end-of-text)")
    trimmed, trimmed_s = encode(model, captions, True, args.batch_size)
    full, full_s = encode(model, captions, False, args.batch_size)
    row = {c: i for i, c in enumerate(captions)}
    generator = torch.Generator().manual_seed(0)
    images = torch.nn.functional.normalize(torch.randn(len(items), trimmed.shape[1], generator=generator), dim=-1)
    pos = torch.tensor([row[p] for _, p, _ in items])
    neg = torch.tensor([row[n] for _, _, n in items])

    def margins(emb: torch.Tensor) -> torch.Tensor:
        return (images * emb[pos]).sum(-1) - (images * emb[neg]).sum(-1)

    m_trim, m_full = margins(trimmed), margins(full)
    flips = (m_trim > 0) != (m_full > 0)
    big = flips & (m_full.abs() > args.tolerance)
    text_text = ((trimmed[pos] * trimmed[neg]).sum(-1) - (full[pos] * full[neg]).sum(-1)).abs().max()
    print(f"{args.model}: {len(items)} items, {len(captions)} distinct captions, batch {args.batch_size}")
    print(f"largest embedding difference trimmed vs full padding: {(trimmed - full).abs().max():.2e}")
    print(f"largest margin difference: {(m_trim - m_full).abs().max():.2e}; text-text similarity difference {text_text:.2e}")
    print(f"decision flips: {int(flips.sum())} in all, {int(big.sum())} with |margin| > {args.tolerance:g}")
    print(f"time: trimmed {trimmed_s:.1f} s, full padding {full_s:.1f} s ({full_s / trimmed_s:.2f}x)")
    raise SystemExit(1 if big.any() else 0)


if __name__ == "__main__":
    main()
