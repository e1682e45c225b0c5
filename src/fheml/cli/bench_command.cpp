// `fheml bench`: what one encrypted lookup costs, per precision, on this machine.
//
// For each precision: key generation time; single-thread medians of key switch and of key switch
// + programmable bootstrap; throughput of a batch on all threads; key sizes compressed (as they
// travel) and expanded (as the server holds them). Every bootstrap result is decrypted and
// checked, so a fast but wrong engine cannot post a number.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "fheml/cli/commands.h"
#include "fheml/tfhe/engine.h"
#include "fheml/tfhe/fft.h"
#include "fheml/tfhe/noise.h"

namespace fheml::cli {
namespace {

using namespace fheml::tfhe;
using Clock = std::chrono::steady_clock;

struct BenchOptions {
  std::vector<std::size_t> precisions{1, 2, 3, 4, 5, 6, 7, 8};
  int bound_log2 = 40;
  int security = 128;  // 132: parameters searched on the 132-bit curve instead of the built-ins
  std::size_t repetitions = 7;
  std::size_t threads = 0;
  std::size_t batch = 0;  // 0: 8 per thread up to 6 bits, 2 per thread above
  bool json = false;
  std::string output;
};

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

struct Row {
  std::size_t precision;
  PbsParameters params;
  double log2_p_fail;
  double keygen_s;
  double ks_ms;
  double ks_pbs_ms;
  double ks_pbs_mt_ms;  // wall time per bootstrap in the batch
  double throughput_1t;
  double throughput_mt;
  std::size_t threads;
  std::size_t batch;
  std::size_t errors;
  KeySizes sizes;
};

Row bench_precision(std::size_t p, const BenchOptions& options, ThreadPool& pool) {
  const FailureBound bound = options.bound_log2 == 64 ? FailureBound::k2m64 : FailureBound::k2m40;
  const MessageBits bits{p};
  Row row{};
  row.precision = p;
  if (options.security == 128) {
    row.params = default_parameters(bits, bound);
  } else {
    SearchOptions search;
    search.log2_p_fail = -options.bound_log2;
    search.security = SecurityLevel::k132;
    const std::optional<PbsParameters> found = search_parameters(bits, search);
    if (!found) throw std::runtime_error("no 132-bit parameters for " + std::to_string(p) + " bits");
    row.params = *found;
  }
  row.log2_p_fail = log2_failure_probability(row.params, bits);
  row.sizes = key_sizes(row.params);
  row.threads = pool.size();

  Csprng rng(random_seed());
  auto start = Clock::now();
  const ClientKey client = generate_client_key(row.params, rng);
  const ServerKey server = decompress(generate_compressed_server_key(client, rng));
  row.keygen_s = seconds_since(start);

  // A non-trivial table: m -> (3m + 1) mod 2^p.
  const std::size_t messages = std::size_t{1} << p;
  std::vector<std::uint64_t> table(messages);
  for (std::size_t m = 0; m < messages; ++m) table[m] = (3 * m + 1) % messages;
  const LookupTable lut = make_lookup_table(lookup_polynomial_size(row.params), bits, table, bits);

  const std::size_t reps = std::max<std::size_t>(options.repetitions, 1);
  PbsWorkspace workspace(server);
  LweCiphertext small(row.params.lwe_dimension);
  LweCiphertext out(client.big_dimension());
  std::vector<double> ks_times, pbs_times;
  for (std::size_t r = 0; r < reps; ++r) {
    const std::uint64_t m = rng.next_u64() % messages;
    const LweCiphertext in = encrypt(client, m, bits, rng);
    start = Clock::now();
    keyswitch(small.data, in.data, server.keyswitch_key);
    ks_times.push_back(seconds_since(start));
    start = Clock::now();
    keyswitch_bootstrap(out.data, in.data, server, lut, workspace);
    pbs_times.push_back(seconds_since(start));
    row.errors += decrypt(client, out.data, bits) != table[m];
  }
  row.ks_ms = 1e3 * median(ks_times);
  row.ks_pbs_ms = 1e3 * median(pbs_times);
  row.throughput_1t = 1e3 / row.ks_pbs_ms;

  // All threads: a batch of several bootstraps per thread (the batch path blind-rotates a few
  // together), median over repetitions.
  const std::size_t batch = options.batch != 0 ? options.batch : (p <= 6 ? 8 : 2) * pool.size();
  row.batch = batch;
  LweCiphertextList inputs(client.big_dimension(), batch);
  std::vector<std::uint64_t> batch_messages(batch);
  for (std::size_t i = 0; i < batch; ++i) {
    batch_messages[i] = rng.next_u64() % messages;
    const LweCiphertext ct = encrypt(client, batch_messages[i], bits, rng);
    std::copy(ct.data.begin(), ct.data.end(), inputs.at(i).begin());
  }
  const LookupTable* tables[] = {&lut};
  std::vector<double> batch_times;
  const std::size_t batch_reps = std::max<std::size_t>(1, std::min<std::size_t>(reps, 3));
  for (std::size_t r = 0; r < batch_reps; ++r) {
    start = Clock::now();
    const LweCiphertextList results = keyswitch_bootstrap_batch(server, inputs, tables, pool);
    batch_times.push_back(seconds_since(start));
    for (std::size_t i = 0; i < batch; ++i) {
      row.errors += decrypt(client, results.at(i), bits) != table[batch_messages[i]];
    }
  }
  const double batch_time = median(batch_times);
  row.throughput_mt = static_cast<double>(batch) / batch_time;
  row.ks_pbs_mt_ms = 1e3 * batch_time / static_cast<double>(batch);
  return row;
}

std::string mib(std::size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return buf;
}

void print_table(const std::vector<Row>& rows, const BenchOptions& options) {
  std::printf(
      "fheml bench: KS+PBS per precision, %d-bit security, p_fail <= 2^-%d, FFT kernels: %s, "
      "%zu threads\n",
      options.security, options.bound_log2, to_string(best_simd_level()),
      rows.empty() ? 0 : rows[0].threads);
  std::printf("%-3s %-36s %9s %8s %9s %11s %11s %11s %11s %11s %7s\n", "p", "parameters",
              "log2 pfail", "keygen s", "KS ms", "KS+PBS ms", "PBS/s 1t", "PBS/s all",
              "BSK MiB c/e", "KSK MiB c/e", "errors");
  for (const Row& r : rows) {
    char params[128];
    std::snprintf(params, sizeof params, "n=%zu k=%zu N=%zu%s pbs=%zux%zu ks=%zux%zu",
                  r.params.lwe_dimension.value, r.params.glwe_dimension.value,
                  r.params.polynomial_size.value,
                  r.params.extension_log == 0
                      ? ""
                      : ("*" + std::to_string(std::size_t{1} << r.params.extension_log)).c_str(),
                  r.params.pbs_base_log.value, r.params.pbs_level.value,
                  r.params.ks_base_log.value, r.params.ks_level.value);
    const std::string bsk =
        mib(r.sizes.bootstrap_compressed) + "/" + mib(r.sizes.bootstrap_expanded);
    const std::string ksk =
        mib(r.sizes.keyswitch_compressed) + "/" + mib(r.sizes.keyswitch_expanded);
    std::printf("%-3zu %-36s %9.1f %8.2f %9.3f %11.2f %11.1f %11.1f %11s %11s %7zu\n", r.precision,
                params, r.log2_p_fail, r.keygen_s, r.ks_ms, r.ks_pbs_ms, r.throughput_1t,
                r.throughput_mt, bsk.c_str(), ksk.c_str(), r.errors);
  }
  std::printf(
      "KS and KS+PBS: single-thread medians; PBS/s all: a batch (8 per thread up to 6 bits, 2\n"
      "above; --batch) on all threads.\n"
      "Key sizes in MiB, compressed (seeded, as sent) / expanded (as the server computes: 32-bit\n"
      "key switching key, 64-bit bootstrap key; its Fourier form is the same size in doubles).\n"
      "A ciphertext travels as one 8-byte body per message (seeded lists share one 32-byte seed)\n"
      "instead of 8 * (k*N + 1) bytes expanded.\n");
}

nlohmann::json to_json(const std::vector<Row>& rows, const BenchOptions& options) {
  nlohmann::json out;
  out["failure_bound_log2"] = -options.bound_log2;
  out["security_bits"] = options.security;
  out["simd"] = to_string(best_simd_level());
  out["threads"] = rows.empty() ? 0 : rows[0].threads;
  out["repetitions"] = options.repetitions;
  for (const Row& r : rows) {
    out["results"].push_back({
        {"precision", r.precision},
        {"parameters", describe(r.params)},
        {"log2_p_fail_model", r.log2_p_fail},
        {"keygen_s", r.keygen_s},
        {"keyswitch_ms_median", r.ks_ms},
        {"ks_pbs_ms_median_1thread", r.ks_pbs_ms},
        {"ks_pbs_ms_per_op_all_threads", r.ks_pbs_mt_ms},
        {"pbs_per_s_1thread", r.throughput_1t},
        {"pbs_per_s_all_threads", r.throughput_mt},
        {"batch_size", r.batch},
        {"bootstrap_key_bytes_compressed", r.sizes.bootstrap_compressed},
        {"bootstrap_key_bytes_expanded", r.sizes.bootstrap_expanded},
        {"bootstrap_key_bytes_fourier", r.sizes.bootstrap_fourier},
        {"keyswitch_key_bytes_compressed", r.sizes.keyswitch_compressed},
        {"keyswitch_key_bytes_expanded", r.sizes.keyswitch_expanded},
        // One input ciphertext under the big key: expanded (mask + body) and seeded (one body;
        // the 32-byte seed is shared by a whole batch).
        {"ciphertext_bytes_expanded",
         lwe_size(LweDimension{r.params.glwe_dimension.value * r.params.polynomial_size.value}) *
             sizeof(Torus)},
        {"ciphertext_bytes_compressed", sizeof(Torus)},
        {"decryption_errors", r.errors},
    });
  }
  return out;
}

void run_bench(const BenchOptions& options) {
  ThreadPool pool(options.threads);
  std::vector<Row> rows;
  for (const std::size_t p : options.precisions) {
    if (p < 1 || p > 8)
      throw std::invalid_argument("precision must be in 1..8, found " + std::to_string(p));
    if (!options.json) std::fprintf(stderr, "benchmarking %zu-bit lookups...\n", p);
    rows.push_back(bench_precision(p, options, pool));
  }
  if (options.json) {
    std::cout << to_json(rows, options).dump(2) << "\n";
  } else {
    print_table(rows, options);
  }
  if (!options.output.empty()) {
    std::ofstream file(options.output);
    if (!file) throw std::runtime_error("cannot write " + options.output);
    file << to_json(rows, options).dump(2) << "\n";
  }
  std::size_t errors = 0;
  for (const Row& r : rows) errors += r.errors;
  if (errors)
    throw std::runtime_error(std::to_string(errors) + " bootstrap results decrypted wrongly");
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto options = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand(
      "bench", "Latency, throughput and key sizes of key switch + programmable bootstrap");
  cmd->add_option("-p,--precisions", options->precisions, "Message bits to benchmark (1..8)")
      ->delimiter(',');
  cmd->add_option("--bound", options->bound_log2, "Failure probability bound 2^-B per bootstrap")
      ->check(CLI::IsMember({40, 64}));
  cmd->add_option("--security", options->security,
                  "Security level in bits: 128 (the built-in sets) or 132 (searched)")
      ->check(CLI::IsMember({128, 132}));
  cmd->add_option("-r,--repetitions", options->repetitions,
                  "Single-thread samples per precision (median)");
  cmd->add_option("-t,--threads", options->threads, "Threads for the batch (0: all)");
  cmd->add_option("-b,--batch", options->batch, "Bootstraps per throughput batch (0: automatic)");
  cmd->add_flag("--json", options->json, "Print JSON instead of a table");
  cmd->add_option("-o,--output", options->output, "Also write the JSON to this file");
  cmd->callback([options] { run_bench(*options); });
}

}  // namespace fheml::cli
