#include "segment/segment.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <boost/interprocess/mapped_region.hpp>
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include <fmt/format.h>

#include "util/clock.hpp"
#include "util/process.hpp"

namespace bip = boost::interprocess;

namespace pipecache::detail {

namespace {

constexpr const char* kShmDir = "/dev/shm/";
constexpr std::uint64_t kMinBudget = 64u << 10;
// Entry offsets are 32-bit counts of 8-byte units: the arena holds at most 32 GiB.
constexpr std::uint64_t kMaxArenaBytes = (std::uint64_t{1} << 32) * kUnit - 4096;

std::uint64_t align_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

std::uint64_t pow2_ceil(std::uint64_t v) { return v <= 1 ? 1 : std::bit_ceil(v); }

[[noreturn]] void fail(std::string_view name, std::string_view problem,
                       ErrorKind kind = ErrorKind::invalid_argument) {
  throw Error(fmt::format("pipecache segment '{}': {}", name, problem), kind);
}

ErrorKind kind_of_errno(int e) {
  switch (e) {
    case ENOENT: return ErrorKind::not_found;
    case EEXIST: return ErrorKind::already_exists;
    case EACCES:
    case EPERM: return ErrorKind::permission_denied;
    case ENOSPC: return ErrorKind::no_space;
    default: return ErrorKind::system;
  }
}

// A file descriptor closed when the scope ends; the mapping outlives it.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  // What Boost's mapped_region maps: any object with a mapping handle.
  bip::mapping_handle_t get_mapping_handle() const noexcept {
    return bip::ipcdetail::mapping_handle_from_file_handle(fd);
  }
};

// The trust check of an opened object (docs/trust-model.md, "Who may own a segment"): a
// regular file with exactly one link (no hard link to somebody else's file), not
// world-writable, owned by the effective uid or a trusted owner. Group write is allowed: pools
// that share a group are a deployment's choice, made by the creator's mode.
void check_trusted(std::string_view name, const struct stat& st, const Trust& trust) {
  auto refuse = [&](std::string_view why) {
    fail(name,
         fmt::format("refused: {} ({} is owned by {} (uid {}), mode {:04o}); a segment is opened only "
                     "when it is a regular file with one link, not world-writable, owned by this user "
                     "(uid {}) or a trusted owner (PIPECACHE_TRUSTED_OWNERS, pipectl --owner)",
                     why, Segment::path(name), user_name(st.st_uid), st.st_uid, st.st_mode & 07777,
                     ::geteuid()),
         ErrorKind::permission_denied);
  };
  if (!S_ISREG(st.st_mode)) refuse("not a regular file");
  if (st.st_nlink != 1) refuse(fmt::format("it has {} links", st.st_nlink));
  if (st.st_mode & S_IWOTH) refuse("it is world-writable");
  if (st.st_uid != ::geteuid() && !trust.any_owner && !trust.trusts(st.st_uid))
    refuse("owned by another user who is not trusted");
}

}  // namespace

void validate_name(std::string_view name) {
  if (name.empty() || name.size() > 64)
    throw Error(fmt::format("bad segment name '{}': must be 1 to 64 characters", name));
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-';
    if (!ok)
      throw Error(fmt::format("bad segment name '{}': only letters, digits, '.', '_' and '-' are allowed", name));
  }
}

