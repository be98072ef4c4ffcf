// The trainer: Adam with a step learning-rate schedule over seeded window batches, early
// stopping on validation windows, checkpoints, forecasts, and data-parallel training over a
// deeprc Communicator.
#include <time.h>

#include <array>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <numbers>
#include <numeric>

#include <fmt/ranges.h>
#include <torch/cuda.h>
#include <nlohmann/json.hpp>

#include "deeprc/core/cpu_time.h"
#include "deeprc/comm/communicator.h"
#include "deeprc/train/forecaster.h"
#include "deeprc/train/hydrology.h"
#include "deeprc/train/metrics.h"
#include "train/torch/model_internal.h"

namespace deeprc::train {
namespace {

using internal::ForecastModule;
using internal::ModelInput;

enum class LossType { kMae, kMse, kHuber, kNormal };

Result<LossType> ParseLoss(const std::string& text) {
  if (text == "MAE") return LossType::kMae;
  if (text == "MSE") return LossType::kMse;
  if (text == "Huber" || text == "HuberLoss") return LossType::kHuber;
  if (text == "Normal" || text == "DistributionLoss") return LossType::kNormal;
  return Status::Invalid("loss '{}': expected MAE, MSE, Huber or Normal", text);
}

// Gradients travel in buckets of this many floats (4 MiB): few collectives, bounded memory.
constexpr size_t kBucketFloats = size_t{1} << 20;
// The Normal loss's scale: softplus of the raw output plus this floor, so it never reaches 0.
constexpr double kMinNormalScale = 1e-3;
// z of the 90% quantile: the 80% interval is mean ± z·scale.
constexpr double kZ80 = 1.2815515655446004;

// The batch's values as a tensor on `device`: a copy (the batch's vectors are reused for the
// next batch), made by the move itself when the device is not the CPU.
torch::Tensor FromVector(const std::vector<float>& values, std::vector<int64_t> shape,
                         const torch::Device& device) {
  torch::Tensor host = torch::from_blob(const_cast<float*>(values.data()), shape, torch::kFloat32);
  return device.is_cpu() ? host.clone() : host.to(device);
}

// "cpu", "cuda" or "cuda:N" as a LibTorch device, checked against this build and this
// LibTorch (see CheckDevice in deeprc/train/forecaster.h).
Result<torch::Device> ResolveDevice(const std::string& text) {
  if (text == "cpu") return torch::Device(torch::kCPU);
  [[maybe_unused]] int64_t index = 0;
  if (text != "cuda") {
    const std::string prefix = "cuda:";
    const std::string digits = text.size() > prefix.size() && text.starts_with(prefix)
                                   ? text.substr(prefix.size())
                                   : std::string();
    if (digits.empty() || digits.size() > 6 ||
        digits.find_first_not_of("0123456789") != std::string::npos) {
      return Status::Invalid(
          "setting device '{}': expected cpu, cuda or cuda:N (N a device "
          "index)",
          text);
    }
    index = std::stoll(digits);
  }
#ifdef DEEPRC_CUDA_DEVICES
  if (!torch::cuda::is_available()) {
    return Status::Invalid(
        "device {} requested but this LibTorch has no CUDA support (or no "
        "CUDA device is visible)",
        text);
  }
  const auto count = static_cast<int64_t>(torch::cuda::device_count());
  if (index >= count) {
    return Status::Invalid("device {} requested but there is no device {} (count {})", text, index,
                           count);
  }
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
#else
  return Status::Invalid(
      "device {} requested but this build has no CUDA device support "
      "(configure with -DDEEPRC_WITH_CUDA=ON and a CUDA LibTorch)",
      text);
#endif
}

// Gradients are summed over the Communicator Fit is given (MPI or Gloo), the only backend.
Status ResolveBackend(const std::string& text) {
  if (text == "communicator") return Status::OK();
  if (text == "nccl") {
    return Status::Invalid(
        "setting backend nccl: deeprc has no NCCL backend; gradients are summed over the "
        "task's communicator (MPI or Gloo), staged through host buckets from a GPU");
  }
  return Status::Invalid("setting backend '{}': expected communicator", text);
}

// The device and backend settings of a trainer, read from `settings` and checked at once.
struct Placement {
  torch::Device device{torch::kCPU};
};

Result<Placement> ReadPlacement(internal::Settings& settings) {
  Placement placement;
  DEEPRC_ASSIGN_OR_RAISE(placement.device, ResolveDevice(settings.Text("device", "cpu")));
  DEEPRC_RETURN_NOT_OK(ResolveBackend(settings.Text("backend", "communicator")));
  return placement;
}

// Checkpoints keep the settings that shape the weights, not where they were trained.
std::map<std::string, std::string> WithoutPlacement(std::map<std::string, std::string> settings) {
  settings.erase("device");
  settings.erase("backend");
  return settings;
}

ModelInput ToInput(const Batch& batch, const torch::Device& device) {
  ModelInput input;
  input.x = FromVector(batch.x, {batch.size, batch.input_size}, device);
  input.x_mask = FromVector(batch.x_mask, {batch.size, batch.input_size}, device);
  input.x_exogenous =
      FromVector(batch.x_exogenous, {batch.size, batch.input_size, batch.exogenous}, device);
  input.x_future = FromVector(batch.x_future,
                              {batch.size, batch.input_size + batch.horizon, batch.future}, device);
  return input;
}

// The loss of one batch's output [B, h, outputs] against y [B, h] where mask is 1: masked
// points add nothing to the loss nor to its gradient.
torch::Tensor MaskedLoss(LossType loss, double huber_delta, const torch::Tensor& output,
                         const torch::Tensor& y, const torch::Tensor& mask) {
  const torch::Tensor count = mask.sum().clamp_min(1);
  torch::Tensor mean = output.select(2, 0);
  switch (loss) {
    case LossType::kMae:
      return ((mean - y).abs() * mask).sum() / count;
    case LossType::kMse:
      return ((mean - y).square() * mask).sum() / count;
    case LossType::kHuber: {
      torch::Tensor error = (mean - y).abs();
      torch::Tensor quadratic = 0.5 * error.square();
      torch::Tensor linear = huber_delta * (error - 0.5 * huber_delta);
      return (torch::where(error <= huber_delta, quadratic, linear) * mask).sum() / count;
    }
    case LossType::kNormal: {
      torch::Tensor scale = torch::softplus(output.select(2, 1)) + kMinNormalScale;
      torch::Tensor nll = torch::log(scale) + 0.5 * ((y - mean) / scale).square() +
                          0.5 * std::log(2 * std::numbers::pi);
      return (nll * mask).sum() / count;
    }
  }
  return {};
}

// Every trainable parameter's gradient as a view into one flat buffer on the parameters'
// device (as DDP's gradient_as_bucket_view): autograd accumulates into the views in place, so
// the buffer is zeroed in one operation, and summed over the ranks in buckets of kBucketFloats
// with no copy when it lives on the CPU. On a CUDA device each bucket is staged through a
// pinned host buffer for the MPI/Gloo all-reduce and copied back: one code path, where the
// staging is skipped on the CPU.
class GradientBuckets {
 public:
  explicit GradientBuckets(torch::nn::Module& model) {
    std::vector<torch::Tensor> trainable;
    int64_t total = 0;
    for (auto& parameter : model.parameters()) {
      if (!parameter.requires_grad()) continue;
      trainable.push_back(parameter);
      total += parameter.numel();
    }
    if (trainable.empty()) return;
    flat_ = torch::zeros({total}, trainable.front().options().requires_grad(false));
    int64_t offset = 0;
    for (auto& parameter : trainable) {
      const int64_t n = parameter.numel();
      parameter.mutable_grad() = flat_.narrow(0, offset, n).view(parameter.sizes());
      offset += n;
    }
    if (!flat_.is_cpu()) {
      host_ = torch::empty({std::min<int64_t>(total, static_cast<int64_t>(kBucketFloats))},
                           torch::TensorOptions().dtype(torch::kFloat32).pinned_memory(true));
    }
  }

