// `fheml_bench_models`: what whole models cost, from float graph to encrypted prediction.
//
// Two models on the scikit-learn `digits` rows (tests/data/sklearn): an MLP 64-128-128-10 with
// relu and a small CNN on 1x1x8x8 images (conv 8@3x3 pad 1, relu, max pool 2x2, conv 16@3x3
// pad 1, relu, avg pool 2x2, flatten, gemm 10). Weights come from a seeded generator (He
// initialisation): accuracy is not the point, but the activation ranges are realistic because
// calibration and test inputs are real rows.
//
// Per model: compile wall time (median of --repetitions; quantization included), resident
// memory before and at the peak of the first compilation, lookups per precision, the chosen
// parameters and key sizes (compute_statistics), key generation time, per-sample latency in
// execute mode on one thread and on all threads, per-sample latency of simulate and disable, and
// agreement of simulate/disable with the float model. Every executed sample is compared with the
// clear interpreter (disable).
//
// Memory: VmRSS just before the first compilation of a model, and VmHWM (peak resident set)
// after it, the peak having been reset to the current RSS just before (/proc/self/clear_refs);
// so the peak is that of the whole process during that compilation, data and earlier circuits
// included. Every model is compiled before any key is generated, so the process's ru_maxrss at
// the end of the compile phase also bounds compilation alone.
//
// Exit status: 0; 1 when an executed sample decrypts to something other than the clear
// interpreter's result; 2 when a model does not compile (its diagnostic is recorded) or on bad
// input; 3 when a compilation's peak RSS exceeds --max-compile-rss-mib (2 GiB by default).
#include "model_bench.h"

#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "fheml/cli/datasets.h"
#include "fheml/compiler/compile.h"
#include "fheml/ir/float_graph.h"
#include "fheml/runtime/runtime.h"
#include "fheml/runtime/statistics.h"
#include "fheml/tfhe/csprng.h"
#include "fheml/tfhe/parameters.h"
#include "fheml/tfhe/thread_pool.h"

namespace {

using namespace fheml::bench_models;

// --- Output.

std::string mib(std::size_t bytes) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(1) << static_cast<double>(bytes) / (1024.0 * 1024.0);
  return s.str();
}

std::string fixed(double v, int digits) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

std::string lookups_text(const std::map<std::uint32_t, std::size_t>& per_bits) {
  std::string text;
  for (const auto& [bits, count] : per_bits) {
    if (!text.empty()) text += ", ";
    text += std::to_string(count) + "x" + std::to_string(bits) + "b";
  }
  return text.empty() ? "none" : text;
}

Json timings_json(const std::vector<SampleTiming>& timings) {
  Json samples = Json::array();
  std::vector<double> totals, runs, cpus;
  for (const auto& t : timings) {
    samples.push_back({{"encrypt_ms", t.encrypt_ms},
                       {"run_ms", t.run_ms},
                       {"run_cpu_ms", t.run_cpu_ms},
                       {"decrypt_ms", t.decrypt_ms},
                       {"total_ms", t.total_ms()},
                       {"bootstrap_batches", t.batches},
                       {"matches_disable", t.matches_disable}});
    totals.push_back(t.total_ms());
    runs.push_back(t.run_ms);
  }
  return {
      {"median_total_ms", median(totals)}, {"median_run_ms", median(runs)}, {"samples", samples}};
}

