#!/usr/bin/python3
"""The Python peer of lora4j's TextFineTune (--mode lora): the same run replayed in torch (Debian's
python3-torch, the same LibTorch as lora4j) with the hand-written BERT of bert_bench.py.

Everything that decides the result comes from the Java side, so both compute the same function
step for step: the base weights (the HF folder TextFineTune imported, config.json +
model.safetensors), and from the file `TextFineTune --export-data FILE` writes: the tokenized
train and test splits, the order of the training rows in every epoch, the initial LoRA factors
and classifier (under init. + PEFT's key), and the hyper-parameters (metadata). The model: BERT,
mean pooling over unmasked tokens, Linear head; LoRA (PEFT's layer, no dropout) on query and
value; dropout off, as on the Java side. Training: AdamW for the LoRA factors (lr) and for the head
(head_lr), weight decay 0.01, linear warm-up and decay (HF's get_linear_schedule_with_warmup),
gradient norm clipped at max_grad_norm, each batch cut to its longest row.

usage: /usr/bin/python3 benchmarks/python/text_finetune.py CHECKPOINT_DIR EXPORT_FILE [--threads T]
Set OPENBLAS_NUM_THREADS to T as well (run-text-finetune.sh does). Prints a RESULT line.
"""
import argparse
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import LoraLinear  # noqa: E402  PEFT's LoRA linear
from bert_bench import load, read_safetensors_with_metadata  # noqa: E402  the hand-written BERT

PREFIX = "init.base_model.model."


class MeanPoolingClassifier(nn.Module):
    """bert + mean pooling + classifier: the attribute names of lora4j's MeanPoolingClassifier."""

    def __init__(self, bert, classes):
        super().__init__()
        self.bert = bert
        hidden = bert.embeddings.LayerNorm.normalized_shape[0]
        self.classifier = nn.Linear(hidden, classes)

    def forward(self, ids, mask):
        h = self.bert(ids, mask, torch.zeros_like(ids))
        m = mask.unsqueeze(-1).to(h.dtype)
        return self.classifier((h * m).sum(1) / m.sum(1).clamp(min=1e-9))


def batch(ids, mask, rows):
    """Rows of a split cut to their longest real length (as TokenizedSplit.batch)."""
    length = max(1, int(mask[rows].sum(1).max()))
    return ids[rows, :length], mask[rows, :length]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("checkpoint")
    p.add_argument("export")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    data, meta = read_safetensors_with_metadata(a.export)
    classes = meta["classes"].split(",")
    r, alpha = int(meta["r"]), float(meta["lora_alpha"])
    lr, head_lr, wd = float(meta["lr"]), float(meta["head_lr"]), float(meta["weight_decay"])
    warmup, total = int(meta["warmup_steps"]), int(meta["total_steps"])
    bs, clip = int(meta["batch"]), float(meta["max_grad_norm"])

    model = MeanPoolingClassifier(load(a.checkpoint), len(classes))
    for param in model.parameters():
        param.requires_grad_(False)
    for layer in model.bert.encoder.layer:
        s = layer.attention.self
        s.query = LoraLinear(s.query, r, alpha)
        s.value = LoraLinear(s.value, r, alpha)
    params = dict(model.named_parameters())
    init = {k[len(PREFIX):]: v for k, v in data.items() if k.startswith(PREFIX)}
    missing = [k for k in params if ("lora_" in k or k.startswith("classifier.")) and k not in init]
    unknown = [k for k in init if k not in params]
    if missing or unknown:
        sys.exit(f"the export does not fit the model: missing {missing}, unknown {unknown}")
    with torch.no_grad():
        for k, v in init.items():
            params[k].copy_(v)
            params[k].requires_grad_(True)
    model.eval()  # no dropout anywhere, as the Java side

    lora = [v for k, v in params.items() if "lora_" in k]
    head = list(model.classifier.parameters())

    def schedule(t):
        return t / max(1, warmup) if t < warmup else max(0.0, (total - t) / max(1, total - warmup))

    optimizers = [torch.optim.AdamW(lora, lr=lr, weight_decay=wd), torch.optim.AdamW(head, lr=head_lr, weight_decay=wd)]
    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, schedule) for o in optimizers]

    ids, mask, labels = data["train.input_ids"], data["train.attention_mask"], data["train.labels"]
    order = data["train_order"]
    n = ids.shape[0]
    losses = []
    t0 = time.perf_counter()
    for epoch in range(order.shape[0]):
        for start in range(0, n, bs):
            rows = order[epoch, start:start + bs]
            x, m = batch(ids, mask, rows)
            for o in optimizers:
                o.zero_grad()
            loss = F.cross_entropy(model(x, m), labels[rows])
            loss.backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(lora + head, clip)
            for o, s in zip(optimizers, schedulers):
                o.step()
                s.step()
            losses.append(loss.item())
            if len(losses) % 10 == 0 or len(losses) == total:
                elapsed = time.perf_counter() - t0
                print(f"step {len(losses)}/{total}: loss {loss.item():.4f}, {len(losses) / elapsed:.3f} steps/s", flush=True)
    seconds = time.perf_counter() - t0

    tids, tmask, tlabels = data["test.input_ids"], data["test.attention_mask"], data["test.labels"]
    predicted = []
    with torch.no_grad():
        for start in range(0, tids.shape[0], 128):
            rows = torch.arange(start, min(tids.shape[0], start + 128))
            x, m = batch(tids, tmask, rows)
            predicted.append(model(x, m).argmax(1))
    predicted = torch.cat(predicted)
    right = predicted == tlabels
    for c, name in enumerate(classes):
        sel = tlabels == c
        print(f"{name:12s} {100 * right[sel].float().mean().item():6.1f}%")
    accuracy = right.float().mean().item()
    print(f"RESULT tenant={meta['tenant']} mode=lora-python train={n} epochs={order.shape[0]} seq={meta['seq']} batch={bs} "
          f"test_accuracy={accuracy:.4f} train_seconds={seconds:.1f} steps={len(losses)} "
          f"steps_per_second={len(losses) / seconds:.3f} samples_per_second={n * order.shape[0] / seconds:.1f} "
          f"first_loss={losses[0]:.6f} final_loss={sum(losses[-10:]) / len(losses[-10:]):.4f}", flush=True)


if __name__ == "__main__":
    main()
