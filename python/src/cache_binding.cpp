// pipecache.Cache: the shared store, bound method by method.
//
// GIL: every store operation runs with the GIL released (other threads of the process keep
// running while this one copies a value or waits for a stripe lock). Arguments are converted
// to views before the release and results built after it: no Python object is touched without
// the GIL. A get copies the value once into a per-thread buffer (GIL released), then once into
// the new bytes object (GIL held): building the bytes object needs the GIL, and holding the
// GIL across the shared-memory read would stall every other thread on a contended stripe.
#include "bindings.hpp"
#include "convert.hpp"

#include <pybind11/stl.h>

#include <optional>

namespace pipecache::python {
namespace {

Options to_options(std::string_view name, const py::kwargs& opts) {
  Options o;
  o.name = std::string(name);
  for (auto item : opts) {
    const std::string key = py::str(item.first);
    py::handle v = item.second;
    if (key == "byte_budget") {
      o.byte_budget = to_size(v, "byte_budget");
    } else if (key == "max_entries") {
      o.max_entries = to_count(v, "max_entries");
    } else if (key == "default_ttl") {
      o.default_ttl = to_duration(v, "default_ttl");
    } else if (key == "permissions") {
      const auto mode = to_count(v, "permissions");
      if (mode > 0777) {
        throw Error("permissions must be a file mode like 0o600, got " + std::to_string(mode),
                    ErrorKind::invalid_argument);
      }
      o.permissions = static_cast<unsigned>(mode);
    } else if (key == "stripes") {
      o.stripes = static_cast<unsigned>(to_count(v, "stripes"));
    } else {
      throw py::type_error("unexpected option '" + key +
                           "' (byte_budget, max_entries, default_ttl, permissions, stripes)");
    }
  }
  return o;
}

py::object get(Cache& c, py::handle key) {
  const std::string_view k = text_view(key, "key");
  thread_local std::string buffer;  // keeps its capacity: a hit allocates only the bytes object
  bool hit;
  {
    py::gil_scoped_release nogil;
    hit = c.get(k, buffer);
  }
  if (!hit) return py::none();
  return py::reinterpret_steal<py::object>(
      PyBytes_FromStringAndSize(buffer.data(), static_cast<Py_ssize_t>(buffer.size())));
}

bool put(Cache& c, py::handle key, py::handle value, py::handle ttl) {
  const std::string_view k = text_view(key, "key");
  const ValueView v(value);
  const auto t = ttl.is_none() ? c.default_ttl() : to_duration(ttl, "ttl");
  py::gil_scoped_release nogil;
  return c.put(k, v.view(), t, 0);
}

template <typename F>
auto without_gil(F&& f) {
  py::gil_scoped_release nogil;
  return f();
}

py::dict namespace_dict(const NamespaceStats& ns) {
  py::dict d;
  d["name"] = decode_text(ns.name);
  d["id"] = ns.id;
  d["generation"] = ns.generation;
  d["entries"] = ns.entries;
  const auto names = ns_counter_names();
  for (unsigned i = 0; i < kNsCounters; ++i) d[py::str(names[i])] = ns.counters[i];
  d["hit_time"] = histogram_dict(ns.histogram(NsHistogram::hit_time));
  d["compute_time"] = histogram_dict(ns.histogram(NsHistogram::compute_time));
  return d;
}

}  // namespace

std::array<const char*, kNsCounters> ns_counter_names() {
  // In NsCounter's order; the static_assert makes a new counter a compile error here.
  static_assert(kNsCounters == 18, "name the new NsCounter below");
  return {"requests", "hits", "misses", "stale_served", "computes", "dedup_waits",
          "lease_takeovers", "fallbacks", "compute_failures", "batches", "batched_requests",
          "batchable_requests", "batch_joined", "batch_failures", "batch_fallbacks",
          "batch_wait_ns", "bypassed", "batch_run_ns"};
}

py::dict histogram_dict(const Histogram& h) {
  py::dict d;
  d["count"] = h.count;
  d["mean_ns"] = h.mean_ns();
  d["p50_ns"] = h.percentile_ns(0.5);
  d["p99_ns"] = h.percentile_ns(0.99);
  return d;
}

py::dict stats_dict(const Stats& s) {
  py::dict d;
#define PIPECACHE_FIELD(f) d[#f] = s.f
  PIPECACHE_FIELD(hits);
  PIPECACHE_FIELD(misses);
  PIPECACHE_FIELD(inserts);
  PIPECACHE_FIELD(updates);
  PIPECACHE_FIELD(evictions);
  PIPECACHE_FIELD(expirations);
  PIPECACHE_FIELD(invalidations);
  PIPECACHE_FIELD(put_failures);
  PIPECACHE_FIELD(lock_recoveries);
  PIPECACHE_FIELD(entries);
  PIPECACHE_FIELD(stale_entries);
  PIPECACHE_FIELD(bytes_used);
  PIPECACHE_FIELD(byte_budget);
  PIPECACHE_FIELD(max_entries);
  PIPECACHE_FIELD(arena_bytes);
  PIPECACHE_FIELD(free_bytes);
  PIPECACHE_FIELD(largest_free_block);
  PIPECACHE_FIELD(fragmented_bytes);
  PIPECACHE_FIELD(attached_processes);
  PIPECACHE_FIELD(segment_bytes);
  PIPECACHE_FIELD(created_unix_ms);
  PIPECACHE_FIELD(uptime_ms);
#undef PIPECACHE_FIELD
  py::list namespaces;
  for (const auto& ns : s.namespaces) namespaces.append(namespace_dict(ns));
  d["namespaces"] = namespaces;
  return d;
}

void bind_cache(py::module_& m) {
  py::class_<Cache>(m, "Cache", "A handle on a named shared-memory cache segment.")
      .def_static(
          "create",
          [](std::string_view name, const py::kwargs& opts) {
            const Options o = to_options(name, opts);
            return without_gil([&] { return Cache::create(o); });
          },
          py::arg("name"))
      .def_static(
          "open",
          [](std::string_view name) { return without_gil([&] { return Cache::open(name); }); },
          py::arg("name"))
      .def_static(
          "open_or_create",
          [](std::string_view name, const py::kwargs& opts) {
            const Options o = to_options(name, opts);
            return without_gil([&] { return Cache::open_or_create(o); });
          },
          py::arg("name"))
      .def_static(
          "remove",
          [](std::string_view name) { return without_gil([&] { return Cache::remove(name); }); },
          py::arg("name"))
      .def_static(
          "exists",
          [](std::string_view name) { return without_gil([&] { return Cache::exists(name); }); },
          py::arg("name"))
      .def_static("path_of", &Cache::path_of, py::arg("name"))
      .def("get", &get, py::arg("key"))
      .def("put", &put, py::arg("key"), py::arg("value"), py::arg("ttl") = py::none())
      .def(
          "delete",
          [](Cache& c, py::handle key) {
            const std::string_view k = text_view(key, "key");
            return without_gil([&] { return c.erase(k); });
          },
          py::arg("key"))
      .def(
          "invalidate",
          [](Cache& c, py::handle glob) {
            const std::string_view g = text_view(glob, "glob");
            return without_gil([&] { return c.invalidate(g); });
          },
          py::arg("glob"))
      .def("clear", [](Cache& c) { without_gil([&] { c.clear(); }); })
      .def("purge", [](Cache& c) { return without_gil([&] { return c.purge(); }); })
      .def(
          "keys",
          [](const Cache& c, py::handle glob, py::handle limit) {
            const std::string_view g = text_view(glob, "glob");
            const std::size_t lim = limit.is_none() ? static_cast<std::size_t>(-1)
                                                    : static_cast<std::size_t>(to_count(limit, "limit"));
            const auto infos = without_gil([&] { return c.keys(g, lim); });
            py::list out;
            for (const auto& k : infos) {
              if (!k.lease) out.append(decode_text(k.key));  // a lease is not a value
            }
            return out;
          },
          py::arg("glob") = "*", py::arg("limit") = py::none())
      .def("stats",
           [](const Cache& c) { return stats_dict(without_gil([&] { return c.stats(); })); })
      .def("healthy", &Cache::healthy)
      .def_property_readonly("name", [](const Cache& c) { return c.name(); })
      .def_property_readonly("default_ttl",
                             [](const Cache& c) { return seconds(c.default_ttl()); })
      .def_property_readonly("max_value_size", &Cache::max_value_size)
      .def_property_readonly("max_key_size", &Cache::max_key_size)
      .def("__contains__", [](Cache& c, py::handle key) {
        const std::string_view k = text_view(key, "key");
        thread_local std::string buffer;
        return without_gil([&] { return c.get(k, buffer); });
      })
      .def("__repr__", [](const Cache& c) { return "<pipecache.Cache '" + c.name() + "'>"; });
}

}  // namespace pipecache::python