Json statistics_json(const fheml::runtime::Statistics& s) {
  Json lookups = Json::object();
  for (const auto& [bits, count] : s.lookups_per_bits) lookups[std::to_string(bits)] = count;
  return {{"lookups_per_bits", lookups},
          {"bootstraps", s.bootstraps},
          {"key_switches", s.key_switches},
          {"linear_ops", s.linear_ops},
          {"bootstraps_per_stage", s.bootstraps_per_stage},
          {"depth", s.depth},
          {"max_width", s.max_width},
          {"max_lookup_bits", s.max_lookup_bits},
          {"key_sizes_bytes",
           {{"keyswitch_compressed", s.key_sizes.keyswitch_compressed},
            {"keyswitch_expanded", s.key_sizes.keyswitch_expanded},
            {"bootstrap_compressed", s.key_sizes.bootstrap_compressed},
            {"bootstrap_expanded", s.key_sizes.bootstrap_expanded},
            {"bootstrap_fourier", s.key_sizes.bootstrap_fourier}}},
          {"ciphertext_bytes", s.ciphertext_bytes},
          {"input_bytes", s.input_bytes},
          {"output_bytes", s.output_bytes},
          {"estimated_bootstrap_ms", s.bootstrap_ms},
          {"estimated_latency_ms_1_thread", s.estimated_latency_ms},
          {"estimated_latency_threads", s.threads},
          {"estimated_parallel_latency_ms", s.estimated_parallel_latency_ms}};
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

struct ModelRun {
  Model model;
  std::optional<CompileResult> compiled;
  std::string error;
  double seconds_to_error = 0;
};

// Runs one model after compilation; fills `out` and prints the human table. Returns the number
// of executed samples whose decryption differs from the clear interpreter.
std::size_t evaluate_model(const ModelRun& m, const Options& o,
                           const fheml::datasets::LabelledData& test,
                           fheml::tfhe::ThreadPool& all_threads, Json& out) {
  const CompileResult& c = *m.compiled;
  const fheml::runtime::Program program(c.circuit);
  const auto& circuit = program.circuit();
  const auto stats = fheml::runtime::compute_statistics(circuit, all_threads.size());
  const std::string parameters = circuit.has_lookups ? fheml::tfhe::describe(circuit.parameters)
                                                     : std::string("no lookups: no server key");

  out["compile"] = {{"median_s", median(c.seconds)},
                    {"seconds", c.seconds},
                    {"quantize_s", c.quantize_s},
                    {"rss_before_kib", c.rss_before_kib},
                    {"peak_rss_kib", c.peak_kib},
                    {"peak_rss_is_compile_only", c.peak_reset},
                    {"process_maxrss_after_kib", c.maxrss_after_kib}};
  out["circuit"] = {{"parameters", parameters},
                    {"parameter_choice", circuit.parameter_choice},
                    {"log2_p_error", circuit.log2_p_error},
                    {"global_p_error", circuit.global_p_error},
                    {"nodes", circuit.graph.nodes.size()},
                    {"noise_sites", circuit.noise_sites.size()},
                    {"stages", program.stage_count()}};
  out["statistics"] = statistics_json(stats);

  std::cout << "\n== " << m.model.name << ": " << m.model.description << "\n";
  std::cout << "  compile            " << fixed(median(c.seconds), 3) << " s median of "
            << c.seconds.size() << " (quantize alone " << fixed(c.quantize_s, 3) << " s)\n";
  std::cout << "  RSS                " << fixed(c.rss_before_kib / 1024.0, 1) << " MiB before, "
            << fixed(c.peak_kib / 1024.0, 1) << " MiB peak during compile"
            << (c.peak_reset ? "" : " (peak reset failed: process peak)") << ", process max "
            << fixed(c.maxrss_after_kib / 1024.0, 1) << " MiB\n";
  std::cout << "  lookups/sample     " << lookups_text(stats.lookups_per_bits) << " ("
            << stats.bootstraps << " bootstraps, depth " << stats.depth << ", max width "
            << stats.max_width << ")\n";
  std::cout << "  parameters         " << parameters << "\n";
  std::cout << "  choice             " << circuit.parameter_choice << "\n";
  if (o.report) std::cout << fheml::runtime::report(circuit, stats);
  std::cout << "  p_error            2^" << fixed(circuit.log2_p_error, 1) << " per lookup, global "
            << circuit.global_p_error << "\n";
  std::cout << "  keys (MiB)         BSK " << mib(stats.key_sizes.bootstrap_compressed)
            << " sent / " << mib(stats.key_sizes.bootstrap_fourier) << " Fourier, KSK "
            << mib(stats.key_sizes.keyswitch_compressed) << " sent / "
            << mib(stats.key_sizes.keyswitch_expanded) << " held\n";
  std::cout << "  estimate           " << fixed(stats.estimated_latency_ms, 0) << " ms 1 thread, "
            << fixed(stats.estimated_parallel_latency_ms, 0) << " ms on " << stats.threads
            << " threads\n";

  const ClearResult clear = measure_clear(m.model, program, test, o.accuracy_rows);
  const double n = static_cast<double>(clear.rows);
  out["clear"] = {{"rows", clear.rows},
                  {"disable_ms_per_sample", clear.disable_ms},
                  {"simulate_ms_per_sample", clear.simulate_ms},
                  {"float_accuracy", clear.float_correct / n},
                  {"disable_accuracy", clear.disable_correct / n},
                  {"simulate_accuracy", clear.simulate_correct / n},
                  {"disable_agrees_with_float", clear.disable_agree_float / n},
                  {"disable_relative_rms_error", clear.disable_relative_rms},
                  {"simulate_agrees_with_float", clear.simulate_agree_float / n},
                  {"simulate_differs_from_disable", clear.simulate_differs}};
  std::cout << "  disable            " << fixed(clear.disable_ms, 3)
            << " ms/sample; argmax = float's on " << fixed(100 * clear.disable_agree_float / n, 1)
            << "% of " << clear.rows << " test rows, relative RMS error "
            << fixed(clear.disable_relative_rms, 3) << " (accuracy "
            << fixed(100 * clear.disable_correct / n, 1) << "%, float "
            << fixed(100 * clear.float_correct / n, 1) << "%: random weights, sanity only)\n";
  std::cout << "  simulate           " << fixed(clear.simulate_ms, 3)
            << " ms/sample; argmax = float's on " << fixed(100 * clear.simulate_agree_float / n, 1)
            << "%, " << clear.simulate_differs << " sample(s) differ from disable\n";

  if (o.skip_execute) return 0;
  const ExecuteResult e = measure_execute(m.model, program, test, o.samples, all_threads);
  out["execute"] = {{"keygen_s", e.keygen_s},
                    {"decompress_s", e.decompress_s},
                    {"one_thread", timings_json(e.one_thread)},
                    {"all_threads", timings_json(e.all_threads)},
                    {"threads_all", e.threads_all},
                    {"mismatches_vs_disable", e.mismatches}};
  auto line = [](const std::vector<SampleTiming>& ts) {
    std::vector<double> totals, runs, cpus;
    for (const auto& t : ts) {
      totals.push_back(t.total_ms());
      runs.push_back(t.run_ms);
      cpus.push_back(t.run_cpu_ms);
    }
    return fixed(median(totals) / 1e3, 2) + " s/sample (server " + fixed(median(runs) / 1e3, 2) +
           " s wall, " + fixed(median(cpus) / 1e3, 2) + " s CPU), median of " +
           std::to_string(ts.size()) + ", fastest server " +
           fixed(runs.empty() ? 0.0 : *std::min_element(runs.begin(), runs.end()) / 1e3, 2) + " s";
  };
  std::cout << "  keygen             " << fixed(e.keygen_s, 2) << " s + decompress "
            << fixed(e.decompress_s, 2) << " s\n";
  std::cout << "  execute 1 thread   " << line(e.one_thread) << "\n";
  std::cout << "  execute " << e.threads_all << " threads  " << line(e.all_threads) << "\n";
  const std::uint32_t noise_bits = program.circuit().output_noise_bits;
  std::cout << "  execute == disable "
            << (noise_bits > 0
                    ? "within 2^" + std::to_string(noise_bits - 1) + " (approximate outputs) "
                    : std::string())
            << (e.mismatches == 0 ? "yes" : "NO") << " on "
            << e.one_thread.size() + e.all_threads.size() << " runs\n";
  return e.mismatches;
}

std::vector<fheml::quant::Sample> calibration_rows(const fheml::datasets::LabelledData& train,
                                                   std::size_t count, const Shape& shape) {
  std::vector<fheml::quant::Sample> samples;
  for (std::size_t i = 0; i < std::min(count, train.size()); ++i)
    samples.push_back({as_input(train.features[i], shape)});
  return samples;
}

int run(const Options& o) {
  const std::string started = utc_now();
  const double load_at_start = load_average();
  namespace td = fheml::datasets;
  const auto train = td::load_labelled_csv(td::sklearn_path("digits_train.csv"));
  const auto test = td::load_labelled_csv(td::sklearn_path("digits_test.csv"));
  if (train.feature_count() != 64 || test.feature_count() != 64)
    throw std::invalid_argument("digits: expected 64 features per row, found " +
                                std::to_string(train.feature_count()) + " and " +
                                std::to_string(test.feature_count()));

  std::vector<ModelRun> runs;
  for (const auto& name : o.models) {
    if (name == "mlp") {
      runs.push_back({build_mlp(o.seed), std::nullopt, ""});
    } else if (name == "cnn") {
      runs.push_back({build_cnn(o.seed), std::nullopt, ""});
    } else {
      throw std::invalid_argument("--models: expected mlp or cnn, found \"" + name + "\"");
    }
  }

  // Every compilation first, so that the process's maximum RSS at the end of this phase bounds
  // compilation alone (key generation and execution come later).
  for (auto& r : runs) {
    const auto calibration = calibration_rows(train, o.calibration, r.model.input_shape);
    const auto start = Clock::now();
    try {
      r.compiled.emplace(measure_compile(r.model, calibration, o));
    } catch (const std::invalid_argument& error) {
      r.error = error.what();
      r.seconds_to_error = seconds_since(start);
    }
  }

  fheml::tfhe::ThreadPool all_threads(o.threads);
  std::cout << "fheml_bench_models " << started << ": n_bits " << o.n_bits
            << ", rounding_threshold_bits "
            << (o.rounding_threshold_bits ? std::to_string(*o.rounding_threshold_bits) : "none")
            << ", max_lookup_bits " << o.max_lookup_bits << ", calibration " << o.calibration
            << " rows, " << all_threads.size() << " threads, load average " << load_at_start
            << "\n";

  Json models = Json::array();
  std::size_t mismatches = 0;
  bool failed = false;
  bool over_memory = false;
  for (const auto& r : runs) {
    Json out{{"model", r.model.name}, {"description", r.model.description}};
    if (!r.compiled) {
      std::cout << "\n== " << r.model.name << ": compilation failed: " << r.error << "\n";
      out["error"] = r.error;
      out["compile"] = {{"seconds_to_error", r.seconds_to_error}};
      failed = true;
    } else {
      mismatches += evaluate_model(r, o, test, all_threads, out);
      const double peak_mib = static_cast<double>(r.compiled->peak_kib) / 1024.0;
      out["compile"]["within_memory_bound"] = peak_mib <= o.max_compile_rss_mib;
      if (peak_mib > o.max_compile_rss_mib) {
        std::cerr << "error: compiling " << r.model.name << " peaked at " << fixed(peak_mib, 0)
                  << " MiB resident, above the bound of " << fixed(o.max_compile_rss_mib, 0)
                  << " MiB\n";
        over_memory = true;
      }
    }
    models.push_back(out);
    std::cout << std::flush;  // progress is visible when stdout is a pipe
  }

  Json options{{"n_bits", o.n_bits},
               {"weight_bits", o.weight_bits.value_or(o.n_bits)},
               {"rounding_method", o.approximate ? "approximate" : "exact"},
               {"requantize_outputs", o.requantize_outputs},
               {"output_noise_bits", o.output_noise_bits},
               {"refresh_max_pool", o.refresh_max_pool},
               {"rounding_threshold_bits",
                o.rounding_threshold_bits ? Json(*o.rounding_threshold_bits) : Json(nullptr)},
               {"max_lookup_bits", o.max_lookup_bits},
               {"p_error", o.p_error ? Json(*o.p_error) : Json(nullptr)},
               {"global_p_error", o.global_p_error ? Json(*o.global_p_error) : Json(nullptr)},
               {"calibration_rows", o.calibration},
               {"repetitions", o.repetitions},
               {"execute_samples", o.skip_execute ? 0 : o.samples},
               {"weight_seed", o.seed},
               {"max_compile_rss_mib", o.max_compile_rss_mib}};
  Json record;
  record["config"] = o.config;
  record["started"] = started;
  record["finished"] = utc_now();
  record["note"] = o.note;
  record["hardware_threads"] = std::thread::hardware_concurrency();
  record["load_average_1min"] = {{"start", load_at_start}, {"end", load_average()}};
  record["compiler"] = __VERSION__;
  record["options"] = options;
  record["models"] = models;
  if (!o.json_path.empty()) {
    Json file{{"runs", Json::array()}};
    if (o.append && std::filesystem::exists(o.json_path)) {
      std::ifstream in(o.json_path);
      file = Json::parse(in);
      if (!file.contains("runs") || !file["runs"].is_array())
        throw std::invalid_argument(o.json_path + ": expected an object with a \"runs\" array");
    }
    file["runs"].push_back(record);
    std::ofstream json_out(o.json_path);
    json_out << file.dump(2) << "\n";
    if (!json_out) throw std::runtime_error("cannot write " + o.json_path);
  }
  if (mismatches != 0) {
    std::cerr << "error: " << mismatches
              << " executed sample(s) decrypted to something other than the clear interpreter\n";
    return 1;
  }
  if (over_memory) return 3;
  return failed ? 2 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"fheml_bench_models: compile and run an MLP and a CNN on the digits data"};
  Options o;
  std::string models = "mlp,cnn";
  std::uint32_t rounding = 0, weight_bits = 0;
  double p_error = 0, global_p_error = 0;
  app.add_option("--models", models, "comma-separated: mlp, cnn")->capture_default_str();
  app.add_option("--n-bits", o.n_bits, "bits of inputs, weights and activations")
      ->capture_default_str()
      ->check(CLI::Range(1, 16));
  app.add_option("--weight-bits", weight_bits, "bits of the weights (0: --n-bits)")
      ->check(CLI::Range(0, 16));
  app.add_option("--rounding-threshold-bits", rounding,
                 "round lookup inputs to this many bits (0: no rounding)")
      ->check(CLI::Range(0, 16));
  app.add_option("--max-lookup-bits", o.max_lookup_bits)
      ->capture_default_str()
      ->check(CLI::Range(1, 16));
  app.add_option("--p-error", p_error, "failure probability per lookup (default 2^-40)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--global-p-error", global_p_error, "failure probability per evaluation")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--max-partitions", o.max_partitions, "parameter sets per circuit (partitions)")
      ->capture_default_str();
  app.add_option("--calibration", o.calibration, "train rows used to calibrate")
      ->capture_default_str();
  app.add_option("--repetitions,-r", o.repetitions, "compilations timed")->capture_default_str();
  app.add_option("--samples", o.samples, "test rows executed encrypted, per thread setting")
      ->capture_default_str()
      ->check(CLI::Range(1, 450));
  app.add_option("--accuracy-rows", o.accuracy_rows, "test rows for simulate/disable (0: all)")
      ->capture_default_str();
  app.add_option("--threads", o.threads, "threads of the 'all cores' run (0: hardware)")
      ->capture_default_str();
  app.add_option("--seed", o.seed, "seed of the weights")->capture_default_str();
  app.add_option("--max-compile-rss-mib", o.max_compile_rss_mib,
                 "fail (exit 3) when a compilation's peak resident set exceeds this")
      ->capture_default_str();
  app.add_flag("--skip-execute", o.skip_execute, "compile, simulate and disable only");
  app.add_flag("--report", o.report,
               "print each circuit's report (nodes, partitions, noise sites) after compiling");
  app.add_flag("--approximate", o.approximate, "approximate rounding (no extra bootstrap)");
  app.add_flag("--requantize-outputs", o.requantize_outputs,
               "identity lookup on wide outputs before decryption");
  app.add_option("--refresh-max-pool", o.refresh_max_pool,
                 "identity lookup on max pool outputs: on, off, or auto (the cheaper)")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->capture_default_str();
  app.add_option("--output-noise-bits", o.output_noise_bits,
                 "approximate outputs: the noise may change their lowest bits (0: exact)")
      ->capture_default_str();
  app.add_option("--config", o.config, "name of this configuration in the JSON record");
  app.add_option("--note", o.note, "free text stored in the JSON record (commit, machine)");
  app.add_option("--json", o.json_path, "write the results to this file");
  app.add_flag("--append", o.append, "append to the --json file's runs instead of replacing it");
  CLI11_PARSE(app, argc, argv);

  o.models.clear();
  std::stringstream list(models);
  for (std::string name; std::getline(list, name, ',');)
    if (!name.empty()) o.models.push_back(name);
  if (rounding != 0) o.rounding_threshold_bits = rounding;
  if (weight_bits != 0) o.weight_bits = weight_bits;
  if (app.count("--p-error") != 0) o.p_error = p_error;
  if (app.count("--global-p-error") != 0) o.global_p_error = global_p_error;
  try {
    return run(o);
  } catch (const std::exception& error) {
    std::cerr << "error: " << error.what() << "\n";
    return 2;
  }
}
