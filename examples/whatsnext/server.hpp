// The What's Next server: the prefork master (master.cpp) and the worker that serves the
// routes through one pipecache::Pipeline per process (worker.cpp).
#pragma once

#include <pipecache/pipeline.hpp>

#include <string>

namespace httplib {
class Server;
}

namespace whatsnext {

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 8080;            // 0 = any free port (printed on the first line of stdout)
  unsigned workers = 4;       // worker processes
  unsigned threads = 8;       // HTTP threads per worker (each serves one connection at a time)
  std::string calendar_path;  // the iCalendar file (POST /api/refresh reads it again)
  std::string db_path;        // the SQLite database the master loads and workers query
  bool keep_segment = false;  // leave a segment this master created in /dev/shm at exit
  bool warm = true;           // worker 0 warms the next minute's What's Next views
  // Exposure. A request body beyond max_body bytes is refused (413) before a handler runs.
  // The routes that change state (POST /api/refresh, PUT /api/settings) answer a caller that
  // presents admin_token (Authorization: Bearer <token>; empty = no token accepted), or else
  // only a caller on this host (loopback peer) whose request is not cross-origin; 403 otherwise.
  // debug_time (an answer for any instant, i.e. a cache key per instant a client names) is a
  // 400 unless allow_debug_time.
  std::size_t max_body = 64 * 1024;
  std::string admin_token;
  bool allow_debug_time = false;
  pipecache::PipelineConfig pipeline;
};

// Runs the routes on `server`, already bound by the master to `listen_fd` (shared by every
// worker: the kernel hands each connection to one of them). Returns the process's exit code
// when the server stops: after SIGTERM, or when the master shuts the listening socket down.
// `worker_index` (0..workers-1) is kept by a restarted worker; worker 0 warms the cache.
int run_worker(httplib::Server& server, int listen_fd, const ServerConfig& config,
               unsigned worker_index);

// Prometheus text of the segment's figures, with the family names of
// `pipectl stats --format prometheus`, plus pipecache_cache_available and this process's
// fallback counters.
std::string render_metrics(const pipecache::Pipeline& pipeline);

// The page at "/": fetches /api/whats-next/data and shows it.
extern const char* const kIndexHtml;

}  // namespace whatsnext