  // zero_grad for every parameter at once (the views stay the gradients).
  void Zero() {
    if (flat_.defined()) flat_.zero_();
  }

  Status AllReduce(comm::Communicator& communicator) {
    if (!flat_.defined()) return Status::OK();
    const int64_t total = flat_.numel();
    for (int64_t offset = 0; offset < total; offset += static_cast<int64_t>(kBucketFloats)) {
      const int64_t n = std::min<int64_t>(total - offset, static_cast<int64_t>(kBucketFloats));
      torch::Tensor bucket = flat_.narrow(0, offset, n);
      torch::Tensor host = flat_.is_cpu() ? bucket : host_.narrow(0, 0, n);
      if (!flat_.is_cpu()) host.copy_(bucket);
      DEEPRC_RETURN_NOT_OK(communicator.AllReduce(
          std::span<float>(host.data_ptr<float>(), static_cast<size_t>(n)), comm::ReduceOp::kSum));
      if (!flat_.is_cpu()) bucket.copy_(host);
    }
    return Status::OK();
  }

 private:
  torch::Tensor flat_;
  torch::Tensor host_;
};

// Sums the step's loss over the ranks together with the ranks' cancellation flags: true in
// `*stop` when any rank was canceled. One collective per step, as before.
Status AllReduceLossAndCancel(comm::Communicator& communicator, double* loss, bool canceled,
                              bool* stop) {
  std::array<double, 2> values{*loss, canceled ? 1.0 : 0.0};
  DEEPRC_RETURN_NOT_OK(communicator.AllReduce(std::span<double>(values), comm::ReduceOp::kSum));
  *loss = values[0];
  *stop = values[1] > 0;
  return Status::OK();
}

// The tensors' values one after another (weights or gradients; an undefined tensor is zeros of
// the shape `like` gives).
std::vector<float> Flatten(const std::vector<torch::Tensor>& tensors) {
  std::vector<float> flat;
  for (const auto& tensor : tensors) {
    torch::Tensor values = tensor.detach().to(torch::kCPU).contiguous();
    flat.insert(flat.end(), values.data_ptr<float>(), values.data_ptr<float>() + values.numel());
  }
  return flat;
}

int64_t CountValues(const std::vector<torch::Tensor>& tensors) {
  int64_t count = 0;
  for (const auto& tensor : tensors) count += tensor.numel();
  return count;
}

// Writes the archive `fill` makes to a temporary file, then renames it to `path`: a checkpoint
// is never half-written.
Status SaveCheckpoint(const std::string& path,
                      const std::function<void(torch::serialize::OutputArchive&)>& fill) {
  const std::string temporary = path + ".tmp";
  try {
    torch::serialize::OutputArchive archive;
    fill(archive);
    archive.save_to(temporary);
  } catch (const c10::Error& error) {
    std::filesystem::remove(temporary);
    return Status::IOError("checkpoint {}: {}", path, error.what_without_backtrace());
  }
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  if (error) return Status::IOError("checkpoint {}: {}", path, error.message());
  return Status::OK();
}

}  // namespace

std::vector<std::string> ForecastModelNames() { return internal::ModelNames(); }

Status CheckDevice(const std::string& device) { return ResolveDevice(device).status(); }
Status CheckBackend(const std::string& backend) { return ResolveBackend(backend); }

struct Forecaster::Impl {
  TrainOptions options;
  std::vector<std::string> exogenous, future;
  std::string model_name;
  internal::ModelDefaults defaults;
  internal::ModelShape shape;
  std::shared_ptr<ForecastModule> model;
  Placement placement;
  // Trainer settings, read once in Make.
  double learning_rate = 1e-3;
  int64_t num_lr_decays = 3;
  int64_t batch_size = 1024;
  ScalerType scaler = ScalerType::kIdentity;
  LossType loss = LossType::kMae;
  double huber_delta = 1;
  int64_t step_size = 1;
  int64_t validation_size = 0;
  int64_t val_check_steps = 100;
  int64_t patience = -1;

