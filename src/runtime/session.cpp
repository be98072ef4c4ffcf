#include "deeprc/runtime/session.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "deeprc/runtime/executor.h"

namespace deeprc::runtime {
namespace {

namespace fs = std::filesystem;

constexpr size_t kFlushBytes = 1 << 16;

void AppendJsonString(std::string* out, std::string_view text) {
  out->push_back('"');
  for (char c : text) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          fmt::format_to(std::back_inserter(*out), "\\u{:04x}", static_cast<int>(c));
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

Status WriteAll(int fd, const char* data, size_t size, const std::string& path) {
  while (size > 0) {
    const ssize_t written = ::write(fd, data, size);
    if (written < 0) {
      if (errno == EINTR) continue;
      return Status::IOError("{}: write failed: {}", path, std::strerror(errno));
    }
    data += written;
    size -= static_cast<size_t>(written);
  }
  return Status::OK();
}

std::string HostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  std::string host(name);
  // The id is also a directory name and a dotted path: keep the short host name.
  if (const size_t dot = host.find('.'); dot != std::string::npos) host.resize(dot);
  for (char& c : host) {
    if (c == '/') c = '_';
  }
  return host;
}

}  // namespace

Status WriteFileAtomically(const std::string& path, std::string_view text, mode_t mode) {
  const std::string temporary = path + ".tmp";
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Status::IOError("{}: cannot create: {}", temporary, std::strerror(errno));
  Status status = WriteAll(fd, text.data(), text.size(), temporary);
  ::close(fd);
  if (status.ok() && ::rename(temporary.c_str(), path.c_str()) != 0) {
    status = Status::IOError("{}: cannot rename: {}", path, std::strerror(errno));
  }
  if (!status.ok()) ::unlink(temporary.c_str());
  return status;
}

Result<std::unique_ptr<EventLog>> EventLog::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0)
    return Status::IOError("{}: cannot open the event log: {}", path, std::strerror(errno));
  return std::unique_ptr<EventLog>(new EventLog(fd, path));
}

EventLog::~EventLog() {
  std::lock_guard lock(mutex_);
  (void)FlushLocked();
  ::close(fd_);
}

void EventLog::Append(std::string_view entity, std::string_view uid, std::string_view state,
                      int64_t time_us, std::string_view reason) {
  std::lock_guard lock(mutex_);
  buffer_.append("{\"entity\":");
  AppendJsonString(&buffer_, entity);
  buffer_.append(",\"uid\":");
  AppendJsonString(&buffer_, uid);
  buffer_.append(",\"state\":");
  AppendJsonString(&buffer_, state);
  fmt::format_to(std::back_inserter(buffer_), ",\"time_us\":{},\"reason\":", time_us);
  AppendJsonString(&buffer_, reason);
  buffer_.append("}\n");
  if (buffer_.size() >= kFlushBytes) (void)FlushLocked();
}

void EventLog::AppendLine(std::string_view json) {
  std::lock_guard lock(mutex_);
  buffer_.append(json);
  buffer_.push_back('\n');
  if (buffer_.size() >= kFlushBytes) (void)FlushLocked();
}

Status EventLog::Flush() {
  std::lock_guard lock(mutex_);
  return FlushLocked();
}

Status EventLog::FlushLocked() {
  if (buffer_.empty()) return Status::OK();
  Status status = WriteAll(fd_, buffer_.data(), buffer_.size(), path_);
  buffer_.clear();
  return status;
}

Result<std::string> MakeSecret() {
  const int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IOError("/dev/urandom: cannot open: {}", std::strerror(errno));
  unsigned char bytes[32];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    const ssize_t n = ::read(fd, bytes + got, sizeof(bytes) - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      return Status::IOError("/dev/urandom: read failed");
    }
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  std::string hex;
  for (unsigned char byte : bytes) fmt::format_to(std::back_inserter(hex), "{:02x}", byte);
  return hex;
}

Result<std::unique_ptr<Session>> Session::Make(SessionOptions options) {
  std::string root = options.root;
  if (root.empty()) {
    const char* from_environment = std::getenv("DEEPRC_SESSION_ROOT");
    root = from_environment != nullptr && from_environment[0] != '\0' ? from_environment
                                                                      : "deeprc.sessions";
  }
  std::error_code error;
  fs::create_directories(root, error);
  if (error)
    return Status::IOError("{}: cannot create the session root: {}", root, error.message());
  root = fs::absolute(root).lexically_normal().string();

  const std::string host = HostName();
  const int64_t created_us = NowMicros();
  const std::time_t now = static_cast<std::time_t>(created_us / 1000000);
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  const std::string date =
      fmt::format("{:04}{:02}{:02}", utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday);

  std::unique_ptr<Session> session(new Session());
  for (int n = 0;; ++n) {
    std::string id = fmt::format("deeprc.session.{}.{}.{:04}", host, date, n);
    std::string directory = root + "/" + id;
    if (::mkdir(directory.c_str(), 0755) == 0) {
      session->id_ = std::move(id);
      session->directory_ = std::move(directory);
      break;
    }
    if (errno != EEXIST) {
      return Status::IOError("{}: cannot create the session directory: {}", directory,
                             std::strerror(errno));
    }
  }
  fs::create_directories(session->directory_ + "/tasks", error);
  if (error) return Status::IOError("{}/tasks: {}", session->directory_, error.message());

  DEEPRC_ASSIGN_OR_RAISE(session->secret_, MakeSecret());
  DEEPRC_RETURN_NOT_OK(
      WriteFileAtomically(session->directory_ + "/secret", session->secret_ + "\n", 0600));

  nlohmann::json description = {{"id", session->id_},
                                {"host", host},
                                {"pid", static_cast<int64_t>(::getpid())},
                                {"created_us", created_us},
                                {"directory", session->directory_},
                                {"events", "events.jsonl"},
                                {"tasks", "tasks"}};
  DEEPRC_RETURN_NOT_OK(
      WriteFileAtomically(session->directory_ + "/session.json", description.dump(2) + "\n", 0644));
  DEEPRC_ASSIGN_OR_RAISE(session->events_, EventLog::Open(session->directory_ + "/events.jsonl"));
  return session;
}

Session::~Session() = default;

}  // namespace deeprc::runtime
