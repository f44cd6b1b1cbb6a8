// pipectl top: a live view of the segment, refreshed every interval (default 1 s).
//
// On a terminal it takes the alternate screen and redraws in place: rates per second over the
// last interval, hit ratio, memory use as a bar, and the busiest request types. On anything
// else (a pipe, a file, a test) it prints one logfmt line per interval, so it can feed a log
// or a script: `pipectl top --interval 10s | tee -a cache.log`.
//
// Terminal handling — the part that must never go wrong, since a crashed full-screen program
// that leaves the terminal without echo is the user's problem to fix:
//   1. The terminal is changed only if stdin is a terminal (keys are read from it); the
//      alternate screen only if stdout is one.
//   2. Mode: ICANON and ECHO off, ISIG and OPOST kept ("cbreak", as top(1) does). Keeping ISIG
//      means Ctrl-C is a SIGINT even while we are inside stats(), and OPOST keeps '\n' a line
//      break. Full raw mode would buy nothing here.
//   3. Every exit restores it: q, Ctrl-C/SIGTERM/SIGHUP/SIGQUIT (flag, then the normal path),
//      an exception (the RAII guard), a fatal signal (the handler restores with
//      async-signal-safe calls only — tcsetattr, write — then re-raises with the default
//      action), and Ctrl-Z (restore, stop; on SIGCONT take the screen again and redraw).
//   4. Signal handlers touch only volatile sig_atomic_t flags and the saved termios, which is
//      written once before any handler is installed.

#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>

#include <fmt/core.h>

#include <pipecache/cache.hpp>
#include <pipecache/figures.hpp>
#include <pipecache/units.hpp>

#include "commands.hpp"

namespace pipectl {
namespace {

namespace figures = pipecache::figures;
using pipecache::Histogram;
using pipecache::NamespaceStats;
using pipecache::NsCounter;
using pipecache::NsHistogram;
using pipecache::Stats;
using Clock = std::chrono::steady_clock;

// ---- terminal state shared with signal handlers ------------------------------------------

constexpr char kEnterScreen[] = "\x1b[?1049h\x1b[?25l";  // alternate screen, hide cursor
constexpr char kLeaveScreen[] = "\x1b[?25h\x1b[?1049l";  // show cursor, main screen

struct termios g_saved_termios;
struct termios g_view_termios;
volatile sig_atomic_t g_termios_changed = 0;  // g_saved_termios must be put back
volatile sig_atomic_t g_screen_taken = 0;     // the alternate screen must be left
volatile sig_atomic_t g_quit = 0;
volatile sig_atomic_t g_redraw = 0;

void write_all(const char* s, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(STDOUT_FILENO, s, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    s += w;
    n -= static_cast<std::size_t>(w);
  }
}

// Async-signal-safe: called from handlers.
void leave_view() {
  int saved_errno = errno;
  if (g_screen_taken) {
    write_all(kLeaveScreen, sizeof kLeaveScreen - 1);
    g_screen_taken = 0;
  }
  if (g_termios_changed) {
    ::tcsetattr(STDIN_FILENO, TCSADRAIN, &g_saved_termios);
    g_termios_changed = 0;
  }
  errno = saved_errno;
}

// Async-signal-safe: called from the SIGTSTP handler after the stop.
void enter_view(bool take_termios, bool take_screen) {
  if (take_termios && ::tcsetattr(STDIN_FILENO, TCSADRAIN, &g_view_termios) == 0) {
    g_termios_changed = 1;
  }
  if (take_screen) {
    write_all(kEnterScreen, sizeof kEnterScreen - 1);
    g_screen_taken = 1;
  }
}

volatile sig_atomic_t g_uses_termios = 0;
volatile sig_atomic_t g_uses_screen = 0;

extern "C" void on_quit_signal(int) { g_quit = 1; }

extern "C" void on_resize(int) { g_redraw = 1; }

extern "C" void on_fatal_signal(int sig) {
  leave_view();
  // SA_RESETHAND put the default action back: re-raising dies with the original signal (and
  // its core dump), as if we had never caught it.
  ::raise(sig);
}

extern "C" void on_stop(int) {
  int saved_errno = errno;
  leave_view();
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  ::sigaction(SIGTSTP, &dfl, nullptr);
  sigset_t tstp;
  sigemptyset(&tstp);
  sigaddset(&tstp, SIGTSTP);
  ::sigprocmask(SIG_UNBLOCK, &tstp, nullptr);
  ::raise(SIGTSTP);  // stops here until SIGCONT
  struct sigaction again {};
  again.sa_handler = on_stop;
  sigemptyset(&again.sa_mask);
  ::sigaction(SIGTSTP, &again, nullptr);
  enter_view(g_uses_termios != 0, g_uses_screen != 0);
  g_redraw = 1;
  errno = saved_errno;
}

// Takes the terminal for the life of the object; gives it back on every way out.
class TerminalView {
 public:
  TerminalView(bool use_termios, bool use_screen) {
    if (use_termios && ::tcgetattr(STDIN_FILENO, &g_saved_termios) == 0) {
      g_view_termios = g_saved_termios;
      g_view_termios.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
      g_view_termios.c_cc[VMIN] = 1;
      g_view_termios.c_cc[VTIME] = 0;
      g_uses_termios = 1;
    }
    g_uses_screen = use_screen ? 1 : 0;
    install(SIGINT, on_quit_signal, 0);
    install(SIGTERM, on_quit_signal, 0);
    install(SIGHUP, on_quit_signal, 0);
    install(SIGQUIT, on_quit_signal, 0);
    if (g_uses_termios || g_uses_screen) {
      install(SIGWINCH, on_resize, SA_RESTART);
      install(SIGCONT, on_resize, SA_RESTART);
      install(SIGTSTP, on_stop, SA_RESTART);
      for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL}) {
        install(sig, on_fatal_signal, SA_RESETHAND);
      }
      enter_view(g_uses_termios != 0, g_uses_screen != 0);
    }
  }
  ~TerminalView() {
    // Handlers first: a signal arriving after the restore must not take the screen again.
    for (auto& [sig, old] : previous_) ::sigaction(sig, &old, nullptr);
    leave_view();
    g_uses_termios = 0;
    g_uses_screen = 0;
  }
  TerminalView(const TerminalView&) = delete;
  TerminalView& operator=(const TerminalView&) = delete;

