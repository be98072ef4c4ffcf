#include "deeprc/runtime/simulation.h"

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <chrono>
#include <cstring>
#include <functional>
#include <span>

#include <fmt/format.h>

#include "deeprc/core/random.h"

namespace deeprc::runtime {
namespace {

// The task-completion events: a monotone priority queue (no event is ever earlier than the last
// one taken), kept as a radix heap — pushes are appends, and each event moves down at most 64
// buckets over its life. Much kinder to the cache than a binary heap of 640,000 events.
// Times are non-negative doubles, whose bit patterns order like the numbers.
class CompletionQueue {
 public:
  bool empty() const { return size_ == 0; }

  void Push(double time, TaskId task) {
    const uint64_t key = KeyOf(time);
    buckets_[BucketOf(key)].push_back({key, task});
    ++size_;
  }

  // Takes every event of the earliest time into `tasks` and returns that time.
  double PopEarliest(std::vector<TaskId>* tasks) {
    if (buckets_[0].empty()) {
      size_t index = 1;
      while (buckets_[index].empty()) ++index;
      auto& bucket = buckets_[index];
      uint64_t smallest = UINT64_MAX;
      for (const auto& event : bucket) smallest = std::min(smallest, event.key);
      last_ = smallest;
      for (const auto& event : bucket) buckets_[BucketOf(event.key)].push_back(event);
      bucket.clear();
    }
    tasks->clear();
    for (const auto& event : buckets_[0]) tasks->push_back(event.task);
    size_ -= buckets_[0].size();
    buckets_[0].clear();
    double time;
    std::memcpy(&time, &last_, sizeof(time));
    return time;
  }

 private:
  struct Event {
    uint64_t key;
    TaskId task;
  };
  static uint64_t KeyOf(double time) {
    uint64_t key;
    std::memcpy(&key, &time, sizeof(key));
    return key;
  }
  size_t BucketOf(uint64_t key) const {
    return key == last_ ? 0 : 64 - static_cast<size_t>(std::countl_zero(key ^ last_));
  }

  std::array<std::vector<Event>, 65> buckets_;
  uint64_t last_ = 0;
  size_t size_ = 0;
};

// Sums over a multiset of durations drawn from a fixed list: insert by rank (the list sorted
// ascending), and the sum of the `count` smallest inserted so far.
class RankedSums {
 public:
  explicit RankedSums(size_t size) : counts_(size + 1), sums_(size + 1) {
    while ((size_t{1} << levels_) <= size) ++levels_;
  }
  void Clear() {
    std::fill(counts_.begin(), counts_.end(), 0);
    std::fill(sums_.begin(), sums_.end(), 0.0);
    size_ = 0;
    total_ = 0;
  }
  void Insert(size_t rank, double value) {
    for (size_t at = rank + 1; at < counts_.size(); at += at & (~at + 1)) {
      ++counts_[at];
      sums_[at] += value;
    }
    ++size_;
    total_ += value;
  }
  int64_t size() const { return size_; }
  // The sum of the `count` smallest (0 <= count <= size()).
  double Smallest(int64_t count) const {
    size_t at = 0;
    double sum = 0;
    for (int level = levels_; level >= 0; --level) {
      const size_t next = at + (size_t{1} << level);
      if (next < counts_.size() && counts_[next] <= count) {
        at = next;
        count -= counts_[next];
        sum += sums_[next];
      }
    }
    return sum;
  }
  // The sum of the `count` largest.
  double Largest(int64_t count) const { return total_ - Smallest(size_ - count); }

