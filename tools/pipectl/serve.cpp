// pipectl serve: the segment's figures over HTTP, for Prometheus and for people.
//
//   GET  /            the live status page (status_page.cpp; self-contained, no CDN)
//   GET  /metrics     Prometheus text, the same families as `pipectl stats --format prometheus`
//   GET  /api/stats   JSON: {"time_unix_ms", "writes_allowed", "segments": [<stats --json>...],
//                     "errors": [{"segment", "error"}]}
//   POST /api/invalidate?segment=S&pattern=GLOB   only with --allow-writes, and
//   POST /api/clear?segment=S                      "Authorization: Bearer <token>"
//
// Security: it listens on loopback unless told otherwise, serves only segments this user may
// open (the library's trust checks apply unchanged), and changes nothing unless started with
// --allow-writes AND a token. The token travels in a header, never a cookie or a query string:
// a browser does not attach it to a cross-site request by itself, so another web page the
// operator has open cannot invalidate the cache (no CSRF), and it does not end up in logs.
//
// Segments: one (--name, as every subcommand), or with --all every segment of /dev/shm this
// user can open, found again on every request, so segments created later appear and destroyed
// ones disappear. A handle is kept per segment and re-opened when the name points to another
// file (destroyed and re-created): an old handle would keep reporting the unlinked segment.
//
// Threads: httplib serves requests from a small pool; every handle lives in `Segments`, under
// one mutex held for the whole collection of a response (a scrape takes microseconds; the
// status page asks once a second). SIGINT / SIGTERM are taken by a thread in sigwait that
// stops the server, so the process exits with status 0 after the responses in flight.

#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/core.h>
#include <httplib.h>

#include <pipecache/cache.hpp>

#include "commands.hpp"
#include "json_writer.hpp"
#include "prometheus.hpp"
#include "stats_report.hpp"
#include "status_page.hpp"
#include "store_metrics.hpp"

namespace pipectl {
namespace {

constexpr std::string_view kDefaultListen = "127.0.0.1:9180";
constexpr std::string_view kSegmentPrefix = "pipecache.";

struct ListenAddress {
  std::string host;
  int port = 0;
};

ListenAddress parse_listen(const std::string& text) {
  // HOST:PORT, [IPv6]:PORT. Port 0 asks the kernel for a free one (printed on start).
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
    throw UsageError(fmt::format("--listen: '{}' is not HOST:PORT (e.g. 127.0.0.1:9180)", text));
  }
  ListenAddress a;
  a.host = text.substr(0, colon);
  if (a.host.size() > 2 && a.host.front() == '[' && a.host.back() == ']') {
    a.host = a.host.substr(1, a.host.size() - 2);
  }
  std::uint64_t port = parse_count_arg(text.substr(colon + 1), "--listen");
  if (port > 65535) throw UsageError(fmt::format("--listen: port {} is above 65535", port));
  a.port = static_cast<int>(port);
  return a;
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

std::string read_token_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw UsageError(fmt::format("--token-file: cannot read '{}'", path));
  std::string token;
  std::getline(in, token);
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
  return token;
}

// Compares every byte whatever the first difference: the time taken says nothing about how
// much of a guessed token was right.
bool same_token(std::string_view given, std::string_view expected) {
  unsigned char difference = given.size() == expected.size() ? 0 : 1;
  for (std::size_t i = 0; i < given.size(); ++i) {
    difference |= static_cast<unsigned char>(given[i] ^ expected[i % expected.size()]);
  }
  return difference == 0;
}

// The segments being served and their open handles.
class Segments {
 public:
  // Segments are opened with `trust` (--owner / $PIPECACHE_TRUSTED_OWNERS) on every
  // (re)open, as the start-up check opened them.
  Segments(std::optional<std::string> only, pipecache::Trust trust)
      : only_(std::move(only)), trust_(std::move(trust)) {}

  struct Snapshot {
    std::vector<SegmentStats> stats;
    std::vector<std::vector<pipecache::InvalidationRecord>> invalidations;
    std::vector<std::pair<std::string, std::string>> errors;  // segment, problem
  };

  Snapshot collect() {
    std::lock_guard lock(mutex_);
    Snapshot snap;
    for (const std::string& name : names()) {
      try {
        pipecache::Cache& cache = handle(name);
        snap.stats.push_back({name, cache.stats()});
        snap.invalidations.push_back(cache.recent_invalidations());
      } catch (const std::exception& e) {
        handles_.erase(name);
        snap.errors.emplace_back(name, e.what());
      }
    }
    return snap;
  }

  // Runs `change` on the named segment (one of those served); the problem text on failure.
  template <typename Change>
  std::optional<std::string> change(const std::string& name, Change&& change) {
    std::lock_guard lock(mutex_);
    std::vector<std::string> served = names();
    if (std::find(served.begin(), served.end(), name) == served.end()) {
      return fmt::format("segment '{}' is not served here", name);
    }
    try {
      change(handle(name));
      return std::nullopt;
    } catch (const std::exception& e) {
      handles_.erase(name);
      return std::string(e.what());
    }
  }

 private:
  struct Handle {
    pipecache::Cache cache;
    dev_t dev;
    ino_t ino;
  };

