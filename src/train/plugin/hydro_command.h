#pragma once

// `deeprc train --model hydro ...` (hydro_command.cpp): the hydrology model on CAMELS basins, and
// what the hydro.* runtime functions (hydro_functions.cpp) share with it.

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "deeprc/core/result.h"
#include "deeprc/train/camels.h"
#include "deeprc/train/hydrology.h"

namespace deeprc::train {

// True when the command line asks for --model hydro (any letter case).
bool IsHydroCommand(int argc, char** argv);
// Runs it; returns the exit status (0, 2 bad input, 1 failure).
int RunHydroCommand(int argc, char** argv);

// An error naming the basin when none of its test days has observed streamflow: checked before
// training, so that it fails at once rather than after the training.
Status CheckScorable(const HydroDataset& data, int test_year);

// "2000-2001" or "2000": the first and last training year.
Result<std::pair<int, int>> ParseTrainYears(const std::string& text);

// The predictions of scored days: basin, date, observed and predicted streamflow (mm/day;
// observed null where missing).
class PredictionRows {
 public:
  void Add(const HydroDataset& data, const HydroScore& score);
  Result<Table> ToTable() const;
  // CSV, or the binary table format when the path ends in .drt.
  Status Write(const std::string& path) const;

 private:
  std::vector<std::optional<std::string>> basin_;
  std::vector<std::optional<int32_t>> date_;
  std::vector<std::optional<double>> observed_, predicted_;
};

}  // namespace deeprc::train