Geometry plan_geometry(const Options& o) {
  validate_name(o.name);
  Geometry g;
  if (o.byte_budget < kMinBudget)
    fail(o.name, fmt::format("byte budget {} is below the minimum of {} bytes", o.byte_budget, kMinBudget));
  if (o.byte_budget > kMaxArenaBytes / 4 * 3)
    fail(o.name, fmt::format("byte budget {} exceeds the maximum of {} bytes", o.byte_budget,
                             kMaxArenaBytes / 4 * 3));
  if (o.stripes != 0 && (!std::has_single_bit(o.stripes) || o.stripes > 65536))
    fail(o.name, fmt::format("stripes must be a power of two up to 65536 (got {})", o.stripes));
  if (o.default_ttl.count() < 0) fail(o.name, "default TTL must not be negative");
  // Entries are at least 48 bytes of a <= 32 GiB arena: more than 2^32 can never exist.
  if (o.max_entries > (std::uint64_t{1} << 32))
    fail(o.name, fmt::format("max_entries {} exceeds the maximum of {}", o.max_entries, std::uint64_t{1} << 32));
  if (o.permissions > 0777 || (o.permissions & 0600) != 0600)
    fail(o.name, fmt::format("permissions {:o} must be within 0777 and include owner read/write (0600)",
                             o.permissions));
  if (o.permissions & 0002)
    fail(o.name, fmt::format("permissions {:04o} are world-writable: any local user could read, poison "
                             "or truncate the cache; share it through a group (0660) instead",
                             o.permissions));
  g.byte_budget = o.byte_budget;
  g.max_entries = o.max_entries;
  g.default_ttl_ns = static_cast<std::uint64_t>(o.default_ttl.count()) * 1000000ull;
  g.max_value_bytes = o.byte_budget / 8;
  // Expected entries: the limit if given, else one per KiB of budget (responses are ~1 KiB).
  std::uint64_t expected = o.max_entries ? o.max_entries : std::max<std::uint64_t>(o.byte_budget / 1024, 64);
  // Stripes: ~64 entries each keeps writers of different keys apart; 16..4096.
  g.stripes = o.stripes ? o.stripes
                        : static_cast<std::uint32_t>(std::clamp<std::uint64_t>(pow2_ceil(expected / 64), 16, 4096));
  g.stripe_shift = 64 - static_cast<std::uint32_t>(std::countr_zero(g.stripes));
  std::uint64_t buckets = std::max<std::uint64_t>(pow2_ceil(expected), g.stripes);
  g.buckets_per_stripe = buckets / g.stripes;
  // The arena exceeds the budget by 1/3 so that fragmentation almost never forces an eviction
  // the budget does not: entries need contiguous blocks, and with values of varied sizes (up
  // to budget / 8) a tight arena evicts extra entries until a block big enough coalesces.
  // Measured (bench/run replay, Zipf 0.8 / 0.99, lognormal sizes, budget 1% of the footprint),
  // miss ratio above the best of simulated SIEVE / S3-FIFO: slack 1/8 +4.8 / +4.3 points,
  // 1/5 +3.0 / +2.4, 1/4 +0.85 / +0.35, 1/3 and 1/2 +0.24 / +0.07 (exactly what SIEVE does at
  // this budget, so no fragmentation evictions left). The cost is address space and, once the
  // arena has been walked through, memory: up to budget / 3 more than the budget. The budget
  // itself is enforced by accounting (ArenaState::bytes_used), not by the arena size.
  g.arena_bytes = align_up(o.byte_budget + o.byte_budget / 3 + 4096, kCacheLine);

  std::uint64_t off = align_up(sizeof(Header), kCacheLine);
  g.slots_off = off;
  off = align_up(off + sizeof(ProcessSlot) * kAllSlots, kCacheLine);
  g.namespaces_off = off;
  off = align_up(off + sizeof(Namespace) * kMaxNamespaces, kCacheLine);
  g.stripes_off = off;
  off = align_up(off + sizeof(Stripe) * g.stripes, kCacheLine);
  g.buckets_off = off;
  off = align_up(off + 4 * buckets, kCacheLine);
  g.visited_off = off;
  off = align_up(off + visited_bitmap_bytes(g.arena_bytes), 4096);
  g.arena_off = off;
  g.total_bytes = align_up(off + g.arena_bytes, 4096);
  return g;
}

std::string Segment::object_name(std::string_view name) { return "pipecache." + std::string(name); }
std::string Segment::path(std::string_view name) { return kShmDir + object_name(name); }

