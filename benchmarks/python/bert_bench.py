#!/usr/bin/python3
"""The Python peer of lora4j's BERT benchmark (BertBenchmark.java): a hand-written BERT in torch
(Debian's python3-torch, the same LibTorch as lora4j) loading the same Hugging Face checkpoint
folder (config.json + model.safetensors, as hf-tools' OnnxBertImporter writes it for
all-MiniLM-L6-v2), timing the encoder forward (no grad) and one LoRA training step
(r 8, alpha 16 on query and value, PEFT's default for BERT; mean pooling, MSE to a fixed target,
AdamW) on batch 32 x sequence 128 with a padding mask. Eval mode (no dropout) on both sides.

usage: /usr/bin/python3 benchmarks/python/bert_bench.py CHECKPOINT_DIR [--iterations N] [--threads T] [work ...]
  work: bert_infer bert_lora_step (default: both)
Prints "RESULT python <infer|step> <threads> <wall ms/op of every iteration>" and "CPU python ..." with the
process CPU time of every iteration (BertCompare.java prints the same lines for lora4j and ONNX Runtime).
Set PEER=<name> to print another peer name (run-bert.sh runs it a second time with lora4j's malloc settings).
"""
import argparse
import json
import math
import os
import struct
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench import LoraLinear  # PEFT's LoRA linear, shared with the other Python benchmarks

BATCH, SEQ = 32, 128


def read_safetensors(path):
    """The tensors of a safetensors file (see read_safetensors_with_metadata)."""
    return read_safetensors_with_metadata(path)[0]


def read_safetensors_with_metadata(path):
    """The safetensors format by hand (8-byte header length, JSON header, raw little-endian data):
    (tensors by name, the header's __metadata__ strings)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    dtypes = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64}
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = torch.frombuffer(bytearray(data[a:b]), dtype=dtypes[v["dtype"]]).reshape(v["shape"])
    return out, header.get("__metadata__", {})


class SelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c["hidden_size"]
        self.heads = c["num_attention_heads"]
        self.query, self.key, self.value = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)

    def forward(self, x, mask):
        b, s, h = x.shape

        def split(t):
            return t.view(b, s, self.heads, h // self.heads).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(h // self.heads) + mask
        ctx = scores.softmax(-1) @ v
        return ctx.transpose(1, 2).reshape(b, s, h)


class Output(nn.Module):
    def __init__(self, c, inp):
        super().__init__()
        self.dense = nn.Linear(inp, c["hidden_size"])
        self.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self = SelfAttention(c)
        self.output = Output(c, c["hidden_size"])

    def forward(self, x, mask):
        return self.output(self.self(x, mask), x)


class Intermediate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden_size"], c["intermediate_size"])

    def forward(self, x):
        return F.gelu(self.dense(x))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = Attention(c)
        self.intermediate = Intermediate(c)
        self.output = Output(c, c["intermediate_size"])

    def forward(self, x, mask):
        a = self.attention(x, mask)
        return self.output(self.intermediate(a), a)


class Embeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c["hidden_size"]
        self.word_embeddings = nn.Embedding(c["vocab_size"], h, padding_idx=c["pad_token_id"])
        self.position_embeddings = nn.Embedding(c["max_position_embeddings"], h)
        self.token_type_embeddings = nn.Embedding(c["type_vocab_size"], h)
        self.LayerNorm = nn.LayerNorm(h, eps=c["layer_norm_eps"])

    def forward(self, ids, types):
        pos = torch.arange(ids.shape[1]).unsqueeze(0)
        return self.LayerNorm(self.word_embeddings(ids) + self.token_type_embeddings(types) + self.position_embeddings(pos))


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList(Layer(c) for _ in range(c["num_hidden_layers"]))


class Bert(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = Embeddings(c)
        self.encoder = Encoder(c)

    def forward(self, ids, mask, types):
        ext = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        h = self.embeddings(ids, types)
        for layer in self.encoder.layer:
            h = layer(h, ext)
        return h


def load(dir):
    with open(os.path.join(dir, "config.json")) as f:
        c = json.load(f)
    model = Bert(c)
    model.load_state_dict(read_safetensors(os.path.join(dir, "model.safetensors")), strict=True)
    return model.eval()


def inputs(vocab, seq=SEQ):
    """The benchmark batch (as BertBenchmark.java builds it): id 1000 + (131 i + 31 t) mod (vocab - 1000),
    row i real for its first seq/2 + i*seq/64 tokens (64 + 2i at seq 128), padding (id 0, mask 0) after."""
    ids = torch.zeros(BATCH, seq, dtype=torch.int64)
    mask = torch.zeros(BATCH, seq, dtype=torch.int64)
    for i in range(BATCH):
        for t in range(min(seq, seq // 2 + i * seq // 64)):
            ids[i, t] = 1000 + (131 * i + 31 * t) % (vocab - 1000)
            mask[i, t] = 1
    return ids, mask, torch.zeros_like(ids)


def add_lora(model):
    """Freezes the model, puts LoRA (r 8, alpha 16) on every query and value; returns the LoRA factors."""
    for p in model.parameters():
        p.requires_grad_(False)
    for layer in model.encoder.layer:
        s = layer.attention.self
        s.query = LoraLinear(s.query, 8, 16)
        s.value = LoraLinear(s.value, 8, 16)
    return [p for n, p in model.named_parameters() if "lora_" in n]


def make(work, dir):
    torch.manual_seed(0)
    model = load(dir)
    ids, mask, types = inputs(model.embeddings.word_embeddings.num_embeddings)
    if work == "bert_infer":
        def op():
            with torch.no_grad():
                model(ids, mask, types)
        return op
    opt = torch.optim.AdamW(add_lora(model), lr=1e-4)
    hidden = model.embeddings.LayerNorm.normalized_shape[0]
    target = torch.tensor([[math.sin(i * hidden + d) for d in range(hidden)] for i in range(BATCH)])

    def op():
        h = model(ids, mask, types)
        m = mask.unsqueeze(-1).float()
        emb = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        loss = F.mse_loss(emb, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return op


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("works", nargs="*", default=["bert_infer", "bert_lora_step"])
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    for work in a.works:
        op = make(work, a.dir)
        op()  # warm-up
        results, cpus = [], []
        for i in range(a.iterations):
            c, t = time.process_time(), time.perf_counter()
            op()
            ms, cms = (time.perf_counter() - t) * 1e3, (time.process_time() - c) * 1e3
            results.append(ms)
            cpus.append(cms)
            print(f"{work} iteration {i}: {ms:.1f} ms/op wall, {cms:.1f} ms CPU", flush=True)
        name = os.environ.get("PEER", "python") + " " + ("infer" if work == "bert_infer" else "step") + " " + str(a.threads)
        print("RESULT " + name + " " + " ".join(f"{r:.1f}" for r in results), flush=True)
        print("CPU " + name + " " + " ".join(f"{r:.1f}" for r in cpus), flush=True)


if __name__ == "__main__":
    main()
