#!/usr/bin/python3
"""The Python twin of BertStepParts.java: bert_bench.py's LoRA step (all-MiniLM-L6-v2, r 8, alpha 16
on query and value, mean pooling, MSE, AdamW) on batch 32 x any sequence length (row i real for its
first seq/2 + i*seq/64 tokens), timed by part in process CPU ms (median over the steps).

usage: /usr/bin/python3 benchmarks/python/bert_step_parts.py CHECKPOINT_DIR SEQ STEPS [--threads T] [--profile]
Prints "PARTS python <seq> forward backward optimizer total" and "FIRST python <seq> ..." (the wall ms
of the two warm-up steps); --profile also prints
torch.autograd.profiler's table of the last step, by op.
"""
import argparse
import math
import time

import torch
import torch.nn.functional as F

import bert_bench


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("seq", type=int)
    p.add_argument("steps", type=int)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--profile", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = bert_bench.load(a.dir)
    batch, seq = bert_bench.BATCH, a.seq
    ids, mask, types = bert_bench.inputs(model.embeddings.word_embeddings.num_embeddings, seq)
    opt = torch.optim.AdamW(bert_bench.add_lora(model), lr=1e-4)
    hidden = model.embeddings.LayerNorm.normalized_shape[0]
    target = torch.tensor([[math.sin(i * hidden + d) for d in range(hidden)] for i in range(batch)])
    parts = [[], [], [], []]
    first = []
    for s in range(-2, a.steps):
        w0 = time.perf_counter()
        c0 = time.process_time()
        h = model(ids, mask, types)
        m = mask.unsqueeze(-1).float()
        loss = F.mse_loss((h * m).sum(1) / m.sum(1).clamp(min=1e-9), target)
        c1 = time.process_time()
        opt.zero_grad()
        loss.backward()
        c2 = time.process_time()
        opt.step()
        loss.item()
        c3 = time.process_time()
        if s < 0:
            first.append((time.perf_counter() - w0) * 1e3)
        if s >= 0:
            for k, v in enumerate((c1 - c0, c2 - c1, c3 - c2, c3 - c0)):
                parts[k].append(v * 1e3)
    print("PARTS python %d %s" % (seq, " ".join("%.1f" % sorted(q)[len(q) // 2] for q in parts)), flush=True)
    print("FIRST python %d (wall ms of the two warm-up steps) %s" % (seq, " ".join("%.1f" % f for f in first)), flush=True)
    if a.profile:
        with torch.autograd.profiler.profile() as prof:
            h = model(ids, mask, types)
            m = mask.unsqueeze(-1).float()
            loss = F.mse_loss((h * m).sum(1) / m.sum(1).clamp(min=1e-9), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=40))


if __name__ == "__main__":
    main()
