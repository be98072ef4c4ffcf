#include "deeprc/table/temporal.h"

#include <charconv>

#include <fmt/core.h>

namespace deeprc::temporal {

int64_t DaysFromCivil(int64_t year, unsigned month, unsigned day) {
  year -= month <= 2;
  const int64_t era = (year >= 0 ? year : year - 399) / 400;
  const unsigned year_of_era = static_cast<unsigned>(year - era * 400);
  const unsigned day_of_year = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
  const unsigned day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + static_cast<int64_t>(day_of_era) - 719468;
}

void CivilFromDays(int64_t days, int64_t* year, unsigned* month, unsigned* day) {
  days += 719468;
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const unsigned day_of_era = static_cast<unsigned>(days - era * 146097);
  const unsigned year_of_era =
      (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  const unsigned day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const unsigned mp = (5 * day_of_year + 2) / 153;
  *day = day_of_year - (153 * mp + 2) / 5 + 1;
  *month = mp < 10 ? mp + 3 : mp - 9;
  *year = static_cast<int64_t>(year_of_era) + era * 400 + (*month <= 2);
}

namespace {

bool ReadDigits(std::string_view text, size_t pos, size_t count, int64_t* out) {
  if (pos + count > text.size()) return false;
  int64_t value = 0;
  for (size_t i = pos; i < pos + count; ++i) {
    const char c = text[i];
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  *out = value;
  return true;
}

bool IsLeap(int64_t year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

unsigned DaysInMonth(int64_t year, unsigned month) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && IsLeap(year) ? 29 : kDays[month - 1];
}

// Parses the date part at the start of text; sets *consumed.
std::optional<int64_t> ParseDatePrefix(std::string_view text, size_t* consumed) {
  int64_t year, month, day;
  if (text.size() < 10 || text[4] != '-' || text[7] != '-') return std::nullopt;
  if (!ReadDigits(text, 0, 4, &year) || !ReadDigits(text, 5, 2, &month) ||
      !ReadDigits(text, 8, 2, &day)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 ||
      day > DaysInMonth(year, static_cast<unsigned>(month))) {
    return std::nullopt;
  }
  *consumed = 10;
  return DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
}

}  // namespace

int64_t UnitsPerSecond(TimeUnit unit) {
  switch (unit) {
    case TimeUnit::kSecond: return 1;
    case TimeUnit::kMilli: return 1000;
    case TimeUnit::kMicro: return 1000000;
    case TimeUnit::kNano: return 1000000000;
  }
  return 1;
}

std::optional<int32_t> ParseDate(std::string_view text) {
  size_t consumed = 0;
  auto days = ParseDatePrefix(text, &consumed);
  if (!days || consumed != text.size()) return std::nullopt;
  return static_cast<int32_t>(*days);
}

std::optional<int64_t> ParseTimestamp(std::string_view text, TimeUnit unit) {
  size_t pos = 0;
  auto days = ParseDatePrefix(text, &pos);
  if (!days) return std::nullopt;
  int64_t seconds = *days * 86400;
  int64_t fraction_units = 0;
  const int64_t per_second = UnitsPerSecond(unit);
  if (pos < text.size() && (text[pos] == 'T' || text[pos] == ' ')) {
    int64_t hour, minute, second = 0;
    if (!ReadDigits(text, pos + 1, 2, &hour) || pos + 3 >= text.size() || text[pos + 3] != ':' ||
        !ReadDigits(text, pos + 4, 2, &minute)) {
      return std::nullopt;
    }
    pos += 6;
    if (pos < text.size() && text[pos] == ':') {
      if (!ReadDigits(text, pos + 1, 2, &second)) return std::nullopt;
      pos += 3;
      if (pos < text.size() && text[pos] == '.') {
        ++pos;
        int64_t scale = per_second;
        size_t digits = 0;
        while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
          if (scale >= 10) {
            scale /= 10;
            fraction_units += (text[pos] - '0') * scale;
          }
          ++pos;
          ++digits;
        }
        if (digits == 0) return std::nullopt;
      }
    }
    if (hour > 23 || minute > 59 || second > 60) return std::nullopt;
    seconds += hour * 3600 + minute * 60 + second;
  }
  if (pos < text.size()) {
    if (text[pos] == 'Z' && pos + 1 == text.size()) {
      pos += 1;
    } else if ((text[pos] == '+' || text[pos] == '-') && pos + 6 == text.size() &&
               text[pos + 3] == ':') {
      int64_t hours, minutes;
      if (!ReadDigits(text, pos + 1, 2, &hours) || !ReadDigits(text, pos + 4, 2, &minutes)) {
        return std::nullopt;
      }
      const int64_t shift = (hours * 3600 + minutes * 60) * (text[pos] == '+' ? 1 : -1);
      seconds -= shift;
      pos += 6;
    } else {
      return std::nullopt;
    }
  }
  if (pos != text.size()) return std::nullopt;
  return seconds * per_second + fraction_units;
}

std::string FormatDate(int32_t days) {
  int64_t year;
  unsigned month, day;
  CivilFromDays(days, &year, &month, &day);
  return fmt::format("{:04d}-{:02d}-{:02d}", year, month, day);
}

std::string FormatTimestamp(int64_t value, TimeUnit unit, bool utc) {
  const int64_t per_second = UnitsPerSecond(unit);
  int64_t seconds = value / per_second;
  int64_t fraction = value % per_second;
  if (fraction < 0) {
    fraction += per_second;
    seconds -= 1;
  }
  int64_t days = seconds / 86400;
  int64_t in_day = seconds % 86400;
  if (in_day < 0) {
    in_day += 86400;
    days -= 1;
  }
  std::string text = fmt::format("{}T{:02d}:{:02d}:{:02d}", FormatDate(static_cast<int32_t>(days)),
                                 in_day / 3600, in_day / 60 % 60, in_day % 60);
  switch (unit) {
    case TimeUnit::kSecond: break;
    case TimeUnit::kMilli: text += fmt::format(".{:03d}", fraction); break;
    case TimeUnit::kMicro: text += fmt::format(".{:06d}", fraction); break;
    case TimeUnit::kNano: text += fmt::format(".{:09d}", fraction); break;
  }
  if (utc) text += 'Z';
  return text;
}

}  // namespace deeprc::temporal