  torch::Tensor Loss(const torch::Tensor& output, const torch::Tensor& y,
                     const torch::Tensor& mask) const {
    return MaskedLoss(loss, huber_delta, output, y, mask);
  }

  double ValidationLoss(const WindowSet& windows) {
    torch::NoGradGuard no_grad;
    model->eval();
    Batch batch;
    double total = 0, count = 0;
    const auto& all = windows.validation();
    for (size_t start = 0; start < all.size(); start += 1024) {
      const size_t n = std::min<size_t>(1024, all.size() - start);
      windows.Fill(std::span<const Window>(all.data() + start, n), &batch);
      const torch::Device& device = placement.device;
      torch::Tensor output = model->Forward(ToInput(batch, device));
      torch::Tensor y = FromVector(batch.y, {batch.size, batch.horizon}, device);
      torch::Tensor mask = FromVector(batch.y_mask, {batch.size, batch.horizon}, device);
      const double weight = mask.sum().item<double>();
      total += Loss(output, y, mask).item<double>() * weight;
      count += weight;
    }
    model->train();
    return count > 0 ? total / count : std::numeric_limits<double>::quiet_NaN();
  }

  Result<TrainReport> Fit(const SeriesSet& series, comm::Communicator* communicator,
                          const CancelCheck& canceled) {
    WindowOptions window_options;
    window_options.input_size = options.input_size;
    window_options.horizon = options.horizon;
    window_options.step = step_size;
    window_options.validation_size = validation_size;
    window_options.scaler = scaler;
    DEEPRC_ASSIGN_OR_RAISE(WindowSet windows, WindowSet::Make(series, window_options));
    if (windows.training().empty()) return Status::Invalid("no training windows");
    if (patience > 0 && windows.validation().empty()) {
      return Status::Invalid("early_stop_patience_steps needs val_size > 0");
    }
    const int ranks = communicator ? communicator->size() : 1;
    const int rank = communicator ? communicator->rank() : 0;
    if (batch_size < ranks) {
      return Status::Invalid("batch_size {} is smaller than the {} ranks", batch_size, ranks);
    }
    torch::optim::Adam optimizer(model->parameters(),
                                 torch::optim::AdamOptions(learning_rate));
    GradientBuckets gradients(*model);
    const torch::Device& device = placement.device;
    const int64_t decay_every =
        num_lr_decays > 0 ? std::max<int64_t>(options.max_steps / num_lr_decays, 1)
                          : std::numeric_limits<int64_t>::max();
    // The same seeded order on every rank; rank r takes slice r of each global batch.
    Shuffler shuffler(static_cast<int64_t>(windows.training().size()), options.seed);
    const int64_t slice_begin = batch_size * rank / ranks;
    const int64_t slice_end = batch_size * (rank + 1) / ranks;
    const double weight = static_cast<double>(slice_end - slice_begin) / batch_size;
    TrainReport report;
    report.global_batch = batch_size;
    double best_validation = std::numeric_limits<double>::infinity();
    int64_t checks_without_improvement = 0;
    Batch batch;
    std::vector<Window> local;
    model->train();
    const auto start = std::chrono::steady_clock::now();
    const double cpu_start = ProcessCpuSeconds();
    for (int64_t step = 0; step < options.max_steps; ++step) {
      const double rate = learning_rate * std::pow(0.5, static_cast<double>(step / decay_every));
      for (auto& group : optimizer.param_groups()) {
        static_cast<torch::optim::AdamOptions&>(group.options()).lr(rate);
      }
      const std::vector<int64_t> order = shuffler.Next(batch_size);
      local.clear();
      for (int64_t i = slice_begin; i < slice_end; ++i) local.push_back(windows.training()[order[i]]);
      windows.Fill(local, &batch);
      gradients.Zero();
      ModelInput input = ToInput(batch, device);
      torch::Tensor y = FromVector(batch.y, {batch.size, batch.horizon}, device);
      torch::Tensor mask = FromVector(batch.y_mask, {batch.size, batch.horizon}, device);
      input.y = y;  // teacher forcing (DeepAR)
      torch::Tensor output = model->Forward(input);
      // The global batch's mean loss is the slices' means weighted by their share.
      torch::Tensor loss = Loss(output, y, mask) * weight;
      loss.backward();
      double step_loss = loss.item<double>();
      bool stop = canceled && canceled();
      if (communicator != nullptr && ranks > 1) {
        DEEPRC_RETURN_NOT_OK(gradients.AllReduce(*communicator));
        DEEPRC_RETURN_NOT_OK(AllReduceLossAndCancel(*communicator, &step_loss, stop, &stop));
      }
      if (stop) {
        return Status::Cancelled("{}: training canceled at step {} of {}", model_name, step,
                                 options.max_steps);
      }
      if (!std::isfinite(step_loss)) {
        return Status::Invalid("{}: the training loss is {} at step {} (try a smaller "
                               "learning_rate or another scaler)",
                               model_name, step_loss, step);
      }
      optimizer.step();
      report.losses.push_back(step_loss);
      report.steps = step + 1;
      if (!windows.validation().empty() && (step + 1) % val_check_steps == 0) {
        const double validation = ValidationLoss(windows);
        report.validation_losses.push_back(validation);
        if (validation < best_validation) {
          best_validation = validation;
          checks_without_improvement = 0;
        } else if (patience > 0 && ++checks_without_improvement >= patience) {
          break;
        }
      }
    }
    report.train_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    report.cpu_seconds = ProcessCpuSeconds() - cpu_start;
    report.samples_per_s = report.train_seconds > 0
                               ? static_cast<double>(report.steps * batch_size) /
                                     report.train_seconds
                               : 0;
    return report;
  }

