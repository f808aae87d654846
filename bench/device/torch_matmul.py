"""PyTorch float32 matmuls (TF32 off) on the shapes of the Llama-3.2-1B prefill 2048: y = x w^T with x
[2048, 2048] and w [N, 2048], N = 3072 (q/k/v), 2048 (o), 16384 (gate/up); and the down projection
(K 8192, N 2048). Medians of CUDA-event timings; one `RESULT torch matmul ...` line per shape."""
import torch

torch.backends.cuda.matmul.allow_tf32 = False
dev = "cuda"


def med(fn, reps=20, warm=3):
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


for M, N, K in ((2048, 3072, 2048), (2048, 2048, 2048), (2048, 16384, 2048), (2048, 2048, 8192)):
    x = torch.randn(M, K, device=dev)
    w = torch.randn(N, K, device=dev)
    for dt, tag in ((torch.float32, "f32"), (torch.float16, "f16")):
        xx, ww = x.to(dt), w.to(dt)
        ms = med(lambda: xx @ ww.T)
        print(f"RESULT torch matmul {tag} M{M} N{N} K{K}: {ms:.3f} ms {2 * M * N * K / ms / 1e9:.1f} TFLOP/s", flush=True)
