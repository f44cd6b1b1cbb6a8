// pipecache-whatsnext: the prefork master.
//
// The master loads the calendar into SQLite, creates (or opens) the shared segment, binds the
// port, then forks N workers that share the listening socket and the segment. It serves no
// request itself. It restarts a worker that dies, and on SIGTERM / SIGINT stops them all,
// reaps them (no zombie), removes the segment if it created it (unless --keep-segment) and
// the state directory it made.
//
// Invariants:
//   1. The master holds no Cache, SQLite connection or thread when it forks: a worker starts
//      from a clean single-threaded image and opens its own handles (a Cache handle owns a
//      process slot named by pid; SQLite connections must not cross fork()).
//   2. Every signal the master handles is blocked and taken synchronously (sigtimedwait), so
//      its loop never races a handler; workers get back a clean mask before running.
//   3. Ctrl-C reaches the whole foreground process group: workers ignore SIGINT and wait for
//      the master's SIGTERM, so the master alone decides between restart and shutdown.
#include "calendar.hpp"
#include "server.hpp"

#include <pipecache/cache.hpp>
#include <pipecache/validator.hpp>

#include <httplib.h>

#include <cxxopts.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#ifndef WHATSNEXT_SAMPLE_CALENDAR
#define WHATSNEXT_SAMPLE_CALENDAR "examples/whatsnext/data/sample.ics"
#endif

namespace whatsnext {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// A worker that dies sooner than this after its start is restarted only after this delay: a
// worker that cannot start (bad database, no memory) must not turn the master into a fork loop.
constexpr auto kQuickDeath = std::chrono::seconds(1);
// Workers get this long to finish their requests after SIGTERM (their own grace is 3 s).
constexpr auto kShutdownDeadline = std::chrono::seconds(10);
// The listening socket's backlog: httplib listens with 5, too few for a burst of connections
// (wrk opens all of its connections at once; a dropped SYN costs a 1 s retransmit).
constexpr int kBacklog = 1024;
// HTTP keep-alive: requests per connection, and idle seconds before the server closes it
// (short, so a stopping worker is not held by idle connections; see worker.cpp).
constexpr std::size_t kKeepAliveRequests = 100000;
constexpr time_t kKeepAliveSeconds = 2;

struct WorkerSlot {
  pid_t pid = 0;  // 0: not running
  Clock::time_point started{};
  Clock::time_point restart_at{};
  unsigned restarts = 0;
};

struct Master {
  ServerConfig config;
  bool segment_created = false;
  fs::path state_dir;
  bool own_state_dir = false;
  int listen_fd = -1;
  sigset_t handled{};
  std::vector<WorkerSlot> slots;
};

[[noreturn]] void fail(const std::string& message) {
  std::fprintf(stderr, "pipecache-whatsnext: %s\n", message.c_str());
  std::exit(2);
}

pid_t spawn_worker(Master& m, httplib::Server& server, unsigned index) {
  const pid_t master_pid = getpid();
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) {
    std::fprintf(stderr, "pipecache-whatsnext: fork failed: %s\n", std::strerror(errno));
    return 0;
  }
  if (pid > 0) return pid;
  // The worker. Dies with the master even if the master is SIGKILLed (re-checked after the
  // prctl: the master may have died before it took effect).
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != master_pid) _exit(0);
  std::signal(SIGINT, SIG_IGN);  // invariant 3
  std::signal(SIGHUP, SIG_IGN);
  sigset_t unblock = m.handled;
  sigdelset(&unblock, SIGTERM);  // run_worker takes SIGTERM with sigwait
  sigprocmask(SIG_UNBLOCK, &unblock, nullptr);
  int code = 1;
  try {
    code = run_worker(server, m.listen_fd, m.config, index);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pipecache-whatsnext worker %d: %s\n", getpid(), e.what());
  }
  std::fflush(stdout);
  std::fflush(stderr);
  _exit(code);  // never run the master's atexit handlers or destructors in a worker
}

std::string describe(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("killed by signal {}", WTERMSIG(status));
  return "stopped";
}

// Reaps every exited child and, unless stopping, schedules its slot's restart.
void reap(Master& m, bool stopping) {
  for (;;) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    for (auto& slot : m.slots) {
      if (slot.pid != pid) continue;
      slot.pid = 0;
      if (!stopping) {
        const bool quick = Clock::now() - slot.started < kQuickDeath;
        slot.restart_at = Clock::now() + (quick ? kQuickDeath : Clock::duration::zero());
        std::fprintf(stderr, "pipecache-whatsnext: worker %d %s; restarting%s\n", pid,
                     describe(status).c_str(), quick ? " in 1 s" : "");
      }
    }
  }
}

