#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <system_error>

#include "runtime/staging_internal.h"

namespace deeprc::runtime::internal {

namespace fs = std::filesystem;

namespace {

std::string JoinPath(std::string_view base, std::string_view relative) {
  if (relative.empty()) return std::string(base);
  return (fs::path(base) / fs::path(relative)).lexically_normal().string();
}

Status CopyPath(const fs::path& source, const fs::path& target) {
  std::error_code error;
  if (fs::is_directory(source, error)) {
    fs::remove_all(target, error);
    fs::copy(source, target, fs::copy_options::recursive | fs::copy_options::copy_symlinks, error);
    if (error) {
      return Status::IOError("cannot copy {} to {}: {}", source.string(), target.string(),
                             error.message());
    }
    return Status::OK();
  }
  fs::path temporary = target;
  temporary += fmt::format(".deeprc-partial-{}", ::getpid());
  fs::copy_file(source, temporary, fs::copy_options::overwrite_existing, error);
  if (!error) fs::rename(temporary, target, error);
  if (error) {
    std::error_code ignored;
    fs::remove(temporary, ignored);
    return Status::IOError("cannot copy {} to {}: {}", source.string(), target.string(),
                           error.message());
  }
  return Status::OK();
}

}  // namespace

std::string ResolveStagingPath(std::string_view path, const StagingBases& bases,
                               std::string_view default_base) {
  constexpr std::string_view kClient = "client://";
  constexpr std::string_view kSession = "session://";
  constexpr std::string_view kTask = "task://";
  constexpr std::string_view kFile = "file://";
  if (path.starts_with(kClient)) return JoinPath(bases.client, path.substr(kClient.size()));
  if (path.starts_with(kSession)) return JoinPath(bases.session, path.substr(kSession.size()));
  if (path.starts_with(kTask)) return JoinPath(bases.task, path.substr(kTask.size()));
  if (path.starts_with(kFile)) path.remove_prefix(kFile.size());
  if (path.starts_with('/')) return fs::path(path).lexically_normal().string();
  return JoinPath(default_base, path);
}

Status Stage(StagingAction action, const std::string& source_text, const std::string& target_text) {
  const fs::path source(source_text);
  const fs::path target(target_text);
  std::error_code error;
  // symlink_status: a dangling link is still something to link to or move.
  if (!fs::exists(fs::symlink_status(source, error))) {
    return Status::IOError("source not found: {}", source_text);
  }
  if (target.has_parent_path()) {
    fs::create_directories(target.parent_path(), error);
    if (error) {
      return Status::IOError("cannot create directory {}: {}", target.parent_path().string(),
                             error.message());
    }
  }
  switch (action) {
    case StagingAction::kCopy:
      return CopyPath(source, target);
    case StagingAction::kLink: {
      if (fs::exists(fs::symlink_status(target, error))) fs::remove_all(target, error);
      fs::create_symlink(fs::absolute(source), target, error);
      if (error) {
        return Status::IOError("cannot link {} to {}: {}", target_text, source_text,
                               error.message());
      }
      return Status::OK();
    }
    case StagingAction::kMove: {
      if (fs::is_directory(fs::symlink_status(target, error))) fs::remove_all(target, error);
      fs::rename(source, target, error);
      if (error && error.value() == EXDEV) {
        // Another file system: copy, then remove the source.
        DEEPRC_RETURN_NOT_OK(CopyPath(source, target));
        fs::remove_all(source, error);
      }
      if (error) {
        return Status::IOError("cannot move {} to {}: {}", source_text, target_text,
                               error.message());
      }
      return Status::OK();
    }
  }
  return Status::Internal("unknown staging action {}", static_cast<int>(action));
}

}  // namespace deeprc::runtime::internal
