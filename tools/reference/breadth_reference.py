#!/usr/bin/python3
"""Reference values for lora4j's DoRA, PiSSA/OLoRA and TIES/DARE/magnitude-prune tests.

PEFT itself is not installable here, so this re-implements PEFT's published formulas with torch
(peft/tuners/lora/dora.py + variants.py, layer.py pissa_init/olora_init, utils/merge_utils.py,
tuners/lora/model.py _generalized_task_arithmetic_weighted_adapter) on small fixed inputs and
prints them as Java array literals for java-api/src/test/java/dev/lora4j/lora/BreadthReference.java.
Run with Debian's python3-torch:  /usr/bin/python3 tools/reference/breadth_reference.py
"""
import math
import torch

torch.set_default_dtype(torch.float64)


def fixed(rows, cols, seed):
    """The inputs, a closed form the Java tests compute the same way: sin(seed + 0.37*i + 0.91*j + 0.13*i*j)."""
    i = torch.arange(rows, dtype=torch.float64).unsqueeze(1)
    j = torch.arange(cols, dtype=torch.float64).unsqueeze(0)
    return torch.sin(seed + 0.37 * i + 0.91 * j + 0.13 * i * j)


def out(name, t):
    vals = ", ".join(f"{v:.10g}" for v in t.reshape(-1).tolist())
    print(f"    static final double[] {name} = {{{vals}}};")


# ---------------------------------------------------------------- DoRA (Linear, out=4, in=6, r=2)
W = fixed(4, 6, 0.0)
A = fixed(2, 6, 1.0)
B = fixed(4, 2, 2.0) * 0.5
x = fixed(3, 6, 3.0)
s = 3.0 / 2  # alpha 3, r 2
lora_weight = B @ A
norm = torch.linalg.norm(W + s * lora_weight, dim=1)            # get_weight_norm
m = norm * (1 + 0.1 * torch.arange(4))                           # a trained magnitude
mag_norm_scale = (m / norm).view(1, -1)
base = x @ W.T
dora_delta = (mag_norm_scale - 1) * base + mag_norm_scale * ((x @ A.T) @ B.T) * s
merged = (m / norm).view(-1, 1) * (W + s * lora_weight)         # merge_safe
out("DORA_NORM", norm)
out("DORA_DELTA", dora_delta)
out("DORA_MERGED", merged)
# magnitude gradient of sum(output) with the norm detached
mm = m.clone().requires_grad_(True)
y = ((mm / norm.detach()).view(1, -1) - 1) * base + (mm / norm.detach()).view(1, -1) * ((x @ A.T) @ B.T) * s
y.sum().backward()
out("DORA_GRAD_M", mm.grad)

# ---------------------------------------------------------------- PiSSA / OLoRA (out=5, in=4, r=2, alpha=4)
W2 = fixed(5, 4, 0.5)
r, alpha = 2, 4.0
s2 = alpha / r
V, S, Uh = torch.linalg.svd(W2, full_matrices=False)
Sr = S[:r] / s2
pa = torch.diag(torch.sqrt(Sr)) @ Uh[:r]
pb = V[:, :r] @ torch.diag(torch.sqrt(Sr))
out("PISSA_A", pa)
out("PISSA_B", pb)
out("PISSA_RESIDUAL", W2 - s2 * pb @ pa)
Q, R = torch.linalg.qr(W2)
oa, ob = R[:r].contiguous(), Q[:, :r].contiguous()
out("OLORA_A", oa)
out("OLORA_B", ob)
out("OLORA_RESIDUAL", W2 - s2 * ob @ oa)

# ---------------------------------------------------------------- merge_utils on two rank-2 adapters (out=4, in=5)
def magnitude_prune_t(t, density):
    if density >= 1:
        return t
    mask = torch.zeros_like(t).reshape(-1)
    k = int(density * t.numel())
    mask[torch.topk(t.abs().reshape(-1), k=k, largest=True)[1]] = 1
    return t * mask.reshape(t.shape)


def majority_mask(t, method):
    sign = t.sign()
    mag = t.sum(dim=0) if method == "total" else sign.sum(dim=0)
    return sign == torch.where(mag >= 0, 1.0, -1.0)


def disjoint(t, mask):
    return (t * mask).sum(dim=0) / torch.clamp(mask.sum(dim=0), min=1.0)


def weighted(ts, w):
    return ts * w.view((-1,) + (1,) * (ts.dim() - 1))


def combine(kind, tensors, w, density, method="total"):
    if kind in ("ties", "magnitude_prune"):
        tensors = [magnitude_prune_t(t, density) for t in tensors]
    # dare_* with density 1: prune() returns the tensor unchanged (no rescale)
    ts = torch.stack(tensors)
    if kind in ("ties", "dare_ties"):
        mask = majority_mask(ts, method)
        return disjoint(weighted(ts, w), mask)
    return weighted(ts, w).sum(dim=0)


A1, B1 = fixed(2, 5, 4.0), fixed(4, 2, 5.0)
A2, B2 = fixed(2, 5, 6.0) * 0.8, fixed(4, 2, 7.0) * 1.2
scal1, scal2 = 8.0 / 2, 2.0 / 2  # alphas 8 and 2, rank 2
weights = [0.7, -0.4]
wa, wb = [], []
for wt, sc in zip(weights, [scal1, scal2]):
    ws = wt * sc
    sign = 1 if ws >= 0 else -1
    wa.append(math.sqrt(abs(ws)) * sign)
    wb.append(math.sqrt(abs(ws)))
wa, wb = torch.tensor(wa), torch.tensor(wb)
for kind, density, method in [("ties", 0.5, "total"), ("ties", 0.6, "frequency"), ("magnitude_prune", 0.5, "total"),
                              ("dare_linear", 1.0, "total"), ("dare_ties", 1.0, "total")]:
    name = f"{kind}_{method}_{int(density * 10)}".upper()
    out(name + "_A", combine(kind, [A1, A2], wa, density, method))
    out(name + "_B", combine(kind, [B1, B2], wb, density, method))

# ---------------------------------------------------------------- the *_svd variants: merge the ΔW = s·B·A, then truncate
# lora4j folds the scale in once (ΔW·w), as its SVD type does; PEFT's _svd_generalized_task_arithmetic_weighted_adapter
# multiplies get_delta_weight (already scaled) by weight·scaling again.
deltas = [B1 @ A1 * scal1, B2 @ A2 * scal2]
wt = torch.tensor(weights)
for kind, density, method in [("ties", 0.5, "total"), ("magnitude_prune", 0.4, "total"), ("dare_ties", 1.0, "frequency")]:
    merged_delta = combine(kind, deltas, wt, density, method)
    U, S, Vh = torch.linalg.svd(merged_delta, full_matrices=False)
    out(f"{kind}_svd_{method}_{int(density * 10)}".upper() + "_DELTA", (U[:, :2] * S[:2]) @ Vh[:2])