void start_due_workers(Master& m, httplib::Server& server) {
  for (unsigned i = 0; i < m.slots.size(); ++i) {
    WorkerSlot& slot = m.slots[i];
    if (slot.pid != 0 || Clock::now() < slot.restart_at) continue;
    slot.pid = spawn_worker(m, server, i);
    slot.started = Clock::now();
    if (slot.pid == 0) {
      slot.restart_at = Clock::now() + kQuickDeath;
    } else {
      ++slot.restarts;
      std::fprintf(stderr, "pipecache-whatsnext: worker %d started\n", slot.pid);
    }
  }
}

void shutdown_workers(Master& m) {
  for (const auto& slot : m.slots) {
    if (slot.pid != 0) kill(slot.pid, SIGTERM);
  }
  // Wakes every worker blocked in accept() on the shared socket (stop_worker only swaps each
  // worker's own descriptor); no new connection is accepted from here on.
  ::shutdown(m.listen_fd, SHUT_RDWR);
  const auto deadline = Clock::now() + kShutdownDeadline;
  auto running = [&m] {
    for (const auto& slot : m.slots) {
      if (slot.pid != 0) return true;
    }
    return false;
  };
  while (running() && Clock::now() < deadline) {
    timespec wait{0, 100'000'000};
    siginfo_t info;
    sigtimedwait(&m.handled, &info, &wait);
    reap(m, true);
  }
  for (auto& slot : m.slots) {
    if (slot.pid == 0) continue;
    std::fprintf(stderr, "pipecache-whatsnext: worker %d did not stop in time; SIGKILL\n", slot.pid);
    kill(slot.pid, SIGKILL);
    waitpid(slot.pid, nullptr, 0);
    slot.pid = 0;
  }
  while (waitpid(-1, nullptr, WNOHANG) > 0) {
  }
}

// Creates the segment the workers' pipelines will open, with the options a Pipeline would
// create it with (so whichever comes first, the segment is the same).
void prepare_segment(Master& m) {
  const pipecache::PipelineConfig& p = m.config.pipeline;
  if (!p.enable_response_caching) {
    std::printf("cache: disabled (every request is computed)\n");
    return;
  }
  pipecache::Options o;
  o.name = p.segment_name;
  o.byte_budget = p.cache_memory_limit_mb << 20;
  o.max_entries = p.cache_max_size;
  o.default_ttl = p.cache_ttl;
  try {
    pipecache::Cache::create(o);  // the handle closes here: invariant 1
    m.segment_created = true;
    std::printf("cache: created segment '%s' (%s, %zu MiB budget)\n", o.name.c_str(),
                pipecache::Cache::path_of(o.name).c_str(), p.cache_memory_limit_mb);
  } catch (const pipecache::Error& create_error) {
    try {
      pipecache::Cache::open(o.name);
      std::printf("cache: opened existing segment '%s' (kept at exit)\n", o.name.c_str());
    } catch (const pipecache::Error& open_error) {
      // The cache never makes a request fail: the workers will compute everything.
      std::fprintf(stderr, "pipecache-whatsnext: no cache: %s; %s\n", create_error.what(),
                   open_error.what());
    }
  }
}

// The design's targets table (pipecache/validator.hpp) for figures measured elsewhere.
int validate_targets(const std::string& path) {
  pipecache::BaselineFile figures;
  try {
    figures = pipecache::load_baseline_file(path);
  } catch (const std::exception& e) {
    fail(e.what());
  }
  const auto results = pipecache::validate_targets(figures.baseline, figures.current);
  std::printf("%s", pipecache::format_targets(results).c_str());
  return pipecache::all_pass(results) ? 0 : 1;
}

