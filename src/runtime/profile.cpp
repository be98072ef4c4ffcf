#include "deeprc/runtime/profile.h"

#include <algorithm>
#include <fstream>
#include <unordered_map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace deeprc::runtime {
namespace {

double Median(std::vector<int64_t> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return static_cast<double>(values[values.size() / 2]);
}

double Mean(const std::vector<int64_t>& values) {
  if (values.empty()) return 0;
  double sum = 0;
  for (int64_t value : values) sum += static_cast<double>(value);
  return sum / static_cast<double>(values.size());
}

std::string XmlEscape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

struct Transition {
  TaskState state;
  int64_t time_us;
};

}  // namespace

Result<SessionProfile> AnalyzeSession(const std::string& session_dir) {
  const std::string path = session_dir + "/events.jsonl";
  std::ifstream in(path);
  if (!in)
    return Status::IOError("{}: cannot open (is {} a session directory?)", path, session_dir);
  SessionProfile profile;
  std::unordered_map<std::string, size_t> index;
  std::vector<std::vector<Transition>> transitions;
  auto task_of = [&](const std::string& uid) -> size_t {
    auto [it, inserted] = index.emplace(uid, profile.tasks.size());
    if (inserted) {
      profile.tasks.push_back(TaskProfile{});
      profile.tasks.back().uid = uid;
      transitions.emplace_back();
    }
    return it->second;
  };
  std::string line;
  int64_t line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.empty()) continue;
    try {
      const nlohmann::json event = nlohmann::json::parse(line);
      const std::string entity = event.at("entity").get<std::string>();
      if (entity == "task") {
        DEEPRC_ASSIGN_OR_RAISE(TaskState state,
                               ParseTaskState(event.at("state").get<std::string>()));
        const size_t task = task_of(event.at("uid").get<std::string>());
        transitions[task].push_back({state, event.at("time_us").get<int64_t>()});
      } else if (entity == "placement") {
        TaskProfile& task = profile.tasks[task_of(event.at("uid").get<std::string>())];
        for (const auto& rank : event.at("ranks")) {
          const int32_t node = rank.at("node").get<int32_t>();
          for (const auto& core : rank.at("cores"))
            task.cores.emplace_back(node, core.get<int32_t>());
          for (const auto& gpu : rank.at("gpus")) task.gpus.emplace_back(node, gpu.get<int32_t>());
        }
        if (event.contains("after")) task.after = event.at("after").get<std::vector<std::string>>();
      } else if (entity == "resources") {
        profile.pilot_cores += event.at("cores").get<int64_t>();
        profile.pilot_gpus += event.at("gpus").get<int64_t>();
        profile.pilot_nodes += event.at("nodes").get<int32_t>();
      }
    } catch (const std::exception& error) {
      return Status::Invalid("{}:{}: not an event: {}", path, line_number, error.what());
    }
  }

  std::map<std::string, std::vector<int64_t>> in_state;
  profile.begin_us = INT64_MAX;
  profile.end_us = 0;
  for (size_t t = 0; t < profile.tasks.size(); ++t) {
    TaskProfile& task = profile.tasks[t];
    std::vector<Transition>& events = transitions[t];
    // Lines from several writers may interleave across tasks; per task, time orders them.
    std::stable_sort(events.begin(), events.end(), [](const Transition& a, const Transition& b) {
      return a.time_us < b.time_us;
    });
    for (size_t i = 0; i < events.size(); ++i) {
      const Transition& event = events[i];
      int64_t& entered = task.entered_us[static_cast<int>(event.state)];
      if (entered == 0) entered = event.time_us;
      if (IsFinal(event.state)) {
        task.final_state = event.state;
        task.final_us = event.time_us;
      } else if (i + 1 < events.size()) {
        in_state[std::string(TaskStateName(event.state))].push_back(events[i + 1].time_us -
                                                                    event.time_us);
        if (event.state == TaskState::kExecuting) {
          task.executing_begin_us = event.time_us;
          task.executing_end_us = events[i + 1].time_us;
        }
      }
    }
    if (!events.empty()) profile.begin_us = std::min(profile.begin_us, events.front().time_us);
    if (task.final_us != 0) {
      profile.end_us = std::max(profile.end_us, task.final_us);
      ++profile.final_counts[std::string(TaskStateName(task.final_state))];
    }
  }
  if (profile.begin_us == INT64_MAX) profile.begin_us = 0;
  for (auto& [state, durations] : in_state) {
    int64_t total = 0;
    for (int64_t duration : durations) total += duration;
    profile.time_in_state_us[state] = {total, Mean(durations)};
  }

  const double span_us = static_cast<double>(profile.end_us - profile.begin_us);
  int64_t finals = 0;
  for (const auto& [state, count] : profile.final_counts) finals += count;
  if (span_us > 0) {
    profile.throughput_per_s = static_cast<double>(finals) / (span_us / 1e6);
    double busy = 0;
    for (const TaskProfile& task : profile.tasks) {
      busy += static_cast<double>(task.executing_end_us - task.executing_begin_us) *
              static_cast<double>(task.cores.size());
    }
    if (profile.pilot_cores > 0) {
      profile.utilization = busy / (span_us * static_cast<double>(profile.pilot_cores));
    }
  }

  // Overheads: walk the tasks that executed in order of their start; a core is free again at
  // the final event of the task that held it.
  std::vector<size_t> executed;
  for (size_t t = 0; t < profile.tasks.size(); ++t) {
    if (profile.tasks[t].executing_begin_us != 0) executed.push_back(t);
  }
  std::sort(executed.begin(), executed.end(), [&](size_t a, size_t b) {
    return profile.tasks[a].executing_begin_us < profile.tasks[b].executing_begin_us;
  });
  std::map<std::pair<int32_t, int32_t>, int64_t> core_free_at;
  std::vector<int64_t> start_overheads;
  std::vector<int64_t> end_overheads;
  for (size_t t : executed) {
    const TaskProfile& task = profile.tasks[t];
    int64_t ready = task.entered_us[static_cast<int>(TaskState::kNew)];
    for (const auto& core : task.cores) {
      auto found = core_free_at.find(core);
      if (found != core_free_at.end()) ready = std::max(ready, found->second);
    }
    for (const std::string& uid : task.after) {
      auto found = index.find(uid);
      if (found != index.end()) ready = std::max(ready, profile.tasks[found->second].final_us);
    }
    start_overheads.push_back(std::max<int64_t>(0, task.executing_begin_us - ready));
    if (task.final_us != 0) {
      end_overheads.push_back(task.final_us - task.executing_end_us);
      for (const auto& core : task.cores) core_free_at[core] = task.final_us;
    }
  }
  profile.mean_start_overhead_us = Mean(start_overheads);
  profile.median_start_overhead_us = Median(start_overheads);
  profile.mean_end_overhead_us = Mean(end_overheads);
  profile.median_end_overhead_us = Median(end_overheads);
  return profile;
}

