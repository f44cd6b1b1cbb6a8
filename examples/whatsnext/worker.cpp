// A worker process: HTTP routes -> Pipeline -> calendar.
//
// Invariants:
//   1. Every answer body is a pure function of the request's parameters, the database and the
//      time the view is computed for (views.hpp), so the cache can answer instead of the
//      handler byte for byte.
//   2. No request fails because of the cache: process_request falls back to the handler
//      (pipeline.hpp). A handler's own failure is a 500 with a JSON error; a client's mistake
//      is a 400 with a JSON error, decided BEFORE the pipeline is asked (a bad request never
//      reaches the cache, so it can neither be cached nor poison a key).
//   3. A data change goes to the database first, then to handle_data_change: a request that
//      misses after the invalidation reads the new data. A computation that read the OLD data
//      before the change but publishes after the invalidation would survive it: the store
//      stamps an entry with the namespace generation current at publish, not at lease time
//      (lib/src/store/table.cpp, Table::publish). Until the pipeline closes that window, the
//      change is applied a second time kReinvalidateAfter later (Reinvalidator below), so
//      such a value lives at most that long instead of a whole TTL.
#include "server.hpp"
#include "views.hpp"

#include <httplib.h>

#include <fmt/format.h>

#include <arpa/inet.h>

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string_view>
#include <pthread.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace whatsnext {
namespace {

using pipecache::Params;

// Request types: the pipeline's seeded policies (whats_next_data 60 s in minute buckets,
// events_by_range 300 s batched, settings_get 600 s) and its seeded invalidation rules
// (data_refresh -> whats_next_*, events_by_range:*; settings_change -> settings_*,
// whats_next_*) are exactly what this server needs, so it sets none of its own.
constexpr std::string_view kWhatsNext = "whats_next_data";
constexpr std::string_view kEvents = "events_by_range";
constexpr std::string_view kSettings = "settings_get";

// After SIGTERM a worker finishes its in-flight requests; one still running after this long
// (a client holding a keep-alive connection open) is cut off by SIGALRM's default action.
constexpr unsigned kGraceSeconds = 3;

// Longer than an uncached answer takes here under load (the 6-year synthetic calendar: ~0.2 s
// alone, ~1 s on a saturated 2-core host), so every computation that started before a change
// has published by then. The price: entries computed in this window are dropped once more.
constexpr auto kReinvalidateAfter = std::chrono::seconds(2);

// Warming (the design's "warm ahead" for time-bucketed answers): worker 0 computes the NEXT
// minute's What's Next views this long before the minute turns, so no request waits for a
// compute at the turn (without it, every request of the first ~0.2 s of a minute queues behind
// the recompute of its layout: the p99 of the mix). 15 s leaves room for a slow calendar on a
// busy host; one layout costs ~0.2 s on the 6-year synthetic calendar, ~10 ms on the sample.
constexpr auto kWarmLead = std::chrono::seconds(15);
// The parameter sets the page and the API ask for: no layout (the settings' default) and each.
const std::vector<std::optional<Layout>> kWarmLayouts = {std::nullopt, Layout::full,
                                                          Layout::compact, Layout::agenda};

// A refusal of a state-changing route (403).
class Forbidden : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The peer address httplib reports is on this host's loopback (127.0.0.0/8, ::1, or
// 127.0.0.0/8 mapped into IPv6).
bool loopback_peer(const std::string& addr) {
  in_addr v4{};
  if (inet_pton(AF_INET, addr.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, addr.c_str(), &v6) != 1) return false;
  if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
  return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
}

// Compares all of both strings whatever the first difference (no early exit to time).
bool same_secret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

// Set by a handler on the thread that runs it: tells the route whether this request computed
// its answer (X-Pipecache: computed) or was answered by the cache (hit).
thread_local bool t_computed = false;

// Applies data changes a second time, kReinvalidateAfter after they happened (invariant 3).
// One thread; stop() (the destructor) wakes it and drops what is still pending: the worker is
// exiting, and another worker or the TTL takes over.
class Reinvalidator {
 public:
  explicit Reinvalidator(pipecache::Pipeline& pipeline)
      : pipeline_(pipeline), thread_([this] { run(); }) {}
  ~Reinvalidator() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }
  void schedule(std::string change) {
    {
      std::lock_guard lock(mutex_);
      pending_.emplace_back(std::chrono::steady_clock::now() + kReinvalidateAfter,
                            std::move(change));
    }
    wake_.notify_one();
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      if (pending_.empty()) {
        wake_.wait(lock);
        continue;
      }
      const auto due = pending_.front().first;
      if (std::chrono::steady_clock::now() < due) {
        wake_.wait_until(lock, due);
        continue;
      }
      std::string change = std::move(pending_.front().second);
      pending_.pop_front();
      lock.unlock();
      pipeline_.handle_data_change(change);
      lock.lock();
    }
  }

  pipecache::Pipeline& pipeline_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;                                                         // GUARDED_BY(mutex_)
  std::deque<std::pair<std::chrono::steady_clock::time_point, std::string>> pending_;  // GUARDED_BY(mutex_)
  std::thread thread_;
};

