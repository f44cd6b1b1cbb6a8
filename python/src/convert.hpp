// Conversions between Python objects and the C++ API's types, shared by the Cache and
// Pipeline bindings.
//
// GIL rule: every function here needs the GIL (it touches Python objects). The views it
// returns point into immutable Python objects (str's cached UTF-8, bytes) or into a held
// Py_buffer, so they stay valid after the GIL is released as long as the object is referenced.
#pragma once

#include <pipecache/cache.hpp>
#include <pipecache/keys.hpp>
#include <pipecache/pipeline.hpp>

#include <pybind11/pybind11.h>

#include <chrono>
#include <string>
#include <string_view>

namespace pipecache::python {

namespace py = pybind11;

// A key or glob: str (as UTF-8) or bytes. TypeError otherwise.
std::string_view text_view(py::handle obj, const char* what);

// A value to store: str (stored as UTF-8), bytes, or any object with the buffer protocol
// (bytearray, memoryview...). The buffer stays exported (a bytearray cannot be resized)
// until the ValueView dies, so the GIL may be released while the view is used.
class ValueView {
 public:
  explicit ValueView(py::handle obj);
  ValueView(const ValueView&) = delete;
  ValueView& operator=(const ValueView&) = delete;
  ~ValueView();
  std::string_view view() const noexcept { return view_; }

 private:
  std::string_view view_;
  Py_buffer buffer_{};
  bool has_buffer_ = false;
};

// A duration given as seconds (int or float, >= 0) or as text with a unit ("50ms", "5m":
// pipecache::parse_duration). Error naming `what` for a negative, NaN or malformed value.
std::chrono::milliseconds to_duration(py::handle obj, const char* what);
// A size: int bytes (>= 0) or text with a suffix ("64M": pipecache::parse_size).
std::uint64_t to_size(py::handle obj, const char* what);
std::uint64_t to_count(py::handle obj, const char* what);  // an int >= 0
bool to_bool(py::handle obj, const char* what);            // bool only (no truthiness)

// Request params from a mapping: names str; values str, or str(value) for anything else
// (int 5 -> "5", True -> "True"), so a decorator may pass its arguments as they are.
Params to_params(py::handle mapping);

// Seconds as a float, for durations handed back to Python.
inline double seconds(std::chrono::milliseconds ms) { return static_cast<double>(ms.count()) / 1000.0; }

// str from UTF-8 that may not be valid (keys written by other clients): undecodable bytes
// become surrogates (errors="surrogateescape"), never an exception.
py::str decode_text(std::string_view text);

// Registers pipecache.Error and translates pipecache::Error into it (with .kind).
void register_error(py::module_& m);

}  // namespace pipecache::python