std::string TimelineSvg(const SessionProfile& profile) {
  // Rows: every (node, core) and (node, GPU) some task used, plus the pilot's cores of node 0
  // when nothing ran.
  std::map<std::pair<int32_t, int32_t>, int32_t> core_rows;
  std::map<std::pair<int32_t, int32_t>, int32_t> gpu_rows;
  for (int32_t core = 0; core < profile.pilot_cores && profile.pilot_nodes == 1; ++core) {
    core_rows[{0, core}] = 0;
  }
  for (int32_t gpu = 0; gpu < profile.pilot_gpus && profile.pilot_nodes == 1; ++gpu) {
    gpu_rows[{0, gpu}] = 0;
  }
  for (const TaskProfile& task : profile.tasks) {
    for (const auto& core : task.cores) core_rows[core] = 0;
    for (const auto& gpu : task.gpus) gpu_rows[gpu] = 0;
  }
  int32_t row = 0;
  for (auto& [slot, number] : core_rows) number = row++;
  for (auto& [slot, number] : gpu_rows) number = row++;
  const int32_t rows = std::max(row, 1);

  constexpr double kLeft = 110, kWidth = 1100, kRowHeight = 16, kTop = 30;
  const double height = kTop + rows * kRowHeight + 40;
  const double span = std::max<double>(1, static_cast<double>(profile.end_us - profile.begin_us));
  auto x_of = [&](int64_t time_us) {
    return kLeft + kWidth * static_cast<double>(time_us - profile.begin_us) / span;
  };
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "font-family=\"monospace\" font-size=\"11\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{}\" y=\"18\">tasks executing per slot; {:.3f} s; green DONE, red FAILED, "
      "grey CANCELED</text>\n",
      kLeft + kWidth + 20, height, kLeft, span / 1e6);
  for (const auto& [slot, number] : core_rows) {
    fmt::format_to(std::back_inserter(svg), "<text x=\"4\" y=\"{}\">node {} core {}</text>\n",
                   kTop + number * kRowHeight + 12, slot.first, slot.second);
  }
  for (const auto& [slot, number] : gpu_rows) {
    fmt::format_to(std::back_inserter(svg), "<text x=\"4\" y=\"{}\">node {} gpu {}</text>\n",
                   kTop + number * kRowHeight + 12, slot.first, slot.second);
  }
  for (const TaskProfile& task : profile.tasks) {
    if (task.executing_begin_us == 0) continue;
    const char* colour = task.final_state == TaskState::kDone     ? "#3a3"
                         : task.final_state == TaskState::kFailed ? "#c33"
                                                                  : "#999";
    const double x = x_of(task.executing_begin_us);
    const double width = std::max(0.5, x_of(task.executing_end_us) - x);
    auto bar = [&](int32_t number) {
      fmt::format_to(std::back_inserter(svg),
                     "<rect x=\"{:.2f}\" y=\"{}\" width=\"{:.2f}\" height=\"{}\" fill=\"{}\" "
                     "stroke=\"white\" stroke-width=\"0.3\"><title>{}</title></rect>\n",
                     x, kTop + number * kRowHeight + 1, width, kRowHeight - 2, colour,
                     XmlEscape(task.uid));
    };
    for (const auto& core : task.cores) bar(core_rows[core]);
    for (const auto& gpu : task.gpus) bar(gpu_rows[gpu]);
  }
  const double axis_y = kTop + rows * kRowHeight + 14;
  for (int tick = 0; tick <= 10; ++tick) {
    const double x = kLeft + kWidth * tick / 10.0;
    fmt::format_to(std::back_inserter(svg),
                   "<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#ccc\"/>"
                   "<text x=\"{0:.1f}\" y=\"{3}\">{4:.3f}s</text>\n",
                   x, kTop, axis_y - 10, axis_y + 4, span / 1e6 * tick / 10.0);
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace deeprc::runtime
