// The What's Next example server, started as a real prefork server on a free loopback port
// (--port 0: the master prints the port it bound) and driven over HTTP with httplib's client.
// Each test starts its own server with its own segment name (testing::unique_name).
#include "support/process.hpp"

#include <doctest/doctest.h>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <pipecache/cache.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <memory>
#include <poll.h>
#include <set>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

extern char** environ;

namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// 2026-12-03T07:00:00Z: a Thursday the sample calendar has a dentist appointment, a stand-up
// and lunch on. Pinned times make answers independent of the clock.
constexpr const char* kPinned = "/api/whats-next/data?layout=full&debug_time=2026-12-03T07:00:00Z";
constexpr const char* kPinnedCompact =
    "/api/whats-next/data?layout=compact&debug_time=1796281200";  // the same instant
constexpr const char* kWeek = "/api/events?start=2026-12-01&end=2026-12-08";
constexpr const char* kSettings = "/api/settings";

std::string server_path() {
  const char* p = std::getenv("WHATSNEXT_SERVER");
  REQUIRE_MESSAGE(p != nullptr, "WHATSNEXT_SERVER is not set (run through meson test)");
  REQUIRE_MESSAGE(::access(p, X_OK) == 0,
                  "pipecache-whatsnext is not built: run `meson compile` before `meson test`");
  if (const char* headers = std::getenv("WHATSNEXT_HEADERS")) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const auto built = fs::last_write_time(p, ec);
    for (const auto& header : fs::directory_iterator(headers, ec)) {
      REQUIRE_MESSAGE(fs::last_write_time(header.path(), ec) <= built,
                      p << " is older than " << header.path().string()
                        << ": it is stale, run `meson compile` before `meson test`");
    }
  }
  return p;
}

std::vector<pid_t> children_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  std::vector<pid_t> out;
  pid_t child = 0;
  while (in >> child) out.push_back(child);
  return out;
}

// False once the process is gone or a zombie (its parent may be a PID 1 that never reaps).
bool process_alive(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return false;
  const auto paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

// A running pipecache-whatsnext master; stopped (SIGTERM, then SIGKILL) when it goes away.
class ServerProcess {
 public:
  struct Config {
    bool cached = true;
    unsigned workers = 2;
    std::vector<std::string> extra_args;
    std::string segment;  // empty: a unique name
    bool debug_time = true;  // --allow-debug-time (pinned answers: most tests need it)
    std::string host = "127.0.0.1";
    std::vector<std::string> env;  // added to the server's environment
  };

  explicit ServerProcess(Config config)
      : segment_(config.segment.empty() ? testing::unique_name("wn") : config.segment) {
    int out[2];
    REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
    std::vector<std::string> args = {server_path(), "--port", "0", "--host", config.host,
                                     "--workers", std::to_string(config.workers), "--threads", "4",
                                     "--segment", segment_};
    if (config.debug_time) args.push_back("--allow-debug-time");
    listening_ = "listening on http://" + config.host + ":";
    args.insert(args.end(), config.extra_args.begin(), config.extra_args.end());
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::string_view(*e).starts_with("PIPECACHE_")) continue;
      env.emplace_back(*e);
    }
    env.push_back(std::string("PIPECACHE_ENABLE_RESPONSE_CACHING=") +
                  (config.cached ? "true" : "false"));
    env.insert(env.end(), config.env.begin(), config.env.end());
    std::fflush(nullptr);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      std::vector<char*> argv, envp;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      for (auto& e : env) envp.push_back(e.data());
      envp.push_back(nullptr);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    ::close(out[1]);
    stdout_fd_ = out[0];
    read_port();
    wait_for_workers(config.workers);
  }

  ~ServerProcess() {
    if (pid_ > 0) stop(20s);
    if (stdout_fd_ >= 0) ::close(stdout_fd_);
    try {
      pipecache::Cache::remove(segment_);
    } catch (...) {
    }
  }

  // Sends SIGTERM and waits; the exit status, or -1 if it had to be killed.
  int stop(std::chrono::milliseconds deadline) {
    ::kill(pid_, SIGTERM);
    testing::ExitStatus status = testing::wait_for(pid_, deadline);
    pid_ = -1;
    return status.exited ? status.code : -1;
  }

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::string& segment() const { return segment_; }
  std::vector<pid_t> workers() const { return children_of(pid_); }

  void wait_for_workers(std::size_t n, const std::set<pid_t>& not_these = {}) const {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto w = workers();
      bool fresh = true;
      for (pid_t p : w) fresh = fresh && !not_these.contains(p);
      if (w.size() == n && fresh) {
        httplib::Client c("127.0.0.1", port_);
        auto r = c.Get("/healthz");
        if (r && r->status == 200) return;
      }
      std::this_thread::sleep_for(20ms);
    }
    FAIL("the server's workers did not come up");
  }

  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(30, 0);
    c.set_connection_timeout(5, 0);
    return c;
  }

 private:
  void read_port() {
    std::string text;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{stdout_fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[512];
      const ssize_t n = ::read(stdout_fd_, buf, sizeof buf);
      if (n <= 0) break;
      text.append(buf, static_cast<std::size_t>(n));
      const auto at = text.find(listening_);
      if (at != std::string::npos && text.find('/', at + listening_.size()) != std::string::npos) {
        port_ = std::atoi(text.c_str() + at + listening_.size());
        return;
      }
    }
    FAIL("the server did not print its port; stdout: " << text);
  }

  std::string segment_;
  std::string listening_;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  int port_ = 0;
};

