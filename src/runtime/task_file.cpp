#include "deeprc/runtime/task_file.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

namespace deeprc::runtime {
namespace {

namespace fs = std::filesystem;

// Reads fields of one YAML document and reports errors with their place in the file.
class FieldReader {
 public:
  explicit FieldReader(std::string_view source) : source_(source) {}

  Status Error(const YAML::Node& node, std::string_view path, std::string_view message) const {
    const YAML::Mark mark = node.Mark();
    if (mark.line >= 0) {
      return Status::Invalid("{}:{}:{}: {}: {}", source_, mark.line + 1, mark.column + 1, path,
                             message);
    }
    return Status::Invalid("{}: {}: {}", source_, path, message);
  }

  // A message that already names its field, placed at `node`.
  Status At(const YAML::Node& node, std::string_view message) const {
    const YAML::Mark mark = node.Mark();
    if (mark.line >= 0) {
      return Status::Invalid("{}:{}:{}: {}", source_, mark.line + 1, mark.column + 1, message);
    }
    return Status::Invalid("{}: {}", source_, message);
  }

  static std::string Found(const YAML::Node& node) {
    if (node.IsScalar()) return fmt::format("'{}'", node.Scalar());
    if (node.IsSequence()) return "a list";
    if (node.IsMap()) return "a mapping";
    return "nothing";
  }

  // minimum 1: a positive integer; 0: a non-negative integer; anything else: an integer.
  Result<int32_t> Int(const YAML::Node& node, std::string_view path, int32_t minimum) const {
    const char* expected = minimum == 1   ? "a positive integer"
                           : minimum == 0 ? "a non-negative integer"
                                          : "an integer";
    int64_t value = 0;
    if (node.IsScalar()) {
      const std::string& text = node.Scalar();
      auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
      if (error == std::errc() && end == text.data() + text.size() && value >= minimum &&
          value <= INT32_MAX) {
        return static_cast<int32_t>(value);
      }
    }
    return Error(node, path, fmt::format("expected {}, found {}", expected, Found(node)));
  }

  Result<std::string> String(const YAML::Node& node, std::string_view path) const {
    if (!node.IsScalar()) {
      return Error(node, path, fmt::format("expected a string, found {}", Found(node)));
    }
    return node.Scalar();
  }

  Result<std::vector<std::string>> StringList(const YAML::Node& node, std::string_view path) const {
    if (!node.IsSequence()) {
      return Error(node, path, fmt::format("expected a list of strings, found {}", Found(node)));
    }
    std::vector<std::string> values;
    for (size_t i = 0; i < node.size(); ++i) {
      DEEPRC_ASSIGN_OR_RAISE(std::string value, String(node[i], fmt::format("{}[{}]", path, i)));
      values.push_back(std::move(value));
    }
    return values;
  }

  Result<std::map<std::string, std::string>> StringMap(const YAML::Node& node,
                                                       std::string_view path) const {
    if (!node.IsMap()) {
      return Error(node, path, fmt::format("expected a mapping, found {}", Found(node)));
    }
    std::map<std::string, std::string> values;
    for (const auto& entry : node) {
      DEEPRC_ASSIGN_OR_RAISE(std::string key, String(entry.first, path));
      DEEPRC_ASSIGN_OR_RAISE(std::string value,
                             String(entry.second, fmt::format("{}.{}", path, key)));
      values[key] = std::move(value);
    }
    return values;
  }

  Result<int64_t> ByteSize(const YAML::Node& node, std::string_view path) const {
    if (node.IsScalar()) {
      auto bytes = ParseByteSize(node.Scalar());
      if (bytes.ok()) return bytes;
    }
    return Error(node, path,
                 fmt::format("expected bytes or a size such as 4GB, found {}", Found(node)));
  }

  Result<double> Seconds(const YAML::Node& node, std::string_view path) const {
    if (node.IsScalar()) {
      auto seconds = ParseDuration(node.Scalar());
      if (seconds.ok()) return seconds;
    }
    return Error(node, path,
                 fmt::format("expected seconds or a duration such as 15m, found {}", Found(node)));
  }

