// futex_floor — what this machine's scheduler allows W4's "waiter answered after publish"
// figure: one process sleeps in FUTEX_WAIT on a shared word for a given time, another stores
// a timestamp and FUTEX_WAKEs it, the waiter reads the clock when it runs again. No pipecache
// code is involved: it is the floor a de-duplicating waiter cannot beat on this host.
//
//   futex_floor [SLEEP_US [SAMPLES]]     (defaults 2000, the W4 handler's 2 ms; 1000)
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <new>
#include <vector>

namespace {

constexpr int kMaxSamples = 100000;

struct Shared {
  std::atomic<std::uint32_t> word;  // even: waiter may sleep; odd: woken
  std::atomic<long> woken_at_ns;
  std::atomic<int> asleep;          // samples the waiter has started waiting for
  long latency_ns[kMaxSamples];
};

long now_ns() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000L + t.tv_nsec;
}

}  // namespace

// argv[i] as a whole decimal number, or `fallback` when absent; -1 when it is not one.
long argument(int argc, char** argv, int i, long fallback) {
  if (argc <= i) return fallback;
  char* end = nullptr;
  const long v = std::strtol(argv[i], &end, 10);
  return end == argv[i] || *end != '\0' ? -1 : v;
}

int main(int argc, char** argv) {
  const long sleep_us = argument(argc, argv, 1, 2000);
  const long samples = argument(argc, argv, 2, 1000);
  if (argc > 3 || sleep_us < 0 || sleep_us > 1000000 || samples < 10 || samples > kMaxSamples) {
    std::fprintf(stderr, "futex_floor: usage: futex_floor [SLEEP_US (0..1000000) [SAMPLES (10..%d)]]\n",
                 kMaxSamples);
    return 2;
  }
  void* mem = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return 2;
  auto* s = new (mem) Shared{};
  const pid_t waiter = fork();
  if (waiter < 0) return 2;
  if (waiter == 0) {
    for (int i = 0; i < samples; ++i) {
      const auto idle = static_cast<std::uint32_t>(2 * i);
      s->asleep.store(i + 1);
      while (s->word.load() == idle) syscall(SYS_futex, &s->word, FUTEX_WAIT, idle, nullptr, nullptr, 0);
      s->latency_ns[i] = now_ns() - s->woken_at_ns.load();
      s->word.store(idle + 2);
    }
    _exit(0);
  }
  for (int i = 0; i < samples; ++i) {
    const auto idle = static_cast<std::uint32_t>(2 * i);
    while (s->asleep.load() != i + 1) {
    }
    usleep(static_cast<useconds_t>(sleep_us));  // the waiter falls asleep, as behind a handler
    s->woken_at_ns.store(now_ns());
    s->word.store(idle + 1);
    syscall(SYS_futex, &s->word, FUTEX_WAKE, 1, nullptr, nullptr, 0);
    while (s->word.load() != idle + 2) {
    }
  }
  waitpid(waiter, nullptr, 0);
  std::vector<long> v(s->latency_ns, s->latency_ns + samples);  // samples <= kMaxSamples
  std::sort(v.begin(), v.end());
  std::printf("futex wake -> waiter running after %ld us asleep, %ld samples: p50 %.1f us  p99 %.1f us  max %.1f us\n",
              sleep_us, samples, v[static_cast<std::size_t>(samples / 2)] / 1e3,
              v[static_cast<std::size_t>(samples * 99 / 100)] / 1e3, v.back() / 1e3);
  return 0;
}