 private:
  void install(int sig, void (*handler)(int), int flags) {
    struct sigaction sa {};
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    // No SA_RESTART for the quit signals: poll() must return EINTR so the loop sees the flag.
    sa.sa_flags = flags;
    struct sigaction old {};
    ::sigaction(sig, &sa, &old);
    previous_.emplace_back(sig, old);
  }
  std::vector<std::pair<int, struct sigaction>> previous_;
};

// ---- what is shown -------------------------------------------------------------------------

std::uint64_t delta(std::uint64_t now, std::uint64_t before) {
  // A counter that went down means the segment was re-created under the same name: count
  // from zero rather than print an absurd negative rate.
  return now >= before ? now - before : now;
}

Histogram delta(const Histogram& now, const Histogram& before) {
  Histogram d;
  for (unsigned i = 0; i < Histogram::kBuckets; ++i) d.buckets[i] = delta(now.buckets[i], before.buckets[i]);
  d.count = delta(now.count, before.count);
  d.sum_ns = delta(now.sum_ns, before.sum_ns);
  return d;
}

// A request type's counters and histograms over the interval: the figures (figures.hpp) of
// the result are the interval's.
NamespaceStats delta(const NamespaceStats& now, const NamespaceStats& before) {
  NamespaceStats d = now;
  for (unsigned c = 0; c < pipecache::kNsCounters; ++c) {
    d.counters[c] = delta(now.counters[c], before.counters[c]);
  }
  for (unsigned h = 0; h < pipecache::kNsHistograms; ++h) {
    d.histograms[h] = delta(now.histograms[h], before.histograms[h]);
  }
  return d;
}

struct TypeRow {
  std::string name;
  double requests_per_s = 0;
  double hit_ratio = 0;
  double computes_per_s = 0;
  double failures_per_s = 0;
  Histogram hit_time;
  Histogram compute_time;
  std::uint64_t total_requests = 0;
  std::uint64_t entries = 0;
};

struct Frame {
  double seconds = 0;  // length of the interval the rates cover; 0 on the first frame
  double hits_per_s = 0, misses_per_s = 0, puts_per_s = 0, evictions_per_s = 0,
         expirations_per_s = 0, invalidations_per_s = 0, put_failures_per_s = 0;
  double interval_hit_ratio = std::nan("");
  std::vector<TypeRow> types;  // busiest first
};

