// The pieces of the extension module pipecache._native, one file each, and what they share.
#pragma once

#include <pipecache/cache.hpp>

#include <pybind11/pybind11.h>

#include <array>

namespace pipecache::python {

namespace py = pybind11;

void bind_cache(py::module_& m);     // cache_binding.cpp: Cache
void bind_pipeline(py::module_& m);  // pipeline_binding.cpp: Pipeline

// NsCounter names in enum order (the keys of the stats dicts).
std::array<const char*, kNsCounters> ns_counter_names();
py::dict histogram_dict(const Histogram& h);
py::dict stats_dict(const Stats& s);

}  // namespace pipecache::python