  Result<Forecast> Predict(const SeriesSet& series, const SeriesSet* ahead) {
    // Forecast windows need no target, so series of any length are accepted here.
    DEEPRC_ASSIGN_OR_RAISE(WindowSet windows, WindowSet::Make(series, {.input_size = options.input_size,
                                                                   .horizon = options.horizon,
                                                                   .scaler = scaler,
                                                                   .forecast_only = true},
                                                              ahead));
    torch::NoGradGuard no_grad;
    model->eval();
    Forecast forecast;
    forecast.series = series.num_series();
    forecast.horizon = options.horizon;
    const std::vector<Window> all = windows.ForecastWindows();
    Batch batch;
    for (size_t start = 0; start < all.size(); start += 1024) {
      const size_t n = std::min<size_t>(1024, all.size() - start);
      windows.Fill(std::span<const Window>(all.data() + start, n), &batch);
      // Unscaled on the host: the forecast is read from there.
      torch::Tensor output =
          model->Forward(ToInput(batch, placement.device)).to(torch::kCPU, torch::kFloat64);
      torch::Tensor loc = torch::tensor(std::vector<double>(batch.loc.begin(), batch.loc.end()))
                              .unsqueeze(1);
      torch::Tensor scale =
          torch::tensor(std::vector<double>(batch.scale.begin(), batch.scale.end())).unsqueeze(1);
      torch::Tensor mean = (output.select(2, 0) * scale + loc).contiguous();
      const double* values = mean.data_ptr<double>();
      forecast.mean.insert(forecast.mean.end(), values, values + mean.numel());
      if (loss == LossType::kNormal) {
        torch::Tensor spread =
            (torch::softplus(output.select(2, 1)) + kMinNormalScale) * scale * kZ80;
        torch::Tensor lo = (mean - spread).contiguous(), hi = (mean + spread).contiguous();
        forecast.lo.insert(forecast.lo.end(), lo.data_ptr<double>(),
                           lo.data_ptr<double>() + lo.numel());
        forecast.hi.insert(forecast.hi.end(), hi.data_ptr<double>(),
                           hi.data_ptr<double>() + hi.numel());
      }
    }
    model->train();
    return forecast;
  }
};

Forecaster::Forecaster(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Forecaster::~Forecaster() = default;

const TrainOptions& Forecaster::options() const { return impl_->options; }
const std::vector<std::string>& Forecaster::exogenous() const { return impl_->exogenous; }
const std::vector<std::string>& Forecaster::future_exogenous() const { return impl_->future; }

Result<std::unique_ptr<Forecaster>> Forecaster::Make(const TrainOptions& options,
                                                     std::vector<std::string> exogenous,
                                                     std::vector<std::string> future) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->exogenous = std::move(exogenous);
  impl->future = std::move(future);
  DEEPRC_ASSIGN_OR_RAISE(impl->defaults, internal::DefaultsOf(options.model));
  if (options.max_steps < 1) {
    return Status::Invalid("max_steps must be at least 1, got {}", options.max_steps);
  }
  internal::Settings settings(options.settings);
  impl->learning_rate = settings.Real("learning_rate", impl->defaults.learning_rate);
  impl->num_lr_decays = settings.Int("num_lr_decays", 3);
  impl->batch_size = settings.Int("batch_size", impl->defaults.windows_batch_size);
  const std::string scaler_name =
      settings.Text("scaler", std::string(ScalerName(impl->defaults.scaler)));
  const std::string loss_name = settings.Text("loss", impl->defaults.loss);
  impl->huber_delta = settings.Real("huber_delta", 1.0);
  impl->step_size = settings.Int("step_size", 1);
  impl->validation_size = settings.Int("val_size", 0);
  impl->val_check_steps = settings.Int("val_check_steps", 100);
  impl->patience = settings.Int("early_stop_patience_steps", -1);
  const int64_t threads = settings.Int("threads", 0);
  // Before the model is built: a device this process cannot use fails here, at start.
  DEEPRC_ASSIGN_OR_RAISE(impl->placement, ReadPlacement(settings));
  DEEPRC_ASSIGN_OR_RAISE(impl->scaler, ParseScaler(scaler_name));
  DEEPRC_ASSIGN_OR_RAISE(impl->loss, ParseLoss(loss_name));
  if (impl->learning_rate <= 0 || impl->batch_size < 1 || impl->val_check_steps < 1 ||
      impl->step_size < 1) {
    return Status::Invalid("learning_rate must be > 0 and batch_size, val_check_steps and "
                           "step_size >= 1");
  }
  impl->shape = {options.input_size, options.horizon,
                 static_cast<int64_t>(impl->exogenous.size()),
                 impl->loss == LossType::kNormal ? 2 : 1,
                 static_cast<int64_t>(impl->future.size())};
  try {
    if (threads > 0) torch::set_num_threads(static_cast<int>(threads));
    torch::manual_seed(options.seed);
    DEEPRC_ASSIGN_OR_RAISE(impl->model,
                           internal::MakeModel(options.model, impl->shape, &settings));
    // Parameters and buffers (bases, positions) move together; every tensor a model makes in
    // its forward takes the input's device.
    impl->model->to(impl->placement.device);
  } catch (const c10::Error& error) {
    return Status::Invalid("{}: LibTorch: {}", options.model, error.what_without_backtrace());
  }
  DEEPRC_RETURN_NOT_OK(settings.Check(options.model));
  impl->model_name = options.model;
  return std::unique_ptr<Forecaster>(new Forecaster(std::move(impl)));
}

// The series carry the exogenous columns the model reads, of each kind, in its order.
static Status CheckExogenous(const SeriesSet& series, const std::vector<std::string>& historical,
                             const std::vector<std::string>& future) {
  if (series.exogenous_names != historical) {
    return Status::Invalid("the series' historical exogenous columns [{}] differ from the "
                           "model's [{}]",
                           fmt::join(series.exogenous_names, ","), fmt::join(historical, ","));
  }
  if (series.future_names != future) {
    return Status::Invalid("the series' future exogenous columns [{}] differ from the model's [{}]",
                           fmt::join(series.future_names, ","), fmt::join(future, ","));
  }
  return Status::OK();
}

Result<TrainReport> Forecaster::Fit(const SeriesSet& series, comm::Communicator* communicator,
                                    const CancelCheck& canceled) {
  DEEPRC_RETURN_NOT_OK(CheckExogenous(series, impl_->exogenous, impl_->future));
  try {
    return impl_->Fit(series, communicator, canceled);
  } catch (const c10::Error& error) {
    return Status::Internal("{}: LibTorch: {}", impl_->model_name, error.what_without_backtrace());
  } catch (const std::exception& error) {
    return Status::Internal("{}: {}", impl_->model_name, error.what());
  }
}

Result<Forecast> Forecaster::Predict(const SeriesSet& series, const SeriesSet* ahead) {
  DEEPRC_RETURN_NOT_OK(CheckExogenous(series, impl_->exogenous, impl_->future));
  if (!impl_->future.empty() && ahead == nullptr) {
    return Status::Invalid("{} reads the future exogenous columns {}: the forecast needs their "
                           "values over the {} dates after each series' end (a test or future "
                           "table)",
                           impl_->model_name, fmt::join(impl_->future, ", "),
                           impl_->options.horizon);
  }
  try {
    return impl_->Predict(series, impl_->future.empty() ? nullptr : ahead);
  } catch (const c10::Error& error) {
    return Status::Internal("{}: LibTorch: {}", impl_->model_name, error.what_without_backtrace());
  }
}

Status Forecaster::Save(const std::string& path) const {
  return SaveCheckpoint(path, [&](torch::serialize::OutputArchive& archive) {
    archive.write("deeprc_model", torch::IValue(impl_->model_name));
    // What Restore needs to build the same model again.
    const TrainOptions& options = impl_->options;
    const nlohmann::json described = {{"model", options.model},
                                      {"horizon", options.horizon},
                                      {"input_size", options.input_size},
                                      {"max_steps", options.max_steps},
                                      {"seed", options.seed},
                                      {"settings", WithoutPlacement(options.settings)},
                                      {"exogenous", impl_->exogenous},
                                      {"future_exogenous", impl_->future}};
    archive.write("deeprc_options", torch::IValue(described.dump()));
    impl_->model->save(archive);
  });
}

Status Forecaster::Load(const std::string& path) {
  try {
    torch::serialize::InputArchive archive;
    // Read to the host (a checkpoint written from a GPU loads anywhere), then moved.
    archive.load_from(path, torch::kCPU);
    torch::IValue name;
    if (!archive.try_read("deeprc_model", name) || !name.isString()) {
      return Status::Invalid("checkpoint {}: not a deeprc model checkpoint", path);
    }
    if (name.toStringRef() != impl_->model_name) {
      return Status::Invalid("checkpoint {} holds model {}, not {}", path, name.toStringRef(),
                             impl_->model_name);
    }
    impl_->model->load(archive);
    impl_->model->to(impl_->placement.device);
  } catch (const c10::Error& error) {
    return Status::IOError("checkpoint {}: {}", path, error.what_without_backtrace());
  }
  return Status::OK();
}

Result<std::unique_ptr<Forecaster>> Forecaster::Restore(
    const std::string& path, const std::map<std::string, std::string>& overrides) {
  TrainOptions options;
  std::vector<std::string> exogenous, future;
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    torch::IValue described;
    if (!archive.try_read("deeprc_options", described) || !described.isString()) {
      return Status::Invalid(
          "checkpoint {}: holds no model options (not written by "
          "Forecaster::Save)",
          path);
    }
    const nlohmann::json json = nlohmann::json::parse(described.toStringRef());
    options.model = json.at("model").get<std::string>();
    options.horizon = json.at("horizon").get<int64_t>();
    options.input_size = json.at("input_size").get<int64_t>();
    options.max_steps = json.at("max_steps").get<int64_t>();
    options.seed = json.at("seed").get<uint64_t>();
    options.settings = json.at("settings").get<std::map<std::string, std::string>>();
    exogenous = json.at("exogenous").get<std::vector<std::string>>();
    // Checkpoints from before future exogenous columns have none.
    future = json.value("future_exogenous", std::vector<std::string>{});
  } catch (const c10::Error& error) {
    return Status::IOError("checkpoint {}: {}", path, error.what_without_backtrace());
  } catch (const nlohmann::json::exception& error) {
    return Status::Invalid("checkpoint {}: malformed model options: {}", path, error.what());
  }
  for (const auto& [key, value] : overrides) options.settings[key] = value;
  DEEPRC_ASSIGN_OR_RAISE(auto forecaster, Make(options, std::move(exogenous), std::move(future)));
  DEEPRC_RETURN_NOT_OK(forecaster->Load(path));
  return forecaster;
}

