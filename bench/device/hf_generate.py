"""Hugging Face transformers float32 `generate` (greedy, TF32 off) on a checkpoint made by
make_random_llama.py: prefill 2048 (time to the first token), decode at batch 1 and 8.
Decode rate = B * (N - 1) / (t(N new tokens) - t(1 new token)), medians of 3, as models_webgpu.ts does.

usage: python3 hf_generate.py CKPT_DIR NEW_TOKENS OUT_JSON
"""
import json, os, statistics, sys, time
import torch
from transformers import AutoModelForCausalLM

ckpt, N, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
prompts = json.load(open(os.path.join(ckpt, "prompts.json")))
t0 = time.perf_counter()
model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32).cuda().eval()
torch.cuda.synchronize()
load_s = time.perf_counter() - t0
model.generation_config.eos_token_id = None
model.generation_config.pad_token_id = 0


def run(ids, n):
    x = torch.tensor(ids, device="cuda")
    torch.cuda.synchronize()
    t = time.perf_counter()
    with torch.no_grad():
        y = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=n, min_new_tokens=n, do_sample=False)
    torch.cuda.synchronize()
    return time.perf_counter() - t, y[:, x.shape[1]:].tolist()


res = {"tokens": {}, "load_s": load_s}
run([prompts["prefill"]], 1)  # warm-up
times = []
for _ in range(3):
    t, toks = run([prompts["prefill"]], 1)
    times.append(t)
res["prefill_ms"] = 1000 * statistics.median(times)
res["tokens"]["prefill"] = toks
for b in (1, 8):
    ids = prompts["decode"][:b]
    run(ids, 4)  # warm-up
    rates = []
    for _ in range(3):
        t1, _ = run(ids, 1)
        tn, toks = run(ids, N)
        rates.append(b * (N - 1) / (tn - t1))
    res[f"decode_b{b}_tok_s"] = statistics.median(rates)
    res["tokens"][f"b{b}"] = toks
print(f"pytorch {torch.__version__} float32 generate: load {load_s:.2f} s, prefill 2048 {res['prefill_ms']:.1f} ms, "
      f"decode b1 {res['decode_b1_tok_s']:.1f} tok/s, b8 {res['decode_b8_tok_s']:.1f} tok/s", flush=True)
json.dump(res, open(out, "w"))
