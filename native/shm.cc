// Shared memory between processes (the process transport of lib/sharding/): a file in /dev/shm
// mapped MAP_SHARED by the main process and every shard worker process, handed to JavaScript as an
// external ArrayBuffer whose finalizer munmaps it.
//   mapShared(path, bytes, create) -> ArrayBuffer
//     create: open or create `path`, size it to `bytes` and reserve the pages (posix_fallocate, so a
//     full tmpfs fails here with ENOSPC instead of a SIGBUS on first touch);
//     else: open the existing file, which must hold at least `bytes`.
//   unlinkShared(path) -> true when removed, false when it was already gone.
// Errors throw `[native.mapShared] <what> '<path>' (<bytes> bytes): <strerror>`.
#include <node_api.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace {

bool stringArg(napi_env env, napi_value v, std::string* out) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &len) != napi_ok) return false;
  out->resize(len);
  return napi_get_value_string_utf8(env, v, out->data(), len + 1, &len) == napi_ok;
}

napi_value fail(napi_env env, const char* fn, const char* what, const std::string& path, double bytes, int err) {
  std::string msg = std::string("[native.") + fn + "] " + what + " '" + path + "' (" +
                    std::to_string(static_cast<long long>(bytes)) + " bytes): " + std::strerror(err);
  napi_throw_error(env, nullptr, msg.c_str());
  return nullptr;
}

void unmap(napi_env, void* data, void* hint) {
  munmap(data, reinterpret_cast<size_t>(hint));
}

}  // namespace

napi_value MapShared(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value a[3];
  if (napi_get_cb_info(env, info, &argc, a, nullptr, nullptr) != napi_ok || argc < 3) {
    napi_throw_error(env, nullptr, "[native.mapShared] expected (path, bytes, create)");
    return nullptr;
  }
  std::string path;
  double bytesD = 0;
  bool create = false;
  if (!stringArg(env, a[0], &path) || napi_get_value_double(env, a[1], &bytesD) != napi_ok ||
      napi_get_value_bool(env, a[2], &create) != napi_ok) {
    napi_throw_type_error(env, nullptr, "[native.mapShared] expected (path: string, bytes: number, create: boolean)");
    return nullptr;
  }
  if (!(bytesD >= 1) || bytesD > 9007199254740991.0) return fail(env, "mapShared", "bytes must be >= 1 for", path, bytesD, EINVAL);
  const size_t bytes = static_cast<size_t>(bytesD);
  int fd = open(path.c_str(), create ? (O_RDWR | O_CREAT | O_TRUNC) : O_RDWR, 0600);
  if (fd < 0) return fail(env, "mapShared", create ? "cannot create" : "cannot open", path, bytesD, errno);
  if (create) {
    if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
      int e = errno; close(fd); unlink(path.c_str());
      return fail(env, "mapShared", "cannot size", path, bytesD, e);
    }
    int e = posix_fallocate(fd, 0, static_cast<off_t>(bytes));
    if (e != 0 && e != EOPNOTSUPP && e != EINVAL) {  // no fallocate support: pages come on first touch
      close(fd); unlink(path.c_str());
      return fail(env, "mapShared", "cannot reserve", path, bytesD, e);
    }
  } else {
    off_t size = lseek(fd, 0, SEEK_END);  // not fstat: that symbol needs glibc 2.33, the GPU machine may be older
    if (size < 0) { int e = errno; close(fd); return fail(env, "mapShared", "cannot size up", path, bytesD, e); }
    if (static_cast<size_t>(size) < bytes) { close(fd); return fail(env, "mapShared", "file is smaller than asked", path, bytesD, ERANGE); }
  }
  void* data = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int e = errno;
  close(fd);  // the mapping keeps the file alive
  if (data == MAP_FAILED) {
    if (create) unlink(path.c_str());
    return fail(env, "mapShared", "cannot map", path, bytesD, e);
  }
  napi_value ab;
  if (napi_create_external_arraybuffer(env, data, bytes, unmap, reinterpret_cast<void*>(bytes), &ab) != napi_ok) {
    munmap(data, bytes);
    napi_throw_error(env, nullptr, "[native.mapShared] napi_create_external_arraybuffer failed");
    return nullptr;
  }
  return ab;
}

napi_value UnlinkShared(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value a[1];
  std::string path;
  if (napi_get_cb_info(env, info, &argc, a, nullptr, nullptr) != napi_ok || argc < 1 || !stringArg(env, a[0], &path)) {
    napi_throw_type_error(env, nullptr, "[native.unlinkShared] expected (path: string)");
    return nullptr;
  }
  bool removed = unlink(path.c_str()) == 0;
  if (!removed && errno != ENOENT) return fail(env, "unlinkShared", "cannot unlink", path, 0, errno);
  napi_value r;
  napi_get_boolean(env, removed, &r);
  return r;
}
