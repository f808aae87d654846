"""PyTorch SDPA decode beside bench/attention_webgpu_kv_decode.ts, same shapes and call (issue 13).

decode: 32 sequences x 4096 cached tokens (+1 new), one query token each, 32 q / 8 kv heads,
head_dim 128: float16, bfloat16 (the half-precision figures the compact caches are held against;
bytes = 2-byte K/V) and float32 (TF32 off); then a 1 GiB device copy. Medians of CUDA events.
"""
import torch
import torch.nn.functional as F

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = "cuda"
NH, NKV, D, B, CTX = 32, 8, 128, 32, 4097


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


for rnd in range(2):
    for dt, tag, size in ((torch.float16, "fp16", 2), (torch.bfloat16, "bf16", 2), (torch.float32, "fp32", 4)):
        q = torch.randn(B, NH, 1, D, device=dev, dtype=dt)
        k = torch.randn(B, NKV, CTX, D, device=dev, dtype=dt)
        v = torch.randn(B, NKV, CTX, D, device=dev, dtype=dt)
        ms = med(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True))
        nbytes = 2 * B * CTX * NKV * D * size
        print(f"RESULT torch sdpa decode 32x4096 {tag} round {rnd}: {ms:.4f} ms, {nbytes / ms / 1e9:.2f} TB/s of K/V", flush=True)
        del q, k, v
x = torch.empty(1024**3 // 4, device=dev)
y = torch.empty_like(x)
ms = med(lambda: y.copy_(x), reps=10)
print(f"RESULT torch device copy 1 GiB: {ms:.4f} ms, {2 * x.numel() * 4 / ms / 1e9:.2f} TB/s (read + write)", flush=True)
