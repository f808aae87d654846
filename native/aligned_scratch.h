// A grow-only, 64-byte-aligned float buffer, kept per calling thread (`thread_local`) by the
// kernels that need scratch (matmul.cc's packed B panels, decoder_steps.cc's MLP activations).
// Never shrinks (nor is freed: a few panels per thread for the process lifetime, as before).
#pragma once
#include <cstddef>
#include <cstdlib>

struct AlignedScratch {
  float* p = nullptr;
  size_t n = 0;
  /** At least `want` floats, 64-byte aligned; contents are not kept across a growth. */
  float* get(size_t want) {
    if (want > n) {
      std::free(p);
      n = (want + 1023) & ~size_t(1023);
      p = static_cast<float*>(std::aligned_alloc(64, n * sizeof(float)));
    }
    return p;
  }
};
