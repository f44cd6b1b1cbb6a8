// The derived figures (figures.hpp): each definition, its zero-denominator case, and that the
// pipeline's RequestTypeStats and the Batcher's BatcherStats report the same figures.
#include <doctest/doctest.h>

#include <pipecache/batcher.hpp>
#include <pipecache/figures.hpp>
#include <pipecache/pipeline.hpp>

#include <cmath>
#include <cstdint>
#include <limits>

using namespace pipecache;

namespace {

NamespaceStats type_with(std::initializer_list<std::pair<NsCounter, std::uint64_t>> counters) {
  NamespaceStats ns;
  for (auto [c, v] : counters) ns.counters[static_cast<unsigned>(c)] = v;
  return ns;
}

}  // namespace

TEST_SUITE("figures") {
  TEST_CASE("a_figure_without_a_denominator_is_undefined_not_zero") {
    CHECK(std::isnan(figures::ratio(0, 0)));
    CHECK(std::isnan(figures::ratio(5, 0)));
    CHECK(std::isnan(figures::lookup_hit_ratio(0, 0)));
    CHECK(std::isnan(figures::request_hit_ratio(0, 0, 0)));
    CHECK(std::isnan(figures::average_batch_size(0, 0, 0)));
    CHECK(std::isnan(figures::batch_formation(0, 0)));
    CHECK(std::isnan(figures::mean_batch_wait_ns(0, 0, 0)));
    CHECK(std::isnan(figures::mean_batch_run_ns(0, 0, 0)));
    CHECK(std::isnan(figures::mean_ns(0, 0)));
    CHECK(std::isnan(figures::budget_used(0, 0)));
    CHECK(std::isnan(figures::fragmentation(0, 0)));
    CHECK(std::isnan(figures::free_outside_largest_block(0, 0)));
    CHECK(figures::or_zero(figures::ratio(1, 0)) == 0.0);
    CHECK(figures::or_zero(0.25) == 0.25);
  }

  TEST_CASE("hit_ratios_count_stale_answers_for_requests_and_only_hits_for_lookups") {
    CHECK(figures::lookup_hit_ratio(3, 1) == doctest::Approx(0.75));
    CHECK(figures::lookup_hit_ratio(0, 7) == 0.0);
    CHECK(figures::request_hit_ratio(6, 2, 10) == doctest::Approx(0.8));
    const NamespaceStats ns = type_with(
        {{NsCounter::requests, 10}, {NsCounter::hits, 6}, {NsCounter::stale_served, 2}});
    CHECK(figures::request_hit_ratio(ns) == doctest::Approx(0.8));
    Stats s;
    s.hits = 9;
    s.misses = 1;
    CHECK(figures::lookup_hit_ratio(s) == doctest::Approx(0.9));
  }

  TEST_CASE("batch_figures_count_fallbacks_as_answered_by_their_batch") {
    // 3 batches answered 10 requests (8 by the handler, 2 re-run alone), 9 of 12 batchable
    // requests joined a batch of 2+, 1 ms of window wait in all.
    const NamespaceStats ns = type_with({{NsCounter::batches, 3},
                                         {NsCounter::batched_requests, 8},
                                         {NsCounter::batch_fallbacks, 2},
                                         {NsCounter::batch_joined, 9},
                                         {NsCounter::batchable_requests, 12},
                                         {NsCounter::batch_wait_ns, 1'000'000},
                                         {NsCounter::batch_run_ns, 5'000'000}});
    CHECK(figures::average_batch_size(ns) == doctest::Approx(10.0 / 3));
    CHECK(figures::mean_batch_run_ns(ns) == doctest::Approx(500'000));
    CHECK(figures::batch_formation(ns) == doctest::Approx(0.75));
    CHECK(figures::mean_batch_wait_ns(ns) == doctest::Approx(100'000));
  }

  TEST_CASE("memory_figures") {
    Stats s;
    s.bytes_used = 256;
    s.byte_budget = 1024;
    s.fragmented_bytes = 10;
    s.free_bytes = 40;
    CHECK(figures::budget_used(s) == doctest::Approx(0.25));
    CHECK(figures::fragmentation(s) == doctest::Approx(0.25));
    CHECK(figures::free_outside_largest_block(40, 40) == 0.0);
    CHECK(figures::free_outside_largest_block(10, 40) == doctest::Approx(0.75));
  }

  TEST_CASE("means_of_histograms") {
    Histogram h;
    CHECK(std::isnan(figures::mean_ns(h)));
    CHECK(h.mean_ns() == 0.0);  // documented: 0 when empty
    h.count = 4;
    h.sum_ns = 1000;
    CHECK(figures::mean_ns(h) == doctest::Approx(250));
    CHECK(h.mean_ns() == doctest::Approx(250));
  }

  TEST_CASE("huge_counters_do_not_overflow_a_figure") {
    constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
    CHECK(figures::ratio(kMax, kMax) == doctest::Approx(1.0));
    CHECK(figures::budget_used(kMax / 2, kMax) == doctest::Approx(0.5));
  }

  TEST_CASE("request_type_stats_and_batcher_stats_report_the_same_figures") {
    RequestTypeStats t;
    CHECK(t.hit_ratio() == 0.0);  // documented: 0 without requests
    CHECK(t.average_batch_size() == 0.0);
    CHECK(t.batch_formation_efficiency() == 0.0);
    CHECK(t.mean_batch_wait_ns() == 0.0);
    CHECK(t.mean_batch_run_ns() == 0.0);
    t.requests = 10;
    t.hits = 6;
    t.stale_served = 2;
    t.batches = 3;
    t.batched_requests = 8;
    t.batch_fallbacks = 2;
    t.batch_joined = 9;
    t.batchable_requests = 12;
    t.batch_wait_ns = 1'000'000;
    t.batch_run_ns = 5'000'000;
    CHECK(t.hit_ratio() == figures::request_hit_ratio(6, 2, 10));
    CHECK(t.average_batch_size() == figures::average_batch_size(8, 2, 3));
    CHECK(t.batch_formation_efficiency() == figures::batch_formation(9, 12));
    CHECK(t.mean_batch_wait_ns() == figures::mean_batch_wait_ns(1'000'000, 8, 2));
    CHECK(t.mean_batch_run_ns() == figures::mean_batch_run_ns(5'000'000, 8, 2));

    BatcherStats b;
    CHECK(b.formation_efficiency() == 0.0);
    CHECK(b.average_batch_requests() == 0.0);
    b.requests = 12;
    b.joined = 9;
    b.batches = 3;
    b.batched_requests = 8;
    b.fallbacks = 2;
    CHECK(b.formation_efficiency() == t.batch_formation_efficiency());
    CHECK(b.average_batch_requests() == t.average_batch_size());
  }
}
