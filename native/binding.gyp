{
  "targets": [
    {
      "target_name": "tfjs_attention_native",
      "sources": ["attention.cc", "attention_rows.cc", "attention_decode_kv.cc", "rope_split_store.cc", "matmul.cc", "flash_train.cc", "quant_matmul.cc", "quant_decode_prep.cc", "quant_decode_int.cc", "quant_decode_float.cc", "gemv.cc", "decoder_steps.cc", "binding.cc", "shm.cc", "huge_pages.cc", "widen.cc"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-O3", "-std=c++17", "-march=native", "-mprefer-vector-width=512", "-fno-math-errno",
                    "-ffp-contract=fast", "-fno-trapping-math"],
      "cflags": ["-O3"],
      "ldflags": ["-pthread"],
      "xcode_settings": {
        "OTHER_CPLUSPLUSFLAGS": ["-O3", "-std=c++17", "-fno-math-errno", "-ffp-contract=fast"]
      }
    }
  ]
}