struct Answer {
  int status = 0;
  std::string body;
  std::string cache;  // X-Pipecache: computed / hit / off
};

ServerProcess::Config config(bool cached = true, unsigned workers = 2,
                             std::vector<std::string> extra_args = {}) {
  return ServerProcess::Config{cached, workers, std::move(extra_args), {}};
}

Answer get(const ServerProcess& s, const std::string& path) {
  auto c = s.client();
  auto r = c.Get(path);
  REQUIRE_MESSAGE(r, "GET " << path << " failed: " << httplib::to_string(r.error()));
  return {r->status, r->body, r->get_header_value("X-Pipecache")};
}

Answer send(const ServerProcess& s, const std::string& method, const std::string& path,
            const std::string& body) {
  auto c = s.client();
  auto r = method == "PUT" ? c.Put(path, body, "application/json")
                           : c.Post(path, body, "application/json");
  REQUIRE_MESSAGE(r, method << " " << path << " failed: " << httplib::to_string(r.error()));
  return {r->status, r->body, r->get_header_value("X-Pipecache")};
}

json parse(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  REQUIRE_MESSAGE(!j.is_discarded(), "not JSON: " << body.substr(0, 200));
  return j;
}

}  // namespace

TEST_SUITE("whatsnext_routes") {
  TEST_CASE("every_route_answers") {
    ServerProcess s(config());
    // What's Next, each layout: the next events of the pinned morning, in order.
    for (const char* layout : {"full", "compact", "agenda"}) {
      Answer a = get(s, std::string("/api/whats-next/data?layout=") + layout +
                            "&debug_time=2026-12-03T07:00:00Z");
      REQUIRE(a.status == 200);
      json j = parse(a.body);
      CHECK(j["layout"] == layout);
      CHECK(j["now"] == "2026-12-03T07:00:00Z");
      REQUIRE(j["next"].size() >= 3);
      CHECK(j["next"][0]["summary"] == "Dentist");
      CHECK(j["next"][0]["starts_in"] == "in 1 h 0 min");
      CHECK(j["next"][1]["summary"] == "Team stand-up");
      CHECK(j["next"][1]["start"] == "2026-12-03T08:30:00Z");  // 09:30 in Berlin (CET)
      CHECK(j.contains("today") == (std::string(layout) != "compact"));
      CHECK(j.contains("days") == (std::string(layout) == "full"));
    }
    // Without debug_time: the current minute, the default layout.
    Answer now = get(s, "/api/whats-next/data");
    REQUIRE(now.status == 200);
    CHECK(parse(now.body)["layout"] == "full");

    // Events of a week, recurrences expanded, excluded dates and overrides applied.
    Answer week = get(s, kWeek);
    REQUIRE(week.status == 200);
    json w = parse(week.body);
    CHECK(w["count"] == w["events"].size());
    std::string previous;
    int standups = 0;
    for (const auto& e : w["events"]) {
      CHECK(e["start"].get<std::string>() >= previous);
      previous = e["start"];
      standups += e["summary"] == "Team stand-up" ? 1 : 0;
    }
    CHECK(standups == 5);  // Mon 2026-11-30 is outside; Tue..Fri and Mon 12-07
    Answer retro = get(s, "/api/events?start=2026-12-04&end=2026-12-05");
    json r = parse(retro.body);
    bool moved = false, original = false;
    for (const auto& e : r["events"]) {
      moved = moved || e["summary"] == "Sprint retro (moved)";
      original = original || e["summary"] == "Sprint retro";
    }
    CHECK(moved);
    CHECK_FALSE(original);

    // Settings: read, change, read back.
    Answer settings = get(s, kSettings);
    REQUIRE(settings.status == 200);
    CHECK(parse(settings.body)["max_events"] == 5);
    Answer put = send(s, "PUT", kSettings, R"({"title":"Agenda","max_events":2})");
    REQUIRE(put.status == 200);
    CHECK(parse(put.body)["title"] == "Agenda");
    CHECK(parse(get(s, kSettings).body)["max_events"] == 2);
    CHECK(parse(get(s, kPinned).body)["next"].size() == 2);

    // Refresh reloads the calendar file.
    Answer refresh = send(s, "POST", "/api/refresh", "");
    REQUIRE(refresh.status == 200);
    CHECK(parse(refresh.body)["events"] == 16);

    // Metrics in pipectl's family names, health, the page, unknown paths.
    Answer metrics = get(s, "/metrics");
    REQUIRE(metrics.status == 200);
    CHECK(metrics.body.find("pipecache_requests_total{segment=\"" + s.segment() +
                            "\",type=\"whats_next_data\"}") != std::string::npos);
    CHECK(metrics.body.find("pipecache_used_bytes{segment=") != std::string::npos);
    CHECK(metrics.body.find("pipecache_cache_available{segment=\"" + s.segment() + "\"} 1") !=
          std::string::npos);
    Answer health = get(s, "/healthz");
    CHECK(health.status == 200);
    CHECK(parse(health.body)["status"] == "ok");
    Answer page = get(s, "/");
    CHECK(page.status == 200);
    CHECK(page.body.find("<title>What's Next</title>") != std::string::npos);
    Answer missing = get(s, "/api/nothing");
    CHECK(missing.status == 404);
    CHECK(parse(missing.body).contains("error"));
  }

  TEST_CASE("sigterm_stops_every_process_and_removes_the_segment") {
    ServerProcess s(config());
    const auto workers = s.workers();
    REQUIRE(workers.size() == 2);
    CHECK(pipecache::Cache::exists(s.segment()));
    CHECK(s.stop(15s) == 0);
    for (pid_t w : workers) CHECK_FALSE(process_alive(w));  // reaped by the master, not zombies
    CHECK_FALSE(pipecache::Cache::exists(s.segment()));
  }

  TEST_CASE("a_segment_the_master_did_not_create_is_kept") {
    const std::string name = testing::unique_name("wn-existing");
    testing::SegmentGuard guard(name);
    pipecache::Cache::create(testing::small_options(name));
    auto c = config();
    c.segment = name;
    ServerProcess s(c);
    CHECK(get(s, kWeek).cache == "computed");
    CHECK(get(s, kWeek).cache == "hit");  // the workers share the existing segment
    CHECK(s.stop(15s) == 0);
    CHECK(pipecache::Cache::exists(name));
  }

  TEST_CASE("workers_die_with_a_killed_master") {
    ServerProcess s(config());
    const auto workers = s.workers();
    REQUIRE(workers.size() == 2);
    ::kill(s.pid(), SIGKILL);
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    auto any_alive = [&] {
      for (pid_t w : workers) {
        if (process_alive(w)) return true;
      }
      return false;
    };
    while (any_alive() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(20ms);
    }
    CHECK_FALSE(any_alive());  // PR_SET_PDEATHSIG: no orphan keeps serving
  }

  TEST_CASE("keep_segment_leaves_the_segment") {
    ServerProcess s(config(true, 2, {"--keep-segment"}));
    CHECK(s.stop(15s) == 0);
    CHECK(pipecache::Cache::exists(s.segment()));  // removed by ~ServerProcess
  }
}