std::vector<float> Forecaster::FlatParameters() const {
  return Flatten(impl_->model->parameters());
}

std::string Forecaster::device() const { return impl_->placement.device.str(); }

int64_t Forecaster::ParameterCount() const {
  int64_t count = 0;
  for (const auto& parameter : impl_->model->parameters()) count += parameter.numel();
  return count;
}

// ---------------------------------------------------------------------------------------------
// The hydrology model's trainer: the same Adam, StepLR, seeded batches, masked losses and
// data-parallel gradient sums as the Forecaster, over a HydroDataset's samples.

struct HydroModel::Impl {
  std::shared_ptr<internal::HydroModule> model;
  std::map<std::string, std::string> settings;  // as given to Make, for checkpoints
  int64_t features = 0;
  int64_t epochs = 12;
  int64_t batch_size = 32;
  double learning_rate = 1e-3;
  int64_t num_lr_decays = 3;
  LossType loss = LossType::kMse;
  uint64_t seed = 1;
  Placement placement;

  // Output [B, 1, 1], y and mask [B, 1] of the given samples.
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> Run(const HydroDataset& data,
                                                              std::span<const int64_t> samples) {
    std::vector<float> x, y, mask;
    data.Fill(samples, &x, &y, &mask);
    const int64_t n = static_cast<int64_t>(samples.size());
    const torch::Device& device = placement.device;
    torch::Tensor output =
        model->Forward(FromVector(x, {n, data.sequence_length(), features}, device)).unsqueeze(1);
    return {output, FromVector(y, {n, 1}, device), FromVector(mask, {n, 1}, device)};
  }