 private:
  std::vector<int64_t> counts_;
  std::vector<double> sums_;
  int levels_ = 0;
  int64_t size_ = 0;
  double total_ = 0;
};

}  // namespace

double WindowBound(std::span<const double> duration, std::span<const double> head,
                   std::span<const double> tail, std::span<const int64_t> cores,
                   int64_t total_cores) {
  const size_t count = duration.size();
  if (count == 0 || total_cores <= 0) return 0;
  const auto m = static_cast<double>(total_cores);
  // Each single-core task's rank among the single-core durations (ties broken by index, so
  // every task has its own rank).
  std::vector<uint32_t> by_duration;
  for (size_t task = 0; task < count; ++task) {
    if (cores[task] == 1) by_duration.push_back(static_cast<uint32_t>(task));
  }
  std::sort(by_duration.begin(), by_duration.end(),
            [&](uint32_t a, uint32_t b) { return duration[a] < duration[b]; });
  std::vector<uint32_t> rank(count, UINT32_MAX);
  for (size_t at = 0; at < by_duration.size(); ++at) rank[by_duration[at]] = at;
  std::vector<uint32_t> by_tail(count);
  for (size_t task = 0; task < count; ++task) by_tail[task] = static_cast<uint32_t>(task);
  std::sort(by_tail.begin(), by_tail.end(),
            [&](uint32_t a, uint32_t b) { return tail[a] > tail[b]; });
  std::vector<double> heads(head.begin(), head.end());
  std::sort(heads.begin(), heads.end(), std::greater<>());
  heads.erase(std::unique(heads.begin(), heads.end()), heads.end());
  // O(thresholds × tasks × log tasks): beyond ~4·10^7 steps, every k-th threshold (any subset
  // of thresholds gives a valid bound; the smallest head, which admits every task, is kept).
  const size_t stride = std::max<size_t>(1, heads.size() * count / 40'000'000);
  RankedSums singles(by_duration.size());
  double bound = 0;
  for (size_t at = 0; at < heads.size(); at += stride) {
    const double from = at + stride < heads.size() ? heads[at] : heads.back();
    singles.Clear();
    double work = 0;
    for (size_t next = 0; next < count;) {
      // Add every task of the window with the next tail value, then bound the window.
      const double to = tail[by_tail[next]];
      for (; next < count && tail[by_tail[next]] == to; ++next) {
        const uint32_t task = by_tail[next];
        if (head[task] < from) continue;
        work += duration[task] * static_cast<double>(cores[task]);
        if (rank[task] != UINT32_MAX) singles.Insert(rank[task], duration[task]);
      }
      double busy = work / m;
      // n single-core tasks on m cores with n = q·m + r: some core runs k + 1 of any k·m + 1
      // of them (take the largest), and the r fullest cores run at least r·(q + 1) of them
      // (so one of those cores is busy for the r·(q + 1) smallest ÷ r).
      const int64_t n = singles.size();
      const int64_t q = n / total_cores, r = n % total_cores;
      // k = 1..8 and the largest k (each is a valid bound; all of them would cost q per window).
      for (int64_t k = 1; k <= q; k = (k < 8 || k == q) ? k + 1 : q) {
        if (k * total_cores == n) break;
        const int64_t among = k * total_cores + 1;
        busy = std::max(busy, singles.Largest(among) - singles.Largest(among - k - 1));
      }
      if (q >= 1 && r > 0) busy = std::max(busy, singles.Smallest(r * (q + 1)) / r);
      if (work > 0) bound = std::max(bound, from + busy + to);
    }
  }
  return bound;
}

std::string SimulationResult::ToJson() const {
  return fmt::format(
      "{{\"makespan_s\": {:.6g}, \"lower_bound_s\": {:.6g}, \"utilization\": {:.6f}, "
      "\"decisions_per_s\": {:.0f}, \"tasks\": {}, \"done\": {}, \"failed\": {}, "
      "\"ratio_to_lower_bound\": {:.4f}, \"critical_path_s\": {:.6g}, \"work_bound_s\": {:.6g}, "
      "\"window_bound_s\": {:.6g}, "
      "\"gpu_utilization\": {:.6f}, \"decisions\": {}, \"wall_s\": {:.3f}}}",
      makespan_s, lower_bound_s, utilization, decisions_per_s, tasks, done, failed,
      lower_bound_s > 0 ? makespan_s / lower_bound_s : 0.0, critical_path_s, work_bound_s,
      window_bound_s, gpu_utilization, decisions, wall_s);
}

Result<SimulationResult> Simulate(std::vector<NodeResources> nodes, const Workload& workload,
                                  SchedulerOptions options) {
  if (workload.count < 0 || workload.count >= UINT32_MAX) {
    return Status::Invalid("a simulation takes 0 to {} tasks, not {}", UINT32_MAX - 1,
                           workload.count);
  }
  DEEPRC_ASSIGN_OR_RAISE(ResourceManager resources, ResourceManager::Make(std::move(nodes)));
  const int64_t total_cores = resources.total_cores();
  const int64_t total_gpus = resources.total_gpus();
  const auto wall_start = std::chrono::steady_clock::now();
  Scheduler scheduler(std::move(resources), options);

  SimulationResult result;
  result.tasks = workload.count;
  const auto count = static_cast<size_t>(workload.count);
  std::vector<double> duration(count);
  std::vector<double> path_end(count);  // longest chain of durations ending with the task
  std::vector<double> head(count);      // longest chain before the task
  std::vector<int64_t> task_cores(count);
  std::vector<std::pair<TaskId, TaskId>> edges;  // (task, one it comes after), in task order
  double core_seconds = 0;
  double gpu_seconds = 0;
  // Submission in chunks: a bounded buffer however many tasks there are.
  constexpr int64_t kChunk = 1 << 16;
  std::vector<TaskRequest> chunk;
  for (int64_t begin = 0; begin < workload.count; begin += kChunk) {
    const int64_t end = std::min(workload.count, begin + kChunk);
    chunk.assign(static_cast<size_t>(end - begin), TaskRequest{});
    for (int64_t index = begin; index < end; ++index) {
      TaskRequest& request = chunk[index - begin];
      double seconds = 0;
      workload.task(index, &request, &seconds);
      if (!(seconds >= 0)) {
        return Status::Invalid("task {}: duration must be a non-negative number", index);
      }
      double start = 0;
      for (TaskId before : request.after) {
        if (before >= index) {
          return Status::Invalid("task {}: after may only name earlier tasks, found {}", index,
                                 before);
        }
        start = std::max(start, path_end[before]);
        edges.emplace_back(static_cast<TaskId>(index), before);
      }
      duration[index] = seconds;
      head[index] = start;
      task_cores[index] = request.resources.total_cores();
      path_end[index] = start + seconds;
      result.critical_path_s = std::max(result.critical_path_s, path_end[index]);
      core_seconds += seconds * static_cast<double>(request.resources.total_cores());
      gpu_seconds += seconds * static_cast<double>(request.resources.total_gpus());
    }
    DEEPRC_RETURN_NOT_OK(scheduler.Submit(std::span<const TaskRequest>(chunk)).status());
  }
  std::vector<double>().swap(path_end);
  chunk = {};

  CompletionQueue events;
  std::vector<TaskId> ended;
  std::vector<TaskId> started;
  std::vector<TaskFailure> failed;
  double clock = 0;
  double busy_core_seconds = 0;
  double busy_gpu_seconds = 0;
  while (true) {
    started.clear();
    failed.clear();
    scheduler.Schedule(&started, &failed);
    result.decisions += static_cast<int64_t>(started.size() + failed.size());
    result.failed += static_cast<int64_t>(failed.size());
    for (TaskId task : started) {
      const Allocation& allocation = scheduler.allocation(task);
      const double seconds = duration[task];
      busy_core_seconds +=
          seconds * allocation.ranks() * static_cast<double>(allocation.cores(0).size());
      busy_gpu_seconds +=
          seconds * allocation.ranks() * static_cast<double>(allocation.gpus(0).size());
      events.Push(clock + seconds, task);
    }
    if (events.empty()) break;
    clock = events.PopEarliest(&ended);
    for (TaskId task : ended) {
      DEEPRC_RETURN_NOT_OK(scheduler.Finish(task, TaskState::kDone));
    }
    result.done += static_cast<int64_t>(ended.size());
  }
  if (scheduler.waiting_count() > 0) {
    return Status::Internal("simulation stuck at {} s: {} tasks wait on an idle pilot", clock,
                            scheduler.waiting_count());
  }
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  result.makespan_s = clock;
  result.work_bound_s = total_cores > 0 ? core_seconds / static_cast<double>(total_cores) : 0;
  if (total_gpus > 0) {
    result.work_bound_s =
        std::max(result.work_bound_s, gpu_seconds / static_cast<double>(total_gpus));
  }
  // The longest chain after each task: children have larger ids, so a backward pass sees every
  // child of a task before the task.
  std::vector<double> tail(count, 0.0);
  for (auto edge = edges.rbegin(); edge != edges.rend(); ++edge) {
    tail[edge->second] = std::max(tail[edge->second], duration[edge->first] + tail[edge->first]);
  }
  edges = {};
  result.window_bound_s = WindowBound(duration, head, tail, task_cores, total_cores);
  result.lower_bound_s =
      std::max({result.critical_path_s, result.work_bound_s, result.window_bound_s});
  if (clock > 0) {
    result.utilization = busy_core_seconds / (static_cast<double>(total_cores) * clock);
    if (total_gpus > 0) {
      result.gpu_utilization = busy_gpu_seconds / (static_cast<double>(total_gpus) * clock);
    }
  }
  result.wall_s = wall;
  result.decisions_per_s = wall > 0 ? static_cast<double>(result.decisions) / wall : 0;
  return result;
}

namespace {

double Uniform(uint64_t seed, int64_t index, uint64_t stream) {
  const uint64_t bits =
      SplitMix64(seed ^ SplitMix64(static_cast<uint64_t>(index) * 4 + stream));
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

}  // namespace

Result<std::vector<std::pair<int32_t, double>>> ParseSizeMix(std::string_view text) {
  std::vector<std::pair<int32_t, double>> sizes;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    const std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    const size_t colon = item.find(':');
    int32_t cores = 0;
    double weight = 1;
    const std::string_view cores_text = item.substr(0, colon);
    auto [end, error] =
        std::from_chars(cores_text.data(), cores_text.data() + cores_text.size(), cores);
    bool ok = error == std::errc() && end == cores_text.data() + cores_text.size() && cores > 0;
    if (ok && colon != std::string_view::npos) {
      const std::string_view weight_text = item.substr(colon + 1);
      auto [weight_end, weight_error] =
          std::from_chars(weight_text.data(), weight_text.data() + weight_text.size(), weight);
      ok = weight_error == std::errc() && weight_end == weight_text.data() + weight_text.size() &&
           weight > 0;
    }
    if (!ok) {
      return Status::Invalid("--mix: expected CORES:WEIGHT items such as 1:6,8:3,64:1, found '{}'",
                             item);
    }
    sizes.emplace_back(cores, weight);
  }
  if (sizes.empty()) return Status::Invalid("--mix: no task sizes given");
  return sizes;
}

Result<Workload> SyntheticWorkload(const SyntheticWorkloadOptions& options) {
  if (options.tasks < 0) return Status::Invalid("--tasks must not be negative");
  if (!(options.duration_s > 0)) return Status::Invalid("--duration must be positive");
  if (!(options.duration_spread >= 0 && options.duration_spread < 1)) {
    return Status::Invalid("--duration-spread must be in [0, 1)");
  }
  if (!(options.gpu_fraction >= 0 && options.gpu_fraction <= 1)) {
    return Status::Invalid("--gpu-fraction must be in [0, 1]");
  }
  if (options.sizes.empty()) return Status::Invalid("--mix: no task sizes given");
  // Cumulative weights, for picking a size with one uniform number.
  std::vector<double> cumulative;
  double sum = 0;
  for (const auto& [cores, weight] : options.sizes) {
    if (cores <= 0 || !(weight > 0))
      return Status::Invalid("--mix: cores and weights must be positive");
    sum += weight;
    cumulative.push_back(sum);
  }
  Workload workload;
  workload.count = options.tasks;
  workload.task = [options, cumulative, sum](int64_t index, TaskRequest* request,
                                             double* duration) {
    const double pick = Uniform(options.seed, index, 0) * sum;
    size_t size = 0;
    while (size + 1 < cumulative.size() && pick >= cumulative[size]) ++size;
    request->resources.cores_per_rank = options.sizes[size].first;
    if (options.gpu_fraction > 0 && Uniform(options.seed, index, 1) < options.gpu_fraction) {
      request->resources.gpus_per_rank = options.gpus_per_task;
    }
    *duration = options.duration_s;
    if (options.duration_spread > 0) {
      *duration *= 1 + options.duration_spread * (2 * Uniform(options.seed, index, 2) - 1);
    }
  };
  return workload;
}

}  // namespace deeprc::runtime
