#pragma once

#include <string_view>

#include <fmt/core.h>

namespace deeprc {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kOff = 4 };

// The level is read once from DEEPRC_LOG_LEVEL (debug, info, warning, error, off); default warning.
LogLevel CurrentLogLevel();
void SetLogLevel(LogLevel level);
void WriteLogLine(LogLevel level, std::string_view message);

template <typename... Args>
void Log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
  if (level < CurrentLogLevel()) return;
  WriteLogLine(level, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace deeprc
