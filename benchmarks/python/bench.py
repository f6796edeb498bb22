#!/usr/bin/python3
"""The Python side of lora4j's benchmarks: the same work as the JMH benchmarks (Lora4jWork,
djl.DjlWork) and benchmarks/native/bench_native.cpp, with Debian's python3-torch (PyTorch 1.13,
the same LibTorch build), written as a PyTorch user would write it.

usage: /usr/bin/python3 benchmarks/python/bench.py [--seconds S] [--iterations N] [--threads T] [work ...]
  work: add linear lora_step mlp_step mlp_lora_step infer_base infer_merged train_loop (default: all)

train_loop is the demo's pre-training loop, one step per call: Fashion-MNIST read from Debian's
IDX files (gzip + numpy) once, the first 10,000 images as float32 / 255, a new randperm each
epoch, per batch of 10 index_select of images and labels, then the mlp_step work on them and
the loss read back (LORA4J_FASHION_MNIST=DIR overrides /usr/share/datasets/fashion-mnist).

Timing is timeit-like: a warm-up iteration, then N iterations of S seconds each, every one a
loop of calls in batches of about 1 ms between clock reads; ns per call. Prints one line per
iteration and "RESULT <work> <threads> <ns/op of every iteration>" lines that run-all.sh reads.
"""
import argparse
import gzip
import math
import os
import struct
import time

import numpy as np

import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH, IN, H1, H2, CLASSES = 10, 784, 1000, 2000, 10
TRAIN_IMAGES = 10000  # (g): the demo's --limit 10000


def labels():
    y0 = torch.tensor([i % CLASSES for i in range(BATCH)])
    y1 = torch.tensor([(i + 1) % CLASSES for i in range(BATCH)])
    return y0, y1


class LoraLinear(nn.Module):
    """PEFT's LoRA linear (no dropout): base(x) + lora_B(lora_A(x)) * scaling, base frozen."""

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base_layer = base
        base.weight.requires_grad_(False)
        base.bias.requires_grad_(False)
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.scaling = alpha / r

    def forward(self, x):
        return self.base_layer(x) + self.lora_B(self.lora_A(x)) * self.scaling


def mlp():
    return nn.Sequential(nn.Linear(IN, H1), nn.ReLU(), nn.Linear(H1, H2), nn.ReLU(), nn.Linear(H2, CLASSES))


def lorafy(model, r, alpha):
    for i in (0, 2, 4):
        model[i] = LoraLinear(model[i], r, alpha)
    return model