Frame compare(const Stats& now, const Stats& before, double seconds) {
  Frame f;
  f.seconds = seconds;
  double s = seconds > 0 ? seconds : 1;
  std::uint64_t hits = delta(now.hits, before.hits), misses = delta(now.misses, before.misses);
  f.hits_per_s = static_cast<double>(hits) / s;
  f.misses_per_s = static_cast<double>(misses) / s;
  f.interval_hit_ratio = figures::lookup_hit_ratio(hits, misses);
  f.puts_per_s = static_cast<double>(delta(now.inserts + now.updates,
                                           before.inserts + before.updates)) / s;
  f.evictions_per_s = static_cast<double>(delta(now.evictions, before.evictions)) / s;
  f.expirations_per_s = static_cast<double>(delta(now.expirations, before.expirations)) / s;
  f.invalidations_per_s = static_cast<double>(delta(now.invalidations, before.invalidations)) / s;
  f.put_failures_per_s = static_cast<double>(delta(now.put_failures, before.put_failures)) / s;
  for (const auto& ns : now.namespaces) {
    const NamespaceStats* old = nullptr;
    for (const auto& o : before.namespaces) {
      if (o.id == ns.id && o.name == ns.name) old = &o;
    }
    const NamespaceStats zero;
    const NamespaceStats d = delta(ns, old == nullptr ? zero : *old);
    TypeRow row;
    row.name = ns.name;
    row.requests_per_s = static_cast<double>(d.counter(NsCounter::requests)) / s;
    row.hit_ratio = figures::request_hit_ratio(d);
    row.computes_per_s = static_cast<double>(d.counter(NsCounter::computes)) / s;
    row.failures_per_s = static_cast<double>(d.counter(NsCounter::compute_failures)) / s;
    row.hit_time = d.histogram(NsHistogram::hit_time);
    row.compute_time = d.histogram(NsHistogram::compute_time);
    row.total_requests = ns.counter(NsCounter::requests);
    row.entries = ns.entries;
    f.types.push_back(std::move(row));
  }
  std::stable_sort(f.types.begin(), f.types.end(), [](const TypeRow& a, const TypeRow& b) {
    if (a.requests_per_s != b.requests_per_s) return a.requests_per_s > b.requests_per_s;
    return a.total_requests > b.total_requests;
  });
  return f;
}

