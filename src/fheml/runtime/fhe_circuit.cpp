#include <algorithm>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "fheml/runtime/runtime.h"

namespace fheml::runtime {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

namespace {

unsigned checked_threads(unsigned threads) {
  if (threads > kMaxThreads) {
    throw std::invalid_argument("threads must be at most " + std::to_string(kMaxThreads) +
                                " (0: one per hardware thread, here " +
                                std::to_string(std::thread::hardware_concurrency()) + "), found " +
                                std::to_string(threads));
  }
  return threads;
}

}  // namespace

FheCircuit::FheCircuit(compiler::Circuit circuit, const FheCircuitOptions& options)
    : program_(std::move(circuit)),
      options_(options),
      seed_(options.seed ? *options.seed : tfhe::random_seed()),
      noise_(std::make_unique<tfhe::NoiseSource>(
          tfhe::derive_seed(seed_, "fheml runtime encryption and simulation noise"))),
      mutex_(std::make_unique<std::mutex>()),
      pool_(checked_threads(options.threads) == 0
                ? nullptr
                : std::make_unique<tfhe::ThreadPool>(options.threads)) {}

std::size_t FheCircuit::threads() const {
  return pool_ ? pool_->size() : tfhe::ThreadPool::global().size();
}

void FheCircuit::keygen() {
  std::lock_guard<std::mutex> lock(*mutex_);
  if (client_keys_) return;
  const auto start = Clock::now();
  Keys keys = runtime::keygen(
      circuit(), KeygenOptions{tfhe::derive_seed(seed_, "fheml runtime keys")});
  evaluation_keys_ = decompress(keys.evaluation, program_);
  client_keys_ = std::move(keys.client);
  keygen_seconds_ = seconds_since(start);
}

std::vector<IntSample> FheCircuit::run_integers(std::span<const IntSample> samples, Mode mode) {
  Timings timings{mode, samples.size()};
  std::vector<IntSample> results;
  switch (mode) {
    case Mode::kDisable: {
      const auto start = Clock::now();
      results = run_clear(circuit(), samples);
      timings.run_s = seconds_since(start);
      break;
    }
    case Mode::kSimulate: {
      const auto start = Clock::now();
      tfhe::Csprng noise = noise_->next();
      results = run_simulate(program_, samples, noise);
      timings.run_s = seconds_since(start);
      break;
    }
    case Mode::kExecute: {
      keygen();  // the keys never change once made: read without the lock from here on
      {
        std::lock_guard<std::mutex> lock(*mutex_);
        timings.keygen_s = keygen_seconds_;
      }
      // Client and server share this process: the inputs never travel, so they are encrypted
      // expanded and their masks generated once (runtime.h, ExpandedInput).
      auto start = Clock::now();
      const std::vector<ExpandedInput> inputs = encrypt_on_pool(samples);
      timings.encrypt_s = seconds_since(start);
      start = Clock::now();
      const std::vector<EncryptedOutput> outputs =
          run(program_, *evaluation_keys_, std::span<const ExpandedInput>(inputs),
              RunOptions{pool_.get(), nullptr});
      timings.run_s = seconds_since(start);
      start = Clock::now();
      results = decrypt(circuit(), *client_keys_, outputs);
      timings.decrypt_s = seconds_since(start);
      break;
    }
  }
  std::lock_guard<std::mutex> lock(*mutex_);
  last_run_ = timings;
  return results;
}

// Generating the masks is most of the client's time (all of it for a linear circuit), so the
// samples are split across the pool: each part encrypted with its own noise stream, a child of
// the circuit's, then the lists joined in sample order.
std::vector<ExpandedInput> FheCircuit::encrypt_on_pool(std::span<const IntSample> samples) {
  tfhe::ThreadPool& pool = pool_ ? *pool_ : tfhe::ThreadPool::global();
  const std::size_t parts = std::min(pool.size(), samples.size());
  tfhe::Csprng call_noise = noise_->next();
  if (parts <= 1) return encrypt_expanded(circuit(), *client_keys_, samples, call_noise);
  std::vector<tfhe::Seed> seeds;
  for (std::size_t p = 0; p < parts; ++p) seeds.push_back(call_noise.derive_seed());
  std::vector<std::vector<ExpandedInput>> encrypted(parts);
  pool.parallel_for(parts, [&](std::size_t p, std::size_t) {
    const std::size_t begin = samples.size() * p / parts;
    const std::size_t end = samples.size() * (p + 1) / parts;
    tfhe::Csprng noise(seeds[p]);
    encrypted[p] =
        encrypt_expanded(circuit(), *client_keys_, samples.subspan(begin, end - begin), noise);
  });
  std::vector<ExpandedInput> joined = std::move(encrypted[0]);
  for (std::size_t p = 1; p < parts; ++p) {
    for (std::size_t i = 0; i < joined.size(); ++i) {
      joined[i].batch += encrypted[p][i].batch;
      std::vector<tfhe::Torus>& data = joined[i].ciphertexts.data;
      const std::vector<tfhe::Torus>& more = encrypted[p][i].ciphertexts.data;
      data.insert(data.end(), more.begin(), more.end());
    }
  }
  return joined;
}

std::vector<IntSample> quantize_samples(std::span<const quant::InputQuantizer> inputs,
                                        std::span<const FloatSample> samples,
                                        quant::OutOfRange out_of_range, const char* what) {
  std::vector<quant::RangeTally> tallies(inputs.size());
  std::vector<IntSample> quantized;
  quantized.reserve(samples.size());
  for (std::size_t s = 0; s < samples.size(); ++s) {
    if (samples[s].size() != inputs.size()) {
      throw std::invalid_argument("sample " + std::to_string(s) + " has " +
                                  std::to_string(samples[s].size()) + " tensors, " + what + " " +
                                  std::to_string(inputs.size()) + " inputs");
    }
    IntSample q;
    for (std::size_t i = 0; i < inputs.size(); ++i)
      q.push_back(inputs[i].quantize(samples[s][i], &tallies[i]));
    quantized.push_back(std::move(q));
  }
  for (std::size_t i = 0; i < inputs.size(); ++i)
    inputs[i].settle(tallies[i], samples.size(), out_of_range);
  return quantized;
}

std::vector<FloatSample> FheCircuit::predict(std::span<const FloatSample> samples, Mode mode) {
  const compiler::Circuit& c = circuit();
  if (c.inputs.size() != c.graph.inputs().size() || c.outputs.size() != c.graph.outputs.size()) {
    throw std::invalid_argument(
        "circuit has " + std::to_string(c.inputs.size()) + " input quantizers and " +
        std::to_string(c.outputs.size()) + " output dequantizers for " +
        std::to_string(c.graph.inputs().size()) + " inputs and " +
        std::to_string(c.graph.outputs.size()) + " outputs: predict needs one each");
  }
  auto start = Clock::now();
  const std::vector<IntSample> quantized =
      quantize_samples(c.inputs, samples, options_.out_of_range, "the circuit");
  const double quantize_s = seconds_since(start);
  const std::vector<IntSample> results = run_integers(quantized, mode);
  start = Clock::now();
  std::vector<FloatSample> floats;
  floats.reserve(results.size());
  for (const IntSample& r : results) {
    FloatSample f;
    for (std::size_t o = 0; o < r.size(); ++o) f.push_back(c.outputs[o].dequantize(r[o]));
    floats.push_back(std::move(f));
  }
  // This call's own timings: another thread's run may have stored its own since.
  std::lock_guard<std::mutex> lock(*mutex_);
  if (last_run_) {
    last_run_->encrypt_s += quantize_s;
    last_run_->decrypt_s += seconds_since(start);
  }
  return floats;
}

Statistics FheCircuit::statistics() const {
  Statistics s = compute_statistics(circuit(), threads());
  std::lock_guard<std::mutex> lock(*mutex_);
  s.last_run = last_run_;
  return s;
}

}  // namespace fheml::runtime
