// pipecache._native: the C++ library as a Python extension. The pure-Python package
// `pipecache` (python/pipecache/) re-exports it with docstrings, the decorator and stubs.
#include "bindings.hpp"
#include "convert.hpp"

PYBIND11_MODULE(_native, m) {
  m.doc() = "pipecache's C++ core; import the `pipecache` package instead.";
  pipecache::python::register_error(m);
  pipecache::python::bind_cache(m);
  pipecache::python::bind_pipeline(m);
}
