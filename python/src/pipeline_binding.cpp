// pipecache.Pipeline: get-or-compute for Python handlers.
//
// GIL protocol of process_request (and warm, warm_ahead, batch handlers):
//   1. Arguments become C++ values (Params, views into the caller's str objects) with the
//      GIL held; then the GIL is released for the whole C++ call: the store lookup and any
//      wait for another process's computation run while other threads of this process run.
//   2. The handler is called with the GIL re-acquired. What it raises leaves as
//      py::error_already_set, which carries the original exception object (its type and
//      traceback) through the C++ pipeline; that releases the key's lease on the way
//      (a waiting process then computes) and pybind11 restores the exception unchanged.
//   3. While a request waits for another process, the pipeline's wait hook takes the GIL
//      between slices of at most 50 ms and runs PyErr_CheckSignals(): Ctrl-C (or any signal
//      handler that raises, e.g. for SIGTERM) ends the wait with that exception.
//
// Type tag: the stored value is the handler's bytes followed by one tag byte, kTagBytes or
// kTagStr (str is stored as UTF-8), so a hit returns the type the handler returned. A value
// without a tag (stored by a C++ client) is returned as bytes, whole.
#include "bindings.hpp"
#include "convert.hpp"

#include <pipecache/pipeline.hpp>

#include <pybind11/stl.h>

#include <chrono>
#include <string>