  Result<std::vector<StagingDirective>> Staging(const YAML::Node& node,
                                                std::string_view path) const {
    if (!node.IsSequence()) {
      return Error(node, path, fmt::format("expected a list, found {}", Found(node)));
    }
    std::vector<StagingDirective> directives;
    for (size_t i = 0; i < node.size(); ++i) {
      const std::string entry_path = fmt::format("{}[{}]", path, i);
      const YAML::Node entry = node[i];
      StagingDirective directive;
      if (entry.IsScalar()) {
        directive.source = entry.Scalar();
        const auto slash = directive.source.find_last_of('/');
        directive.target =
            slash == std::string::npos ? directive.source : directive.source.substr(slash + 1);
      } else if (entry.IsMap()) {
        for (const auto& field : entry) {
          const std::string key = field.first.as<std::string>();
          const std::string field_path = fmt::format("{}.{}", entry_path, key);
          if (key == "source") {
            DEEPRC_ASSIGN_OR_RAISE(directive.source, String(field.second, field_path));
          } else if (key == "target") {
            DEEPRC_ASSIGN_OR_RAISE(directive.target, String(field.second, field_path));
          } else if (key == "action") {
            DEEPRC_ASSIGN_OR_RAISE(std::string action, String(field.second, field_path));
            if (action == "copy")
              directive.action = StagingAction::kCopy;
            else if (action == "link")
              directive.action = StagingAction::kLink;
            else if (action == "move")
              directive.action = StagingAction::kMove;
            else {
              return Error(field.second, field_path,
                           fmt::format("expected copy, link or move, found '{}'", action));
            }
          } else {
            return Error(field.first, entry_path, fmt::format("unknown field '{}'", key));
          }
        }
        if (directive.source.empty()) {
          return Error(entry, entry_path, "a staging entry needs a source");
        }
        if (directive.target.empty()) directive.target = directive.source;
      } else {
        return Error(entry, entry_path,
                     fmt::format("expected a path or a mapping, found {}", Found(entry)));
      }
      directives.push_back(std::move(directive));
    }
    return directives;
  }

  // Scalars become numbers or booleans when they read as such, strings otherwise.
  static nlohmann::json ToJson(const YAML::Node& node) {
    if (node.IsMap()) {
      nlohmann::json object = nlohmann::json::object();
      for (const auto& entry : node) object[entry.first.Scalar()] = ToJson(entry.second);
      return object;
    }
    if (node.IsSequence()) {
      nlohmann::json array = nlohmann::json::array();
      for (const auto& item : node) array.push_back(ToJson(item));
      return array;
    }
    if (!node.IsScalar()) return nullptr;
    const std::string& text = node.Scalar();
    if (node.Tag() == "!") return text;  // quoted in the file
    int64_t integer = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), integer);
    if (error == std::errc() && end == text.data() + text.size()) return integer;
    double real = 0;
    auto [real_end, real_error] = std::from_chars(text.data(), text.data() + text.size(), real);
    if (real_error == std::errc() && real_end == text.data() + text.size()) return real;
    if (text == "true" || text == "True") return true;
    if (text == "false" || text == "False") return false;
    if (text == "null" || text == "~") return nullptr;
    return text;
  }

 private:
  std::string_view source_;
};

Status ReadPilot(const FieldReader& reader, const YAML::Node& node, PilotDescription* pilot) {
  if (!node.IsMap()) {
    return reader.Error(node, "pilot",
                        fmt::format("expected a mapping, found {}", FieldReader::Found(node)));
  }
  for (const auto& field : node) {
    const std::string key = field.first.Scalar();
    const std::string path = "pilot." + key;
    const YAML::Node& value = field.second;
    if (key == "resource") {
      DEEPRC_ASSIGN_OR_RAISE(pilot->resource, reader.String(value, path));
    } else if (key == "nodes") {
      DEEPRC_ASSIGN_OR_RAISE(pilot->nodes, reader.Int(value, path, 1));
    } else if (key == "cores") {
      DEEPRC_ASSIGN_OR_RAISE(pilot->cores, reader.Int(value, path, 1));
    } else if (key == "cores_per_node") {
      DEEPRC_ASSIGN_OR_RAISE(pilot->cores_per_node, reader.Int(value, path, 1));
    } else if (key == "gpus") {
      DEEPRC_ASSIGN_OR_RAISE(pilot->gpus, reader.Int(value, path, 0));
    } else if (key == "gpus_per_node") {
      DEEPRC_ASSIGN_OR_RAISE(pilot->gpus_per_node, reader.Int(value, path, 0));
    } else if (key == "memory") {
      DEEPRC_ASSIGN_OR_RAISE(pilot->memory, reader.ByteSize(value, path));
    } else if (key == "runtime") {
      DEEPRC_ASSIGN_OR_RAISE(pilot->runtime, reader.Seconds(value, path));
    } else {
      return reader.Error(field.first, "pilot", fmt::format("unknown field '{}'", key));
    }
  }
  return Status::OK();
}