  Result<TrainReport> Fit(const HydroDataset& data, comm::Communicator* communicator,
                          const CancelCheck& canceled) {
    if (data.features() != features) {
      return Status::Invalid("hydro: the model reads {} forcings, the dataset has {}", features,
                             data.features());
    }
    const int ranks = communicator ? communicator->size() : 1;
    const int rank = communicator ? communicator->rank() : 0;
    if (batch_size < ranks) {
      return Status::Invalid("batch_size {} is smaller than the {} ranks", batch_size, ranks);
    }
    const int64_t samples = static_cast<int64_t>(data.training().size());
    const int64_t steps = epochs * ((samples + batch_size - 1) / batch_size);
    const int64_t decay_every = num_lr_decays > 0
                                    ? std::max<int64_t>(steps / num_lr_decays, 1)
                                    : std::numeric_limits<int64_t>::max();
    torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(learning_rate));
    GradientBuckets gradients(*model);
    Shuffler shuffler(samples, seed);
    const int64_t slice_begin = batch_size * rank / ranks;
    const int64_t slice_end = batch_size * (rank + 1) / ranks;
    // Each rank's mean loss weighs by its share of the global batch's observed targets, so the
    // sum over ranks is the global batch's masked mean.
    TrainReport report;
    report.global_batch = batch_size;
    std::vector<int64_t> local;
    model->train();
    const auto start = std::chrono::steady_clock::now();
    for (int64_t step = 0; step < steps; ++step) {
      const double rate = learning_rate * std::pow(0.5, static_cast<double>(step / decay_every));
      for (auto& group : optimizer.param_groups()) {
        static_cast<torch::optim::AdamOptions&>(group.options()).lr(rate);
      }
      const std::vector<int64_t> order = shuffler.Next(batch_size);
      local.clear();
      double observed = 0;
      for (int64_t i = 0; i < batch_size; ++i) {
        const int64_t day = data.training()[order[i]];
        if (!std::isnan(data.Observed(day))) observed += 1;
        if (i >= slice_begin && i < slice_end) local.push_back(day);
      }
      gradients.Zero();
      auto [output, y, mask] = Run(data, local);
      const double local_observed = mask.sum().item<double>();
      const double weight = observed > 0 ? local_observed / observed : 0;
      torch::Tensor step_loss_tensor = MaskedLoss(loss, 1.0, output, y, mask) * weight;
      step_loss_tensor.backward();
      double step_loss = step_loss_tensor.item<double>();
      bool stop = canceled && canceled();
      if (communicator != nullptr && ranks > 1) {
        DEEPRC_RETURN_NOT_OK(gradients.AllReduce(*communicator));
        DEEPRC_RETURN_NOT_OK(AllReduceLossAndCancel(*communicator, &step_loss, stop, &stop));
      }
      if (stop) {
        return Status::Cancelled("hydro: training canceled at step {} of {}", step, steps);
      }
      if (!std::isfinite(step_loss)) {
        return Status::Invalid("hydro: the training loss is {} at step {} (try a smaller "
                               "learning_rate)",
                               step_loss, step);
      }
      optimizer.step();
      report.losses.push_back(step_loss);
      report.steps = step + 1;
    }
    report.train_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    report.samples_per_s =
        report.train_seconds > 0
            ? static_cast<double>(report.steps * batch_size) / report.train_seconds
            : 0;
    return report;
  }

  std::vector<double> Predict(const HydroDataset& data, std::span<const int64_t> samples) {
    torch::NoGradGuard no_grad;
    model->eval();
    std::vector<double> predicted;
    predicted.reserve(samples.size());
    for (size_t start = 0; start < samples.size(); start += 1024) {
      const size_t n = std::min<size_t>(1024, samples.size() - start);
      torch::Tensor output = std::get<0>(Run(data, samples.subspan(start, n)))
                                 .reshape({-1})
                                 .to(torch::kCPU)
                                 .contiguous();
      for (int64_t i = 0; i < output.numel(); ++i) {
        predicted.push_back(data.ToStreamflow(output[i].item<double>()));
      }
    }
    model->train();
    return predicted;
  }
};