TEST_SUITE("whatsnext_cache") {
  TEST_CASE("same_answers_with_the_cache_on_and_off") {
    ServerProcess on(config(true));
    ServerProcess off(config(false));
    const std::vector<std::string> paths = {
        kPinned, kPinnedCompact,
        "/api/whats-next/data?layout=agenda&debug_time=2026-12-08T12:00:00Z", kWeek,
        "/api/events?start=2026-01-01&end=2026-03-01", kSettings};
    for (const auto& path : paths) {
      CAPTURE(path);
      Answer reference = get(off, path);
      REQUIRE(reference.status == 200);
      CHECK(reference.cache == "off");
      Answer first = get(on, path);
      Answer second = get(on, path);
      CHECK(first.cache == "computed");
      CHECK(second.cache == "hit");
      CHECK(first.body == reference.body);
      CHECK(second.body == reference.body);
    }
    // Two spellings of one instant share one entry.
    CHECK(get(on, "/api/whats-next/data?layout=compact&debug_time=2026-12-03T07:00:00Z").cache ==
          "hit");
    // The uncached server leaves no trace in a segment.
    CHECK(parse(get(off, "/healthz").body)["cache"] == false);
    CHECK_FALSE(pipecache::Cache::exists(off.segment()));
  }

  TEST_CASE("one_worker_computes_the_others_hit") {
    ServerProcess s(config(true, 3));
    CHECK(get(s, kWeek).cache == "computed");
    // Whichever worker the kernel hands the next connections to, the answer comes from the
    // shared segment.
    std::set<std::string> workers;
    for (int i = 0; i < 30; ++i) {
      auto c = s.client();
      auto r = c.Get(kWeek);
      REQUIRE(r);
      CHECK(r->get_header_value("X-Pipecache") == "hit");
      workers.insert(r->get_header_value("X-Worker-Pid"));
    }
    MESSAGE("hits served by " << workers.size() << " of 3 workers");
  }
}

