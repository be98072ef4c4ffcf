#include "deeprc/runtime/function.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

namespace deeprc::runtime {

Status TaskContext::MakeSandbox() const {
  std::error_code error;
  std::filesystem::create_directories(sandbox_, error);
  if (error) return Status::IOError("cannot create sandbox {}: {}", sandbox_, error.message());
  return Status::OK();
}

void TaskContext::Log(std::string_view message) {
  err_ << "[" << uid_ << " rank " << rank() << "] " << message << "\n";
}

Status FunctionRegistry::Register(std::string name, TaskFunction function) {
  if (name.empty()) return Status::Invalid("a function needs a name");
  if (!function) return Status::Invalid("function '{}': empty callable", name);
  auto [it, inserted] = functions_.emplace(std::move(name), std::move(function));
  if (!inserted) return Status::Invalid("function '{}' is registered already", it->first);
  return Status::OK();
}

const TaskFunction* FunctionRegistry::Find(std::string_view name) const {
  auto found = functions_.find(name);
  return found == functions_.end() ? nullptr : &found->second;
}

std::vector<std::string> FunctionRegistry::Names() const {
  std::vector<std::string> names;
  names.reserve(functions_.size());
  for (const auto& [name, function] : functions_) names.push_back(name);
  return names;
}

std::vector<std::string> BuiltinFunctionNames() {
  // With the data functions and bench.cylon of apps/deeprc-worker (data_functions_test checks
  // that the worker registers exactly these).
  return {"echo_ranks",
          "fail",
          "noop",
          "sleep",
          "write_output",
          "table.read_csv",
          "table.write_csv",
          "table.sort",
          "table.join",
          "table.group_by",
          "table.unique",
          "table.union",
          "table.intersect",
          "table.difference",
          "table.repartition",
          "table.head",
          "table.tail",
          "table.slice",
          "table.aggregate",
          "table.equals",
          "table.pipeline",
          "bench.cylon"};
}

Status RegisterBuiltinFunctions(FunctionRegistry& registry, int32_t pool_rank) {
  DEEPRC_RETURN_NOT_OK(registry.Register(
      "noop", [](TaskContext&) -> Result<nlohmann::json> { return nlohmann::json(); }));
  DEEPRC_RETURN_NOT_OK(
      registry.Register("sleep", [](TaskContext& context) -> Result<nlohmann::json> {
        const double seconds = context.args().value("seconds", 0.0);
        const bool ignore_cancel = context.args().value("ignore_cancel", false);
        const auto end = std::chrono::steady_clock::now() +
                         std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                             std::chrono::duration<double>(seconds));
        // Steps of at most 5 ms (the cancellation flag is looked at between them), the last one
        // up to the end: a whole last step would overshoot by 2.5 ms on average.
        for (auto now = std::chrono::steady_clock::now(); now < end;
             now = std::chrono::steady_clock::now()) {
          if (!ignore_cancel && context.canceled()) return Status::Cancelled("sleep canceled");
          std::this_thread::sleep_for(
              std::min<std::chrono::steady_clock::duration>(std::chrono::milliseconds(5), end - now));
        }
        return nlohmann::json(seconds);
      }));
  DEEPRC_RETURN_NOT_OK(
      registry.Register("fail", [](TaskContext& context) -> Result<nlohmann::json> {
        // Thrown on purpose: the worker must turn an exception into a FAILED task.
        throw std::runtime_error(context.args().value("message", std::string("fail was called")));
      }));
  DEEPRC_RETURN_NOT_OK(
      registry.Register("echo_ranks", [pool_rank](TaskContext& context) -> Result<nlohmann::json> {
        int64_t values[3] = {pool_rank, pool_rank, 1};
        DEEPRC_RETURN_NOT_OK(
            context.comm().AllReduce(std::span<int64_t>(values, 1), comm::ReduceOp::kSum));
        DEEPRC_RETURN_NOT_OK(
            context.comm().AllReduce(std::span<int64_t>(values + 1, 1), comm::ReduceOp::kMax));
        DEEPRC_RETURN_NOT_OK(
            context.comm().AllReduce(std::span<int64_t>(values + 2, 1), comm::ReduceOp::kSum));
        const int32_t mine = pool_rank;
        DEEPRC_ASSIGN_OR_RAISE(auto gathered,
                               context.comm().AllGather(std::span<const uint8_t>(
                                   reinterpret_cast<const uint8_t*>(&mine), sizeof(mine))));
        nlohmann::json ranks = nlohmann::json::array();
        for (const auto& buffer : gathered) {
          int32_t rank = -1;
          if (buffer->size() == static_cast<int64_t>(sizeof(rank)))
            std::memcpy(&rank, buffer->data(), sizeof(rank));
          ranks.push_back(rank);
        }
        return nlohmann::json{{"size", context.size()}, {"rank", context.rank()},
                              {"count", values[2]},     {"sum", values[0]},
                              {"max", values[1]},       {"ranks", ranks}};
      }));
  DEEPRC_RETURN_NOT_OK(
      registry.Register("write_output", [](TaskContext& context) -> Result<nlohmann::json> {
        const std::string text = context.args().value("text", std::string());
        context.out() << "rank " << context.rank() << ": " << text << "\n";
        context.Log(text);
        return nlohmann::json();
      }));
  return Status::OK();
}

Status LoadPlugin(const std::string& path, FunctionRegistry& registry) {
  struct stat info;
  if (::stat(path.c_str(), &info) != 0) {
    return Status::IOError("plugin {}: {}", path, std::strerror(errno));
  }
  // Kept loaded for the life of the process: its functions are in the registry.
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* error = ::dlerror();
    return Status::IOError("plugin {}: cannot load: {}", path, error ? error : "unknown error");
  }
  void* entry = ::dlsym(handle, kPluginEntry);
  if (entry == nullptr) {
    return Status::Invalid("plugin {}: no {} function exported", path, kPluginEntry);
  }
  Status status;
  try {
    status = reinterpret_cast<PluginEntry>(entry)(registry);
  } catch (const std::exception& error) {
    status = Status::Internal("{}", error.what());
  } catch (...) {
    status = Status::Internal("unknown exception");
  }
  if (!status.ok()) {
    return Status::Invalid("plugin {}: {} failed: {}", path, kPluginEntry, status.message());
  }
  return Status::OK();
}

}  // namespace deeprc::runtime
