#pragma once

// The hydrology model of Deep RC's CAMELS runs (library deeprc_train_torch; this header includes
// no LibTorch): Dense(320, selu) on each day's forcings -> LSTM(320) -> LSTM(320) -> Dense(320,
// selu) on the last day's state -> Dense(outputs), mapping 21 days of standardized forcings to
// the standardized streamflow of the last day. The loss (MSE by default) is masked where the
// streamflow is missing, so those samples add nothing to it nor to its gradient.
//
// Settings (`--set key=value` of `deeprc train --model hydro`):
//   hidden 320           width of every layer
//   dropout 0            dropout on the LSTMs' last state, before the dense head
//   epochs 12            passes over the training samples
//   batch_size 32        samples per step, over all ranks
// (12 epochs of 32: the setting measured in bench/RESULTS.md on the 4 shipped basins with 2
// training years; dropout 0.4 scored the same there, mean NSE 0.571 against 0.566.)
//   learning_rate 1e-3   Adam's step size
//   num_lr_decays 3      StepLR: the rate halves every steps / num_lr_decays steps
//   loss MSE             MSE | MAE | Huber (on standardized streamflow)
//   threads 0            LibTorch intra-op threads (0: leave LibTorch's choice)
//   device cpu           cpu | cuda | cuda:N (see CheckDevice in deeprc/train/forecaster.h)
//   backend communicator communicator only (as the forecasting models)

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "deeprc/core/result.h"
#include "deeprc/train/camels.h"
#include "deeprc/train/forecaster.h"

namespace deeprc::comm {
class Communicator;
}

namespace deeprc::train {

class HydroModel {
 public:
  // Builds the model for `features` inputs per day (weights seeded by `seed`). Errors: an unknown
  // setting or a value that does not parse, naming it.
  static Result<std::unique_ptr<HydroModel>> Make(
      int64_t features, const std::map<std::string, std::string>& settings, uint64_t seed = 1);
  ~HydroModel();

  // Trains on the dataset's training samples. With a communicator of W ranks every rank passes
  // the same dataset; each step's global batch is split over the ranks and the gradients summed,
  // so the weights stay identical on every rank (as Forecaster::Fit).
  // `canceled` is looked at between steps (see CancelCheck).
  Result<TrainReport> Fit(const HydroDataset& data, comm::Communicator* communicator = nullptr,
                          const CancelCheck& canceled = {});

  // Streamflow in mm/day for the given samples (day indexes of `data`).
  Result<std::vector<double>> Predict(const HydroDataset& data, std::span<const int64_t> samples);

  // The masked loss of these samples and the gradient of every weight (flattened in parameter
  // order), without changing the weights.
  Result<std::pair<double, std::vector<float>>> LossGradient(const HydroDataset& data,
                                                             std::span<const int64_t> samples);

  // Checkpoints: the weights with the forcing count, settings and seed, so that Restore builds
  // the same model (written to a temporary file, then renamed).
  Status Save(const std::string& path) const;
  // `overrides` replace settings that do not change the weights (threads, device).
  static Result<std::unique_ptr<HydroModel>> Restore(
      const std::string& path, const std::map<std::string, std::string>& overrides = {});

  int64_t ParameterCount() const;
  std::vector<float> FlatParameters() const;

  struct Impl;

 private:
  explicit HydroModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// NSE of the model's predictions over the observed days among `samples`, with the predictions
// (mm/day, one per sample). Errors: no observed day.
struct HydroScore {
  double nse = 0;
  int64_t samples = 0;  // observed days scored
  std::vector<double> predicted;
};
Result<HydroScore> EvaluateHydro(HydroModel& model, const HydroDataset& data,
                                 std::span<const int64_t> samples);

}  // namespace deeprc::train
