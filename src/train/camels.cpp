#include "deeprc/train/camels.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string_view>

#include "deeprc/table/temporal.h"

namespace deeprc::train {
namespace {

namespace fs = std::filesystem;

constexpr const char* kForcingFolder = "forcing_daymet";
constexpr const char* kForcingSuffix = "_lump_cida_forcing_leap.txt";
constexpr const char* kStreamflowFolder = "usgs_streamflow";
constexpr const char* kStreamflowSuffix = "_streamflow_qc.txt";
constexpr double kCubicMetresPerCubicFoot = 0.0283168466;
constexpr double kSecondsPerDay = 86400;
// Below this a standard deviation is taken as 1: a constant input (swe in a warm basin).
constexpr double kMinStd = 1e-6;

// `folder`/<basin><suffix>, or inside one of its subfolders (the full CAMELS set keeps files in
// HUC folders).
Result<std::string> FindBasinFile(const std::string& root, const char* folder,
                                  const std::string& basin, const char* suffix) {
  const fs::path base = fs::path(root) / folder;
  const std::string name = basin + suffix;
  std::error_code error;
  if (fs::is_regular_file(base / name, error)) return (base / name).string();
  if (fs::is_directory(base, error)) {
    for (const auto& entry : fs::directory_iterator(base, error)) {
      if (entry.is_directory() && fs::is_regular_file(entry.path() / name, error)) {
        return (entry.path() / name).string();
      }
    }
  }
  return Status::IOError("basin {}: no {} under {}", basin, name, base.string());
}

Result<std::string> ReadText(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return Status::IOError("cannot open '{}'", path);
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) return Status::IOError("cannot read '{}'", path);
  return text.str();
}

// Lines without their end (\n or \r\n), numbered from 1.
class LineReader {
 public:
  explicit LineReader(std::string_view text) : text_(text) {}
  bool Next(std::string_view* line) {
    if (position_ >= text_.size()) return false;
    size_t end = text_.find('\n', position_);
    if (end == std::string_view::npos) end = text_.size();
    *line = text_.substr(position_, end - position_);
    if (!line->empty() && line->back() == '\r') line->remove_suffix(1);
    position_ = end + 1;
    ++number_;
    return true;
  }
  int64_t number() const { return number_; }

 private:
  std::string_view text_;
  size_t position_ = 0;
  int64_t number_ = 0;
};

std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    const size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) fields.push_back(line.substr(start, i - start));
  }
  return fields;
}

bool ParseNumber(std::string_view field, double* value) {
  const std::string text(field);
  char* end = nullptr;
  errno = 0;
  *value = std::strtod(text.c_str(), &end);
  return !text.empty() && end == text.c_str() + text.size() && errno == 0 && std::isfinite(*value);
}

bool ParseInt(std::string_view field, int64_t* value) {
  double number = 0;
  if (!ParseNumber(field, &number) || number != std::floor(number)) return false;
  *value = static_cast<int64_t>(number);
  return true;
}

// The day of (year, month, day) fields, checked to be a real calendar date.
bool ParseDate(std::string_view year, std::string_view month, std::string_view day, int32_t* days) {
  int64_t y = 0, m = 0, d = 0;
  if (!ParseInt(year, &y) || !ParseInt(month, &m) || !ParseInt(day, &d)) return false;
  if (m < 1 || m > 12 || d < 1 || d > 31) return false;
  const int64_t value =
      temporal::DaysFromCivil(y, static_cast<unsigned>(m), static_cast<unsigned>(d));
  int64_t back_year = 0;
  unsigned back_month = 0, back_day = 0;
  temporal::CivilFromDays(value, &back_year, &back_month, &back_day);
  if (back_year != y || back_month != m || back_day != d) return false;  // 2001-02-30
  *days = static_cast<int32_t>(value);
  return true;
}