class App {
 public:
  explicit App(const ServerConfig& config)
      : config_(config), pipeline_(config.pipeline), reinvalidator_(pipeline_) {
    // Batching of events_by_range misses: the ranges missed within one window (batch_size,
    // batch_timeout) become one SQL query. Only misses get here; the pipeline records the
    // batch counters in the segment.
    pipeline_.register_batch_handler(std::string(kEvents), [this](const std::vector<Params>& batch) {
      std::vector<TimeRange> ranges;
      ranges.reserve(batch.size());
      for (const Params& params : batch) ranges.push_back(parse_range(params.at("start"), params.at("end")));
      auto lists = db().occurrences(ranges);
      std::vector<std::string> out;
      out.reserve(ranges.size());
      std::lock_guard lock(batched_mutex_);
      for (std::size_t i = 0; i < ranges.size(); ++i) {
        out.push_back(events_json(ranges[i], lists[i]));
        batched_.emplace(ranges[i].from, ranges[i].to);
      }
      return out;
    });
  }

  ~App() {
    {
      std::lock_guard lock(warm_mutex_);
      stopping_ = true;
    }
    warm_wake_.notify_one();
    if (warmer_.joinable()) warmer_.join();
  }

  // Worker 0 warms (one warmer per server: the others would only compute the same values).
  void start_warming() {
    warmer_ = std::thread([this] { warm_loop(); });
  }

  void install(httplib::Server& server) {
    server.Get("/api/whats-next/data", [this](const httplib::Request& q, httplib::Response& r) {
      guarded(r, [&] { whats_next(q, r); });
    });
    server.Get("/api/events", [this](const httplib::Request& q, httplib::Response& r) {
      guarded(r, [&] { events(q, r); });
    });
    server.Get("/api/settings", [this](const httplib::Request&, httplib::Response& r) {
      guarded(r, [&] { answer(r, kSettings, {}, [this] { return settings_json(db().settings()); }); });
    });
    server.Put("/api/settings", [this](const httplib::Request& q, httplib::Response& r) {
      guarded(r, [&] {
        authorize_change(q);
        put_settings(q, r);
      });
    });
    server.Post("/api/refresh", [this](const httplib::Request& q, httplib::Response& r) {
      guarded(r, [&] {
        authorize_change(q);
        refresh(r);
      });
    });
    server.Get("/metrics", [this](const httplib::Request&, httplib::Response& r) {
      guarded(r, [&] {
        r.set_content(render_metrics(pipeline_), "text/plain; version=0.0.4; charset=utf-8");
      });
    });
    server.Get("/healthz", [this](const httplib::Request&, httplib::Response& r) {
      r.set_header("X-Worker-Pid", std::to_string(getpid()));
      r.set_content(fmt::format(R"({{"status":"ok","cache":{}}})",
                                pipeline_.cache_available() ? "true" : "false"),
                    "application/json");
    });
    server.Get("/", [](const httplib::Request&, httplib::Response& r) {
      r.set_content(kIndexHtml, "text/html; charset=utf-8");
    });
    // Unknown paths and methods: a JSON error rather than httplib's empty body.
    server.set_error_handler([](const httplib::Request&, httplib::Response& r) {
      if (r.body.empty()) {
        r.set_content(error_json(fmt::format("HTTP {}", r.status)), "application/json");
      }
    });
  }

 private:
  // One SQLite connection per thread (calendar.hpp): HTTP pool threads and the batcher's
  // dispatcher each open theirs on first use.
  CalendarDb& db() {
    thread_local std::unique_ptr<CalendarDb> connection;
    if (!connection) connection = std::make_unique<CalendarDb>(config_.db_path);
    return *connection;
  }

  // A client's mistake is told to the client (400, 403); anything else is the server's, and
  // its text (paths, SQL, library messages) goes to the log, not to whoever asked: 500
  // "internal error".
  template <typename F>
  void guarded(httplib::Response& r, F&& body) {
    r.set_header("X-Worker-Pid", std::to_string(getpid()));
    try {
      body();
    } catch (const BadRequest& e) {
      r.status = 400;
      r.set_content(error_json(e.what()), "application/json");
    } catch (const Forbidden& e) {
      r.status = 403;
      r.set_content(error_json(e.what()), "application/json");
    } catch (const std::exception& e) {
      std::fprintf(stderr, "pipecache-whatsnext worker %d: internal error: %s\n", getpid(), e.what());
      r.status = 500;
      r.set_content(error_json("internal error"), "application/json");
    }
  }