  std::vector<std::string> names() const {
    if (only_) return {*only_};
    std::vector<std::string> found;
    const std::filesystem::path dir =
        std::filesystem::path(pipecache::Cache::path_of("x")).parent_path();
    std::error_code ec;
    for (const auto& item : std::filesystem::directory_iterator(dir, ec)) {
      const std::string file = item.path().filename().string();
      if (file.rfind(kSegmentPrefix, 0) != 0) continue;
      std::string name = file.substr(kSegmentPrefix.size());
      struct stat st {};
      // Only this user's segments and those of owners it trusts: another user's would be
      // refused by open() anyway (trust model), and listing them as errors would only leak
      // their names to the page.
      if (::stat(item.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
          (st.st_uid != ::geteuid() && !trust_.trusts(st.st_uid))) {
        continue;
      }
      try {
        pipecache::Cache::validate_name(name);
      } catch (const pipecache::Error&) {
        continue;  // a creator's temporary file, or not ours
      }
      found.push_back(std::move(name));
    }
    std::sort(found.begin(), found.end());
    return found;
  }

  pipecache::Cache& handle(const std::string& name) {
    struct stat st {};
    if (::stat(pipecache::Cache::path_of(name).c_str(), &st) != 0) {
      handles_.erase(name);
      throw pipecache::Error(fmt::format("segment '{}' does not exist ({})", name,
                                         pipecache::Cache::path_of(name)),
                             pipecache::ErrorKind::not_found);
    }
    auto it = handles_.find(name);
    if (it != handles_.end() && (it->second.dev != st.st_dev || it->second.ino != st.st_ino)) {
      handles_.erase(it);
      it = handles_.end();
    }
    if (it == handles_.end()) {
      it = handles_.emplace(name, Handle{pipecache::Cache::open(name, trust_), st.st_dev, st.st_ino})
               .first;
    }
    return it->second.cache;
  }

  std::optional<std::string> only_;
  pipecache::Trust trust_;
  std::mutex mutex_;
  std::map<std::string, Handle> handles_;
};

std::string metrics_text(const Segments::Snapshot& snap) {
  PrometheusWriter p;
  write_store_metrics(p, snap.stats);
  return p.text();
}

std::string stats_json(const Segments::Snapshot& snap, bool writes_allowed) {
  JsonWriter j(/*pretty=*/false);
  j.begin_object();
  j.member("time_unix_ms", static_cast<std::uint64_t>(
                               std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count()));
  j.member("writes_allowed", writes_allowed);
  j.key("segments").begin_array();
  for (std::size_t i = 0; i < snap.stats.size(); ++i) {
    write_stats_json(j, snap.stats[i].name, snap.stats[i].stats, &snap.invalidations[i]);
  }
  j.end_array();
  j.key("errors").begin_array();
  for (const auto& [segment, problem] : snap.errors) {
    j.begin_object().member("segment", segment).member("error", problem).end_object();
  }
  j.end_array();
  j.end_object();
  return j.finish();
}

void reply_json_error(httplib::Response& res, int status, std::string_view message) {
  JsonWriter j(false);
  j.begin_object().member("error", message).end_object();
  res.status = status;
  res.set_content(j.finish(), "application/json");
}

// Blocks SIGINT/SIGTERM in every thread (call before httplib starts its pool) and returns a
// thread that stops `server` when one arrives.
std::thread stop_on_signal(httplib::Server& server, sigset_t& signals) {
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return std::thread([&server, &signals] {
    int signal = 0;
    sigwait(&signals, &signal);
    server.stop();
  });
}

}  // namespace

int run_serve(const Invocation& invocation) {
  auto parser = make_parser(
      "serve",
      "Serve the segment's figures over HTTP: Prometheus text at /metrics, JSON at /api/stats "
      "and a live status page at /. Read-only unless --allow-writes is given with a token.",
      "");
  parser.add_options()
      ("l,listen", "HOST:PORT to listen on; port 0 picks a free one (default 127.0.0.1:9180)",
       cxxopts::value<std::string>()->default_value(std::string(kDefaultListen)))
      ("all", "serve every segment of this user in /dev/shm, not only --name")
      ("allow-writes", "allow invalidate and clear from the page or the API (needs a token)")
      ("token-file", "file whose first line is the token writes must present "
                     "(Authorization: Bearer TOKEN); else $PIPECTL_SERVE_TOKEN",
       cxxopts::value<std::string>());
  add_positional(parser, {});
  auto parsed = parse_arguments(parser, invocation);
  if (!parsed) return 0;

  const ListenAddress listen = parse_listen((*parsed)["listen"].as<std::string>());
  const bool all = parsed->count("all") > 0;
  if (all && (parsed->count("name") || invocation.global_name)) {
    throw UsageError("--all serves every segment: give it without --name");
  }
  std::optional<std::string> only;
  if (!all) {
    only = segment_name(*parsed, invocation);
    open_segment(*only, Access::write);  // a missing or refused segment is a start-up error, not a 500 later
  }
  const bool writes_allowed = parsed->count("allow-writes") > 0;
  std::string token;
  if (parsed->count("token-file")) {
    token = read_token_file((*parsed)["token-file"].as<std::string>());
  } else if (const char* env = std::getenv("PIPECTL_SERVE_TOKEN")) {
    token = env;
  }
  if (writes_allowed && token.size() < 16) {
    throw UsageError("--allow-writes needs a token of 16 characters or more (--token-file FILE "
                     "or $PIPECTL_SERVE_TOKEN)");
  }

  Segments segments(only, trusted_owners());
  httplib::Server server;
  // Two threads: a scrape and the page's poll never wait for each other, and a client cannot
  // make this process use more than two cores' worth of the host's CPU.
  server.new_task_queue = [] { return new httplib::ThreadPool(2); };
  server.set_read_timeout(5, 0);
  server.set_write_timeout(5, 0);
  server.set_keep_alive_max_count(100);
  // httplib's default also sets SO_REUSEPORT: a second `pipectl serve` on the same port would
  // then start "successfully" and take half of the scrapes. SO_REUSEADDR alone still allows a
  // restart while old connections sit in TIME_WAIT.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });

  server.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Cache-Control", "no-store");
    res.set_header("Content-Security-Policy",
                   "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                   "connect-src 'self'; img-src 'self' data:");
    res.set_content(std::string(status_page_html()), "text/html; charset=utf-8");
  });
  server.Get("/metrics", [&segments](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_text(segments.collect()), "text/plain; version=0.0.4; charset=utf-8");
  });
  server.Get("/api/stats", [&segments, writes_allowed](const httplib::Request&,
                                                       httplib::Response& res) {
    res.set_header("Cache-Control", "no-store");
    res.set_content(stats_json(segments.collect(), writes_allowed), "application/json");
  });

  auto authorised = [writes_allowed, &token](const httplib::Request& req,
                                             httplib::Response& res) {
    if (!writes_allowed) {
      reply_json_error(res, 403, "read-only: start pipectl serve with --allow-writes and a token");
      return false;
    }
    const std::string header = req.get_header_value("Authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (header.rfind(kBearer, 0) != 0 ||
        !same_token(std::string_view(header).substr(kBearer.size()), token)) {
      reply_json_error(res, 401, "missing or wrong token (Authorization: Bearer TOKEN)");
      return false;
    }
    return true;
  };
  auto segment_param = [&only](const httplib::Request& req) {
    if (req.has_param("segment")) return req.get_param_value("segment");
    return only.value_or(std::string());
  };
  server.Post("/api/invalidate", [&](const httplib::Request& req, httplib::Response& res) {
    if (!authorised(req, res)) return;
    const std::string pattern = req.get_param_value("pattern");
    if (pattern.empty()) return reply_json_error(res, 400, "pattern is missing");
    std::size_t removed = 0;
    auto problem = segments.change(segment_param(req), [&](pipecache::Cache& cache) {
      removed = cache.invalidate(pattern);
    });
    if (problem) return reply_json_error(res, 400, *problem);
    JsonWriter j(false);
    j.begin_object().member("pattern", pattern).member("removed", std::uint64_t{removed});
    res.set_content(j.end_object().finish(), "application/json");
  });
  server.Post("/api/clear", [&](const httplib::Request& req, httplib::Response& res) {
    if (!authorised(req, res)) return;
    auto problem =
        segments.change(segment_param(req), [](pipecache::Cache& cache) {
          if (!cache.clear())
            throw pipecache::Error("not cleared: a lock stayed held by a live process past the timeout");
        });
    if (problem) return reply_json_error(res, 400, *problem);
    JsonWriter j(false);
    res.set_content(j.begin_object().member("cleared", true).end_object().finish(),
                    "application/json");
  });

  sigset_t signals;
  std::thread signal_thread = stop_on_signal(server, signals);
  int port = listen.port;
  bool bound = port == 0 ? (port = server.bind_to_any_port(listen.host)) > 0
                         : server.bind_to_port(listen.host, port);
  if (!bound) {
    pthread_kill(signal_thread.native_handle(), SIGTERM);
    signal_thread.join();
    throw SegmentProblem(fmt::format("cannot listen on {}:{} (in use, or not an address of this "
                                     "host)", listen.host, listen.port));
  }
  if (!is_loopback(listen.host)) {
    std::fprintf(stderr, "pipectl serve: warning: listening on %s, reachable from other hosts%s\n",
                 listen.host.c_str(), writes_allowed ? " (writes allowed with the token)" : "");
  }
  std::printf("pipectl serve: listening on http://%s:%d/ (%s%s)\n",
              listen.host.find(':') != std::string::npos ? ("[" + listen.host + "]").c_str()
                                                         : listen.host.c_str(),
              port, all ? "every segment of this user" : ("segment " + *only).c_str(),
              writes_allowed ? ", writes allowed" : ", read-only");
  std::fflush(stdout);
  server.listen_after_bind();
  // listen_after_bind returns after stop() (a signal) or a fatal socket error: make sure the
  // signal thread ends either way.
  pthread_kill(signal_thread.native_handle(), SIGTERM);
  signal_thread.join();
  return 0;
}

}  // namespace pipectl
