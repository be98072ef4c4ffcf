#include "deeprc/core/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace deeprc {
namespace {

// One ParallelFor call: tasks are claimed through an atomic counter by the caller and helpers.
struct Job {
  const std::function<void(int64_t)>* body;
  int64_t count;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> finished{0};
  std::mutex mutex;
  std::condition_variable done;
  std::exception_ptr error;

  void Work() {
    for (int64_t i = next.fetch_add(1); i < count; i = next.fetch_add(1)) {
      try {
        (*body)(i);
      } catch (...) {
        std::lock_guard lock(mutex);
        if (!error) error = std::current_exception();
      }
      if (finished.fetch_add(1) + 1 == count) {
        std::lock_guard lock(mutex);
        done.notify_all();
      }
    }
  }
};

class ThreadPool {
 public:
  static ThreadPool& Instance() {
    static ThreadPool pool;
    return pool;
  }

  ~ThreadPool() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& thread : threads_) thread.join();
  }

  void Run(const std::shared_ptr<Job>& job, int helpers) {
    {
      std::lock_guard lock(mutex_);
      while (static_cast<int>(threads_.size()) < helpers) {
        threads_.emplace_back([this] { Loop(); });
      }
      for (int i = 0; i < helpers; ++i) queue_.push_back(job);
    }
    wake_.notify_all();
    job->Work();
    std::unique_lock lock(job->mutex);
    job->done.wait(lock, [&] { return job->finished.load() == job->count; });
  }

 private:
  void Loop() {
    while (true) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      job->Work();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::vector<std::thread> threads_;
  bool stopping_ = false;
};

}  // namespace

int DefaultThreadCount() {
  static const int count = [] {
    if (const char* env = std::getenv("DEEPRC_THREADS")) {
      const int value = std::atoi(env);
      if (value > 0) return value;
    }
    return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  }();
  return count;
}

void ParallelFor(int64_t count, int threads, const std::function<void(int64_t)>& body) {
  if (count <= 0) return;
  if (threads <= 0) threads = DefaultThreadCount();
  const int helpers = static_cast<int>(std::min<int64_t>(threads, count)) - 1;
  if (helpers <= 0) {
    for (int64_t i = 0; i < count; ++i) body(i);
    return;
  }
  auto job = std::make_shared<Job>();
  job->body = &body;
  job->count = count;
  ThreadPool::Instance().Run(job, helpers);
  if (job->error) std::rethrow_exception(job->error);
}

void ParallelRanges(int64_t length, int parts, int threads,
                    const std::function<void(int64_t, int64_t, int64_t)>& body) {
  if (length <= 0) return;
  parts = static_cast<int>(std::clamp<int64_t>(parts, 1, length));
  ParallelFor(parts, threads, [&](int64_t part) {
    const int64_t begin = length * part / parts;
    const int64_t end = length * (part + 1) / parts;
    body(part, begin, end);
  });
}

}  // namespace deeprc
