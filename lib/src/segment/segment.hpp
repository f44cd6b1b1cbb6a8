// A mapped pipecache segment: naming, creation, opening, validation, removal.
//
// Creation protocol (why no half-initialised segment is ever visible under its name):
//  1. the creator builds the whole segment in an unnamed file (open(O_TMPFILE) in /dev/shm),
//     reserving its full size with posix_fallocate (so a full /dev/shm is an error now, not a
//     SIGBUS later); the segment writes its header, then runs the format step the layer above
//     handed it (the store builds every mutex and lays out its stripes, namespaces and arena),
//     then marks the header ready;
//  2. it publishes it with linkat(2) to "pipecache.<name>", which fails with EEXIST if another
//     creator (or a squatter) has the name.
// Openers therefore only ever see fully initialised segments. A creator killed during step 1
// leaves no name at all: there are no temporaries to collide with or to clean up.
//
// Opening checks who owns the object before mapping it (Trust, pipecache/cache.hpp):
// /dev/shm is world-writable, so a name proves nothing about who made the file.
// (/dev/shm is a tmpfs directory on Linux; shm_open names map to files in it.)
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <pipecache/cache.hpp>

#include "segment/layout.hpp"
#include "segment/watch.hpp"

namespace boost::interprocess {
class mapped_region;
}

namespace pipecache::detail {

struct Geometry {
  std::uint64_t created_mono_ns = 0;
  std::uint64_t byte_budget = 0;
  std::uint64_t max_entries = 0;
  std::uint64_t default_ttl_ns = 0;
  std::uint32_t stripes = 0;
  std::uint32_t stripe_shift = 0;
  std::uint64_t buckets_per_stripe = 0;
  std::uint64_t max_value_bytes = 0;
  std::uint64_t slots_off = 0, namespaces_off = 0, stripes_off = 0, buckets_off = 0,
                visited_off = 0, arena_off = 0, arena_bytes = 0, total_bytes = 0;
};
// Segment names: 1 to 64 of [A-Za-z0-9._-] (a file name in /dev/shm, never a path). Throws
// Error naming the problem. Cache::validate_name is this rule.
void validate_name(std::string_view name);

// Validates the options (Error naming the problem) and lays the segment out.
Geometry plan_geometry(const Options& options);

class Segment {
 public:
  ~Segment();
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  // Runs between reservation and publication (step 1 above) on the still private segment.
  using FormatStep = std::function<void(Segment&)>;
  // nullptr when the name exists already (create_only semantics are the caller's choice).
  static std::unique_ptr<Segment> create(const Options& options, const FormatStep& format);
  // Error(permission_denied) unless `trust` accepts the object's owner and mode.
  static std::unique_ptr<Segment> open(std::string_view name, const Trust& trust);
  static bool remove(std::string_view name);
  static bool exists(std::string_view name);
  static std::string object_name(std::string_view name);  // "pipecache.<name>"
  static std::string path(std::string_view name);         // "/dev/shm/pipecache.<name>"

  const std::string& name() const noexcept { return name_; }
  // The object's owner and mode when it was created or opened (fstat of the descriptor).
  std::uint32_t owner_uid() const noexcept { return owner_uid_; }
  unsigned mode() const noexcept { return mode_; }
  // The object mapped (fstat of the descriptor), for SegmentWatch::adopt.
  const SegmentWatch::Identity& identity() const noexcept { return identity_; }
  char* base() const noexcept { return base_; }
  std::size_t size() const noexcept { return size_; }
  Header& header() const noexcept { return *reinterpret_cast<Header*>(base_); }
  // The layout as validated when the segment was created or opened. Every offset and size used
  // to address the segment comes from here, never from the header again: a process that
  // rewrites the header afterwards cannot move anybody's reads outside the mapping.
  const Geometry& geometry() const noexcept { return geo_; }
  ProcessSlot* slots() const noexcept { return at<ProcessSlot>(geo_.slots_off); }
  Namespace* namespaces() const noexcept { return at<Namespace>(geo_.namespaces_off); }
  Stripe* stripes() const noexcept { return at<Stripe>(geo_.stripes_off); }
  std::atomic<std::uint32_t>* buckets() const noexcept {
    return at<std::atomic<std::uint32_t>>(geo_.buckets_off);
  }
  std::atomic<std::uint64_t>* visited() const noexcept {
    return at<std::atomic<std::uint64_t>>(geo_.visited_off);
  }
  char* arena() const noexcept { return base_ + geo_.arena_off; }

 private:
  Segment(std::string name, std::unique_ptr<boost::interprocess::mapped_region> region);
  template <typename T>
  T* at(std::uint64_t off) const noexcept {
    return reinterpret_cast<T*>(base_ + off);
  }
  static void write_header(char* base, const Geometry& g, const Options& options);

  std::string name_;
  std::unique_ptr<boost::interprocess::mapped_region> region_;
  Geometry geo_;
  char* base_ = nullptr;
  std::size_t size_ = 0;
  std::uint32_t owner_uid_ = 0;
  unsigned mode_ = 0;
  SegmentWatch::Identity identity_;
};

// Checks a mapped header against this binary's layout and the mapping size; an empty text
// when valid, else the problem in words and its kind.
struct HeaderProblem {
  ErrorKind kind = ErrorKind::corrupt;
  std::string text;
  bool empty() const noexcept { return text.empty(); }
};
HeaderProblem header_problem(const char* base, std::size_t size);

// The user name of `uid`, or the number when it has none.
std::string user_name(std::uint32_t uid);

}  // namespace pipecache::detail
