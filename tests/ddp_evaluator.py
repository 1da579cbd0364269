"""A data-parallel training script's evaluation, as a DDP job would run it: the script sets up its own
process group (gloo, from torchrun's variables) and calls vlbench.Evaluator twice, changing the weights
in between. Each rank writes what its calls returned to ``metrics.<rank>.json`` in the working directory."""

import json
import sys

import torch
import torch.distributed as dist

import vlbench
from vlbench.models.openclip import _open_clip, shipped_weights

dist.init_process_group("gloo")
open_clip = _open_clip()
model, _, preprocess = open_clip.create_model_and_transforms("vlbench-tiny", pretrained=str(shipped_weights("vlbench-tiny", "shapes")))
tokenizer = open_clip.get_tokenizer("vlbench-tiny")
evaluator = vlbench.Evaluator(sys.argv[1].split(","), limit=int(sys.argv[2]), num_workers=0, bootstrap_replicates=20)
returned = []
for step in range(2):
    returned.append(evaluator(model, preprocess=preprocess, tokenizer=tokenizer, step=step))
    torch.manual_seed(step)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
rank = dist.get_rank()
with open(f"metrics.{rank}.json", "w") as f:
    json.dump({"returned": returned, "has_results": evaluator.results is not None, "world": evaluator.world.world_size}, f)
evaluator.close()
dist.destroy_process_group()