namespace pipecache::python {
namespace {

constexpr char kTagBytes = '\x01';
constexpr char kTagStr = '\x02';

// The handler's result, tagged (GIL held).
std::string tagged(py::handle result) {
  std::string out;
  if (PyUnicode_Check(result.ptr())) {
    const auto text = text_view(result, "handler result");
    out.reserve(text.size() + 1);
    out.append(text);
    out.push_back(kTagStr);
  } else if (PyBytes_Check(result.ptr())) {
    const auto data = text_view(result, "handler result");
    out.reserve(data.size() + 1);
    out.append(data);
    out.push_back(kTagBytes);
  } else {
    throw py::type_error(std::string("a handler must return str or bytes, not ") +
                         Py_TYPE(result.ptr())->tp_name);
  }
  return out;
}

// The Python object for a value process_request returned (GIL held).
py::object untagged(const std::string& value) {
  if (!value.empty()) {
    const auto size = static_cast<Py_ssize_t>(value.size() - 1);
    if (value.back() == kTagStr) return decode_text({value.data(), value.size() - 1});
    if (value.back() == kTagBytes) {
      return py::reinterpret_steal<py::object>(PyBytes_FromStringAndSize(value.data(), size));
    }
  }
  return py::reinterpret_steal<py::object>(
      PyBytes_FromStringAndSize(value.data(), static_cast<Py_ssize_t>(value.size())));
}

// A C++ handler calling a Python callable with no arguments (protocol step 2).
Pipeline::Handler python_handler(const py::object& handler) {
  return [&handler]() -> std::string {
    py::gil_scoped_acquire gil;
    return tagged(handler());
  };
}

BatchProfile to_batch_profile(py::handle spec, const std::string& name) {
  BatchProfile b;
  if (!PyDict_Check(spec.ptr())) {
    throw py::type_error("batch_profiles['" + name + "'] must be a dict");
  }
  for (auto item : py::reinterpret_borrow<py::dict>(spec)) {
    const std::string key = py::str(item.first);
    if (key == "batch_size") {
      b.batch_size = to_count(item.second, "batch_size");
    } else if (key == "batch_timeout") {
      b.batch_timeout = to_duration(item.second, "batch_timeout");
    } else if (key == "merge") {
      const std::string_view m = text_view(item.second, "merge");
      if (m == "identical_keys") {
        b.merge = BatchMerge::identical_keys;
      } else if (m == "none") {
        b.merge = BatchMerge::none;
      } else {
        throw Error("batch_profiles['" + name + "'].merge: identical_keys or none, not '" +
                        std::string(m) + "'",
                    ErrorKind::invalid_argument);
      }
    } else {
      throw py::type_error("unexpected batch profile field '" + key +
                           "' (batch_size, batch_timeout, merge)");
    }
  }
  return b;
}

void apply_config(PipelineConfig& c, const py::kwargs& kwargs) {
  // A configuration file first: the other keywords override what it sets.
  if (kwargs.contains("config_file")) {
    c.load_file(std::string(text_view(kwargs["config_file"], "config_file")));
  }
  for (auto item : kwargs) {
    const std::string key = py::str(item.first);
    py::handle v = item.second;
    if (key == "config_file") {
      continue;
    } else if (key == "batch_profiles") {
      if (!PyDict_Check(v.ptr())) throw py::type_error("batch_profiles must be a dict");
      for (auto p : py::reinterpret_borrow<py::dict>(v)) {
        const std::string name(text_view(p.first, "batch profile name"));
        c.batch_profiles[name] = to_batch_profile(p.second, name);
      }
    } else if (key == "segment_name") {
      c.segment_name = std::string(text_view(v, "segment_name"));
    } else if (key == "enable_response_caching") {
      c.enable_response_caching = to_bool(v, "enable_response_caching");
    } else if (key == "cache_ttl") {
      c.cache_ttl = to_duration(v, "cache_ttl");
    } else if (key == "cache_max_size") {
      c.cache_max_size = to_count(v, "cache_max_size");
    } else if (key == "cache_memory_limit_mb") {
      c.cache_memory_limit_mb = to_count(v, "cache_memory_limit_mb");
    } else if (key == "enable_request_batching") {
      c.enable_request_batching = to_bool(v, "enable_request_batching");
    } else if (key == "batch_size") {
      c.batch_size = to_count(v, "batch_size");
    } else if (key == "batch_timeout") {
      c.batch_timeout = to_duration(v, "batch_timeout");
    } else if (key == "enable_request_deduplication") {
      c.enable_request_deduplication = to_bool(v, "enable_request_deduplication");
    } else if (key == "lease_time") {
      c.lease_time = to_duration(v, "lease_time");
    } else if (key == "dedup_max_wait") {
      c.dedup_max_wait = to_duration(v, "dedup_max_wait");
    } else if (key == "default_stale_for") {
      c.default_stale_for = to_duration(v, "default_stale_for");
    } else if (key == "max_key_length") {
      c.max_key_length = to_count(v, "max_key_length");
    } else {
      throw py::type_error("unexpected PipelineConfig field '" + key + "'");
    }
  }
}

py::dict config_dict(const PipelineConfig& c) {
  py::dict d;
  d["segment_name"] = c.segment_name;
  d["enable_response_caching"] = c.enable_response_caching;
  d["cache_ttl"] = seconds(c.cache_ttl);
  d["cache_max_size"] = c.cache_max_size;
  d["cache_memory_limit_mb"] = c.cache_memory_limit_mb;
  d["enable_request_batching"] = c.enable_request_batching;
  d["batch_size"] = c.batch_size;
  d["batch_timeout"] = seconds(c.batch_timeout);
  d["enable_request_deduplication"] = c.enable_request_deduplication;
  d["lease_time"] = seconds(c.lease_time);
  d["dedup_max_wait"] = seconds(c.dedup_max_wait);
  d["default_stale_for"] = seconds(c.default_stale_for);
  d["max_key_length"] = c.max_key_length;
  py::dict profiles;
  for (const auto& [name, b] : c.batch_profiles) {
    py::dict pd;
    pd["batch_size"] = b.batch_size;
    pd["batch_timeout"] = seconds(b.batch_timeout);
    pd["merge"] = b.merge == BatchMerge::none ? "none" : "identical_keys";
    profiles[py::str(name)] = pd;
  }
  d["batch_profiles"] = profiles;
  d["config_file"] = c.config_file;
  return d;
}

py::dict policy_dict(const RequestPolicy& p) {
  py::dict d;
  d["ttl"] = seconds(p.ttl);
  d["stale_for"] = seconds(p.stale_for);
  d["deduplicate"] = p.deduplicate;
  d["batch_eligible"] = p.batch_eligible;
  d["invalidation_triggers"] = p.invalidation_triggers;
  d["time_bucket"] = static_cast<double>(p.time_bucket.count());
  d["batch_profile"] = p.batch_profile;
  d["rollout_percent"] = p.rollout_percent;
  return d;
}

py::dict latency_dict(const LatencySummary& l) {
  py::dict d;
  d["count"] = l.count;
  d["mean_ns"] = l.mean_ns;
  d["p50_ns"] = l.p50_ns;
  d["p99_ns"] = l.p99_ns;
  return d;
}

py::dict type_stats_dict(const RequestTypeStats& t) {
  py::dict d;
#define PIPECACHE_FIELD(f) d[#f] = t.f
  PIPECACHE_FIELD(generation);
  PIPECACHE_FIELD(entries);
  PIPECACHE_FIELD(requests);
  PIPECACHE_FIELD(hits);
  PIPECACHE_FIELD(misses);
  PIPECACHE_FIELD(stale_served);
  PIPECACHE_FIELD(computes);
  PIPECACHE_FIELD(compute_failures);
  PIPECACHE_FIELD(dedup_waits);
  PIPECACHE_FIELD(lease_takeovers);
  PIPECACHE_FIELD(fallbacks);
  PIPECACHE_FIELD(batchable_requests);
  PIPECACHE_FIELD(batches);
  PIPECACHE_FIELD(batched_requests);
  PIPECACHE_FIELD(batch_joined);
  PIPECACHE_FIELD(batch_failures);
  PIPECACHE_FIELD(batch_fallbacks);
  PIPECACHE_FIELD(batch_wait_ns);
  PIPECACHE_FIELD(bypassed);
  PIPECACHE_FIELD(batch_run_ns);
#undef PIPECACHE_FIELD
  d["switch_percent"] = t.switch_percent ? py::object(py::float_(*t.switch_percent)) : py::object(py::none());
  d["hit_time"] = latency_dict(t.hit_time);
  d["compute_time"] = latency_dict(t.compute_time);
  d["hit_ratio"] = t.hit_ratio();
  d["average_batch_size"] = t.average_batch_size();
  d["batch_formation_efficiency"] = t.batch_formation_efficiency();
  return d;
}

py::dict pipeline_stats_dict(const PipelineStats& s) {
  py::dict d;
  d["segment_name"] = s.segment_name;
  d["cache_available"] = s.cache_available;
  py::dict types;
  for (const auto& t : s.types) types[decode_text(t.request_type)] = type_stats_dict(t);
  d["types"] = types;
  d["store"] = s.store ? py::object(stats_dict(*s.store)) : py::object(py::none());
  py::dict fallbacks;
  for (unsigned i = 0; i < kFallbackCauses; ++i) {
    fallbacks[py::str(std::string(fallback_cause_name(static_cast<FallbackCause>(i))))] =
        s.local_fallbacks[i];
  }
  d["local_fallbacks"] = fallbacks;
  d["segment_reopened"] = s.segment_reopened;
  return d;
}

// A Pipeline whose waits honour Python signals (protocol step 3).
Pipeline make_pipeline(PipelineConfig config) {
  Pipeline p = [&] {
    py::gil_scoped_release nogil;  // opening or creating the segment may take a while
    return Pipeline(std::move(config));
  }();
  p.set_wait_hook([] {
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
  });
  return p;
}

std::string_view type_view(py::handle t) { return text_view(t, "request_type"); }

// Destroys a Pipeline with the GIL released: its batcher threads finish the requests still in
// a window first, and their Python batch handlers need the GIL to run.
struct DeleteWithoutGil {
  void operator()(Pipeline* p) const {
    if (PyGILState_Check() != 0) {
      py::gil_scoped_release nogil;
      delete p;
    } else {
      delete p;
    }
  }
};

}  // namespace

void bind_pipeline(py::module_& m) {
  py::class_<Pipeline, std::unique_ptr<Pipeline, DeleteWithoutGil>>(m, "Pipeline", "Get-or-compute on a shared segment (see pipecache.Pipeline).")
      .def(py::init([](const py::kwargs& kwargs) {
        PipelineConfig c;
        apply_config(c, kwargs);
        return make_pipeline(std::move(c));
      }))
      .def_static("from_environment", [](const py::kwargs& overrides) {
        PipelineConfig c = PipelineConfig::from_environment();
        apply_config(c, overrides);
        return make_pipeline(std::move(c));
      })
      .def_static(
          "from_file",
          [](py::handle path, const py::kwargs& overrides) {
            PipelineConfig c = PipelineConfig::from_file(std::string(text_view(path, "path")));
            apply_config(c, overrides);
            return make_pipeline(std::move(c));
          },
          py::arg("path"))
      .def(
          "process_request",
          [](Pipeline& p, py::handle request_type, py::handle params, const py::object& handler) {
            const std::string_view type = type_view(request_type);
            const Params ps = to_params(params);
            const auto h = python_handler(handler);
            std::string value;
            {
              py::gil_scoped_release nogil;
              value = p.process_request(type, ps, h);
            }
            return untagged(value);
          },
          py::arg("request_type"), py::arg("params"), py::arg("handler"))
      .def(
          "warm",
          [](Pipeline& p, py::handle request_type, py::handle params, const py::object& handler) {
            const std::string_view type = type_view(request_type);
            const Params ps = to_params(params);
            const auto h = python_handler(handler);
            py::gil_scoped_release nogil;
            p.warm(type, ps, h);
          },
          py::arg("request_type"), py::arg("params"), py::arg("handler"))
      .def(
          "warm_ahead",
          [](Pipeline& p, py::handle request_type, py::handle params, const py::object& handler,
             const std::vector<double>& offsets_minutes) {
            const std::string_view type = type_view(request_type);
            const Params ps = to_params(params);
            std::vector<std::chrono::minutes> offsets;
            for (double o : offsets_minutes) offsets.emplace_back(static_cast<long>(o));
            const Pipeline::BucketHandler h = [&handler](std::chrono::system_clock::time_point t) {
              py::gil_scoped_acquire gil;
              const double unix_s =
                  std::chrono::duration<double>(t.time_since_epoch()).count();
              return tagged(handler(unix_s));
            };
            py::gil_scoped_release nogil;
            return p.warm_ahead(type, ps, h, offsets);
          },
          py::arg("request_type"), py::arg("params"), py::arg("handler"),
          py::arg("offsets_minutes") = std::vector<double>{0, 1, 2, 5})
      .def(
          "set_policy",
          [](Pipeline& p, py::handle request_type, const py::kwargs& kwargs) {
            const std::string type(type_view(request_type));
            RequestPolicy policy = p.policy(type);  // fields not given keep their value
            for (auto item : kwargs) {
              const std::string key = py::str(item.first);
              py::handle v = item.second;
              if (key == "ttl") {
                policy.ttl = to_duration(v, "ttl");
              } else if (key == "stale_for") {
                policy.stale_for = to_duration(v, "stale_for");
              } else if (key == "deduplicate") {
                policy.deduplicate = to_bool(v, "deduplicate");
              } else if (key == "batch_eligible") {
                policy.batch_eligible = to_bool(v, "batch_eligible");
              } else if (key == "invalidation_triggers") {
                if (PyUnicode_Check(v.ptr())) {
                  throw py::type_error("invalidation_triggers must be a list of str, not a str");
                }
                policy.invalidation_triggers.clear();
                for (auto t : v) {
                  policy.invalidation_triggers.emplace_back(text_view(t, "invalidation trigger"));
                }
              } else if (key == "batch_profile") {
                policy.batch_profile = std::string(text_view(v, "batch_profile"));
              } else if (key == "rollout_percent") {
                if (PyBool_Check(v.ptr()) || !(PyFloat_Check(v.ptr()) || PyLong_Check(v.ptr()))) {
                  throw py::type_error("rollout_percent must be a number 0..100");
                }
                policy.rollout_percent = v.cast<double>();
              } else if (key == "time_bucket") {
                policy.time_bucket = std::chrono::duration_cast<std::chrono::seconds>(
                    to_duration(v, "time_bucket"));
              } else {
                throw py::type_error("unexpected policy field '" + key +
                                     "' (ttl, stale_for, deduplicate, batch_eligible, "
                                     "invalidation_triggers, time_bucket, batch_profile, rollout_percent)");
              }
            }
            p.set_policy(type, std::move(policy));
          },
          py::arg("request_type"))
      .def(
          "policy",
          [](const Pipeline& p, py::handle request_type) {
            return policy_dict(p.policy(type_view(request_type)));
          },
          py::arg("request_type"))
      .def(
          "invalidate",
          [](Pipeline& p, py::handle pattern) {
            const std::string_view pat = text_view(pattern, "pattern");
            py::gil_scoped_release nogil;
            return p.invalidate(pat);
          },
          py::arg("pattern"))
      .def(
          "handle_data_change",
          [](Pipeline& p, py::handle change_type) {
            const std::string_view change = text_view(change_type, "change_type");
            py::gil_scoped_release nogil;
            return p.handle_data_change(change);
          },
          py::arg("change_type"))
      .def(
          "set_invalidation_rule",
          [](Pipeline& p, py::handle change_type, py::handle patterns) {
            std::vector<std::string> list;
            if (PyUnicode_Check(patterns.ptr())) {
              throw py::type_error("patterns must be a list of str, not a str");
            }
            for (auto pat : patterns) list.emplace_back(text_view(pat, "pattern"));
            p.set_invalidation_rule(std::string(text_view(change_type, "change_type")),
                                    std::move(list));
          },
          py::arg("change_type"), py::arg("patterns"))
      .def("invalidation_rules", &Pipeline::invalidation_rules)
      .def(
          "register_batch_handler",
          [](Pipeline& p, py::handle request_type, py::object handler) {
            const std::string type(type_view(request_type));
            if (handler.is_none()) {
              p.register_batch_handler(type, {});
              return;
            }
            // The batcher thread owns a copy of this function: the callable is kept alive by
            // a reference released with the GIL held (a py::object destroyed without it would
            // corrupt the reference count).
            auto holder = std::shared_ptr<py::object>(new py::object(std::move(handler)),
                                                      [](py::object* o) {
                                                        py::gil_scoped_acquire gil;
                                                        delete o;
                                                      });
            p.register_batch_handler(type, [holder](const std::vector<Params>& batch) {
              py::gil_scoped_acquire gil;
              py::list args;
              for (const auto& params : batch) {
                py::dict d;
                for (const auto& [k, v] : params) d[decode_text(k)] = decode_text(v);
                args.append(d);
              }
              py::object results = (*holder)(args);
              std::vector<std::string> out;
              for (auto r : results) out.push_back(tagged(r));
              return out;
            });
          },
          py::arg("request_type"), py::arg("handler"))
      .def(
          "cache_key",
          [](const Pipeline& p, py::handle request_type, py::handle params) {
            return decode_text(p.cache_key(type_view(request_type), to_params(params)));
          },
          py::arg("request_type"), py::arg("params"))
      .def("stats",
           [](const Pipeline& p) {
             const PipelineStats s = [&] {
               py::gil_scoped_release nogil;
               return p.stats();
             }();
             return pipeline_stats_dict(s);
           })
      .def_property_readonly("config", [](const Pipeline& p) { return config_dict(p.config()); })
      .def_property_readonly("cache_available", &Pipeline::cache_available)
      .def_property_readonly(
          "cache", [](Pipeline& p) { return p.cache(); }, py::return_value_policy::reference_internal);
}

}  // namespace pipecache::python