TEST_SUITE("whatsnext_invalidation") {
  // Warms one answer of each type and checks that each is now a hit.
  void warm(const ServerProcess& s) {
    for (const char* path : {kPinned, kWeek, kSettings}) {
      get(s, path);
      REQUIRE(get(s, path).cache == "hit");
    }
  }

  std::size_t keys(const ServerProcess& s, const char* glob) {
    pipecache::Cache cache = pipecache::Cache::open(s.segment());
    return cache.keys(glob).size();
  }

  TEST_CASE("settings_change_invalidates_settings_and_whats_next_only") {
    ServerProcess s(config());
    warm(s);
    const std::size_t event_keys = keys(s, "events_by_range:*");
    REQUIRE(event_keys == 1);
    REQUIRE(send(s, "PUT", kSettings, R"({"max_events":1})").status == 200);
    Answer view = get(s, kPinned);
    CHECK(view.cache == "computed");
    CHECK(parse(view.body)["next"].size() == 1);  // the new setting, not the cached view
    Answer settings = get(s, kSettings);
    CHECK(settings.cache == "computed");
    CHECK(parse(settings.body)["max_events"] == 1);
    CHECK(get(s, kWeek).cache == "hit");  // events are not touched by settings
    CHECK(keys(s, "events_by_range:*") == event_keys);
  }

  TEST_CASE("refresh_invalidates_events_and_whats_next_only") {
    ServerProcess s(config());
    warm(s);
    REQUIRE(send(s, "POST", "/api/refresh", "").status == 200);
    CHECK(get(s, kPinned).cache == "computed");
    CHECK(get(s, kWeek).cache == "computed");
    CHECK(get(s, kSettings).cache == "hit");  // settings live in their own table
    CHECK(get(s, kWeek).cache == "hit");      // and the new answers are cached again
  }
}