Status ReadForcing(const std::string& path, CamelsBasin* basin) {
  DEEPRC_ASSIGN_OR_RAISE(std::string text, ReadText(path));
  LineReader lines(text);
  std::string_view line;
  const char* header[] = {"latitude", "elevation", "catchment area (m2)"};
  double* header_values[] = {&basin->latitude, &basin->elevation_m, &basin->area_m2};
  for (int i = 0; i < 3; ++i) {
    if (!lines.Next(&line)) {
      return Status::Invalid("{}:{}: the file ends before its {} header line", path, i + 1,
                             header[i]);
    }
    const auto fields = Fields(line);
    if (fields.size() != 1 || !ParseNumber(fields[0], header_values[i])) {
      return Status::Invalid("{}:{}: expected the {} as one number, found '{}'", path,
                             lines.number(), header[i], line);
    }
  }
  if (basin->area_m2 <= 0) {
    return Status::Invalid("{}:3: the catchment area must be positive, found {}", path,
                           basin->area_m2);
  }
  if (!lines.Next(&line))
    return Status::Invalid("{}:4: the file ends before its column names", path);
  const auto names = Fields(line);
  static constexpr std::string_view kDateColumns[] = {"Year", "Mnth", "Day", "Hr"};
  if (names.size() < 5 ||
      !std::equal(std::begin(kDateColumns), std::end(kDateColumns), names.begin())) {
    return Status::Invalid(
        "{}:4: expected the column names 'Year Mnth Day Hr' and the forcings, "
        "found '{}'",
        path, line);
  }
  basin->forcing_names.clear();
  for (size_t i = 4; i < names.size(); ++i) {
    // "prcp(mm/day)" -> "prcp"
    basin->forcing_names.emplace_back(names[i].substr(0, names[i].find('(')));
  }
  basin->forcings.assign(basin->forcing_names.size(), {});
  while (lines.Next(&line)) {
    const auto fields = Fields(line);
    if (fields.empty()) continue;
    if (fields.size() != names.size()) {
      return Status::Invalid("{}:{}: expected {} fields, found {}", path, lines.number(),
                             names.size(), fields.size());
    }
    int32_t day = 0;
    if (!ParseDate(fields[0], fields[1], fields[2], &day)) {
      return Status::Invalid("{}:{}: '{} {} {}' is not a date (year month day)", path,
                             lines.number(), fields[0], fields[1], fields[2]);
    }
    if (!basin->days.empty() && day != basin->days.back() + 1) {
      return Status::Invalid(
          "{}:{}: the day {} does not follow {} (daily lines, in order, none "
          "missing)",
          path, lines.number(), temporal::FormatDate(day),
          temporal::FormatDate(basin->days.back()));
    }
    basin->days.push_back(day);
    for (size_t i = 4; i < fields.size(); ++i) {
      double value = 0;
      if (!ParseNumber(fields[i], &value)) {
        return Status::Invalid("{}:{}: {} '{}' is not a number", path, lines.number(),
                               basin->forcing_names[i - 4], fields[i]);
      }
      basin->forcings[i - 4].push_back(value);
    }
  }
  if (basin->days.empty()) return Status::Invalid("{}: no daily lines after the header", path);
  return Status::OK();
}

Status ReadStreamflow(const std::string& path, CamelsBasin* basin) {
  DEEPRC_ASSIGN_OR_RAISE(std::string text, ReadText(path));
  basin->streamflow.assign(basin->days.size(), std::numeric_limits<double>::quiet_NaN());
  std::vector<bool> seen(basin->days.size(), false);
  const int32_t first = basin->days.front();
  LineReader lines(text);
  std::string_view line;
  while (lines.Next(&line)) {
    const auto fields = Fields(line);
    if (fields.empty()) continue;
    if (fields.size() != 5 && fields.size() != 6) {
      return Status::Invalid("{}:{}: expected 'basin year month day q flag', found '{}'", path,
                             lines.number(), line);
    }
    if (fields[0] != basin->id) {
      return Status::Invalid("{}:{}: a line of basin {} in the file of basin {}", path,
                             lines.number(), fields[0], basin->id);
    }
    int32_t day = 0;
    if (!ParseDate(fields[1], fields[2], fields[3], &day)) {
      return Status::Invalid("{}:{}: '{} {} {}' is not a date (year month day)", path,
                             lines.number(), fields[1], fields[2], fields[3]);
    }
    double cfs = 0;
    if (!ParseNumber(fields[4], &cfs)) {
      return Status::Invalid("{}:{}: streamflow '{}' is not a number", path, lines.number(),
                             fields[4]);
    }
    const int64_t index = static_cast<int64_t>(day) - first;
    if (index < 0 || index >= basin->num_days()) continue;  // outside the forcing's days
    if (seen[index]) {
      return Status::Invalid("{}:{}: a second line for {}", path, lines.number(),
                             temporal::FormatDate(day));
    }
    seen[index] = true;
    // -999 marks a missing day; no real streamflow is negative.
    if (cfs >= 0) basin->streamflow[index] = CfsToMillimetresPerDay(cfs, basin->area_m2);
  }
  return Status::OK();
}

}  // namespace