def read_idx(path):
    """An IDX file of unsigned bytes (gzipped), shaped as its header says."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype, rank = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08 or rank == 0:
        raise SystemExit(f"{path}: not an IDX file of unsigned bytes")
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    return torch.from_numpy(np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims).copy())


def train_loop():
    """(g) the demo's loop: data loaded once, per step a shuffled batch, the MLP step, loss.item()."""
    folder = os.environ.get("LORA4J_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
    images = read_idx(os.path.join(folder, "train-images-idx3-ubyte.gz"))
    x = images.reshape(images.shape[0], -1).float().div(255)[:TRAIN_IMAGES].clone()
    y = read_idx(os.path.join(folder, "train-labels-idx1-ubyte.gz"))[:TRAIN_IMAGES].long()
    model = mlp()
    adam = torch.optim.Adam(model.parameters(), lr=1e-3)
    state = {"perm": None, "next": TRAIN_IMAGES, "last": 0.0}

    def op():
        if state["next"] + BATCH > TRAIN_IMAGES:  # a new epoch (drop_last)
            state["perm"] = torch.randperm(TRAIN_IMAGES)
            state["next"] = 0
        idx = state["perm"][state["next"]:state["next"] + BATCH]
        state["next"] += BATCH
        xb, yb = x.index_select(0, idx), y.index_select(0, idx)
        loss = F.cross_entropy(model(xb), yb)
        adam.zero_grad(set_to_none=True)
        loss.backward()
        adam.step()
        state["last"] = loss.item()
    return op, lambda: print(f"[python] train_loop last loss {state['last']}")


def make(work):
    """Returns (op, report) for a work name."""
    torch.manual_seed(0)
    if work == "add":
        a, b = torch.ones(1), torch.ones(1)

        def op():
            c = torch.add(a, b)
            del c
        return op, None
    if work == "linear":
        x, w, b = torch.randn(BATCH, IN), torch.randn(H1, IN), torch.randn(H1)

        def op():
            y = F.linear(x, w, b)
            del y
        return op, None
    if work == "lora_step":
        layer = LoraLinear(nn.Linear(IN, H1), 4, 8)
        sgd = torch.optim.SGD([layer.lora_A.weight, layer.lora_B.weight], lr=1e-3)
        x = torch.randn(BATCH, IN)
        last = [0.0]

        def op():
            loss = layer(x).pow(2).mean()
            sgd.zero_grad(set_to_none=True)
            loss.backward()
            sgd.step()
            last[0] = loss.item()
        return op, lambda: print(f"[python] lora_step last loss {last[0]}")
    if work in ("mlp_step", "mlp_lora_step"):
        model = mlp()
        if work == "mlp_lora_step":
            lorafy(model, 1, 1)
        params = [p for p in model.parameters() if p.requires_grad]
        assert len(params) == (6 if work == "mlp_lora_step" else 6)
        adam = torch.optim.Adam(params, lr=1e-3)
        x = torch.randn(BATCH, IN)
        y = labels()
        state = {"step": 0, "last": 0.0}

        def op():
            loss = F.cross_entropy(model(x), y[state["step"] & 1])
            state["step"] += 1
            adam.zero_grad(set_to_none=True)
            loss.backward()
            adam.step()
            state["last"] = loss.item()
        return op, lambda: print(f"[python] {work} last loss {state['last']}")
    if work in ("infer_base", "infer_merged"):
        model = mlp()
        if work == "infer_merged":
            lorafy(model, 1, 1)
            with torch.no_grad():
                for i in (0, 2, 4):
                    layer = model[i]
                    layer.lora_B.weight.copy_(torch.randn_like(layer.lora_B.weight))
                    # merge_and_unload: W += s·B·A, then the plain Linear
                    layer.base_layer.weight += (layer.lora_B.weight @ layer.lora_A.weight) * layer.scaling
                    model[i] = layer.base_layer
        model.eval()
        x = torch.randn(BATCH, IN)

        def op():
            with torch.no_grad():
                y = model(x)
            del y
        return op, None
    if work == "train_loop":
        return train_loop()
    raise SystemExit(f"unknown work {work!r}")


def ns_per_op(op, seconds, batch):
    clock = time.perf_counter_ns
    deadline = clock() + int(seconds * 1e9)
    ops = 0
    start = now = clock()
    while now < deadline:
        for _ in range(batch):
            op()
        ops += batch
        now = clock()
    return (now - start) / ops


WORKS = ["add", "linear", "lora_step", "mlp_step", "mlp_lora_step", "infer_base", "infer_merged", "train_loop"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("works", nargs="*", default=WORKS)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    print(f"[python] torch {torch.__version__}, {torch.get_num_threads()} intra-op threads", flush=True)
    for work in a.works:
        op, report = make(work)
        estimate = ns_per_op(op, 0.05, 1)
        batch = max(1, int(1e6 / max(estimate, 1.0)))
        ns_per_op(op, a.seconds, batch)  # warm-up iteration
        results = []
        for i in range(a.iterations):
            results.append(ns_per_op(op, a.seconds, batch))
            print(f"{work} iteration {i + 1}: {results[-1]:.1f} ns/op", flush=True)
        if report:
            report()
        print("RESULT " + work + " " + str(a.threads) + " " + " ".join(f"{r:.1f}" for r in results), flush=True)


if __name__ == "__main__":
    main()
