// Helpers shared by the Batcher tests: a thread-safe record of what the batch function, the
// single function and the observer saw, so each test can assert on it after the fact.
#pragma once

#include <pipecache/batcher.hpp>

#include <chrono>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace batcher_test {

using StringBatcher = pipecache::Batcher<std::string, std::string>;

// A request never waits this long unless the Batcher lost it; far above any honest latency
// on a loaded 2-core machine, far below the meson timeout.
inline constexpr std::chrono::seconds kGenerous{30};
// A window that never expires during a test: anything dispatched was dispatched by size or by
// shutdown, never by time.
inline constexpr std::chrono::hours kNever{1};

// The answer every function in these tests gives for a key: self-validating values.
inline std::string value_of(const std::string& key) { return "value(" + key + ")"; }

template <typename T>
bool ready_within(const std::future<T>& future, std::chrono::nanoseconds bound) {
  return future.wait_for(bound) == std::future_status::ready;
}

class Recorder {
 public:
  void batch_called(const std::vector<std::string>& keys) {
    std::lock_guard<std::mutex> lock(mutex_);
    batch_calls_.push_back(keys);
  }
  void single_called(const std::string& key) {
    std::lock_guard<std::mutex> lock(mutex_);
    single_calls_.push_back(key);
  }
  void observed(const pipecache::BatchReport& report) {
    std::lock_guard<std::mutex> lock(mutex_);
    reports_.push_back(report);
  }

  std::vector<std::vector<std::string>> batch_calls() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return batch_calls_;
  }
  std::vector<std::string> single_calls() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return single_calls_;
  }
  std::vector<pipecache::BatchReport> reports() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return reports_;
  }

  // Functions that record their calls and answer value_of(key); single() throws for "bad*".
  StringBatcher::BatchFunction batch_function() {
    return [this](const std::vector<std::string>& keys) {
      batch_called(keys);
      std::vector<std::string> values;
      for (const std::string& key : keys) values.push_back(value_of(key));
      return values;
    };
  }
  StringBatcher::SingleFunction single_function() {
    return [this](const std::string& key) {
      single_called(key);
      if (key.rfind("bad", 0) == 0) throw std::runtime_error("no such range: " + key);
      return value_of(key);
    };
  }
  StringBatcher::Observer observer() {
    return [this](const pipecache::BatchReport& report) { observed(report); };
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::vector<std::string>> batch_calls_;
  std::vector<std::string> single_calls_;
  std::vector<pipecache::BatchReport> reports_;
};

}  // namespace batcher_test