  // The gate of the state-changing routes (ServerConfig: admin_token). A browser on this host
  // must not become the way in: a page from elsewhere can make it POST to 127.0.0.1, but then
  // the browser names that page in Origin (and Sec-Fetch-Site), which must be this server.
  void authorize_change(const httplib::Request& q) const {
    const std::string auth = q.get_header_value("Authorization");
    if (!auth.empty()) {
      constexpr std::string_view kBearer = "Bearer ";
      if (config_.admin_token.empty() || !auth.starts_with(kBearer) ||
          !same_secret(std::string_view(auth).substr(kBearer.size()), config_.admin_token))
        throw Forbidden("bad admin token");
      return;
    }
    if (!loopback_peer(q.remote_addr))
      throw Forbidden("changes are accepted only from this host, or with the admin token");
    const std::string origin = q.get_header_value("Origin");
    const bool cross_origin = (!origin.empty() && origin != "http://" + q.get_header_value("Host")) ||
                              q.get_header_value("Sec-Fetch-Site") == "cross-site";
    if (cross_origin) throw Forbidden("cross-origin change refused (origin '" + origin + "')");
  }

  // computed_in_batch: whether the batch handler computed this request's answer (it runs on
  // the pipeline's batcher thread, so t_computed cannot tell).
  void answer(httplib::Response& r, std::string_view type, const Params& params,
              const std::function<std::string()>& handler,
              const std::function<bool()>& computed_in_batch = {}) {
    t_computed = false;
    std::string body = pipeline_.process_request(type, params, [&] {
      t_computed = true;
      return handler();
    });
    if (!t_computed && computed_in_batch) t_computed = computed_in_batch();
    const char* how = !pipeline_.cache_available() ? "off" : t_computed ? "computed" : "hit";
    r.set_header("X-Pipecache", how);
    r.set_content(std::move(body), "application/json");
  }

  void whats_next(const httplib::Request& q, httplib::Response& r) {
    Params params;
    std::optional<Layout> layout;
    if (q.has_param("layout") && !q.get_param_value("layout").empty()) {
      layout = parse_layout("layout", q.get_param_value("layout"));
      params["layout"] = std::string(kLayoutNames[static_cast<int>(*layout)]);
    }
    std::optional<UnixSeconds> pinned;
    if (q.has_param("debug_time")) {
      if (!config_.allow_debug_time)
        throw BadRequest("debug_time is disabled on this server (start it with --allow-debug-time)");
      pinned = parse_time("debug_time", q.get_param_value("debug_time"));
      // Normalised, so every spelling of one instant shares one key.
      params[std::string(pipecache::kDebugTimeParam)] = std::to_string(*pinned);
    }
    answer(r, kWhatsNext, params, [this, layout, pinned] {
      // The view of the minute (the pipeline keys this type by minute bucket): computed for
      // the bucket's start, so every request of that minute gets the same bytes. At a minute
      // boundary the key's bucket (read just before) may be one minute older than this clock
      // reading; that entry is then a minute early for the microseconds left in its bucket.
      const UnixSeconds now = pinned.value_or(
          std::chrono::duration_cast<std::chrono::seconds>(
              std::chrono::system_clock::now().time_since_epoch())
              .count() / 60 * 60);
      return render_whats_next(layout, now);
    });
  }

  std::string render_whats_next(std::optional<Layout> layout, UnixSeconds now) {
    CalendarDb& calendar = db();
    const Layout chosen =
        layout.value_or(parse_layout("default_layout", calendar.settings().default_layout));
    return whats_next_json(calendar, chosen, now);
  }

