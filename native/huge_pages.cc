// allocHuge(bytes): a zero-filled ArrayBuffer of `bytes` on 2 MiB-aligned anonymous memory that
// the kernel is asked to back with transparent huge pages (madvise MADV_HUGEPAGE, before the first
// touch, so no later collapse is needed), freed when the buffer is collected.
//
// Why: a decode step streams every weight of the model once (~650 MB for the 135M bench model);
// on 4 KiB pages the stream crosses a page (a TLB miss, and the hardware prefetchers stop) every
// 4 KiB, and a plain read loop on this machine reaches ~15 GB/s against ~25 GB/s on huge pages.
// models/native_weights.ts moves a model's weights here once (MADV_COLLAPSE in place was slower:
// 20-40 s on this VM, the kernel drains every CPU's page lists). Where huge pages are off
// (`never`) or the platform has none, this is a plain zeroed mapping: same contents, no harm.
#include <node_api.h>
#include <sys/mman.h>

#include <cstdint>
#include <string>

namespace {

constexpr size_t HUGE = size_t{2} << 20;

struct Mapping { void* base; size_t len; };

void release(napi_env env, void*, void* hint) {
  auto* m = static_cast<Mapping*>(hint);
  munmap(m->base, m->len);
  int64_t adjusted;
  napi_adjust_external_memory(env, -static_cast<int64_t>(m->len), &adjusted);
  delete m;
}

}  // namespace

napi_value AllocHuge(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value a[1];
  double bytesD = -1;
  if (napi_get_cb_info(env, info, &argc, a, nullptr, nullptr) != napi_ok || argc < 1 ||
      napi_get_value_double(env, a[0], &bytesD) != napi_ok) {
    napi_throw_type_error(env, nullptr, "[native.allocHuge] expected a byte count");
    return nullptr;
  }
  if (!(bytesD >= 1 && bytesD <= 1e13) || bytesD != static_cast<double>(static_cast<int64_t>(bytesD))) {
    napi_throw_range_error(env, nullptr, ("[native.allocHuge] bytes (" + std::to_string(bytesD) + ") must be an integer in [1, 1e13]").c_str());
    return nullptr;
  }
  const size_t bytes = static_cast<size_t>(bytesD);
  const size_t len = (bytes + HUGE - 1) / HUGE * HUGE + HUGE;  // room to align the start to 2 MiB
  void* base = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) {
    napi_throw_error(env, nullptr, ("[native.allocHuge] cannot map " + std::to_string(bytes) + " bytes").c_str());
    return nullptr;
  }
  char* data = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(base) + HUGE - 1) & ~(HUGE - 1));
#ifdef MADV_HUGEPAGE
  madvise(data, len - (data - static_cast<char*>(base)), MADV_HUGEPAGE);  // advice only: failure leaves 4 KiB pages
#endif
  auto* m = new Mapping{base, len};
  napi_value ab;
  if (napi_create_external_arraybuffer(env, data, bytes, release, m, &ab) != napi_ok) {
    munmap(base, len);
    delete m;
    napi_throw_error(env, nullptr, "[native.allocHuge] napi_create_external_arraybuffer failed");
    return nullptr;
  }
  int64_t adjusted;
  napi_adjust_external_memory(env, static_cast<int64_t>(len), &adjusted);
  return ab;
}

