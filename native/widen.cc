// readInto(fd, position, dtype, rows, cols, dst, dstOffset, dstStride, transpose) -> bytes read
//
// Streams one checkpoint tensor `[rows, cols]` of BF16 / F16 / F32 (dtype 0 / 1 / 2) from an open
// file straight into float32 storage, in place (issue 11, "loading at disk speed"):
//   transpose 0: dst[dstOffset + r * dstStride + c] = widen(src[r, c])
//   transpose 1: dst[dstOffset + c * dstStride + r] = widen(src[r, c])   (HF `[out, in]` -> `[in, out]`)
// The rows are split into blocks of ~512 KiB; the pool's threads each pread a block into their own
// scratch (the page cache copy then runs on every core) and widen it into dst with AVX-512 (BF16:
// a 16-bit shift; F16: vcvtph2ps; transposed: one 32-bit gather of 16 rows gives two columns).
// F32 without a transpose is read straight into dst. Before widening, dst's pages are mapped with
// madvise(MADV_POPULATE_WRITE) in 4 MiB chunks on the pool (fewer traps than a fault per page:
// 6-8% of a float32 loadPretrained here; TFJS_ATTENTION_LOAD_POPULATE=0 turns it off for A/B).
// A file shorter than the tensor is not an error here: the return value says how many bytes were
// read and the caller names the file.
// The file is the loader's own regular file (opened non-blocking and fstat-checked in
// lib/loaders/checkpoint_files.ts), so every pread returns.
#include <node_api.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "pool.h"
#ifdef __AVX512F__
#include <immintrin.h>
#endif

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14+; older kernels answer EINVAL and the pages fault on first write
#endif

namespace {

enum Dtype { BF16 = 0, F16 = 1, F32 = 2 };
constexpr size_t BLOCK_BYTES = size_t{512} << 10;

inline float bf16ToF32(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float f16ToF32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
  if (exp == 0x1f) {
    u = sign | 0x7f800000u | (man << 13);  // inf / NaN
  } else if (exp != 0) {
    u = sign | ((exp + 112) << 23) | (man << 13);
  } else if (man == 0) {
    u = sign;
  } else {  // subnormal: normalise
    int e = -1;
    do { man <<= 1; e++; } while (!(man & 0x400));
    u = sign | (static_cast<uint32_t>(112 - e) << 23) | ((man & 0x3ff) << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float load(const uint8_t* src, int dtype, size_t i) {
  if (dtype == F32) { float f; std::memcpy(&f, src + 4 * i, 4); return f; }
  uint16_t h;
  std::memcpy(&h, src + 2 * i, 2);
  return dtype == BF16 ? bf16ToF32(h) : f16ToF32(h);
}

/** dst[c * stride + r] (transposed) or dst[r * stride + c] = src[r, c] for a block of `rows` rows. */
void widenBlock(const uint8_t* src, int dtype, int64_t rows, int64_t cols, float* dst, int64_t stride, bool transpose) {
  int64_t r0 = 0;
#ifdef __AVX512F__
  if (!transpose) {
    for (int64_t r = 0; r < rows; r++) {
      const uint8_t* s = src + (dtype == F32 ? 4 : 2) * r * cols;
      float* d = dst + r * stride;
      int64_t c = 0;
      if (dtype == F32) { std::memcpy(d, s, 4 * cols); continue; }
      for (; c + 16 <= cols; c += 16) {
        const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + 2 * c));
        const __m512 v = dtype == BF16 ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)) : _mm512_cvtph_ps(h);
        _mm512_storeu_ps(d + c, v);
      }
      for (; c < cols; c++) d[c] = load(s, dtype, c);
    }
    return;
  }
  // Transposed: 16 source rows at a time; one gather of 32-bit words at (r, c) holds (r, c) and (r, c + 1).
  const int esize = dtype == F32 ? 4 : 2;
  const __m512i rowStep = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                              _mm512_set1_epi32(static_cast<int>(cols * esize)));
  for (; r0 + 16 <= rows; r0 += 16) {
    const uint8_t* base = src + r0 * cols * esize;
    float* d = dst + r0;
    int64_t c = 0;
    if (dtype == F32) {
      for (; c < cols; c++) _mm512_storeu_ps(d + c * stride, _mm512_i32gather_ps(rowStep, base + 4 * c, 1));
      continue;
    }
    for (; c + 2 <= cols; c += 2) {
      const __m512i w = _mm512_i32gather_epi32(rowStep, base + 2 * c, 1);
      __m512 lo, hi;
      if (dtype == BF16) {
        lo = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
        hi = _mm512_castsi512_ps(_mm512_and_si512(w, _mm512_set1_epi32(static_cast<int>(0xffff0000u))));
      } else {
        lo = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(w));
        hi = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(w, 16)));
      }
      _mm512_storeu_ps(d + c * stride, lo);
      _mm512_storeu_ps(d + (c + 1) * stride, hi);
    }
    for (; c < cols; c++)
      for (int64_t i = 0; i < 16; i++) d[c * stride + i] = load(src, dtype, (r0 + i) * cols + c);
  }