std::string rate(double per_s, bool known) {
  if (!known) return "-";
  if (per_s >= 10'000'000) return fmt::format("{:.1f}M", per_s / 1e6);
  if (per_s >= 100'000) return fmt::format("{:.0f}k", per_s / 1e3);
  if (per_s >= 100) return fmt::format("{:.0f}", per_s);
  return fmt::format("{:.1f}", per_s);
}

std::string latency(const Histogram& h, double q) {
  if (h.count == 0) return "-";
  double ns = q < 0 ? figures::mean_ns(h) : h.percentile_ns(q);
  return pipecache::format_duration(std::chrono::nanoseconds(static_cast<std::int64_t>(ns)));
}

std::string utc_now(const char* format) {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}

std::string memory_bar(const Stats& s, std::size_t width) {
  const double used = figures::or_zero(figures::budget_used(s));
  std::size_t fill = static_cast<std::size_t>(std::clamp(used, 0.0, 1.0) * static_cast<double>(width) + 0.5);
  return fmt::format("[{}{}]", std::string(fill, '#'), std::string(width - fill, '.'));
}

std::string screen(const std::string& name, const Stats& s, const Frame& f,
                   std::chrono::nanoseconds interval, unsigned rows, unsigned cols) {
  bool known = f.seconds > 0;
  std::vector<std::string> lines;
  lines.push_back(fmt::format("pipectl top  segment {}  up {}  {} processes  every {}  {}  (q quits)",
                              name, format_ms(std::chrono::milliseconds(s.uptime_ms)),
                              s.attached_processes, pipecache::format_duration(interval),
                              utc_now("%H:%M:%S UTC")));
  lines.emplace_back();
  lines.push_back(fmt::format("lookups/s  hits {:>8}  misses {:>8}  hit ratio {:>6}  (since start {})",
                              rate(f.hits_per_s, known), rate(f.misses_per_s, known),
                              known ? percent(f.interval_hit_ratio) : std::string("-"),
                              percent(figures::lookup_hit_ratio(s))));
  lines.push_back(fmt::format("writes/s   puts {:>8}  failed {:>8}  evictions {:>6}  expirations {}  invalidations {}",
                              rate(f.puts_per_s, known), rate(f.put_failures_per_s, known),
                              rate(f.evictions_per_s, known), rate(f.expirations_per_s, known),
                              rate(f.invalidations_per_s, known)));
  std::size_t bar = std::clamp<std::size_t>(cols > 60 ? cols - 60 : 10, 10, 50);
  lines.push_back(fmt::format("memory     {} {} of {} ({})  {} entries",
                              memory_bar(s, bar), pipecache::format_size(s.bytes_used),
                              pipecache::format_size(s.byte_budget),
                              percent(figures::budget_used(s)), s.entries));
  lines.push_back(fmt::format("arena      free {}  largest free block {}  lock repairs {}",
                              pipecache::format_size(s.free_bytes),
                              pipecache::format_size(s.largest_free_block), s.lock_recoveries));
  lines.emplace_back();
  if (f.types.empty()) {
    lines.push_back("no request types recorded yet");
  } else {
    lines.push_back(fmt::format("{:<24} {:>8} {:>6} {:>9} {:>9} {:>9} {:>11} {:>11} {:>8}",
                                "request type", "req/s", "hit%", "hit avg", "hit p99",
                                "compute/s", "compute avg", "compute p99", "entries"));
    for (const auto& t : f.types) {
      if (lines.size() + 1 >= rows) break;  // the busiest that fit
      lines.push_back(fmt::format("{:<24} {:>8} {:>6} {:>9} {:>9} {:>9} {:>11} {:>11} {:>8}",
                                  printable(t.name).substr(0, 24), rate(t.requests_per_s, known),
                                  known ? percent(t.hit_ratio) : std::string("-"),
                                  latency(t.hit_time, -1), latency(t.hit_time, 0.99),
                                  rate(t.computes_per_s, known), latency(t.compute_time, -1),
                                  latency(t.compute_time, 0.99), t.entries));
    }
  }
  std::string out = "\x1b[H";  // home; every line erases its own rest, then below is erased
  for (std::size_t i = 0; i < lines.size() && i < rows; ++i) {
    std::string& l = lines[i];
    if (l.size() > cols) l.resize(cols);
    out += l;
    out += i + 1 < std::min<std::size_t>(lines.size(), rows) ? "\x1b[K\n" : "\x1b[K";
  }
  out += "\x1b[J";
  return out;
}

std::string log_line(const std::string& name, const Stats& s, const Frame& f) {
  auto num = [](double v) {
    return std::isnan(v) ? std::string("-") : fmt::format("{:.2f}", v);
  };
  std::string line = fmt::format(
      "time={} segment={} hits_per_s={} misses_per_s={} hit_ratio={} puts_per_s={} "
      "put_failures_per_s={} evictions_per_s={} expirations_per_s={} invalidations_per_s={} "
      "entries={} bytes_used={} byte_budget={} processes={}",
      utc_now("%Y-%m-%dT%H:%M:%SZ"), name, num(f.hits_per_s), num(f.misses_per_s),
      std::isnan(f.interval_hit_ratio) ? std::string("-")
                                       : fmt::format("{:.4f}", f.interval_hit_ratio),
      num(f.puts_per_s), num(f.put_failures_per_s), num(f.evictions_per_s),
      num(f.expirations_per_s), num(f.invalidations_per_s), s.entries, s.bytes_used,
      s.byte_budget, s.attached_processes);
  if (!f.types.empty()) {
    const TypeRow& busiest = f.types.front();
    // logfmt: a value with spaces or quotes would need quoting; request types are key
    // prefixes and may hold anything, so they go through printable() and are quoted.
    line += fmt::format(" busiest_type=\"{}\" busiest_type_req_per_s={}",
                        printable(busiest.name), num(busiest.requests_per_s));
  }
  line += '\n';
  return line;
}

void window_size(unsigned& rows, unsigned& cols) {
  struct winsize ws {};
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
    rows = ws.ws_row;
    cols = ws.ws_col;
  } else {
    rows = 24;
    cols = 80;
  }
}

// Waits until `deadline`, reading keys. Returns early on a quit key, a signal or a redraw
// request.
void wait_for_tick(Clock::time_point deadline, bool read_keys) {
  while (!g_quit && !g_redraw) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return;
    struct pollfd pfd {STDIN_FILENO, POLLIN, 0};
    int n = ::poll(read_keys ? &pfd : nullptr, read_keys ? 1 : 0,
                   static_cast<int>(std::min<std::int64_t>(left.count() + 1, 1000)));
    if (n < 0 && errno != EINTR) return;
    if (n > 0 && read_keys) {
      if ((pfd.revents & (POLLHUP | POLLERR | POLLNVAL)) != 0) {
        read_keys = false;  // the terminal went away: keep running until a signal
        continue;
      }
      char buf[64];
      ssize_t got = ::read(STDIN_FILENO, buf, sizeof buf);
      if (got <= 0) {
        read_keys = false;
        continue;
      }
      for (ssize_t i = 0; i < got; ++i) {
        // 'q' as in top(1) and less(1); Ctrl-C arrives as SIGINT (ISIG is on) but is also
        // accepted as a byte in case the terminal delivers it that way.
        if (buf[i] == 'q' || buf[i] == 'Q' || buf[i] == 0x03) g_quit = 1;
        if (buf[i] == ' ') g_redraw = 1;
      }
    }
  }
}

