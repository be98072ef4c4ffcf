#pragma once

// CAMELS-US basins (Newman et al. 2015) for rainfall-runoff models: the Daymet forcings and the
// USGS streamflow of one basin on a daily grid, and the windowed, normalized dataset the
// hydrology model trains on (library deeprc_train, no LibTorch).
//
// Layout under the data folder (files directly there or one level down, in CAMELS' HUC folders):
//   forcing_daymet/<basin>_lump_cida_forcing_leap.txt
//     three header lines: latitude, elevation (m), catchment area (m2); then the column names
//     `Year Mnth Day Hr dayl(s) prcp(mm/day) srad(W/m2) swe(mm) tmax(C) tmin(C) vp(Pa)`; then one
//     line per day, consecutive days.
//   usgs_streamflow/<basin>_streamflow_qc.txt
//     `basin year month day q flag`, q in cubic feet per second, negative (-999) = missing.
// Streamflow is converted to mm/day over the catchment area (as neuralhydrology does); days of the
// forcing without a streamflow line are missing too.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "deeprc/core/result.h"

namespace deeprc::train {

// Cubic feet per second to millimetres per day over `area_m2` square metres.
double CfsToMillimetresPerDay(double cfs, double area_m2);

struct CamelsBasin {
  std::string id;
  double latitude = 0, elevation_m = 0, area_m2 = 0;
  std::vector<int32_t> days;                  // days since 1970-01-01, consecutive
  std::vector<std::string> forcing_names;     // dayl, prcp, srad, swe, tmax, tmin, vp
  std::vector<std::vector<double>> forcings;  // [forcing][day]
  std::vector<double> streamflow;             // mm/day per day; NaN where missing

  int64_t num_days() const { return static_cast<int64_t>(days.size()); }
  int YearOf(int64_t day) const;
};

// The basins that have a forcing file under `root`, sorted.
Result<std::vector<std::string>> CamelsBasinIds(const std::string& root);

// Reads one basin. Errors name the file and line: a malformed header or number, a skipped or
// repeated day, a streamflow line of another basin, a non-positive area.
Result<CamelsBasin> ReadCamelsBasin(const std::string& root, const std::string& basin);

// Which days train and which are scored.
struct HydroDataOptions {
  int64_t sequence_length = 21;  // days of forcings per sample, ending on the target day
  int train_first_year = 2000, train_last_year = 2001;
  int test_year = 2002;
  // Forcings the model reads (by the name before the unit); empty: all of the file's.
  std::vector<std::string> inputs;
};

// Samples of one basin: sample `t` is the forcings of days [t - L + 1, t] and the streamflow of
// day t. Training samples are the days of the training years whose window lies inside the data
// (missing targets stay, with mask 0: the loss skips them); test samples are the days of the test
// year (their windows may reach back into earlier days: forcings are known). Inputs and target
// are standardized with the mean and standard deviation of the training years only.
class HydroDataset {
 public:
  // Errors: no training or test day in the data, no observed streamflow in the training years,
  // an unknown input name, a sequence length below 1.
  static Result<HydroDataset> Make(const CamelsBasin& basin, const HydroDataOptions& options);

  const std::string& basin() const { return basin_; }
  int64_t features() const { return static_cast<int64_t>(input_names_.size()); }
  const std::vector<std::string>& input_names() const { return input_names_; }
  int64_t sequence_length() const { return sequence_length_; }
  const std::vector<int64_t>& training() const { return training_; }
  const std::vector<int64_t>& test() const { return test_; }
  int32_t DayOf(int64_t sample) const { return days_[sample]; }

  // x [n, L, features] standardized forcings, y [n] standardized streamflow (0 where missing),
  // mask [n] (1 where observed) for the samples `targets` (day indexes).
  void Fill(std::span<const int64_t> targets, std::vector<float>* x, std::vector<float>* y,
            std::vector<float>* mask) const;

  // Observed streamflow of a day in mm/day (NaN where missing).
  double Observed(int64_t day) const { return streamflow_[day]; }
  // A standardized model output back in mm/day.
  double ToStreamflow(double standardized) const { return standardized * q_std_ + q_mean_; }
  double target_mean() const { return q_mean_; }
  double target_std() const { return q_std_; }

 private:
  std::string basin_;
  int64_t sequence_length_ = 0;
  std::vector<std::string> input_names_;
  std::vector<int32_t> days_;
  std::vector<float> inputs_;  // [day][feature], standardized
  std::vector<double> streamflow_;
  double q_mean_ = 0, q_std_ = 1;
  std::vector<int64_t> training_, test_;
};

}  // namespace deeprc::train