#endif
  // Portable path (and the last rows of a transposed block): 16 x 16 tiles.
  for (int64_t rb = r0; rb < rows; rb += 16) {
    const int64_t re = std::min(rows, rb + 16);
    for (int64_t cb = 0; cb < cols; cb += 16) {
      const int64_t ce = std::min(cols, cb + 16);
      for (int64_t r = rb; r < re; r++)
        for (int64_t c = cb; c < ce; c++) dst[transpose ? c * stride + r : r * stride + c] = load(src, dtype, r * cols + c);
    }
  }
}

/** pread of exactly `n` bytes at `pos`, retried on short reads; returns the bytes read (less only at end of file). */
size_t preadFully(int fd, uint8_t* out, size_t n, int64_t pos) {
  size_t done = 0;
  while (done < n) {
    const ssize_t got = pread(fd, out + done, n - done, static_cast<off_t>(pos + done));
    if (got <= 0) break;
    done += static_cast<size_t>(got);
  }
  return done;
}

/**
 * Maps the pages of [begin, end) before they are written: one madvise per chunk on the pool's
 * threads instead of a page fault per 4 KiB (first touch of fresh memory is most of a float32
 * load on a VM: ~20% less time populated than faulted). Advice only: an error changes nothing.
 */
void populate(float* begin, float* end) {
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t lo = (reinterpret_cast<uintptr_t>(begin) + page - 1) & ~(page - 1), hi = reinterpret_cast<uintptr_t>(end) & ~(page - 1);
  if (hi <= lo) return;
  constexpr uintptr_t CHUNK = uintptr_t{4} << 20;
  const int chunks = static_cast<int>((hi - lo + CHUNK - 1) / CHUNK);
  pool().parallelFor(chunks, [&](int i) {
    const uintptr_t a = lo + i * CHUNK, b = std::min(hi, a + CHUNK);
    madvise(reinterpret_cast<void*>(a), b - a, MADV_POPULATE_WRITE);
  });
}

napi_value fail(napi_env env, const std::string& msg) {
  napi_throw_range_error(env, nullptr, ("[native.readInto] " + msg).c_str());
  return nullptr;
}

}  // namespace

