// Guard pages around every shared file mapping of the fuzzing process.
//
// Why: a read past the end of a mapped segment is the bug the segment fuzzer hunts, but the
// kernel usually places the next mapping right after ours, so such a read would succeed
// silently (ASan does not track mmap'ed memory). This interposer reserves a PROT_NONE region
// of kGuardBytes on each side of every MAP_SHARED file mapping made with a kernel-chosen
// address (Boost's mapped_region makes exactly those), so the first byte outside the
// segment faults (SIGSEGV: libFuzzer reports it as a crash with the input).
//
// Linked only into the fuzz and replay binaries. The sanitizer runtimes define mmap/munmap as
// weak interceptors, so these strong definitions take precedence; they call the kernel
// directly.
// meson builds with -D_FILE_OFFSET_BITS=64, under which <sys/mman.h> renames mmap to mmap64:
// undone here so that both symbols are defined below (identical on 64-bit Linux).
#undef _FILE_OFFSET_BITS
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <mutex>

namespace {

constexpr std::size_t kGuardBytes = 1u << 20;  // > the longest read a hostile length allows (64 KiB keys)
constexpr int kMaxTracked = 64;

struct Tracked {
  char* base = nullptr;     // what mmap returned to the caller
  std::size_t span = 0;     // rounded length of the file part
};
Tracked g_tracked[kMaxTracked];
std::mutex g_mu;

void* raw_mmap(void* addr, std::size_t len, int prot, int flags, int fd, off_t off) {
  return reinterpret_cast<void*>(::syscall(SYS_mmap, addr, len, prot, flags, fd, off));
}
int raw_munmap(void* addr, std::size_t len) { return static_cast<int>(::syscall(SYS_munmap, addr, len)); }

std::size_t page_round(std::size_t n) {
  std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return (n + page - 1) / page * page;
}

}  // namespace

extern "C" void* mmap(void* addr, std::size_t len, int prot, int flags, int fd, off_t off) {
  if (fd < 0 || addr != nullptr || !(flags & MAP_SHARED) || (flags & MAP_FIXED) || len == 0)
    return raw_mmap(addr, len, prot, flags, fd, off);
  std::size_t span = page_round(len);
  void* res = raw_mmap(nullptr, span + 2 * kGuardBytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (res == MAP_FAILED) return res;
  char* base = static_cast<char*>(res) + kGuardBytes;
  if (raw_mmap(base, len, prot, flags | MAP_FIXED, fd, off) == MAP_FAILED) {
    raw_munmap(res, span + 2 * kGuardBytes);
    return MAP_FAILED;
  }
  std::lock_guard<std::mutex> lock(g_mu);
  for (auto& t : g_tracked)
    if (!t.base) {
      t.base = base;
      t.span = span;
      break;
    }
  return base;
}

extern "C" void* mmap64(void* addr, std::size_t len, int prot, int flags, int fd, off_t off) {
  return mmap(addr, len, prot, flags, fd, off);
}

extern "C" int munmap(void* addr, std::size_t len) {
  {
    std::lock_guard<std::mutex> lock(g_mu);
    for (auto& t : g_tracked)
      if (t.base == addr) {
        char* start = t.base - kGuardBytes;
        std::size_t total = t.span + 2 * kGuardBytes;
        t = Tracked{};
        return raw_munmap(start, total);
      }
  }
  return raw_munmap(addr, len);
}