TEST_SUITE("whatsnext_invalidation") {
  TEST_CASE("a_change_reaches_answers_computed_while_it_happened") {
    // A slow calendar, so the change lands while a view is being computed from the old
    // settings. Whether or not that stale view got published after the invalidation, the
    // server's second invalidation (worker.cpp, invariant 3) removes it within ~2 s.
    ServerProcess s(config(true, 2, {"--generate-calendar", "6"}));
    const std::string view = "/api/whats-next/data?layout=full&debug_time=2026-12-03T07:00:00Z";
    std::thread slow([&] { get(s, view); });
    std::this_thread::sleep_for(30ms);
    REQUIRE(send(s, "PUT", kSettings, R"({"max_events":1})").status == 200);
    slow.join();
    std::this_thread::sleep_for(3s);
    Answer after = get(s, view);
    CHECK(parse(after.body)["next"].size() == 1);
  }
}

TEST_SUITE("whatsnext_cache") {
  TEST_CASE("worker_zero_warms_the_current_and_next_minute") {
    ServerProcess s(config());
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    std::size_t warmed = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      pipecache::Cache cache = pipecache::Cache::open(s.segment());
      warmed = cache.keys("whats_next_data:*").size();
      if (warmed >= 8) break;  // 4 parameter sets x 2 minutes
      std::this_thread::sleep_for(50ms);
    }
    CHECK(warmed >= 8);
    // The page's request is answered from the warmed entry (unless the minute just turned).
    Answer page_view = get(s, "/api/whats-next/data?layout=full");
    MESSAGE("first page request after start: " << page_view.cache);
    CHECK(page_view.status == 200);
  }
}

TEST_SUITE("whatsnext_workers") {
  TEST_CASE("a_worker_killed_under_load_is_replaced_and_no_response_is_broken") {
    ServerProcess s(config(true, 2));
    const std::vector<std::string> paths = {kPinned, kPinnedCompact, kWeek, kSettings,
                                            "/api/events?start=2026-02-01&end=2026-03-01"};
    std::vector<std::string> expected;
    for (const auto& p : paths) expected.push_back(get(s, p).body);

    std::atomic<bool> running{true};
    std::atomic<long> ok{0}, broken{0}, transport_errors{0}, failed_retries{0};
    auto client_loop = [&](unsigned seed) {
      auto c = std::make_unique<httplib::Client>(s.client());
      for (unsigned i = seed; running.load(); ++i) {
        const std::size_t k = i % paths.size();
        auto r = c->Get(paths[k]);
        if (!r) {
          // The connection was on the killed worker: the request never got an answer. A
          // client retries; the retry must succeed (another worker, or the replacement).
          ++transport_errors;
          c = std::make_unique<httplib::Client>(s.client());
          r = c->Get(paths[k]);
          if (!r) {
            ++failed_retries;
            continue;
          }
        }
        if (r->status == 200 && r->body == expected[k]) {
          ++ok;
        } else {
          ++broken;
        }
      }
    };
    std::vector<std::thread> clients;
    for (unsigned t = 0; t < 4; ++t) clients.emplace_back(client_loop, t);
    std::this_thread::sleep_for(500ms);
    const auto before = s.workers();
    REQUIRE(before.size() == 2);
    REQUIRE(::kill(before[0], SIGKILL) == 0);
    s.wait_for_workers(2, {before[0]});
    std::this_thread::sleep_for(1s);  // load on the replacement too
    running = false;
    for (auto& t : clients) t.join();
    const auto after = s.workers();
    CHECK(after.size() == 2);
    CHECK(std::find(after.begin(), after.end(), before[0]) == after.end());
    MESSAGE(ok.load() << " good responses, " << transport_errors.load()
                      << " connections cut by the kill (retried)");
    CHECK(ok.load() > 100);
    CHECK(broken.load() == 0);
    CHECK(failed_retries.load() == 0);
    // The replacement serves from the same segment.
    CHECK(get(s, kWeek).body == expected[2]);
  }
}

