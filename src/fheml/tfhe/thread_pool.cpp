#include "fheml/tfhe/thread_pool.h"

#include <algorithm>

namespace fheml::tfhe {
namespace {

// Set while this thread runs a body of some pool: a nested parallel_for then runs inline
// instead of deadlocking on the pool's submission lock.
thread_local bool inside_pool_body = false;

struct BodyScope {
  bool previous = inside_pool_body;
  BodyScope() { inside_pool_body = true; }
  ~BodyScope() { inside_pool_body = previous; }
};

}  // namespace

ThreadPool::ThreadPool(std::size_t threads) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  try {
    for (std::size_t w = 1; w < threads; ++w) workers_.emplace_back([this, w] { worker_loop(w); });
  } catch (...) {
    // Could not start every worker: stop and join those that started, then report.
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
    throw;
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

ThreadPool& ThreadPool::global() {
  static ThreadPool pool;
  return pool;
}

void ThreadPool::run_share(std::size_t worker) {
  while (true) {
    std::size_t index;
    {
      std::lock_guard lock(mutex_);
      if (next_ >= count_ || error_) return;
      index = next_++;
    }
    try {
      BodyScope scope;
      (*body_)(index, worker);
    } catch (...) {
      std::lock_guard lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }
}

void ThreadPool::worker_loop(std::size_t worker) {
  std::size_t seen = 0;
  while (true) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
      ++active_;
    }
    run_share(worker);
    {
      std::lock_guard lock(mutex_);
      --active_;
    }
    done_.notify_all();
  }
}

void ThreadPool::parallel_for(std::size_t count,
                              const std::function<void(std::size_t, std::size_t)>& body) {
  if (count == 0) return;
  if (inside_pool_body) {
    // Nested call (a body that itself runs a batch): run it here, sequentially. Worker 0 is
    // then unique within this call, which is all a body may assume of its worker index.
    for (std::size_t i = 0; i < count; ++i) body(i, 0);
    return;
  }
  std::lock_guard submit(submit_mutex_);
  {
    std::lock_guard lock(mutex_);
    body_ = &body;
    count_ = count;
    next_ = 0;
    error_ = nullptr;
    ++generation_;
  }
  wake_.notify_all();
  run_share(0);
  std::exception_ptr error;
  {
    std::unique_lock lock(mutex_);
    // Every index has been handed out; wait for workers still inside a body.
    done_.wait(lock, [&] { return active_ == 0; });
    body_ = nullptr;
    error = error_;
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace fheml::tfhe
