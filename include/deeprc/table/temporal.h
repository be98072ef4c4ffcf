#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "deeprc/table/type.h"

namespace deeprc::temporal {

// Proleptic Gregorian calendar conversions (Howard Hinnant's days-from-civil algorithms).
int64_t DaysFromCivil(int64_t year, unsigned month, unsigned day);
void CivilFromDays(int64_t days, int64_t* year, unsigned* month, unsigned* day);

// Parses YYYY-MM-DD. Returns nothing when the text is not a valid date.
std::optional<int32_t> ParseDate(std::string_view text);
// Parses YYYY-MM-DD[(T| )HH:MM[:SS[.fraction]]][Z|±HH:MM] to a count of `unit` since the epoch.
// A zone offset in the text is applied (the result is UTC). Nothing when not a valid timestamp.
std::optional<int64_t> ParseTimestamp(std::string_view text, TimeUnit unit);

std::string FormatDate(int32_t days);
// ISO 8601 with as many fraction digits as the unit has; "Z" appended when `utc`.
std::string FormatTimestamp(int64_t value, TimeUnit unit, bool utc);

int64_t UnitsPerSecond(TimeUnit unit);

}  // namespace deeprc::temporal