napi_value ReadInto(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value a[9];
  if (napi_get_cb_info(env, info, &argc, a, nullptr, nullptr) != napi_ok || argc < 9) return fail(env, "expects 9 arguments");
  double num[9] = {0};
  for (int i : {0, 1, 2, 3, 4, 6, 7, 8})
    if (napi_get_value_double(env, a[i], &num[i]) != napi_ok) return fail(env, "argument " + std::to_string(i) + " must be a number");
  for (int i : {0, 1, 2, 3, 4, 6, 7, 8})
    if (!(num[i] >= 0 && num[i] <= 9.0e15) || num[i] != static_cast<double>(static_cast<int64_t>(num[i])))
      return fail(env, "argument " + std::to_string(i) + " (" + std::to_string(num[i]) + ") must be a non-negative integer");
  const int fd = static_cast<int>(num[0]);
  const int64_t pos = static_cast<int64_t>(num[1]), rows = static_cast<int64_t>(num[3]), cols = static_cast<int64_t>(num[4]);
  const int dtype = static_cast<int>(num[2]);
  const int64_t offset = static_cast<int64_t>(num[6]), stride = static_cast<int64_t>(num[7]);
  const bool transpose = num[8] != 0;
  if (dtype > F32) return fail(env, "dtype code (" + std::to_string(dtype) + ") must be 0 (BF16), 1 (F16) or 2 (F32)");
  napi_typedarray_type tt;
  size_t len = 0;
  void* data = nullptr;
  bool isTa = false;
  if (napi_is_typedarray(env, a[5], &isTa) != napi_ok || !isTa ||
      napi_get_typedarray_info(env, a[5], &tt, &len, &data, nullptr, nullptr) != napi_ok || tt != napi_float32_array)
    return fail(env, "dst must be a Float32Array");
  if (rows == 0 || cols == 0) {
    napi_value r;
    napi_create_double(env, 0, &r);
    return r;
  }
  const int64_t inner = transpose ? rows : cols, outer = transpose ? cols : rows;
  if (stride < inner) return fail(env, "dstStride (" + std::to_string(stride) + ") must be >= " + std::to_string(inner));
  const int64_t last = offset + (outer - 1) * stride + inner;
  if (last > static_cast<int64_t>(len))
    return fail(env, "dst holds " + std::to_string(len) + " floats, the tensor needs up to index " + std::to_string(last));
  float* dst = static_cast<float*>(data) + offset;
  const int esize = dtype == F32 ? 4 : 2;
  const size_t rowBytes = static_cast<size_t>(cols) * esize;
  const size_t total = rowBytes * static_cast<size_t>(rows);
  // Blocks of whole rows (multiples of 16 rows when transposing, so the gather path covers them).
  int64_t blockRows = std::max<int64_t>(1, static_cast<int64_t>(BLOCK_BYTES / rowBytes));
  if (transpose) blockRows = std::max<int64_t>(16, blockRows / 16 * 16);
  const int64_t blocks = (rows + blockRows - 1) / blockRows;
  const bool direct = dtype == F32 && !transpose && stride == cols;
  // pread maps what it fills itself; TFJS_ATTENTION_LOAD_POPULATE=0 leaves the pages to fault (A/B)
  const char* pop = std::getenv("TFJS_ATTENTION_LOAD_POPULATE");
  if (!direct && !(pop && pop[0] == '0')) populate(dst, dst + (outer - 1) * stride + inner);
  std::atomic<size_t> read{0};
  std::atomic<bool> shortRead{false};
  pool().parallelFor(static_cast<int>(blocks), [&](int b) {
    if (shortRead.load(std::memory_order_relaxed)) return;
    const int64_t r0 = b * blockRows, r1 = std::min(rows, r0 + blockRows);
    const size_t n = rowBytes * static_cast<size_t>(r1 - r0);
    const int64_t at = pos + static_cast<int64_t>(rowBytes) * r0;
    if (direct) {
      const size_t got = preadFully(fd, reinterpret_cast<uint8_t*>(dst + r0 * cols), n, at);
      read += got;
      if (got < n) shortRead = true;
      return;
    }
    thread_local std::vector<uint8_t> scratch;
    if (scratch.size() < n + 64) scratch.resize(n + 64);  // +64: the gather of the last column pair may read 2 bytes past
    const size_t got = preadFully(fd, scratch.data(), n, at);
    read += got;
    if (got < n) { shortRead = true; return; }
    widenBlock(scratch.data(), dtype, r1 - r0, cols, transpose ? dst + r0 : dst + r0 * stride, stride, transpose);
  });
  napi_value r;
  napi_create_double(env, shortRead ? static_cast<double>(std::min(read.load(), total - 1)) : static_cast<double>(total), &r);
  return r;
}