  // Warms the current and next minute at start, then the next minute kWarmLead before each
  // turn. A failure (the calendar unreadable for a moment) is logged; requests compute then.
  void warm_loop() {
    std::vector<std::chrono::minutes> offsets = {std::chrono::minutes(0), std::chrono::minutes(1)};
    for (;;) {
      if (pipeline_.cache_available()) {
        for (const auto& layout : kWarmLayouts) {
          Params params;
          if (layout) params["layout"] = std::string(kLayoutNames[static_cast<int>(*layout)]);
          try {
            pipeline_.warm_ahead(kWhatsNext, params,
                                 [this, layout](std::chrono::system_clock::time_point bucket) {
                                   return render_whats_next(
                                       layout, std::chrono::duration_cast<std::chrono::seconds>(
                                                   bucket.time_since_epoch()).count());
                                 },
                                 offsets);
          } catch (const std::exception& e) {
            std::fprintf(stderr, "pipecache-whatsnext worker %d: warming: %s\n", getpid(),
                         e.what());
          }
        }
      }
      offsets = {std::chrono::minutes(1)};
      const auto now = std::chrono::system_clock::now();
      auto next_turn = std::chrono::ceil<std::chrono::minutes>(now);
      if (next_turn - now <= kWarmLead) next_turn += std::chrono::minutes(1);
      std::unique_lock lock(warm_mutex_);
      if (warm_wake_.wait_until(lock, next_turn - kWarmLead, [this] { return stopping_; })) return;
    }
  }

  void events(const httplib::Request& q, httplib::Response& r) {
    const TimeRange range =
        parse_range(q.get_param_value("start"), q.get_param_value("end"));
    answer(r, kEvents, {{"start", std::to_string(range.from)}, {"end", std::to_string(range.to)}},
           [this, range] { return events_json(range, db().occurrences(range)); },
           [this, range] { return claim_batched(range); });
  }

  void put_settings(const httplib::Request& q, httplib::Response& r) {
    CalendarDb& calendar = db();
    const Settings updated = apply_settings_patch(calendar.settings(), q.body);
    calendar.save_settings(updated);
    pipeline_.handle_data_change("settings_change");
    reinvalidator_.schedule("settings_change");
    r.set_content(settings_json(updated), "application/json");
  }

  void refresh(httplib::Response& r) {
    const LoadSummary loaded = db().reload(config_.calendar_path);
    pipeline_.handle_data_change("data_refresh");
    reinvalidator_.schedule("data_refresh");
    r.set_content(fmt::format(R"({{"events":{},"recurring":{},"overrides":{}}})", loaded.events,
                              loaded.recurring, loaded.overrides),
                  "application/json");
  }

  // A range the batch handler computed, claimed once by a request that asked for it. Only the
  // holder of a key's lease computes it, so at most one request of this process waits for
  // each computed range (two requests of one range at the same instant may swap headers).
  bool claim_batched(const TimeRange& range) {
    std::lock_guard lock(batched_mutex_);
    auto it = batched_.find({range.from, range.to});
    if (it == batched_.end()) return false;
    batched_.erase(it);
    return true;
  }

  const ServerConfig& config_;
  pipecache::Pipeline pipeline_;
  Reinvalidator reinvalidator_;
  std::mutex batched_mutex_;
  std::multiset<std::pair<UnixSeconds, UnixSeconds>> batched_;  // GUARDED_BY(batched_mutex_)
  std::mutex warm_mutex_;
  std::condition_variable warm_wake_;
  bool stopping_ = false;  // GUARDED_BY(warm_mutex_)
  std::thread warmer_;
};

// Stops this worker without disturbing its siblings. httplib's Server::stop() calls
// shutdown() on its listening socket, and that socket is SHARED with every other worker:
// shutdown() would stop them all. So the worker first points its own descriptor at a fresh,
// unbound socket (dup2 swaps the descriptor of this process only), then stops: the accept
// loop wakes within its idle interval and ends, in-flight requests finish.
void stop_worker(httplib::Server& server, int listen_fd) {
  const int detached = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (detached >= 0) {
    ::dup2(detached, listen_fd);
    ::close(detached);
  }
  server.stop();
  ::alarm(kGraceSeconds);
}

}  // namespace

int run_worker(httplib::Server& server, int listen_fd, const ServerConfig& config,
               unsigned worker_index) {
  // SIGTERM is taken by a thread of its own (sigwait), so the stop sequence runs outside a
  // signal handler. It is blocked before any other thread exists: they all inherit the mask.
  sigset_t term;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term, nullptr);

  std::optional<App> app;
  try {
    app.emplace(config);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pipecache-whatsnext worker %d: %s\n", getpid(), e.what());
    return 1;
  }
  app->install(server);
  if (worker_index == 0 && config.warm) app->start_warming();
  std::thread([&server, listen_fd, term] {
    int signal = 0;
    sigwait(&term, &signal);
    stop_worker(server, listen_fd);
  }).detach();

  const bool clean = server.listen_after_bind();
  app.reset();  // drains the batcher, detaches from the segment
  // false: the accept loop ended because the shared socket was shut down by the master
  // (shutdown of the whole server) or replaced by stop_worker: both are orderly.
  (void)clean;
  return 0;
}

}  // namespace whatsnext
