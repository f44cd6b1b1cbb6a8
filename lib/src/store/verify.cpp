// The full consistency check behind Cache::verify and `pipectl verify`: with every stripe and
// the arena held (one consistent instant), the arena checks its own invariants (A1-A5,
// Arena::check) and the table checks the index against them: every used block is linked
// exactly once, from the stripe and bucket its key hashes to, and every stripe's seq, dirty
// flag and entry count are as a completed writer leaves them (W1, W2).
#include <fmt/format.h>

#include "store/table_internal.hpp"
#include "util/hash.hpp"

namespace pipecache::detail {

VerifyReport Table::verify(Counters c) {
  VerifyReport rep;
  auto problem = [&rep](std::string s) {
    if (rep.problems.size() < 100) rep.problems.push_back(std::move(s));
  };
  LockedTable all(*this, c, LockedTable::OnOwnerDeath::repair);
  if (all.stripes_held() < stripe_count_) {
    problem(fmt::format("stripe {}: lock not obtained within the timeout (holder stopped?)", all.stripes_held()));
    return rep;
  }
  if (!all) {
    problem("arena lock not obtained within the timeout");
    return rep;
  }
  if (corrupt()) problem("segment marked corrupt (a broken block chain was found by recovery)");
  Arena::Census census = arena_.check(stripe_count_, problem);
  rep.blocks_checked = census.blocks;
  std::set<std::uint32_t>& unlinked = census.used;  // erased as the index reaches them
  for (unsigned idx = 0; idx < stripe_count_; ++idx) {
    const Stripe& s = stripes_[idx];
    if (s.seq.load() & 1) problem(fmt::format("stripe {}: sequence left odd", idx));
    if (s.dirty.load()) problem(fmt::format("stripe {}: left dirty", idx));
    std::uint64_t in_stripe = 0;
    // A second visit of a block (a cycle) finds it erased: "not a used block".
    auto reach = [&](std::uint64_t b, std::uint32_t off) {
      if (unlinked.erase(off)) {
        ++rep.entries_checked;
        ++in_stripe;
        return true;
      }
      problem(fmt::format("stripe {} bucket {}: chain reaches {} which is not a used block (or loops)", idx, b, off));
      return false;
    };
    walk_stripe(
        idx,
        [&](std::uint64_t b, const EntryView& v) {
          std::uint32_t off = v.off;
          if (!reach(b, off)) return Walk::end_chain;
          std::uint64_t hh = hash_key(v.key);
          const Entry* e = arena_.entry(off);
          if (stripe_index(hh) != idx || (hh & (bps_ - 1)) != b || tag_of(hh) != e->hash_tag)
            problem(fmt::format("entry {}: key hash does not belong to stripe {} bucket {}", off, idx, b));
          if (word0_stripe(e->word0) != idx)
            problem(fmt::format("entry {}: owner stripe {} but linked from stripe {}", off, word0_stripe(e->word0), idx));
          return Walk::keep;
        },
        // A used block whose header does not fit is reported by Arena::check; its key and
        // link cannot be trusted, so the chain ends there.
        reach);
    if (s.entries.load() != in_stripe)
      problem(fmt::format("stripe {}: entries is {} but {} are linked", idx, s.entries.load(), in_stripe));
  }
  if (!unlinked.empty())
    problem(fmt::format("{} used blocks are linked from no stripe (leaked), first at {}", unlinked.size(),
                        *unlinked.begin()));
  return rep;
}

}  // namespace pipecache::detail
