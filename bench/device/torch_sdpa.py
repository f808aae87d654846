"""PyTorch SDPA beside the WebGPU benches, same shapes and machine (issues 3 and 13).

prefill: 1 x 4096 tokens, 32 q / 8 kv heads, head_dim 128, causal.
decode: 32 sequences x 4096 cached tokens (+1 new), one query token each.
TF32 off (full float32); then the same shapes in float16 and bfloat16 (flash attention, the
half-precision figures the compact-cache kernels are held against; decode bytes = f16 K/V).
Medians of CUDA-event timings. Prints one line per shape.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = "cuda"
NH, NKV, D = 32, 8, 128


def med(fn, reps=30, warm=5):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2]


rows = []
T = 4096
q = torch.randn(1, NH, T, D, device=dev)
k = torch.randn(1, NKV, T, D, device=dev)
v = torch.randn(1, NKV, T, D, device=dev)
ms = med(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True))
flops = 4 * NH * D * T * (T + 1) / 2
rows.append({"name": "torch sdpa prefill 1x4096 fp32", "ms": ms, "tflops": flops / ms / 1e9})

B, ctx = 32, 4097
q = torch.randn(B, NH, 1, D, device=dev)
k = torch.randn(B, NKV, ctx, D, device=dev)
v = torch.randn(B, NKV, ctx, D, device=dev)
ms = med(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True))
nbytes = 2 * B * ctx * NKV * D * 4
rows.append({"name": "torch sdpa decode 32x4096 fp32", "ms": ms, "tbps": nbytes / ms / 1e9})

for dt, tag in ((torch.float16, "fp16"), (torch.bfloat16, "bf16")):
    q = torch.randn(1, NH, T, D, device=dev, dtype=dt)
    k = torch.randn(1, NKV, T, D, device=dev, dtype=dt)
    v = torch.randn(1, NKV, T, D, device=dev, dtype=dt)
    ms = med(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True))
    rows.append({"name": f"torch sdpa prefill 1x4096 {tag}", "ms": ms, "tflops": flops / ms / 1e9})
    q = torch.randn(B, NH, 1, D, device=dev, dtype=dt)
    k = torch.randn(B, NKV, ctx, D, device=dev, dtype=dt)
    v = torch.randn(B, NKV, ctx, D, device=dev, dtype=dt)
    ms = med(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True))
    rows.append({"name": f"torch sdpa decode 32x4096 {tag}", "ms": ms, "tbps": nbytes / 2 / ms / 1e9})

x = torch.empty(2 * 1024**3 // 4, device=dev)
y = torch.empty_like(x)
ms = med(lambda: y.copy_(x), reps=10)
rows.append({"name": "device copy 2 GiB", "ms": ms, "tbps": 2 * x.numel() * 4 / ms / 1e9})

for r in rows:
    print(f"{r['name']}: {r['ms']:.3f} ms " + " ".join(f"{k}={v:.3f}" for k, v in r.items() if k not in ("name", "ms")))
out = os.environ.get("OUT")
if out:
    with open(os.path.join(out, "torch.json"), "w") as f:
        json.dump({"rows": rows}, f, indent=1)
