#!/usr/bin/python3
"""The ratio table of benchmarks/run-bert.sh: reads the RESULT (wall ms) and CPU (process CPU ms)
lines of one run's folder and prints Markdown: medians per peer, work and thread count, and the
ratios lora4j / ONNX Runtime (inference) and lora4j / Python (inference and the LoRA step).

usage: /usr/bin/python3 benchmarks/python/bert_table.py RESULT_DIR
"""
import glob
import os
import statistics
import sys


def read(folder):
    data = {}  # (kind, peer, work, threads) -> [ms]
    for path in glob.glob(os.path.join(folder, "*.txt")):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) > 4 and parts[0] in ("RESULT", "CPU"):
                    data[(parts[0], parts[1], parts[2], int(parts[3]))] = [float(v) for v in parts[4:]]
    return data


def main():
    folder = sys.argv[1]
    data = read(folder)
    env = open(os.path.join(folder, "env.txt")).read().strip().splitlines()
    med = lambda k: statistics.median(data[k]) if k in data else None
    spread = lambda k: f"{min(data[k]):.0f}–{max(data[k]):.0f}" if k in data else "–"
    fmt = lambda v: "–" if v is None else f"{v:.0f}"
    ratio = lambda a, b: "–" if a is None or b is None else f"**{a / b:.2f}**"
    print("# BERT (all-MiniLM-L6-v2, batch 32 × sequence 128): lora4j, ONNX Runtime, Python torch\n")
    print("`benchmarks/run-bert.sh`; " + "; ".join(env) + ".\n")
    print("Wall time, median of the rounds in ms (range in brackets); lora4j and ONNX Runtime run interleaved in")
    print("one JVM, Python after them. *python* is Python with glibc malloc's defaults, *python-tuned* with the")
    print("malloc settings lora4j applies at load. Ratios below 1 mean lora4j is faster.\n")
    print("| threads | work | lora4j | ONNX Runtime | python | python-tuned | lora4j / ORT | lora4j / python | lora4j / python-tuned |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for kind, title in (("RESULT", "wall"), ("CPU", "CPU")):
        for t in (1, 2):
            # step-skip-padding: lora4j's step with BertModel.skipPadding, against the peers' (padded) step
            for work in ("infer", "step", "step-skip-padding"):
                peers = "step" if work == "step-skip-padding" else work
                l, o = med((kind, "lora4j", work, t)), med((kind, "ort", peers, t))
                p, pt = med((kind, "python", peers, t)), med((kind, "python-tuned", peers, t))
                cell = lambda peer, v, w: f"{fmt(v)} ({spread((kind, peer, w, t))})" if v is not None else "–"
                print(f"| {t} | {work} ({title}) | {cell('lora4j', l, work)} | {cell('ort', o, peers)} | {cell('python', p, peers)} | "
                      f"{cell('python-tuned', pt, peers)} | {ratio(l, o)} | {ratio(l, p)} | {ratio(l, pt)} |")
    print("\n*step-skip-padding* is lora4j's step with `BertModel.skipPadding(true)` (the encoder runs on the real")
    print("tokens only, same loss and gradients), against the peers' step, which computes every padded position.")
    print("\nTargets: inference ≤ 1.1 × the faster peer; the LoRA step ≤ 0.9 × Python. The CPU rows (process")
    print("CPU time) are less sensitive to other processes on a shared machine than the wall rows.")


if __name__ == "__main__":
    main()
