#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "deeprc/core/result.h"

namespace deeprc::runtime {

// The session's event log, `events.jsonl`: one JSON object per line and per state transition of
// a task or a pilot, appended and never rewritten:
//   {"entity":"task","uid":"a","state":"EXECUTING","time_us":1764000000000000,"reason":""}
// Besides transitions the log holds two kinds of facts the analysis needs, written once:
//   {"entity":"resources","uid":"pilot.0000","nodes":1,"cores":2,"gpus":0,"time_us":...}
//   {"entity":"placement","uid":"a","time_us":...,"ranks":[{"node":0,"cores":[1],"gpus":[]}],
//    "after":["b"]}
// (a pilot's slots when it becomes ACTIVE; a task's slots when the scheduler starts it).
// Thread-safe. Lines are gathered in memory and written with one write() of whole lines to a
// descriptor opened with O_APPEND, so that two processes (client and agent) appending to one
// log never interleave within a line. Flush() writes what is gathered; the log also flushes
// when its buffer is large and when it is destroyed.
class EventLog {
 public:
  static Result<std::unique_ptr<EventLog>> Open(const std::string& path);
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // `entity` is "task" or "pilot"; `state` a state name (TaskStateName / PilotStateName).
  void Append(std::string_view entity, std::string_view uid, std::string_view state,
              int64_t time_us, std::string_view reason);
  // Appends one line of JSON as is (no newline inside; the log adds one).
  void AppendLine(std::string_view json);
  Status Flush();
  const std::string& path() const { return path_; }

 private:
  EventLog(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  Status FlushLocked();

  std::mutex mutex_;
  int fd_;
  std::string path_;
  std::string buffer_;
};

struct SessionOptions {
  // Where session directories are made. Empty: $DEEPRC_SESSION_ROOT, else ./deeprc.sessions.
  std::string root;
};

// One run of the runtime: an id `deeprc.session.<host>.<yyyymmdd>.<n>` (n: the first number
// whose directory does not exist yet, taken with mkdir so that concurrent sessions get distinct
// ids), a directory <root>/<id>/ holding
//   session.json   what the session is (id, host, pid, creation time, directory)
//   secret         32 random bytes from /dev/urandom, hex, mode 0600: authenticates the
//                  messages between client and agent
//   events.jsonl   the event log
//   tasks/<uid>/   the default task sandboxes
class Session {
 public:
  static Result<std::unique_ptr<Session>> Make(SessionOptions options = {});
  ~Session();

  const std::string& id() const { return id_; }
  const std::string& directory() const { return directory_; }
  const std::string& secret() const { return secret_; }
  EventLog& events() { return *events_; }
  // 0, 1, 2, ...: numbers pilot uids uniquely within the session.
  int64_t NextPilotNumber() { return next_pilot_++; }

 private:
  Session() = default;
  std::string id_;
  std::string directory_;
  std::string secret_;
  std::unique_ptr<EventLog> events_;
  std::atomic<int64_t> next_pilot_{0};
};

// 64 hex digits from /dev/urandom.
Result<std::string> MakeSecret();

// Writes `text` to `path` through a temporary file beside it that is renamed into place, created
// with `mode`: readers see the old file or the whole new one.
Status WriteFileAtomically(const std::string& path, std::string_view text, mode_t mode = 0644);

}  // namespace deeprc::runtime