Segment::Segment(std::string name, std::unique_ptr<bip::mapped_region> region)
    : name_(std::move(name)), region_(std::move(region)) {
  base_ = static_cast<char*>(region_->get_address());
  size_ = region_->get_size();
  // Called only after the header was written (create) or validated (open): copy it once.
  const Header& h = header();
  geo_.created_mono_ns = h.created_mono_ns;
  geo_.byte_budget = h.byte_budget;
  geo_.max_entries = h.max_entries;
  geo_.default_ttl_ns = h.default_ttl_ns;
  geo_.stripes = h.stripes;
  geo_.stripe_shift = h.stripe_shift;
  geo_.buckets_per_stripe = h.buckets_per_stripe;
  geo_.max_value_bytes = h.max_value_bytes;
  geo_.slots_off = h.slots_off;
  geo_.namespaces_off = h.namespaces_off;
  geo_.stripes_off = h.stripes_off;
  geo_.buckets_off = h.buckets_off;
  geo_.visited_off = h.visited_off;
  geo_.arena_off = h.arena_off;
  geo_.arena_bytes = h.arena_bytes;
  geo_.total_bytes = h.total_bytes;
}

Segment::~Segment() = default;

void Segment::write_header(char* base, const Geometry& g, const Options& o) {
  // The mapping is fresh from posix_fallocate: all bytes are zero, which is the initial state
  // of every counter, bucket, bitmap word and atomic. init_state stays 0 (not ready) until
  // the format step has run.
  auto& h = *reinterpret_cast<Header*>(base);
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.layout_version = kLayoutVersion;
  h.header_bytes = sizeof(Header);
  h.fingerprint = kLayoutFingerprint;
  h.total_bytes = g.total_bytes;
  h.byte_budget = g.byte_budget;
  h.max_entries = g.max_entries;
  h.default_ttl_ns = g.default_ttl_ns;
  h.max_value_bytes = g.max_value_bytes;
  h.max_key_bytes = kMaxKeyBytes;
  h.stripes = g.stripes;
  h.stripe_shift = g.stripe_shift;
  h.buckets_per_stripe = g.buckets_per_stripe;
  h.permissions = o.permissions;
  h.creator_pid = static_cast<std::uint32_t>(::getpid());
  h.created_unix_ms = realtime_ms();
  h.created_mono_ns = mono_ns();
  h.slots_off = g.slots_off;
  h.namespaces_off = g.namespaces_off;
  h.stripes_off = g.stripes_off;
  h.buckets_off = g.buckets_off;
  h.visited_off = g.visited_off;
  h.arena_off = g.arena_off;
  h.arena_bytes = g.arena_bytes;
}