HydroModel::HydroModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HydroModel::~HydroModel() = default;

Result<std::unique_ptr<HydroModel>> HydroModel::Make(
    int64_t features, const std::map<std::string, std::string>& values, uint64_t seed) {
  if (features < 1) return Status::Invalid("hydro: needs at least one forcing, got {}", features);
  auto impl = std::make_unique<Impl>();
  internal::Settings settings(values);
  impl->features = features;
  impl->seed = seed;
  impl->settings = values;
  const int64_t hidden = settings.Int("hidden", 320);
  const double dropout = settings.Real("dropout", 0.0);
  impl->epochs = settings.Int("epochs", 12);
  impl->batch_size = settings.Int("batch_size", 32);
  impl->learning_rate = settings.Real("learning_rate", 1e-3);
  impl->num_lr_decays = settings.Int("num_lr_decays", 3);
  const std::string loss_name = settings.Text("loss", "MSE");
  const int64_t threads = settings.Int("threads", 0);
  DEEPRC_ASSIGN_OR_RAISE(impl->placement, ReadPlacement(settings));
  DEEPRC_RETURN_NOT_OK(settings.Check("hydro"));
  DEEPRC_ASSIGN_OR_RAISE(impl->loss, ParseLoss(loss_name));
  if (impl->loss == LossType::kNormal) {
    return Status::Invalid("hydro: loss Normal is not offered (one output per day): use MSE, MAE "
                           "or Huber");
  }
  if (hidden < 1 || impl->epochs < 1 || impl->batch_size < 1 || impl->learning_rate <= 0 ||
      dropout < 0 || dropout >= 1) {
    return Status::Invalid("hydro: hidden, epochs and batch_size must be >= 1, learning_rate > 0 "
                           "and dropout in [0, 1)");
  }
  try {
    if (threads > 0) torch::set_num_threads(static_cast<int>(threads));
    torch::manual_seed(seed);
    impl->model = std::make_shared<internal::HydroModule>(features, hidden, 1, dropout);
    impl->model->to(impl->placement.device);
  } catch (const c10::Error& error) {
    return Status::Invalid("hydro: LibTorch: {}", error.what_without_backtrace());
  }
  return std::unique_ptr<HydroModel>(new HydroModel(std::move(impl)));
}

