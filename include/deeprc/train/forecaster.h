#pragma once

// Training and forecasting with the LibTorch model zoo (library deeprc_train_torch; this header
// itself includes no LibTorch, so callers compile fast).
//
// Settings (`TrainOptions::settings`, the `--set key=value` of `deeprc train`) hold the model's
// own hyperparameters under NeuralForecast's names (e.g. hidden_size, mlp_units, n_blocks) and
// these trainer settings (NeuralForecast's defaults, or the model's where it has its own):
//   learning_rate 1e-3     Adam's step size
//   num_lr_decays 3        StepLR: the rate halves every max_steps / num_lr_decays steps
//   batch_size             windows per step, over all ranks (model default: 1024 for MLP,
//                          NBEATS, NHITS; 128 for the recurrent family and TCN)
//   scaler                 identity | standard | robust | minmax (model default)
//   loss MAE               MAE | MSE | Huber | Normal (Normal: loc and scale per step, trained
//                          by negative log-likelihood; forecasts add an 80% interval)
//   huber_delta 1
//   step_size 1            points between training windows
//   val_size 0             points at each series' end kept for validation windows
//   val_check_steps 100    steps between validation losses
//   early_stop_patience_steps -1   validation checks without improvement before stopping
//                                  (-1: never; needs val_size > 0)
//   threads 0              LibTorch intra-op threads (0: leave LibTorch's choice)
//   device cpu             cpu | cuda | cuda:N (see CheckDevice); not saved in checkpoints
//   backend communicator   how gradients are summed over ranks: communicator, the only one
//                          (the deeprc Communicator given to Fit, MPI or Gloo; gradients on a
//                          CUDA device are staged through host buckets); nccl is refused at
//                          start, saying so
// Losses are computed on scaled values (per-window scaler), as NeuralForecast does.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "deeprc/core/result.h"
#include "deeprc/table/table.h"
#include "deeprc/train/series.h"

namespace deeprc::comm {
class Communicator;
}

namespace deeprc::train {

struct TrainOptions {
  std::string model;  // MLP, NBEATS, NHITS, LSTM, GRU, RNN, TCN (any letter case)
  int64_t horizon = 0;
  int64_t input_size = 0;
  int64_t max_steps = 1000;
  uint64_t seed = 1;
  std::map<std::string, std::string> settings;
};

struct TrainReport {
  int64_t steps = 0;
  std::vector<double> losses;             // training loss of each step's global batch
  std::vector<double> validation_losses;  // one per validation check
  double train_seconds = 0;
  double samples_per_s = 0;  // windows per second over all ranks
  // This process's CPU time in the training loop (all its threads): on a shared machine,
  // windows per CPU second compare runs better than wall time does.
  double cpu_seconds = 0;
  int64_t global_batch = 0;
};

// Forecasts of h points per series, in the scale of the data: mean[s * h + i]; lo/hi: the 80%
// interval of a Normal-loss model (empty otherwise).
struct Forecast {
  int64_t series = 0;
  int64_t horizon = 0;
  std::vector<double> mean, lo, hi;
};

// The names `deeprc train --model` accepts.
std::vector<std::string> ForecastModelNames();

// The `device` setting: "cpu", "cuda" (CUDA device 0 of this process) or "cuda:N". Checked
// before anything is read or built: an unknown form names the setting and the accepted forms;
// a CUDA device fails when this build has CUDA devices off (DEEPRC_WITH_CUDA), when this
// LibTorch has no CUDA support, or when device N does not exist (naming the count).
Status CheckDevice(const std::string& device);
// The `backend` setting: "communicator" (anything else, nccl included, is an error saying what
// deeprc sums gradients with).
Status CheckBackend(const std::string& backend);

// Looked at between training steps: true stops Fit with a Cancelled status. With several
// ranks they agree (the flag rides on each step's loss all-reduce), so all stop at one step.
using CancelCheck = std::function<bool()>;

class Forecaster {
 public:
  // Builds the model (weights seeded by options.seed). `exogenous` names the historical
  // exogenous columns of the series the model reads beside y (over its input window), `future`
  // the future ones (over input and horizon: a forecast needs their values after each series'
  // end). The models take them as NeuralForecast's do:
  //   historical and future  MLP, NHITS, LSTM, GRU, RNN, TCN
  //   future only            DeepAR, VanillaTransformer, Autoformer, FEDformer, TimesNet
  //   none                   NBEATS, PatchTST
  // Errors: unknown model or setting, bad sizes, a kind of exogenous column the model does not
  // take (naming the model and the kinds it takes).
  static Result<std::unique_ptr<Forecaster>> Make(const TrainOptions& options,
                                                  std::vector<std::string> exogenous = {},
                                                  std::vector<std::string> future = {});
  ~Forecaster();

  const TrainOptions& options() const;
  // The historical exogenous columns the model reads beside y.
  const std::vector<std::string>& exogenous() const;
  // The future exogenous columns the model reads.
  const std::vector<std::string>& future_exogenous() const;

  // Trains on windows of `series`. With a communicator of W ranks, every rank passes the same
  // series; each step's global batch is split in W slices, gradients are summed with the
  // communicator's AllReduce in buckets, and the weights stay identical on every rank.
  Result<TrainReport> Fit(const SeriesSet& series, comm::Communicator* communicator = nullptr,
                          const CancelCheck& canceled = {});

  // Forecasts the h points after each series' end. A model with future exogenous columns needs
  // `ahead`: series s of it (same order as `series`) holds those columns over at least the h
  // points after series s's end (e.g. the test set, or a table of future dates).
  Result<Forecast> Predict(const SeriesSet& series, const SeriesSet* ahead = nullptr);

  // Checkpoints: the weights, the model's name and its options (written to a temporary file,
  // then renamed). Load fills this forecaster's weights (same model and sizes).
  Status Save(const std::string& path) const;
  Status Load(const std::string& path);
  // A forecaster built from a checkpoint's own options, with its weights; `overrides` replace
  // settings that do not change the weights (e.g. threads).
  static Result<std::unique_ptr<Forecaster>> Restore(
      const std::string& path, const std::map<std::string, std::string>& overrides = {});

  // The device the weights live on ("cpu", "cuda:0", ..., "meta").
  std::string device() const;

  // Every weight, flattened in parameter order (to compare ranks).
  std::vector<float> FlatParameters() const;
  int64_t ParameterCount() const;

 private:
  struct Impl;
  explicit Forecaster(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The forecasts as a table: unique_id (string), ds (the `future` series' time values: series s
// of `future` holds the h points forecast for series s), model (string), yhat (float64), and
// yhat_lo_80 / yhat_hi_80 when the forecast has an interval.
Result<Table> ForecastTable(const SeriesSet& future, const std::string& model,
                            const Forecast& forecast);

}  // namespace deeprc::train