TEST_SUITE("whatsnext_errors") {
  TEST_CASE("bad_parameters_get_400_with_a_json_error") {
    ServerProcess s(config(true, 2, {"--no-warm"}));  // no key but the ones requests make
    const auto workers = s.workers();
    const std::vector<std::string> bad = {
        "/api/whats-next/data?layout=sideways",
        "/api/whats-next/data?debug_time=yesterday",
        "/api/whats-next/data?debug_time=2026-02-30",
        "/api/whats-next/data?debug_time=2026-12-03T25:00:00Z",
        "/api/whats-next/data?debug_time=99999999999999999999",
        "/api/whats-next/data?debug_time=",
        "/api/whats-next/data?debug_time=-5",
        "/api/events",
        "/api/events?start=2026-01-01",
        "/api/events?start=2026-01-02&end=2026-01-01",
        "/api/events?start=2020-01-01&end=2026-01-01",
        "/api/events?start=%00%ff&end=2026-01-01",
        "/api/events?start=2026-01-01T10&end=2026-01-02",
    };
    for (const auto& path : bad) {
      CAPTURE(path);
      Answer a = get(s, path);
      CHECK(a.status == 400);
      CHECK(parse(a.body)["error"].is_string());
    }
    for (const char* body : {"", "not json", "[1,2]", R"({"max_events":0})",
                             R"({"max_events":"5"})", R"({"lookahead_days":61})",
                             R"({"default_layout":"wide"})", R"({"colour":"blue"})",
                             R"({"title":5})", R"({"show_location":"yes"})"}) {
      CAPTURE(body);
      Answer a = send(s, "PUT", kSettings, body);
      CHECK(a.status == 400);
      CHECK(parse(a.body)["error"].is_string());
    }
    // Nothing was stored, nothing crashed.
    CHECK(parse(get(s, kSettings).body)["max_events"] == 5);
    CHECK(s.workers() == workers);
    pipecache::Cache cache = pipecache::Cache::open(s.segment());
    CHECK(cache.keys("whats_next_data:*").empty());
    CHECK(cache.keys("events_by_range:*").empty());
  }
}

namespace {

// An IPv4 address of this host that is not loopback ("" when it has none): a connection to it
// reaches the server from a non-loopback peer address.
std::string non_loopback_address() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return "";
  std::string found;
  for (ifaddrs* i = list; i != nullptr && found.empty(); i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK)) continue;
    char text[INET_ADDRSTRLEN];
    const auto* sin = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
    if (::inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text)) found = text;
  }
  ::freeifaddrs(list);
  return found;
}

int change(const std::string& host, int port, const std::string& method, const std::string& path,
           const httplib::Headers& headers, const std::string& body = "{}") {
  httplib::Client c(host, port);
  c.set_read_timeout(30, 0);
  auto r = method == "PUT" ? c.Put(path, headers, body, "application/json")
                           : c.Post(path, headers, body, "application/json");
  REQUIRE_MESSAGE(r, method << " " << path << " failed: " << httplib::to_string(r.error()));
  return r->status;
}

}  // namespace