std::unique_ptr<Segment> Segment::create(const Options& options, const FormatStep& format) {
  Geometry g = plan_geometry(options);
  // An unnamed file (O_TMPFILE): nothing to collide with and nothing to clean up. A creator
  // killed before publication leaves no name behind; the kernel frees the inode.
  Fd fd{::open(kShmDir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)};
  if (fd.fd < 0)
    fail(options.name, fmt::format("cannot create an unnamed file in {}: {}", kShmDir, std::strerror(errno)),
         kind_of_errno(errno));
  ::fchmod(fd.fd, options.permissions);  // open's mode is filtered by the umask
  if (int rc = ::posix_fallocate(fd.fd, 0, static_cast<off_t>(g.total_bytes)); rc != 0) {
    if (rc == ENOSPC)
      fail(options.name,
           fmt::format("/dev/shm has no room for {} bytes (byte budget {}); free space in /dev/shm, "
                       "lower the budget, or enlarge it (Docker's default /dev/shm is 64 MiB: "
                       "run the container with --shm-size)",
                       g.total_bytes, g.byte_budget),
           ErrorKind::no_space);
    fail(options.name, fmt::format("cannot reserve {} bytes in /dev/shm: {}", g.total_bytes, std::strerror(rc)),
         kind_of_errno(rc));
  }
  auto region = std::make_unique<bip::mapped_region>(fd, bip::read_write, 0, g.total_bytes);
  write_header(static_cast<char*>(region->get_address()), g, options);
  std::unique_ptr<Segment> seg(new Segment(options.name, std::move(region)));
  format(*seg);
  seg->header().init_state.store(kInitReady, std::memory_order_release);
  // Publication: link(2) fails with EEXIST if the name exists (another creator won, or a
  // squatter). linkat(AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH; /proc/self/fd works for all.
  std::string target = path(options.name);
  int rc = ::linkat(fd.fd, "", AT_FDCWD, target.c_str(), AT_EMPTY_PATH);
  if (rc != 0 && errno != EEXIST)
    rc = ::linkat(AT_FDCWD, fmt::format("/proc/self/fd/{}", fd.fd).c_str(), AT_FDCWD, target.c_str(),
                  AT_SYMLINK_FOLLOW);
  if (rc != 0) {
    if (errno == EEXIST) return nullptr;
    fail(options.name, fmt::format("cannot publish {}: {}", target, std::strerror(errno)), kind_of_errno(errno));
  }
  struct stat st;
  if (::fstat(fd.fd, &st) != 0) fail(options.name, "cannot stat what it created", ErrorKind::system);
  seg->owner_uid_ = st.st_uid;
  seg->mode_ = st.st_mode & 07777;
  seg->identity_ = {st.st_dev, st.st_ino, true};
  return seg;
}

HeaderProblem header_problem(const char* base, std::size_t size) {
  using K = ErrorKind;
  if (size < sizeof(Header))
    return {K::corrupt, fmt::format("truncated or not a pipecache segment ({} bytes, a header needs {})", size, sizeof(Header))};
  const auto& h = *reinterpret_cast<const Header*>(base);
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0) return {K::corrupt, "not a pipecache segment (foreign object: bad magic)"};
  if (h.layout_version != kLayoutVersion)
    return {K::incompatible, fmt::format("incompatible layout version {} (this binary reads version {}); "
                       "recreate it with 'pipectl destroy' then 'pipectl create'",
                       h.layout_version, kLayoutVersion)};
  if (h.fingerprint != kLayoutFingerprint || h.header_bytes != sizeof(Header))
    return {K::incompatible, fmt::format("incompatible layout fingerprint {:016x} (this binary: {:016x}); built with "
                       "another pipecache version", h.fingerprint, kLayoutFingerprint)};
  if (h.total_bytes != size)
    return {K::corrupt, fmt::format("truncated or resized: header says {} bytes, the object has {}", h.total_bytes, size)};
  if (h.init_state.load(std::memory_order_acquire) != kInitReady) return {K::corrupt, "not initialised"};
  // Re-derive the geometry from the stored configuration: every offset must be what this
  // binary would compute, so a hostile header cannot point a reader outside the mapping.
  Options o;
  o.name = "x";
  o.byte_budget = h.byte_budget;
  o.max_entries = h.max_entries;
  o.stripes = h.stripes;
  o.default_ttl = std::chrono::milliseconds(h.default_ttl_ns / 1000000ull);
  o.permissions = 0600;
  Geometry g;
  try {
    g = plan_geometry(o);
  } catch (const Error& e) {
    return {K::corrupt, fmt::format("corrupt configuration in header ({})", e.what())};
  }
  if (g.total_bytes != h.total_bytes || g.slots_off != h.slots_off || g.namespaces_off != h.namespaces_off ||
      g.stripes_off != h.stripes_off || g.buckets_off != h.buckets_off || g.visited_off != h.visited_off ||
      g.arena_off != h.arena_off || g.arena_bytes != h.arena_bytes || g.stripe_shift != h.stripe_shift ||
      g.buckets_per_stripe != h.buckets_per_stripe || h.max_value_bytes != g.max_value_bytes ||
      h.max_key_bytes != kMaxKeyBytes || h.default_ttl_ns != g.default_ttl_ns)
    return {K::corrupt, "corrupt header: offsets or sizes do not match its configuration"};
  return {};
}