Status ReadPool(const FieldReader& reader, const YAML::Node& node, const std::string& where,
                PoolDescription* pool) {
  if (!node.IsMap()) {
    return reader.Error(node, where,
                        fmt::format("expected a mapping, found {}", FieldReader::Found(node)));
  }
  for (const auto& field : node) {
    const std::string key = field.first.Scalar();
    const std::string path = where + "." + key;
    const YAML::Node& value = field.second;
    if (key == "name") {
      DEEPRC_ASSIGN_OR_RAISE(pool->name, reader.String(value, path));
    } else if (key == "workers") {
      DEEPRC_ASSIGN_OR_RAISE(pool->workers, reader.Int(value, path, 1));
    } else if (key == "cores_per_worker") {
      DEEPRC_ASSIGN_OR_RAISE(pool->cores_per_worker, reader.Int(value, path, 1));
    } else if (key == "gpus_per_worker") {
      DEEPRC_ASSIGN_OR_RAISE(pool->gpus_per_worker, reader.Int(value, path, 0));
    } else if (key == "plugins") {
      DEEPRC_ASSIGN_OR_RAISE(pool->plugins, reader.StringList(value, path));
    } else if (key == "program") {
      DEEPRC_ASSIGN_OR_RAISE(pool->program, reader.String(value, path));
    } else if (key == "pipeline_depth") {
      DEEPRC_ASSIGN_OR_RAISE(pool->pipeline_depth, reader.Int(value, path, 1));
    } else {
      return reader.Error(field.first, where, fmt::format("unknown field '{}'", key));
    }
  }
  return Status::OK();
}

Status ReadTask(const FieldReader& reader, const YAML::Node& node, const std::string& where,
                TaskDescription* task) {
  if (!node.IsMap()) {
    return reader.Error(
        node, where,
        fmt::format("expected a mapping of task fields, found {}", FieldReader::Found(node)));
  }
  for (const auto& field : node) {
    const std::string key = field.first.Scalar();
    const std::string path = where + "." + key;
    const YAML::Node& value = field.second;
    if (key == "uid") {
      DEEPRC_ASSIGN_OR_RAISE(task->uid, reader.String(value, path));
    } else if (key == "name") {
      DEEPRC_ASSIGN_OR_RAISE(task->name, reader.String(value, path));
    } else if (key == "mode") {
      DEEPRC_ASSIGN_OR_RAISE(std::string mode, reader.String(value, path));
      if (mode == "executable")
        task->mode = TaskMode::kExecutable;
      else if (mode == "function")
        task->mode = TaskMode::kFunction;
      else {
        return reader.Error(value, path,
                            fmt::format("expected executable or function, found '{}'", mode));
      }
    } else if (key == "executable") {
      DEEPRC_ASSIGN_OR_RAISE(task->executable, reader.String(value, path));
    } else if (key == "arguments") {
      DEEPRC_ASSIGN_OR_RAISE(task->arguments, reader.StringList(value, path));
    } else if (key == "environment") {
      DEEPRC_ASSIGN_OR_RAISE(task->environment, reader.StringMap(value, path));
    } else if (key == "sandbox") {
      DEEPRC_ASSIGN_OR_RAISE(task->sandbox, reader.String(value, path));
    } else if (key == "stdout") {
      DEEPRC_ASSIGN_OR_RAISE(task->stdout_file, reader.String(value, path));
    } else if (key == "stderr") {
      DEEPRC_ASSIGN_OR_RAISE(task->stderr_file, reader.String(value, path));
    } else if (key == "ranks") {
      DEEPRC_ASSIGN_OR_RAISE(task->ranks, reader.Int(value, path, 1));
    } else if (key == "cores_per_rank") {
      DEEPRC_ASSIGN_OR_RAISE(task->cores_per_rank, reader.Int(value, path, 1));
    } else if (key == "gpus_per_rank") {
      DEEPRC_ASSIGN_OR_RAISE(task->gpus_per_rank, reader.Int(value, path, 0));
    } else if (key == "mem_per_rank") {
      DEEPRC_ASSIGN_OR_RAISE(task->mem_per_rank, reader.ByteSize(value, path));
    } else if (key == "pre_exec") {
      DEEPRC_ASSIGN_OR_RAISE(task->pre_exec, reader.StringList(value, path));
    } else if (key == "post_exec") {
      DEEPRC_ASSIGN_OR_RAISE(task->post_exec, reader.StringList(value, path));
    } else if (key == "input_staging") {
      DEEPRC_ASSIGN_OR_RAISE(task->input_staging, reader.Staging(value, path));
    } else if (key == "output_staging") {
      DEEPRC_ASSIGN_OR_RAISE(task->output_staging, reader.Staging(value, path));
    } else if (key == "priority") {
      DEEPRC_ASSIGN_OR_RAISE(task->priority, reader.Int(value, path, INT32_MIN));
    } else if (key == "timeout") {
      DEEPRC_ASSIGN_OR_RAISE(task->timeout, reader.Seconds(value, path));
    } else if (key == "after") {
      DEEPRC_ASSIGN_OR_RAISE(task->after, reader.StringList(value, path));
    } else if (key == "tags") {
      DEEPRC_ASSIGN_OR_RAISE(task->tags, reader.StringMap(value, path));
    } else if (key == "metadata") {
      task->metadata = FieldReader::ToJson(value);
    } else if (key == "function") {
      DEEPRC_ASSIGN_OR_RAISE(task->function, reader.String(value, path));
      task->mode = TaskMode::kFunction;
    } else if (key == "args") {
      task->args = FieldReader::ToJson(value);
    } else if (key == "master") {
      DEEPRC_ASSIGN_OR_RAISE(task->master, reader.String(value, path));
    } else {
      return reader.Error(field.first, where, fmt::format("unknown field '{}'", key));
    }
  }
  return Status::OK();
}