double CfsToMillimetresPerDay(double cfs, double area_m2) {
  return cfs * kCubicMetresPerCubicFoot * kSecondsPerDay / area_m2 * 1000.0;
}

int CamelsBasin::YearOf(int64_t day) const {
  int64_t year = 0;
  unsigned month = 0, day_of_month = 0;
  temporal::CivilFromDays(days[day], &year, &month, &day_of_month);
  return static_cast<int>(year);
}

Result<std::vector<std::string>> CamelsBasinIds(const std::string& root) {
  const fs::path base = fs::path(root) / kForcingFolder;
  std::error_code error;
  if (!fs::is_directory(base, error)) {
    return Status::IOError("{}: no {} folder (is this a CAMELS folder?)", root, kForcingFolder);
  }
  const std::string suffix = kForcingSuffix;
  std::vector<std::string> ids;
  for (const auto& entry : fs::recursive_directory_iterator(base, error)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      ids.push_back(name.substr(0, name.size() - suffix.size()));
    }
  }
  if (error) return Status::IOError("{}: {}", base.string(), error.message());
  std::sort(ids.begin(), ids.end());
  if (ids.empty()) return Status::Invalid("{}: no *{} files", base.string(), suffix);
  return ids;
}

Result<CamelsBasin> ReadCamelsBasin(const std::string& root, const std::string& basin_id) {
  CamelsBasin basin;
  basin.id = basin_id;
  DEEPRC_ASSIGN_OR_RAISE(std::string forcing,
                         FindBasinFile(root, kForcingFolder, basin_id, kForcingSuffix));
  DEEPRC_ASSIGN_OR_RAISE(std::string streamflow,
                         FindBasinFile(root, kStreamflowFolder, basin_id, kStreamflowSuffix));
  DEEPRC_RETURN_NOT_OK(ReadForcing(forcing, &basin));
  DEEPRC_RETURN_NOT_OK(ReadStreamflow(streamflow, &basin));
  return basin;
}