std::unique_ptr<Segment> Segment::open(std::string_view name, const Trust& trust) {
  validate_name(name);
  // O_NOFOLLOW: a symlink planted under the name is refused, never followed. O_NONBLOCK: a
  // FIFO planted there cannot block the open (the fstat check then refuses it).
  Fd fd{::open(path(name).c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)};
  if (fd.fd < 0) {
    int e = errno;
    if (e == ENOENT)
      fail(name, fmt::format("does not exist ({}); create it with 'pipectl create --name {}' or "
                             "Cache::open_or_create", path(name), name), ErrorKind::not_found);
    if (e == ELOOP) fail(name, fmt::format("refused: {} is a symbolic link", path(name)), ErrorKind::permission_denied);
    if (e == EACCES)
      fail(name, fmt::format("permission denied opening {}", path(name)), ErrorKind::permission_denied);
    fail(name, fmt::format("cannot open {}: {}", path(name), std::strerror(e)), kind_of_errno(e));
  }
  struct stat st;
  if (::fstat(fd.fd, &st) != 0) fail(name, fmt::format("cannot stat: {}", std::strerror(errno)), ErrorKind::system);
  check_trusted(name, st, trust);  // before a single byte of it is mapped
  auto size = static_cast<std::uint64_t>(st.st_size);
  if (size < sizeof(Header)) {
    auto p = header_problem(nullptr, static_cast<std::size_t>(size));
    fail(name, p.text, p.kind);
  }
  auto region = std::make_unique<bip::mapped_region>(fd, bip::read_write, 0, static_cast<std::size_t>(size));
  HeaderProblem problem = header_problem(static_cast<const char*>(region->get_address()), region->get_size());
  if (!problem.empty()) fail(name, problem.text, problem.kind);
  auto seg = std::unique_ptr<Segment>(new Segment(std::string(name), std::move(region)));
  seg->owner_uid_ = st.st_uid;
  seg->mode_ = st.st_mode & 07777;
  seg->identity_ = {st.st_dev, st.st_ino, true};
  return seg;
}

std::string user_name(std::uint32_t uid) {
  passwd pw;
  passwd* found = nullptr;
  char buf[1024];
  if (::getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found) return found->pw_name;
  return std::to_string(uid);
}

bool Segment::remove(std::string_view name) {
  validate_name(name);
  if (::unlink(path(name).c_str()) == 0) return true;
  int e = errno;
  if (e == ENOENT) return false;
  // /dev/shm is sticky: only the owner (or root) may unlink a name.
  if (e == EPERM || e == EACCES)
    fail(name, fmt::format("permission denied removing {} (only its owner or root may remove it)", path(name)),
         ErrorKind::permission_denied);
  fail(name, fmt::format("cannot remove {}: {}", path(name), std::strerror(e)), kind_of_errno(e));
}

bool Segment::exists(std::string_view name) {
  validate_name(name);
  struct stat st;
  return ::stat(path(name).c_str(), &st) == 0;
}

}  // namespace pipecache::detail

namespace pipecache {

Trust Trust::parse(std::string_view list) {
  Trust t;
  while (!list.empty()) {
    auto comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.empty()) continue;
    std::uint32_t uid = 0;
    auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), uid);
    if (ec != std::errc() || end != item.data() + item.size()) {
      passwd pw;
      passwd* found = nullptr;
      char buf[1024];
      std::string user(item);
      if (::getpwnam_r(user.c_str(), &pw, buf, sizeof buf, &found) != 0 || !found)
        throw Error(fmt::format("trusted owner '{}': no such user (give a user name or a numeric uid)", user));
      uid = found->pw_uid;
    }
    t.owners.push_back(uid);
  }
  return t;
}

bool Trust::trusts(std::uint32_t uid) const noexcept {
  return std::find(owners.begin(), owners.end(), uid) != owners.end();
}

}  // namespace pipecache
