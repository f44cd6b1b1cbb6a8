#include "convert.hpp"

#include <pipecache/units.hpp>

#include <cmath>
#include <limits>

namespace pipecache::python {

std::string_view text_view(py::handle obj, const char* what) {
  if (PyUnicode_Check(obj.ptr())) {
    Py_ssize_t size = 0;
    const char* data = PyUnicode_AsUTF8AndSize(obj.ptr(), &size);  // cached in the str
    if (data == nullptr) throw py::error_already_set();
    return {data, static_cast<std::size_t>(size)};
  }
  if (PyBytes_Check(obj.ptr())) {
    return {PyBytes_AS_STRING(obj.ptr()), static_cast<std::size_t>(PyBytes_GET_SIZE(obj.ptr()))};
  }
  throw py::type_error(std::string(what) + " must be str or bytes, not " +
                       Py_TYPE(obj.ptr())->tp_name);
}

ValueView::ValueView(py::handle obj) {
  if (PyUnicode_Check(obj.ptr()) || PyBytes_Check(obj.ptr())) {
    view_ = text_view(obj, "value");
    return;
  }
  if (PyObject_GetBuffer(obj.ptr(), &buffer_, PyBUF_SIMPLE) != 0) {
    PyErr_Clear();
    throw py::type_error(std::string("value must be str, bytes or a bytes-like object, not ") +
                         Py_TYPE(obj.ptr())->tp_name);
  }
  has_buffer_ = true;
  view_ = {static_cast<const char*>(buffer_.buf), static_cast<std::size_t>(buffer_.len)};
}

ValueView::~ValueView() {
  if (has_buffer_) PyBuffer_Release(&buffer_);
}

std::chrono::milliseconds to_duration(py::handle obj, const char* what) {
  if (PyUnicode_Check(obj.ptr())) return parse_duration(text_view(obj, what), what);
  if (PyBool_Check(obj.ptr()) || !(PyFloat_Check(obj.ptr()) || PyLong_Check(obj.ptr()))) {
    throw py::type_error(std::string(what) + " must be seconds (int or float) or a string like "
                         "\"50ms\", not " + Py_TYPE(obj.ptr())->tp_name);
  }
  const double s = obj.cast<double>();
  // 1e15 s is far beyond any TTL and still exact in milliseconds as an int64.
  if (!(s >= 0) || s > 1e15) {
    throw Error(std::string(what) + " must be a number of seconds >= 0, got " +
                    py::repr(obj).cast<std::string>(),
                ErrorKind::invalid_argument);
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(s * 1000.0)));
}

std::uint64_t to_count(py::handle obj, const char* what) {
  if (PyBool_Check(obj.ptr()) || !PyLong_Check(obj.ptr())) {
    throw py::type_error(std::string(what) + " must be an int, not " + Py_TYPE(obj.ptr())->tp_name);
  }
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(obj.ptr(), &overflow);
  if (overflow != 0 || v < 0) {
    throw Error(std::string(what) + " must be an int >= 0, got " + py::repr(obj).cast<std::string>(),
                ErrorKind::invalid_argument);
  }
  return static_cast<std::uint64_t>(v);
}

std::uint64_t to_size(py::handle obj, const char* what) {
  if (PyUnicode_Check(obj.ptr())) return parse_size(text_view(obj, what), what);
  return to_count(obj, what);
}

bool to_bool(py::handle obj, const char* what) {
  if (!PyBool_Check(obj.ptr())) {
    throw py::type_error(std::string(what) + " must be a bool, not " + Py_TYPE(obj.ptr())->tp_name);
  }
  return obj.ptr() == Py_True;
}

Params to_params(py::handle mapping) {
  Params params;
  if (mapping.is_none()) return params;
  if (!PyDict_Check(mapping.ptr())) {
    if (!PyMapping_Check(mapping.ptr())) {
      throw py::type_error(std::string("params must be a dict, not ") +
                           Py_TYPE(mapping.ptr())->tp_name);
    }
    return to_params(py::dict(py::reinterpret_borrow<py::object>(mapping)));
  }
  PyObject* name = nullptr;
  PyObject* value = nullptr;
  Py_ssize_t pos = 0;
  while (PyDict_Next(mapping.ptr(), &pos, &name, &value)) {
    if (!PyUnicode_Check(name)) {
      throw py::type_error(std::string("params names must be str, not ") + Py_TYPE(name)->tp_name);
    }
    std::string_view n = text_view(name, "params name");
    if (PyUnicode_Check(value)) {
      params.emplace(n, text_view(value, "params value"));
    } else {
      const py::str text{py::handle(value)};  // str(value)
      params.emplace(n, text_view(text, "params value"));
    }
  }
  return params;
}

py::str decode_text(std::string_view text) {
  PyObject* s = PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()),
                                     "surrogateescape");
  if (s == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(s);
}

namespace {

const char* kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::invalid_argument: return "invalid_argument";
    case ErrorKind::not_found: return "not_found";
    case ErrorKind::already_exists: return "already_exists";
    case ErrorKind::incompatible: return "incompatible";
    case ErrorKind::corrupt: return "corrupt";
    case ErrorKind::no_space: return "no_space";
    case ErrorKind::permission_denied: return "permission_denied";
    case ErrorKind::system: return "system";
  }
  return "system";
}

PyObject* g_error_type = nullptr;  // owned by the module (kept alive by its attribute)

}  // namespace

void register_error(py::module_& m) {
  g_error_type = PyErr_NewExceptionWithDoc(
      "pipecache.Error",
      "A failure reported by pipecache (bad name or option, missing, incompatible or corrupt\n"
      "segment, no room in /dev/shm, oversize key or value...). str(e) names the segment and\n"
      "the problem; e.kind is one of: invalid_argument, not_found, already_exists,\n"
      "incompatible, corrupt, no_space, permission_denied, system.",
      PyExc_Exception, nullptr);
  if (g_error_type == nullptr) throw py::error_already_set();
  m.add_object("Error", py::handle(g_error_type));  // the module now owns a reference
  Py_DECREF(g_error_type);
  // Raised from Python without a kind (raise pipecache.Error("...")): kind is None.
  PyObject_SetAttrString(g_error_type, "kind", Py_None);

  py::register_exception_translator([](std::exception_ptr p) {
    if (!p) return;
    try {
      std::rethrow_exception(p);
    } catch (const Error& e) {
      py::object type = py::reinterpret_borrow<py::object>(g_error_type);
      py::object instance = type(py::str(e.what()));
      instance.attr("kind") = py::str(kind_name(e.kind()));
      PyErr_SetObject(g_error_type, instance.ptr());
    }
  });
}

}  // namespace pipecache::python
