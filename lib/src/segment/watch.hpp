// Whether a segment name still names the object a process opened.
//
// Unlinking a name (`pipectl destroy`, rm) leaves every attached process on its mapping of the
// old object, and a segment created again under that name is another object: what those
// processes put and invalidate would reach nobody. A long-lived user of a segment (the relay,
// each Pipeline) adopts the identity of the object it mapped (Segment::identity, from fstat of
// the descriptor it mapped, so no race with the name) and compares it with what the name names
// now, about once a second (one stat(2)), reopening on a change.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

namespace pipecache::detail {

class SegmentWatch {
 public:
  enum class Change { same, recreated, removed };
  struct Identity {
    dev_t dev = 0;
    ino_t ino = 0;
    bool present = false;
  };

  explicit SegmentWatch(std::string_view name);
  void adopt(const Identity& mapped) noexcept { mapped_ = mapped; }
  // Whether the name still names the adopted object (recreated: it names another one).
  Change check() const noexcept;
  // "recreated" / "removed" (for a log line: "segment 'x' was recreated").
  static const char* describe(Change c) noexcept;

 private:
  std::string path_;
  Identity mapped_;
};

}  // namespace pipecache::detail
