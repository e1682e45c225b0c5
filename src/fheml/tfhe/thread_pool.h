// A fixed pool of worker threads for batches of independent bootstraps. The unit of work is an
// index into the batch, so a GPU or a cluster could take the same batches (design.md).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace fheml::tfhe {

class ThreadPool {
 public:
  // threads == 0 means one per hardware thread. The calling thread works too, so a pool of
  // size t starts t - 1 workers.
  explicit ThreadPool(std::size_t threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  std::size_t size() const { return workers_.size() + 1; }

  // Runs body(index, worker) for every index in [0, count); worker is in [0, size()) and is
  // unique among concurrent calls, so it can index per-thread scratch. Blocks until all are
  // done; the first exception thrown by a body is rethrown here. Called from inside a body (of
  // any pool), it runs sequentially on the calling thread instead.
  void parallel_for(std::size_t count, const std::function<void(std::size_t, std::size_t)>& body);

  // A process-wide pool sized to the hardware, created on first use.
  static ThreadPool& global();

 private:
  void worker_loop(std::size_t worker);
  void run_share(std::size_t worker);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  std::mutex submit_mutex_;  // one parallel_for at a time
  const std::function<void(std::size_t, std::size_t)>* body_ = nullptr;
  std::size_t count_ = 0;
  std::size_t next_ = 0;
  std::size_t active_ = 0;
  std::size_t generation_ = 0;
  bool stopping_ = false;
  std::exception_ptr error_;
};

}  // namespace fheml::tfhe