// `${NAME}` or `${NAME:-default}` in `text`, from `variables` first, then the environment (the
// default may use variables too); `$${` is a literal `${`; any other `$` stays as it is (`$$`
// and `$HOME` reach a shell unchanged).
Result<std::string> ExpandVariables(const std::string& text,
                                    const std::map<std::string, std::string>& variables) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    const size_t dollar = text.find('$', i);
    if (dollar == std::string::npos || dollar + 1 == text.size()) {
      out.append(text, i, std::string::npos);
      break;
    }
    out.append(text, i, dollar - i);
    if (text.compare(dollar, 3, "$${") == 0) {  // a literal "${"
      out += "${";
      i = dollar + 3;
      continue;
    }
    if (text[dollar + 1] != '{') {
      out += '$';
      i = dollar + 1;
      continue;
    }
    // The matching brace: a default may hold variables of its own.
    size_t close = dollar + 2;
    for (int depth = 1; close < text.size(); ++close) {
      if (text[close] == '{') ++depth;
      if (text[close] == '}' && --depth == 0) break;
    }
    if (close >= text.size()) {
      return Status::Invalid("'${{' without its '}}' in '{}'", text);
    }
    std::string name = text.substr(dollar + 2, close - dollar - 2);
    std::optional<std::string> fallback;
    if (const size_t dash = name.find(":-"); dash != std::string::npos) {
      fallback = name.substr(dash + 2);
      name.resize(dash);
    }
    if (name.empty() || name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                               "0123456789_") != std::string::npos) {
      return Status::Invalid(
          "'${{{}}}': not a variable name (letters, digits and _; $${{ is a literal ${{)", name);
    }
    if (auto found = variables.find(name); found != variables.end()) {
      out += found->second;
    } else if (const char* value = std::getenv(name.c_str()); value != nullptr && *value != 0) {
      out += value;
    } else if (fallback) {
      DEEPRC_ASSIGN_OR_RAISE(std::string expanded, ExpandVariables(*fallback, variables));
      out += expanded;
    } else {
      return Status::Invalid("${{{}}} is not set (set it in the environment, give a default: "
                             "${{{}:-VALUE}}, or write $${{ for a literal ${{)",
                             name, name);
    }
    i = close + 1;
  }
  return out;
}