Result<TrainReport> HydroModel::Fit(const HydroDataset& data, comm::Communicator* communicator,
                                    const CancelCheck& canceled) {
  try {
    return impl_->Fit(data, communicator, canceled);
  } catch (const c10::Error& error) {
    return Status::Internal("hydro: LibTorch: {}", error.what_without_backtrace());
  }
}

Result<std::vector<double>> HydroModel::Predict(const HydroDataset& data,
                                                std::span<const int64_t> samples) {
  if (data.features() != impl_->features) {
    return Status::Invalid("hydro: the model reads {} forcings, the dataset has {}",
                           impl_->features, data.features());
  }
  try {
    return impl_->Predict(data, samples);
  } catch (const c10::Error& error) {
    return Status::Internal("hydro: LibTorch: {}", error.what_without_backtrace());
  }
}

Result<std::pair<double, std::vector<float>>> HydroModel::LossGradient(
    const HydroDataset& data, std::span<const int64_t> samples) {
  try {
    impl_->model->zero_grad();
    auto [output, y, mask] = impl_->Run(data, samples);
    torch::Tensor loss = MaskedLoss(impl_->loss, 1.0, output, y, mask);
    loss.backward();
    std::vector<torch::Tensor> gradients;
    for (auto& parameter : impl_->model->parameters()) {
      gradients.push_back(parameter.grad().defined() ? parameter.grad()
                                                     : torch::zeros_like(parameter));
    }
    std::pair<double, std::vector<float>> result{loss.item<double>(), Flatten(gradients)};
    impl_->model->zero_grad();
    return result;
  } catch (const c10::Error& error) {
    return Status::Internal("hydro: LibTorch: {}", error.what_without_backtrace());
  }
}

// The checkpoint names its model "hydro" and holds the settings as "key=value" strings.
constexpr const char* kHydroModelName = "hydro";

Status HydroModel::Save(const std::string& path) const {
  return SaveCheckpoint(path, [&](torch::serialize::OutputArchive& archive) {
    archive.write("deeprc_model", torch::IValue(std::string(kHydroModelName)));
    archive.write("hydro_features", torch::IValue(impl_->features));
    archive.write("hydro_seed", torch::IValue(static_cast<int64_t>(impl_->seed)));
    c10::List<std::string> settings;
    for (const auto& [key, value] : WithoutPlacement(impl_->settings)) {
      settings.push_back(key + "=" + value);
    }
    archive.write("hydro_settings", torch::IValue(settings));
    impl_->model->save(archive);
  });
}

Result<std::unique_ptr<HydroModel>> HydroModel::Restore(
    const std::string& path, const std::map<std::string, std::string>& overrides) {
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path, torch::kCPU);
    torch::IValue name, features, seed, listed;
    if (!archive.try_read("deeprc_model", name) || !name.isString() ||
        name.toStringRef() != kHydroModelName || !archive.try_read("hydro_features", features) ||
        !archive.try_read("hydro_seed", seed) || !archive.try_read("hydro_settings", listed)) {
      return Status::Invalid("checkpoint {}: not a hydrology model checkpoint", path);
    }
    std::map<std::string, std::string> settings;
    for (const auto& entry : listed.toList()) {
      const std::string text = entry.get().toStringRef();
      const size_t equals = text.find('=');
      settings[text.substr(0, equals)] = equals == std::string::npos ? "" : text.substr(equals + 1);
    }
    for (const auto& [key, value] : overrides) settings[key] = value;
    DEEPRC_ASSIGN_OR_RAISE(auto model,
                           Make(features.toInt(), settings, static_cast<uint64_t>(seed.toInt())));
    model->impl_->model->load(archive);
    model->impl_->model->to(model->impl_->placement.device);
    return model;
  } catch (const c10::Error& error) {
    return Status::IOError("checkpoint {}: {}", path, error.what_without_backtrace());
  }
}

int64_t HydroModel::ParameterCount() const { return CountValues(impl_->model->parameters()); }
std::vector<float> HydroModel::FlatParameters() const {
  return Flatten(impl_->model->parameters());
}

Result<HydroScore> EvaluateHydro(HydroModel& model, const HydroDataset& data,
                                 std::span<const int64_t> samples) {
  HydroScore score;
  DEEPRC_ASSIGN_OR_RAISE(score.predicted, model.Predict(data, samples));
  std::vector<double> observed, predicted;
  for (size_t i = 0; i < samples.size(); ++i) {
    const double value = data.Observed(samples[i]);
    if (std::isnan(value)) continue;
    observed.push_back(value);
    predicted.push_back(score.predicted[i]);
  }
  if (observed.empty()) {
    return Status::Invalid("basin {}: no observed streamflow among the {} days scored",
                           data.basin(), samples.size());
  }
  score.samples = static_cast<int64_t>(observed.size());
  DEEPRC_ASSIGN_OR_RAISE(score.nse, Nse(observed, predicted));
  return score;
}

}  // namespace deeprc::train