TEST_SUITE("whatsnext_errors") {
  TEST_CASE("changes_need_this_host_and_the_same_origin_or_the_admin_token") {
    auto cfg = config(true, 1, {"--no-warm"});
    cfg.host = "0.0.0.0";
    cfg.env = {"WHATSNEXT_ADMIN_TOKEN=s3cret-token"};
    ServerProcess s(cfg);
    const std::string self = "http://127.0.0.1:" + std::to_string(s.port());
    const httplib::Headers none;
    const httplib::Headers evil = {{"Origin", "http://evil.example"}};
    const httplib::Headers cross_site = {{"Sec-Fetch-Site", "cross-site"}};
    const httplib::Headers same = {{"Origin", self}};
    const httplib::Headers token = {{"Authorization", "Bearer s3cret-token"}, {"Origin", "http://evil.example"}};
    const httplib::Headers wrong = {{"Authorization", "Bearer s3cret-tokeN"}};
    for (const char* method : {"POST", "PUT"}) {
      CAPTURE(method);
      const std::string path = std::string(method) == "POST" ? "/api/refresh" : kSettings;
      CHECK(change("127.0.0.1", s.port(), method, path, none) == 200);
      CHECK(change("127.0.0.1", s.port(), method, path, same) == 200);
      CHECK(change("127.0.0.1", s.port(), method, path, evil) == 403);
      CHECK(change("127.0.0.1", s.port(), method, path, cross_site) == 403);
      CHECK(change("127.0.0.1", s.port(), method, path, wrong) == 403);
      CHECK(change("127.0.0.1", s.port(), method, path, token) == 200);
      const std::string remote = non_loopback_address();
      if (remote.empty()) {
        MESSAGE("no non-loopback IPv4 address on this host: the remote-caller half is not checked");
        continue;
      }
      CHECK(change(remote, s.port(), method, path, none) == 403);
      CHECK(change(remote, s.port(), method, path, token) == 200);
    }
    // Reading stays open to anybody who can connect.
    CHECK(get(s, kSettings).status == 200);
  }

  TEST_CASE("a_server_without_a_token_accepts_no_token") {
    ServerProcess s(config(true, 1, {"--no-warm"}));
    CHECK(change("127.0.0.1", s.port(), "POST", "/api/refresh", {{"Authorization", "Bearer "}}) == 403);
    CHECK(change("127.0.0.1", s.port(), "POST", "/api/refresh", {{"Authorization", "Bearer x"}}) == 403);
  }

  TEST_CASE("request_bodies_beyond_max_body_are_refused_before_a_handler_runs") {
    ServerProcess s(config(true, 1, {"--no-warm", "--max-body", "4096"}));
    std::string big = R"({"title":")" + std::string(8192, 'x') + R"("})";
    CHECK(send(s, "PUT", kSettings, big).status == 413);
    CHECK(parse(get(s, kSettings).body).value("title", "") != std::string(8192, 'x'));
    CHECK(send(s, "PUT", kSettings, R"({"max_events":7})").status == 200);
    CHECK(parse(get(s, kSettings).body)["max_events"] == 7);
  }

  TEST_CASE("debug_time_is_refused_unless_the_server_allows_it") {
    auto cfg = config(true, 1, {"--no-warm"});
    cfg.debug_time = false;
    ServerProcess s(cfg);
    Answer a = get(s, kPinned);
    CHECK(a.status == 400);
    CHECK(parse(a.body)["error"].get<std::string>().find("--allow-debug-time") != std::string::npos);
    CHECK(get(s, "/api/whats-next/data?layout=full").status == 200);
    CHECK(pipecache::Cache::open(s.segment()).keys("*debug_time*").empty());
  }

  TEST_CASE("a_500_says_internal_error_and_nothing_of_the_exception") {
    // The calendar vanishes: the refresh fails inside the server, naming the file it could
    // not read; the client learns only that it failed.
    char dir_template[] = "/tmp/wn-cal-XXXXXX";
    REQUIRE(::mkdtemp(dir_template) != nullptr);
    const std::string dir = dir_template;
    const std::string calendar = dir + "/secret-calendar.ics";
    std::filesystem::copy_file(WHATSNEXT_SAMPLE_CALENDAR_FOR_TESTS, calendar);
    {
      ServerProcess s(config(true, 1, {"--no-warm", "--calendar", calendar}));
      std::filesystem::remove(calendar);
      Answer a = send(s, "POST", "/api/refresh", "");
      CHECK(a.status == 500);
      CHECK(parse(a.body)["error"] == "internal error");
      CHECK(a.body.find("secret-calendar") == std::string::npos);
    }
    std::filesystem::remove_all(dir);
  }
}