Result<HydroDataset> HydroDataset::Make(const CamelsBasin& basin, const HydroDataOptions& options) {
  const int64_t length = options.sequence_length;
  if (length < 1) return Status::Invalid("sequence_length must be at least 1, got {}", length);
  if (options.train_first_year > options.train_last_year) {
    return Status::Invalid("training years {}-{}: the first is after the last",
                           options.train_first_year, options.train_last_year);
  }
  if (options.test_year >= options.train_first_year &&
      options.test_year <= options.train_last_year) {
    return Status::Invalid("the test year {} lies inside the training years {}-{}",
                           options.test_year, options.train_first_year, options.train_last_year);
  }
  HydroDataset data;
  data.basin_ = basin.id;
  data.sequence_length_ = length;
  data.days_ = basin.days;
  data.streamflow_ = basin.streamflow;
  std::vector<size_t> columns;
  data.input_names_ = options.inputs.empty() ? basin.forcing_names : options.inputs;
  for (const auto& name : data.input_names_) {
    auto found = std::find(basin.forcing_names.begin(), basin.forcing_names.end(), name);
    if (found == basin.forcing_names.end()) {
      std::string known;
      for (const auto& forcing : basin.forcing_names)
        known += (known.empty() ? "" : ", ") + forcing;
      return Status::KeyError("basin {}: no forcing '{}' (the file has {})", basin.id, name, known);
    }
    columns.push_back(static_cast<size_t>(found - basin.forcing_names.begin()));
  }
  const int64_t days = basin.num_days();
  std::vector<bool> in_training(days);
  for (int64_t t = 0; t < days; ++t) {
    const int year = basin.YearOf(t);
    in_training[t] = year >= options.train_first_year && year <= options.train_last_year;
    if (t + 1 < length) continue;  // the window would start before the data
    if (in_training[t]) data.training_.push_back(t);
    if (year == options.test_year) data.test_.push_back(t);
  }
  if (data.training_.empty()) {
    return Status::Invalid(
        "basin {}: no day of the training years {}-{} with {} days of "
        "forcings before it (the data covers {} to {})",
        basin.id, options.train_first_year, options.train_last_year, length,
        temporal::FormatDate(basin.days.front()), temporal::FormatDate(basin.days.back()));
  }
  if (data.test_.empty()) {
    return Status::Invalid("basin {}: no day of the test year {} in the data (it covers {} to {})",
                           basin.id, options.test_year, temporal::FormatDate(basin.days.front()),
                           temporal::FormatDate(basin.days.back()));
  }
  // Statistics of the training years only: nothing of the test year leaks into the inputs.
  const size_t features = columns.size();
  data.inputs_.resize(static_cast<size_t>(days) * features);
  for (size_t f = 0; f < features; ++f) {
    const std::vector<double>& values = basin.forcings[columns[f]];
    double sum = 0, squares = 0, count = 0;
    for (int64_t t = 0; t < days; ++t) {
      if (!in_training[t]) continue;
      sum += values[t];
      count += 1;
    }
    const double mean = sum / count;
    for (int64_t t = 0; t < days; ++t) {
      if (in_training[t]) squares += (values[t] - mean) * (values[t] - mean);
    }
    double std = std::sqrt(squares / count);
    if (std < kMinStd) std = 1;
    for (int64_t t = 0; t < days; ++t) {
      data.inputs_[static_cast<size_t>(t) * features + f] =
          static_cast<float>((values[t] - mean) / std);
    }
  }
  double sum = 0, squares = 0, count = 0;
  for (int64_t t : data.training_) {
    if (std::isnan(basin.streamflow[t])) continue;
    sum += basin.streamflow[t];
    count += 1;
  }
  if (count == 0) {
    return Status::Invalid("basin {}: no observed streamflow in the training years {}-{}", basin.id,
                           options.train_first_year, options.train_last_year);
  }
  data.q_mean_ = sum / count;
  for (int64_t t : data.training_) {
    if (!std::isnan(basin.streamflow[t])) {
      squares += (basin.streamflow[t] - data.q_mean_) * (basin.streamflow[t] - data.q_mean_);
    }
  }
  data.q_std_ = std::sqrt(squares / count);
  if (data.q_std_ < kMinStd) data.q_std_ = 1;
  return data;
}

void HydroDataset::Fill(std::span<const int64_t> targets, std::vector<float>* x,
                        std::vector<float>* y, std::vector<float>* mask) const {
  const size_t features = input_names_.size();
  const size_t window = static_cast<size_t>(sequence_length_) * features;
  x->resize(targets.size() * window);
  y->resize(targets.size());
  mask->resize(targets.size());
  for (size_t i = 0; i < targets.size(); ++i) {
    const int64_t first = targets[i] - sequence_length_ + 1;
    std::copy_n(inputs_.begin() + static_cast<std::ptrdiff_t>(first * features), window,
                x->begin() + static_cast<std::ptrdiff_t>(i * window));
    const double observed = streamflow_[targets[i]];
    const bool present = !std::isnan(observed);
    (*y)[i] = present ? static_cast<float>((observed - q_mean_) / q_std_) : 0.0f;
    (*mask)[i] = present ? 1.0f : 0.0f;
  }
}

}  // namespace deeprc::train