int run(int argc, char** argv) {
  cxxopts::Options options("pipecache-whatsnext",
                           "A \"What's Next\" calendar API whose prefork workers share one "
                           "pipecache response cache.\n"
                           "The pipeline's PIPECACHE_* variables apply (PIPECACHE_ENABLE_RESPONSE_"
                           "CACHING=false runs it uncached).\n"
                           "POST /api/refresh and PUT /api/settings are answered only to callers "
                           "on this host that are not cross-origin, or to any caller sending "
                           "'Authorization: Bearer $WHATSNEXT_ADMIN_TOKEN' when that is set.");
  options.add_options()
      ("host", "address to listen on", cxxopts::value<std::string>()->default_value("127.0.0.1"))
      ("port", "port to listen on (0 = any free port; the first stdout line names it)",
       cxxopts::value<int>()->default_value("8080"))
      ("workers", "worker processes (default: $WHATSNEXT_WORKERS or 4)", cxxopts::value<unsigned>())
      ("threads", "HTTP threads per worker", cxxopts::value<unsigned>()->default_value("8"))
      ("calendar", "iCalendar file to serve", cxxopts::value<std::string>()->default_value(WHATSNEXT_SAMPLE_CALENDAR))
      ("generate-calendar", "serve a synthetic calendar of this many years of recurring events "
       "instead (written to the state directory)", cxxopts::value<int>())
      ("write-calendar", "with --generate-calendar: write the synthetic calendar to this file and "
       "exit (serve it with --calendar: two servers then serve the very same calendar)",
       cxxopts::value<std::string>())
      ("state-dir", "directory for the SQLite database (default: a temporary one, removed at exit)",
       cxxopts::value<std::string>())
      ("segment", "segment name (default: $PIPECACHE_NAME or 'whatsnext')", cxxopts::value<std::string>())
      ("no-warm", "do not warm the next minute's What's Next views ahead of time")
      ("keep-segment", "leave the segment in /dev/shm at exit even if this master created it")
      ("max-body", "largest request body accepted, in bytes (larger: 413)",
       cxxopts::value<std::size_t>()->default_value("65536"))
      ("allow-debug-time", "honour ?debug_time= (answers for any instant: for tests and demos, "
       "not for a server others can reach)")
      ("validate-targets", "check measured figures against the design's targets and exit "
       "(a JSON file {\"baseline\": {...}, \"current\": {...}} of pipecache::Measurements "
       "fields; used by the e2e script)", cxxopts::value<std::string>())
      ("h,help", "this help");
  cxxopts::ParseResult args;
  try {
    args = options.parse(argc, argv);
  } catch (const std::exception& e) {
    fail(fmt::format("{} (see --help)", e.what()));
  }
  if (args.count("help") != 0) {
    std::printf("%s", options.help().c_str());
    return 0;
  }

  if (args.count("validate-targets") != 0) return validate_targets(args["validate-targets"].as<std::string>());
  if (args.count("write-calendar") != 0) {
    if (args.count("generate-calendar") == 0) fail("--write-calendar needs --generate-calendar");
    const int years = args["generate-calendar"].as<int>();
    if (years < 1 || years > 100) fail("--generate-calendar must be in 1..100 years");
    try {
      write_synthetic_calendar(args["write-calendar"].as<std::string>(), years,
                               std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::system_clock::now().time_since_epoch()).count());
    } catch (const std::exception& e) {
      fail(e.what());
    }
    return 0;
  }

  Master m;
  try {
    m.config.pipeline = pipecache::PipelineConfig::from_environment();
  } catch (const std::exception& e) {
    fail(e.what());
  }
  if (std::getenv("PIPECACHE_NAME") == nullptr) m.config.pipeline.segment_name = "whatsnext";
  if (args.count("segment") != 0) m.config.pipeline.segment_name = args["segment"].as<std::string>();
  m.config.host = args["host"].as<std::string>();
  m.config.port = args["port"].as<int>();
  m.config.threads = args["threads"].as<unsigned>();
  m.config.workers = 4;
  if (const char* w = std::getenv("WHATSNEXT_WORKERS")) {
    try {
      m.config.workers = static_cast<unsigned>(std::stoul(w));
    } catch (const std::exception&) {
      fail(fmt::format("WHATSNEXT_WORKERS='{}' is not a number", w));
    }
  }
  if (args.count("workers") != 0) m.config.workers = args["workers"].as<unsigned>();
  m.config.keep_segment = args.count("keep-segment") != 0;
  m.config.warm = args.count("no-warm") == 0;
  m.config.max_body = args["max-body"].as<std::size_t>();
  m.config.allow_debug_time = args.count("allow-debug-time") != 0;
  if (const char* token = std::getenv("WHATSNEXT_ADMIN_TOKEN")) m.config.admin_token = token;
  if (m.config.max_body < 1024) fail("--max-body must be at least 1024 bytes");
  if (m.config.workers < 1 || m.config.workers > 256) fail("--workers must be in 1..256");
  if (m.config.threads < 1 || m.config.threads > 1024) fail("--threads must be in 1..1024");
  if (m.config.port < 0 || m.config.port > 65535) fail("--port must be in 0..65535");
  try {
    pipecache::Cache::validate_name(m.config.pipeline.segment_name);
    m.config.pipeline.validate();
  } catch (const std::exception& e) {
    fail(e.what());
  }

  // State directory and calendar database (loaded here, once, before any worker exists).
  std::error_code ec;
  if (args.count("state-dir") != 0) {
    m.state_dir = args["state-dir"].as<std::string>();
    fs::create_directories(m.state_dir, ec);
  } else {
    std::string templ = (fs::temp_directory_path() / "pipecache-whatsnext.XXXXXX").string();
    if (mkdtemp(templ.data()) == nullptr) fail(fmt::format("mkdtemp: {}", std::strerror(errno)));
    m.state_dir = templ;
    m.own_state_dir = true;
  }
  auto cleanup_state = [&m] {
    std::error_code ignored;
    if (m.own_state_dir) fs::remove_all(m.state_dir, ignored);
  };
  m.config.db_path = (m.state_dir / "calendar.sqlite").string();
  m.config.calendar_path = args["calendar"].as<std::string>();
  try {
    if (args.count("generate-calendar") != 0) {
      const int years = args["generate-calendar"].as<int>();
      if (years < 1 || years > 100) fail("--generate-calendar must be in 1..100 years");
      m.config.calendar_path = (m.state_dir / "synthetic.ics").string();
      const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch()).count();
      write_synthetic_calendar(m.config.calendar_path, years, now);
    }
    CalendarDb db(m.config.db_path);  // closed before the first fork (invariant 1)
    const LoadSummary loaded = db.reload(m.config.calendar_path);
    std::printf("calendar: %s (%zu events, %zu recurring, %zu overrides)\n",
                m.config.calendar_path.c_str(), loaded.events, loaded.recurring, loaded.overrides);
  } catch (const std::exception& e) {
    cleanup_state();
    fail(e.what());
  }

  prepare_segment(m);

  httplib::Server server;
  server.new_task_queue = [threads = m.config.threads] { return new httplib::ThreadPool(threads); };
  server.set_keep_alive_max_count(kKeepAliveRequests);
  server.set_keep_alive_timeout(kKeepAliveSeconds);
  // httplib writes the headers and the body separately: with Nagle on, the body waits for the
  // client's delayed ACK (40 ms on Linux) and every response looks 40 ms slow.
  server.set_tcp_nodelay(true);
  server.set_read_timeout(5, 0);
  server.set_write_timeout(5, 0);
  server.set_payload_max_length(m.config.max_body);
  // The accept loop polls with this timeout, so a stopping worker notices within 200 ms.
  server.set_idle_interval(0, 200'000);
  // httplib keeps its socket private: catch it as it is made (after its default options).
  server.set_socket_options([&m](socket_t sock) {
    httplib::default_socket_options(sock);
    m.listen_fd = sock;
  });
  int port = m.config.port;
  if (port == 0) {
    port = server.bind_to_any_port(m.config.host);
  } else if (!server.bind_to_port(m.config.host, port)) {
    port = -1;
  }
  if (port <= 0 || m.listen_fd < 0) {
    cleanup_state();
    if (m.segment_created) pipecache::Cache::remove(m.config.pipeline.segment_name);
    fail(fmt::format("cannot listen on {}:{}", m.config.host, m.config.port));
  }
  ::listen(m.listen_fd, kBacklog);  // raises httplib's backlog (see kBacklog)
  m.config.port = port;

  sigemptyset(&m.handled);
  for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&m.handled, s);
  sigprocmask(SIG_BLOCK, &m.handled, nullptr);

  std::printf("listening on http://%s:%d/ (%u workers x %u threads, segment '%s', pid %d)\n",
              m.config.host.c_str(), port, m.config.workers, m.config.threads,
              m.config.pipeline.segment_name.c_str(), getpid());
  std::fflush(stdout);

  m.slots.resize(m.config.workers);
  start_due_workers(m, server);
  for (;;) {
    timespec wait{0, 250'000'000};
    siginfo_t info;
    const int sig = sigtimedwait(&m.handled, &info, &wait);
    if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
      std::fprintf(stderr, "pipecache-whatsnext: %s: stopping\n", strsignal(sig));
      break;
    }
    reap(m, false);
    start_due_workers(m, server);
  }
  shutdown_workers(m);
  ::close(m.listen_fd);
  if (m.segment_created && !m.config.keep_segment) {
    pipecache::Cache::remove(m.config.pipeline.segment_name);
  }
  cleanup_state();
  std::fprintf(stderr, "pipecache-whatsnext: stopped\n");
  return 0;
}

}  // namespace
}  // namespace whatsnext

int main(int argc, char** argv) { return whatsnext::run(argc, argv); }