// Replaces the variables in every scalar value of the document (not in keys), keeping each
// scalar's tag (quoted strings stay strings) and place for later messages.
Status ExpandDocument(const FieldReader& reader, YAML::Node node,
                      const std::map<std::string, std::string>& variables) {
  if (node.IsMap()) {
    for (auto entry : node) DEEPRC_RETURN_NOT_OK(ExpandDocument(reader, entry.second, variables));
  } else if (node.IsSequence()) {
    for (auto item : node) DEEPRC_RETURN_NOT_OK(ExpandDocument(reader, item, variables));
  } else if (node.IsScalar() && node.Scalar().find('$') != std::string::npos) {
    auto expanded = ExpandVariables(node.Scalar(), variables);
    if (!expanded.ok()) return reader.At(node, expanded.status().message());
    const std::string tag = node.Tag();
    node = *expanded;
    node.SetTag(tag);
  }
  return Status::OK();
}

Result<TaskFile> ParseDocument(const YAML::Node& root, std::string_view source_name) {
  const FieldReader reader(source_name);
  if (!root.IsMap()) {
    return reader.Error(root, "file",
                        fmt::format("expected a mapping with pilot: and tasks:, "
                                    "found {}",
                                    FieldReader::Found(root)));
  }
  TaskFile file;
  bool have_tasks = false;
  for (const auto& entry : root) {
    const std::string key = entry.first.Scalar();
    if (key == "pilot") {
      DEEPRC_RETURN_NOT_OK(ReadPilot(reader, entry.second, &file.pilot));
    } else if (key == "pools") {
      const YAML::Node& pools = entry.second;
      if (!pools.IsSequence()) {
        return reader.Error(
            pools, "pools",
            fmt::format("expected a list of pools, found {}", FieldReader::Found(pools)));
      }
      for (size_t i = 0; i < pools.size(); ++i) {
        PoolDescription pool;
        DEEPRC_RETURN_NOT_OK(ReadPool(reader, pools[i], fmt::format("pools[{}]", i), &pool));
        file.pools.push_back(std::move(pool));
      }
    } else if (key == "tasks") {
      have_tasks = true;
      const YAML::Node& tasks = entry.second;
      if (!tasks.IsSequence()) {
        return reader.Error(
            tasks, "tasks",
            fmt::format("expected a list of tasks, found {}", FieldReader::Found(tasks)));
      }
      for (size_t i = 0; i < tasks.size(); ++i) {
        TaskDescription task;
        const std::string where = fmt::format("tasks[{}]", i);
        DEEPRC_RETURN_NOT_OK(ReadTask(reader, tasks[i], where, &task));
        if (task.uid.empty()) {
          task.uid = task.name.empty() ? fmt::format("task.{:06d}", i) : task.name;
        }
        if (task.name.empty()) task.name = task.uid;
        Status valid = ValidateTaskDescription(task, where);
        if (!valid.ok()) return reader.At(tasks[i], valid.message());
        file.tasks.push_back(std::move(task));
      }
    } else {
      return reader.Error(entry.first, "file",
                          fmt::format("unknown field '{}' (expected pilot, pools or tasks)", key));
    }
  }
  if (!have_tasks) return Status::Invalid("{}: no tasks: list", source_name);
  DEEPRC_RETURN_NOT_OK(ValidateTaskGraph(file.tasks).WithContext(source_name));
  return file;
}

}  // namespace

Result<TaskFile> ParseTaskFileText(std::string_view text, std::string_view source_name,
                                   const std::map<std::string, std::string>& variables) {
  // yaml-cpp reports through exceptions; none leaves this function.
  try {
    YAML::Node root = YAML::Load(std::string(text));
    DEEPRC_RETURN_NOT_OK(ExpandDocument(FieldReader(source_name), root, variables));
    return ParseDocument(root, source_name);
  } catch (const YAML::Exception& error) {
    if (error.mark.line >= 0) {
      return Status::Invalid("{}:{}:{}: not valid YAML: {}", source_name, error.mark.line + 1,
                             error.mark.column + 1, error.msg);
    }
    return Status::Invalid("{}: not valid YAML: {}", source_name, error.msg);
  } catch (const std::exception& error) {
    return Status::Invalid("{}: {}", source_name, error.what());
  }
}

Result<TaskFile> ReadTaskFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError("{}: cannot open the task file", path);
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Status::IOError("{}: cannot read the task file", path);
  std::error_code error;
  fs::path directory = fs::absolute(fs::path(path), error).parent_path();
  return ParseTaskFileText(text.str(), path, {{"TASK_FILE_DIR", directory.lexically_normal().string()}});
}

}  // namespace deeprc::runtime
