#include "segment/watch.hpp"

#include <errno.h>
#include <sys/stat.h>

#include "segment/segment.hpp"

namespace pipecache::detail {

SegmentWatch::SegmentWatch(std::string_view name) : path_(Segment::path(name)) {}

SegmentWatch::Change SegmentWatch::check() const noexcept {
  struct stat st;
  if (::stat(path_.c_str(), &st) != 0) return errno == ENOENT ? Change::removed : Change::same;  // same: cannot tell
  if (!mapped_.present || st.st_dev != mapped_.dev || st.st_ino != mapped_.ino) return Change::recreated;
  return Change::same;
}

const char* SegmentWatch::describe(Change c) noexcept {
  switch (c) {
    case Change::same: return "unchanged";
    case Change::recreated: return "recreated";
    case Change::removed: return "removed";
  }
  return "changed";
}

}  // namespace pipecache::detail
