"""Writes a random-weight Llama-3.2-1B-shaped checkpoint (float32, tied head) and the bench prompts.

usage: python3 make_random_llama.py OUT_DIR [--small]
hidden 2048, 16 layers, 32/8 heads, head_dim 64, intermediate 8192, vocab 128256, llama3 rope
scaling (as Llama-3.2-1B); weights N(0, 0.02) from transformers' own init with seed 0.
--small: a 2-layer, hidden 256 model of the same family (a quick check of the pipeline).
prompts.json: {"prefill": [2048 ids], "decode": [[32 ids] x 8]} from a seeded generator.
"""
import json, os, sys, time
import torch
from transformers import LlamaConfig, LlamaForCausalLM

out = sys.argv[1]
small = '--small' in sys.argv
t0 = time.time()
cfg = LlamaConfig(
    hidden_size=256 if small else 2048, num_hidden_layers=2 if small else 16, num_attention_heads=4 if small else 32,
    num_key_value_heads=2 if small else 8, head_dim=64, intermediate_size=512 if small else 8192, vocab_size=128256,
    tie_word_embeddings=True, max_position_embeddings=131072, rms_norm_eps=1e-5, initializer_range=0.02,
    rope_theta=500000.0, bos_token_id=128000, eos_token_id=128001,
    rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 8192},
    torch_dtype="float32",
)
torch.manual_seed(0)
with torch.device("cuda"):
    model = LlamaForCausalLM(cfg).float()
model.save_pretrained(out, safe_serialization=True)
g = torch.Generator().manual_seed(1)
prompts = {"prefill": torch.randint(0, 128000, (2048,), generator=g).tolist(),
           "decode": torch.randint(0, 128000, (8, 32), generator=g).tolist()}
with open(os.path.join(out, "prompts.json"), "w") as f:
    json.dump(prompts, f)
n = sum(p.numel() for p in model.parameters())
print(f"checkpoint {out}: {n / 1e9:.3f}B parameters, written in {time.time() - t0:.1f} s", flush=True)
