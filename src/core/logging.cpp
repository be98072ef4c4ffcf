#include "deeprc/core/logging.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

namespace deeprc {
namespace {

LogLevel ParseLevel(const char* text) {
  if (text == nullptr) return LogLevel::kWarning;
  std::string_view value(text);
  if (value == "debug") return LogLevel::kDebug;
  if (value == "info") return LogLevel::kInfo;
  if (value == "error") return LogLevel::kError;
  if (value == "off") return LogLevel::kOff;
  return LogLevel::kWarning;
}

std::atomic<int>& LevelStorage() {
  static std::atomic<int> level{static_cast<int>(ParseLevel(std::getenv("DEEPRC_LOG_LEVEL")))};
  return level;
}

}  // namespace

LogLevel CurrentLogLevel() { return static_cast<LogLevel>(LevelStorage().load()); }

void SetLogLevel(LogLevel level) { LevelStorage().store(static_cast<int>(level)); }

void WriteLogLine(LogLevel level, std::string_view message) {
  static std::mutex mutex;
  static constexpr const char* kNames[] = {"debug", "info", "warning", "error", "off"};
  const auto now = std::chrono::duration_cast<std::chrono::microseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  std::lock_guard lock(mutex);
  std::fprintf(stderr, "[%lld.%06lld deeprc %s] %.*s\n", static_cast<long long>(now / 1000000),
               static_cast<long long>(now % 1000000), kNames[static_cast<int>(level)],
               static_cast<int>(message.size()), message.data());
}

}  // namespace deeprc