// Which file the name points at. Processes keep a destroyed segment mapped, so without this
// check top would go on showing a segment nobody uses any more.
ino_t segment_inode(const std::string& name) {
  struct stat st {};
  if (::stat(pipecache::Cache::path_of(name).c_str(), &st) != 0) return 0;
  return st.st_ino;
}

}  // namespace

int run_top(const Invocation& invocation) {
  auto parser = make_parser(
      "top",
      "Show the segment live, refreshed every interval: rates per second, hit ratio, memory "
      "use, busiest request types. q or Ctrl-C quits. When stdout is not a terminal, prints "
      "one logfmt line per interval instead.",
      "");
  parser.add_options()
      ("i,interval", "refresh interval: 1s, 500ms, 1m (default 1s)",
       cxxopts::value<std::string>(), "DURATION")
      ("c,count", "stop after N refreshes (default: run until quit)",
       cxxopts::value<std::string>(), "N");
  add_positional(parser, {});
  auto parsed = parse_arguments(parser, invocation);
  if (!parsed) return 0;
  std::chrono::nanoseconds interval = std::chrono::seconds(1);
  if (parsed->count("interval")) {
    interval = parse_duration_ns_arg((*parsed)["interval"].as<std::string>(), "--interval");
    // Below 10 ms the stats walk itself would dominate what is measured.
    if (interval < std::chrono::milliseconds(10)) {
      throw UsageError("--interval: must be at least 10ms");
    }
  }
  std::uint64_t count = 0;
  if (parsed->count("count")) {
    count = parse_count_arg((*parsed)["count"].as<std::string>(), "--count");
    if (count == 0) throw UsageError("--count: must be at least 1");
  }
  std::string name = segment_name(*parsed, invocation);
  pipecache::Cache cache = open_segment(name, Access::read);
  ino_t inode = segment_inode(name);

  bool interactive = ::isatty(STDOUT_FILENO) == 1;
  bool read_keys = interactive && ::isatty(STDIN_FILENO) == 1;
  g_quit = 0;
  g_redraw = 0;
  TerminalView view(read_keys, interactive);

  Stats before = cache.stats();
  auto before_time = Clock::now();
  std::uint64_t shown = 0;
  unsigned rows = 24, cols = 80;
  if (interactive) {
    // First frame at once, with totals and no rates yet, so the screen is never blank.
    window_size(rows, cols);
    std::string out = screen(name, before, compare(before, before, 0), interval, rows, cols);
    write_all(out.data(), out.size());
  }
  auto deadline = before_time + interval;
  while (!g_quit) {
    wait_for_tick(deadline, read_keys);
    if (g_quit) break;
    bool early = g_redraw != 0;
    g_redraw = 0;
    if (ino_t current = segment_inode(name); current != inode) {
      if (current == 0) {
        throw SegmentProblem(
            fmt::format("segment '{}' was destroyed while top was running", name));
      }
      // Destroyed and created again (a redeploy): follow the new one, rates from scratch.
      cache = open_segment(name, Access::read);
      inode = segment_inode(name);
      before = cache.stats();
      before_time = Clock::now();
      deadline = before_time + interval;
      continue;
    }
    Stats now = cache.stats();
    auto now_time = Clock::now();
    double seconds = std::chrono::duration<double>(now_time - before_time).count();
    if (early && interactive) {
      // A resize or a key: redraw the last rates' frame against the new size, keep the
      // interval's baseline so the next rates still cover a full interval.
      window_size(rows, cols);
      std::string out = screen(name, now, compare(now, before, seconds), interval, rows, cols);
      write_all(out.data(), out.size());
      continue;
    }
    Frame frame = compare(now, before, seconds);
    if (interactive) {
      window_size(rows, cols);
      std::string out = screen(name, now, frame, interval, rows, cols);
      write_all(out.data(), out.size());
    } else {
      std::string line = log_line(name, now, frame);
      write_stdout(line);
      std::fflush(stdout);
    }
    before = std::move(now);
    before_time = now_time;
    // Fixed cadence; after a stall (stopped, swapped out) restart it rather than fire a burst
    // of frames over near-empty intervals.
    deadline += interval;
    if (deadline <= now_time) deadline = now_time + interval;
    if (count != 0 && ++shown >= count) break;
  }
  return 0;
}

}  // namespace pipectl
