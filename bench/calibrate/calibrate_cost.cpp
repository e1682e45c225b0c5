// `fheml_calibrate_cost`: the measurements behind the parameter search's cost model
// (tfhe/parameters.cpp, "Cost model").
//
// A KS+PBS costs one key switch plus n CMuxes. Both are timed here as they run inside a
// bootstrap: every CMux reads a different GGSW and every key switch a different key, from rings
// of keys larger than the last-level cache (256 MiB), so that the keys stream from memory as the
// real ones do (a 4-bit bootstrap key is 48 MiB; this VM's L3 is 32 MiB). The keys hold random
// words: timing does not depend on their values, and a real key of n = 800 GGSWs at N = 2^16 would
// not fit in memory.
//
//  - CMux (cmux_rotate_add: rotation and digits read by the forward transforms, the products
//    with the GGSW in one pass, the inverse transforms): every k in 1..3, N = 2^8..2^16, level
//    1..5; median ns per CMux.
//  - Extended CMux (lookup tables of N * 2^e, bootstrap.h): blind rotations through tables of
//    N * 2^e, e = 0..4, k in 1..3, N = 2^9..2^12, levels 1-2; the factor per CMux over 2^e plain
//    ones, medians per k and e (--extended-only measures this alone).
//  - Key switch (32-bit compute form): input dimension k*N in 2^9..2^16, n in {500, 800, 1100},
//    level 1..10 (a subset); median ns per call.
//  - With --check-bits: the ranking check. For each precision, the cheapest set the search finds
//    for every (k, N, bootstrap levels) it allows, with real keys: single-thread KS+PBS medians
//    (each result decrypted and checked) against tfhe::estimated_cost.
//  - With --compare-previous: every built-in set that this model moved against the one it
//    replaced, KS+PBS timed in interleaved rounds.
//
// It prints the measurements and fits as JSON; tfhe/parameters.cpp says which recorded run
// (bench/results/cost-*.json) each of its coefficients comes from.
#include <malloc.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fheml/tfhe/bootstrap.h"
#include "fheml/tfhe/csprng.h"
#include "fheml/tfhe/engine.h"
#include "fheml/tfhe/ggsw.h"
#include "fheml/tfhe/huge_pages.h"
#include "fheml/tfhe/keyswitch.h"
#include "fheml/tfhe/noise.h"

namespace {

using namespace fheml::tfhe;
using Clock = std::chrono::steady_clock;
constexpr std::size_t kRingBytes = std::size_t{256} << 20;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

// Times `step(i)` for i = 0, 1, ... (each call one unit) until `min_seconds` and `min_calls`;
// `rounds` such medians, then the median of them, in ns per call.
template <class Step>
double time_per_call(Step&& step, std::size_t min_calls, double min_seconds, int rounds) {
  std::vector<double> per_round;
  std::size_t i = 0;
  for (std::size_t w = 0; w < std::max<std::size_t>(min_calls / 4, 1); ++w) step(i++);  // warm
  for (int r = 0; r < rounds; ++r) {
    const auto start = Clock::now();
    std::size_t calls = 0;
    double elapsed = 0;
    while (calls < min_calls || elapsed < min_seconds) {
      step(i++);
      ++calls;
      elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    }
    per_round.push_back(elapsed * 1e9 / static_cast<double>(calls));
  }
  return median(per_round);
}

LookupTable identity_table(PolynomialSize big_n, std::size_t bits) {
  std::vector<std::uint64_t> identity(std::size_t{1} << bits);
  for (std::size_t m = 0; m < identity.size(); ++m) identity[m] = m;
  return make_lookup_table(big_n, MessageBits{bits}, identity, MessageBits{bits});
}

// Real keys for one parameter set and an identity table; round() times single-thread KS+PBS
// (each result decrypted and checked) for at least min_calls calls and min_seconds.
class KsPbsBench {
 public:
  KsPbsBench(const PbsParameters& params, std::size_t bits, std::uint64_t seed)
      : bits_(bits),
        rng_(test_seed(seed)),
        client_(generate_client_key(params, rng_)),
        server_(decompress(generate_compressed_server_key(client_, rng_))),
        table_(identity_table(lookup_polynomial_size(params), bits)) {
    round(1, 0.0);  // warm: the keys' first touch
  }
  double round(std::size_t min_calls, double min_seconds) {
    return time_per_call(
        [&](std::size_t) {
          message_ = (message_ + 1) % (std::uint64_t{1} << bits_);
          const LweCiphertext in = encrypt(client_, message_, MessageBits{bits_}, rng_);
          const LweCiphertextList out = keyswitch_bootstrap(server_, in.data, table_);
          if (decrypt(client_, out.at(0), MessageBits{bits_}) != message_) ++errors_;
        },
        min_calls, min_seconds, 1);
  }
  std::size_t errors() const { return errors_; }

 private:
  std::size_t bits_;
  Csprng rng_;
  ClientKey client_;
  ServerKey server_;
  LookupTable table_;
  std::uint64_t message_ = 0;
  std::size_t errors_ = 0;
};

// The built-in sets before extended lookup tables (2026-12-04 to 2026-12-05: every set's tables
// of its own N), for the before/after comparison: n, k, N, bootstrap base and levels, key switch
// base and levels; the noises are the 128-bit curve's minima, as the search sets them. (The sets
// before the cost model, 2026-11-23 to 2026-12-03, were compared the same way:
// bench/results/cost-*.json.)
struct PreviousSet {
  std::size_t bits, bound, n, k, big_n, pbs_base, pbs_level, ks_base, ks_level;
};
constexpr PreviousSet kPrevious[] = {
    {1, 40, 625, 3, 512, 18, 1, 3, 3},    {2, 40, 661, 3, 512, 18, 1, 3, 4},
    {3, 40, 720, 2, 1024, 23, 1, 3, 4},   {4, 40, 757, 1, 2048, 23, 1, 3, 5},
    {5, 40, 858, 1, 4096, 22, 1, 4, 4},   {6, 40, 942, 1, 8192, 22, 1, 4, 4},
    {7, 40, 962, 1, 16384, 15, 2, 3, 6},  {8, 40, 1053, 1, 32768, 15, 2, 4, 5},
    {1, 64, 628, 3, 512, 18, 1, 3, 4},    {2, 64, 690, 3, 512, 18, 1, 3, 4},
    {3, 64, 747, 2, 1024, 23, 1, 3, 5},   {4, 64, 789, 1, 2048, 23, 1, 3, 5},
    {5, 64, 901, 1, 4096, 22, 1, 4, 4},   {6, 64, 959, 1, 8192, 22, 1, 3, 6},
    {7, 64, 1008, 1, 16384, 15, 2, 3, 7}, {8, 64, 1091, 1, 32768, 15, 2, 3, 8},
};

PbsParameters to_parameters(const PreviousSet& s) {
  return PbsParameters{LweDimension{s.n},
                       GlweDimension{s.k},
                       PolynomialSize{s.big_n},
                       min_noise_std(s.n, SecurityLevel::k128),
                       min_noise_std(s.k * s.big_n, SecurityLevel::k128),
                       DecompositionBaseLog{s.pbs_base},
                       DecompositionLevelCount{s.pbs_level},
                       DecompositionBaseLog{s.ks_base},
                       DecompositionLevelCount{s.ks_level}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Measure CMux and key switch times for the parameter search's cost model"};
  std::string output;
  int rounds = 3;
  double min_seconds = 0.15;
  std::size_t max_log2_n = 16;
  app.add_option("--out", output, "write the JSON here (default: stdout)");
  app.add_option("--rounds", rounds, "medians of this many rounds")->check(CLI::Range(1, 50));
  app.add_option("--min-seconds", min_seconds, "per round")->check(CLI::Range(0.01, 10.0));
  app.add_option("--max-log2-n", max_log2_n, "largest N measured")->check(CLI::Range(8, 16));
  std::vector<std::size_t> check_bits;
  bool skip_calibration = false;
  app.add_option("--check-bits", check_bits, "ranking check at these precisions, e.g. 4,5")
      ->delimiter(',');
  app.add_flag("--check-only", skip_calibration, "skip the kernel measurements");
  bool extended_only = false;
  app.add_flag("--extended-only", extended_only,
               "measure the extended CMux factor only (no CMux or key switch sweep, no fits)");
  std::string refit;
  app.add_option("--refit", refit, "fit the kernel measurements of this recorded run instead");
  bool compare_previous = false;
  std::vector<std::size_t> compare_bits;
  app.add_option("--compare-bits", compare_bits, "only these precisions in --compare-previous")
      ->delimiter(',');
  app.add_flag("--compare-previous", compare_previous,
               "time the built-in sets against those of the previous cost model, interleaved");
  CLI11_PARSE(app, argc, argv);
  // Freed rings stay in the heap: returning each 256 MiB to the kernel and faulting it in again
  // cost a minute of system time per run on this VM (untimed, but it slows the run).
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, -1);

  Csprng rng(test_seed(20261203));
  // One pool of random words, copied into every ring (filling 256 MiB from the CSPRNG per shape
  // would dominate the run).
  std::vector<std::uint64_t> pool(kRingBytes / 8);
  rng.fill_u64(pool);
  nlohmann::json out;
  out["ring_bytes"] = kRingBytes;

  nlohmann::json cmux = nlohmann::json::array();
  nlohmann::json ks = nlohmann::json::array();
  nlohmann::json extended = nlohmann::json::array();
  if (!refit.empty()) {  // the fits of a recorded run, from its measurements
    std::ifstream in(refit);
    const nlohmann::json recorded = nlohmann::json::parse(in);
    cmux = recorded.at("cmux");
    ks = recorded.at("keyswitch");
    if (recorded.contains("extended_cmux")) extended = recorded.at("extended_cmux");
    out["refit_of"] = refit;
  }
  if (!skip_calibration && refit.empty()) {
    // ---- CMux --------------------------------------------------------------------------------
    // The keys on huge pages, as the server's (tfhe/huge_pages.h): one ring of random values in
    // [-1, 1) (products with digits of at most 2^22 stay far from overflow), grown when a shape
    // needs more and read from its start.
    KeyVector<double> cmux_ring(kRingBytes / 8);
    const auto fill_ring = [&](std::size_t from) {
      for (std::size_t i = from; i < cmux_ring.size(); ++i) {
        cmux_ring[i] =
            static_cast<double>(static_cast<std::int64_t>(pool[i % pool.size()]) >> 11) * 0x1p-52;
      }
    };
    fill_ring(0);
    for (std::size_t log_n = 8; log_n <= (extended_only ? 7 : max_log2_n); ++log_n) {
      const std::size_t big_n = std::size_t{1} << log_n;
      for (std::size_t k = 1; k <= 3; ++k) {
        for (std::size_t l = 1; l <= 5; ++l) {
          const GgswShape g{GlweDimension{k}, PolynomialSize{big_n},
                            DecompositionBaseLog{std::min<std::size_t>(23, 52 / l)},
                            DecompositionLevelCount{l}};
          const std::size_t ring = std::clamp<std::size_t>(kRingBytes / (8 * g.length()), 4, 800);
          if (cmux_ring.size() < ring * g.length()) {
            const std::size_t old = cmux_ring.size();
            cmux_ring.resize(ring * g.length());
            fill_ring(old);
          }
          const std::span<const double> keys(cmux_ring.data(), ring * g.length());
          std::vector<Torus> acc(g.row_length());
          rng.fill_u64(acc);
          ExternalProductScratch scratch(g);
          std::vector<std::size_t> rotations(1024);
          for (std::size_t& r : rotations) r = rng.next_u64() % (2 * big_n);
          const double ns = time_per_call(
              [&](std::size_t i) {
                const std::span<const double> ggsw(keys.data() + (i % ring) * g.length(),
                                                   g.length());
                cmux_rotate_add(acc, ggsw, rotations[i % rotations.size()], g, scratch);
              },
              ring, min_seconds, rounds);
          cmux.push_back({{"k", k}, {"N", big_n}, {"level", l}, {"ring", ring}, {"ns", ns}});
          std::fprintf(stderr, "cmux k=%zu N=%zu l=%zu: %.0f ns\n", k, big_n, l, ns);
        }
      }
    }

    // ---- Extended CMux ------------------------------------------------------------------------
    // Blind rotations through tables of N * 2^e (bootstrap.h) with keys of random words from the
    // ring, per CMux, against e = 0 on the same key: the factor over 2^e plain CMuxes that
    // tfhe/parameters.cpp calls kExtendedCmuxFactor.
    for (std::size_t log_n = 9; log_n <= std::min<std::size_t>(12, max_log2_n); ++log_n) {
      const std::size_t big_n = std::size_t{1} << log_n;
      for (std::size_t k = 1; k <= 3; ++k) {
        for (std::size_t l = 1; l <= 2; ++l) {
          const GgswShape g{GlweDimension{k}, PolynomialSize{big_n},
                            DecompositionBaseLog{std::min<std::size_t>(23, 52 / l)},
                            DecompositionLevelCount{l}};
          const std::size_t n = std::clamp<std::size_t>(kRingBytes / (8 * g.length()), 64, 1024);
          FourierBootstrapKey key{BootstrapShape{LweDimension{n}, g},
                                  KeyVector<double>(n * g.length())};
          for (std::size_t i = 0; i < key.data.size(); ++i)
            key.data[i] = cmux_ring[i % cmux_ring.size()];
          BootstrapScratch scratch(key.shape);
          std::vector<Torus> small(lwe_size(LweDimension{n}));
          double plain = 0;
          for (std::size_t e = 0; e <= 4 && log_n + e <= 16; ++e) {
            const LookupTable table = identity_table(PolynomialSize{big_n << e}, 1);
            std::vector<Torus> acc(accumulator_length(key.shape, table));
            const double ns = time_per_call(
                                  [&](std::size_t) {
                                    rng.fill_u64(small);  // random rotations
                                    blind_rotate(acc, small, key, table, scratch);
                                  },
                                  2, min_seconds, rounds) /
                              static_cast<double>(n);
            if (e == 0) plain = ns;
            const double factor = ns / (plain * static_cast<double>(std::size_t{1} << e));
            extended.push_back({{"k", k},
                                {"N", big_n},
                                {"level", l},
                                {"extension_log", e},
                                {"ns", ns},
                                {"factor", factor}});
            std::fprintf(stderr,
                         "extended cmux k=%zu N=%zu*2^%zu l=%zu: %.0f ns (%.2fx of 2^%zu plain)\n",
                         k, big_n, e, l, ns, factor, e);
          }
        }
      }
    }

    // ---- Key switch ---------------------------------------------------------------------------
    for (std::size_t log_in = 9; log_in <= (extended_only ? 8 : 16); ++log_in) {
      for (std::size_t n : {500, 800, 1100}) {
        for (std::size_t l : {1, 2, 3, 5, 8}) {
          const std::size_t in_dim = std::size_t{1} << log_in;
          const KeyswitchShape shape{LweDimension{in_dim}, LweDimension{n},
                                     DecompositionBaseLog{std::min<std::size_t>(4, 32 / l)},
                                     DecompositionLevelCount{l}};
          const std::size_t bytes = 4 * shape.length();
          if (bytes > (std::size_t{2} << 30)) continue;
          const std::size_t ring = std::clamp<std::size_t>(kRingBytes / bytes, 2, 64);
          std::vector<KeyswitchKey32> keys(ring);
          for (std::size_t r = 0; r < ring; ++r) {
            keys[r].shape = shape;
            keys[r].data.resize(shape.length());
            for (std::size_t i = 0; i < keys[r].data.size(); ++i) {
              keys[r].data[i] = static_cast<std::uint32_t>(pool[(r * 7919 + i) % pool.size()]);
            }
          }
          std::vector<Torus> in(in_dim + 1), result(n + 1);
          rng.fill_u64(in);
          const double ns =
              time_per_call([&](std::size_t i) { keyswitch(result, in, keys[i % ring]); }, ring,
                            min_seconds, rounds);
          ks.push_back({{"input_dimension", in_dim}, {"n", n}, {"level", l}, {"ns", ns}});
          std::fprintf(stderr, "ks in=%zu n=%zu l=%zu: %.0f ns\n", in_dim, n, l, ns);
        }
      }
    }
  }  // measurements
  if (!extended.empty()) {
    out["extended_cmux"] = extended;
    // Per k and e: the median factor over N and levels (tfhe/parameters.cpp,
    // kExtendedCmuxFactor).
    nlohmann::json per_e = nlohmann::json::array();
    for (std::size_t k = 1; k <= 3; ++k) {
      for (std::size_t e = 1; e <= 4; ++e) {
        std::vector<double> factors;
        for (const auto& m : extended) {
          if (m.value("k", std::size_t{1}) == k && m["extension_log"].get<std::size_t>() == e)
            factors.push_back(m["factor"].get<double>());
        }
        if (factors.empty()) continue;
        per_e.push_back({{"k", k}, {"extension_log", e}, {"median_factor", median(factors)}});
        std::fprintf(stderr, "extended CMux factor at k = %zu, e = %zu (median): %.3f\n", k, e,
                     median(factors));
      }
    }
    out["extended_cmux_factor"] = per_e;
  }
  if (!skip_calibration && !extended_only) {
    out["cmux"] = cmux;
    out["keyswitch"] = ks;

    // ---- Fits ---------------------------------------------------------------------------------
    // The model of tfhe/parameters.cpp. A CMux: (k+1) l N log2 N (the forward transforms, one
    // per decomposed polynomial, with their digits), (k+1) N log2 N (the inverse transforms, one
    // per output polynomial, whatever the level count) and (k+1)^2 l N (products of transformed
    // digits with key polynomials streamed from memory); three coefficients fitted by least
    // squares on relative error. A key switch streams k N l (n+1) 32-bit words: the median ns
    // per word.
    const auto report = [](const std::vector<double>& model, const std::vector<double>& times) {
      double worst = 0, sum2 = 0;
      for (std::size_t r = 0; r < model.size(); ++r) {
        const double e = model[r] / times[r] - 1.0;
        worst = std::max(worst, std::abs(e));
        sum2 += e * e;
      }
      return nlohmann::json{{"rms_relative_error", std::sqrt(sum2 / model.size())},
                            {"worst_relative_error", worst}};
    };
    constexpr std::size_t kTerms = 3;
    std::vector<std::array<double, kTerms>> cmux_terms;
    std::vector<double> cmux_times;
    for (const auto& m : cmux) {
      const double k1 = static_cast<double>(m["k"].get<std::size_t>() + 1);
      const double l = static_cast<double>(m["level"].get<std::size_t>());
      const double big_n = static_cast<double>(m["N"].get<std::size_t>());
      const double log_n = std::log2(big_n);
      cmux_terms.push_back({k1 * l * big_n * log_n, k1 * big_n * log_n, k1 * k1 * l * big_n});
      cmux_times.push_back(m["ns"].get<double>());
    }
    // Weighted normal equations (weights 1/t^2: relative error), by Gaussian elimination with
    // partial pivoting on the 3x3 system.
    std::array<std::array<double, kTerms + 1>, kTerms> system{};
    for (std::size_t r = 0; r < cmux_terms.size(); ++r) {
      const double w = 1.0 / (cmux_times[r] * cmux_times[r]);
      for (std::size_t i = 0; i < kTerms; ++i) {
        for (std::size_t j = 0; j < kTerms; ++j)
          system[i][j] += w * cmux_terms[r][i] * cmux_terms[r][j];
        system[i][kTerms] += w * cmux_terms[r][i] * cmux_times[r];
      }
    }
    for (std::size_t c = 0; c < kTerms; ++c) {
      std::size_t pivot = c;
      for (std::size_t r = c + 1; r < kTerms; ++r)
        if (std::abs(system[r][c]) > std::abs(system[pivot][c])) pivot = r;
      std::swap(system[c], system[pivot]);
      for (std::size_t r = 0; r < kTerms; ++r) {
        if (r == c) continue;
        const double f = system[r][c] / system[c][c];
        for (std::size_t j = c; j <= kTerms; ++j) system[r][j] -= f * system[c][j];
      }
    }
    std::array<double, kTerms> coef{};
    for (std::size_t i = 0; i < kTerms; ++i) coef[i] = system[i][kTerms] / system[i][i];
    std::vector<double> cmux_model;
    for (const auto& x : cmux_terms)
      cmux_model.push_back(coef[0] * x[0] + coef[1] * x[1] + coef[2] * x[2]);
    out["cmux_fit"] = report(cmux_model, cmux_times);
    out["cmux_fit"]["ns_per_forward_transform_unit"] = coef[0];  // (k+1) l N log2 N
    out["cmux_fit"]["ns_per_inverse_transform_unit"] = coef[1];  // (k+1) N log2 N
    out["cmux_fit"]["ns_per_product_unit"] = coef[2];            // (k+1)^2 l N
    std::vector<double> ks_words, ks_times, ks_ratios;
    for (const auto& m : ks) {
      ks_words.push_back(static_cast<double>(m["input_dimension"].get<std::size_t>() *
                                             m["level"].get<std::size_t>() *
                                             (m["n"].get<std::size_t>() + 1)));
      ks_times.push_back(m["ns"].get<double>());
      ks_ratios.push_back(ks_times.back() / ks_words.back());
    }
    const double ks_c = median(ks_ratios);
    std::vector<double> ks_model;
    for (const double w : ks_words) ks_model.push_back(ks_c * w);
    out["keyswitch_fit"] = report(ks_model, ks_times);
    out["keyswitch_fit"]["ns_per_key_word"] = ks_c;  // k N l (n+1)
    std::fprintf(stderr, "fits: cmux %s\nkeyswitch %s\n", out["cmux_fit"].dump().c_str(),
                 out["keyswitch_fit"].dump().c_str());

  }  // calibration

  // ---- Ranking check -----------------------------------------------------------------------
  nlohmann::json check = nlohmann::json::array();
  for (const std::size_t bits : check_bits) {
    for (std::size_t k = 1; k <= 3; ++k) {
      for (std::size_t log_n = 8; log_n <= 16; ++log_n) {
        for (std::size_t level = 1; level <= 3; ++level) {
          for (std::size_t e = 0; e <= 4 && log_n + e <= 16; ++e) {
            // Lookup tables of N * 2^e (bootstrap.h): N itself may be below the precision's.
            if (log_n + e < bits + 1) continue;
            SearchOptions o;
            o.min_glwe_dimension = o.max_glwe_dimension = k;
            o.min_log2_polynomial_size = o.max_log2_polynomial_size = log_n;
            o.max_pbs_level = level;
            o.min_extension_log = o.max_extension_log = e;
            const auto found = search_parameters(MessageBits{bits}, o);
            if (!found || found->pbs_level.value != level || found->extension_log != e) continue;
            const PbsParameters& params = *found;
            // Sets far above the cheapest are not candidates anyone would pick.
            if (estimated_cost(params) > 4 * estimated_cost(*search_parameters(MessageBits{bits})))
              continue;
            KsPbsBench bench(params, bits, bits * 1000 + k * 100 + log_n * 10 + level);
            std::vector<double> per_round;
            for (int r = 0; r < rounds; ++r) per_round.push_back(bench.round(5, min_seconds));
            const double ns = median(per_round);
            const std::size_t errors = bench.errors();
            check.push_back({{"bits", bits},
                             {"parameters", describe(params)},
                             {"k", k},
                             {"N", std::size_t{1} << log_n},
                             {"pbs_level", level},
                             {"extension_log", e},
                             {"estimated_cost", estimated_cost(params)},
                             {"ks_pbs_ns", ns},
                             {"errors", errors}});
            std::fprintf(stderr, "check %zu bits %s: model %.3g, measured %.2f ms%s\n", bits,
                         describe(params).c_str(), estimated_cost(params), ns * 1e-6,
                         errors ? " (DECRYPTION ERRORS)" : "");
          }
        }
      }
    }
  }
  // Pairs the model orders against the measurement, among pairs measured >= 15% apart.
  std::size_t pairs = 0, misordered = 0;
  for (std::size_t i = 0; i < check.size(); ++i) {
    for (std::size_t j = i + 1; j < check.size(); ++j) {
      if (check[i]["bits"] != check[j]["bits"]) continue;
      const double ti = check[i]["ks_pbs_ns"], tj = check[j]["ks_pbs_ns"];
      if (std::max(ti, tj) < 1.15 * std::min(ti, tj)) continue;
      ++pairs;
      const double ci = check[i]["estimated_cost"], cj = check[j]["estimated_cost"];
      if ((ti < tj) != (ci < cj)) ++misordered;
    }
  }
  if (!check.empty()) {
    out["ranking_check"] = {{"sets", check}, {"pairs", pairs}, {"misordered", misordered}};
    std::fprintf(stderr, "ranking: %zu of %zu pairs (measured >= 15%% apart) misordered\n",
                 misordered, pairs);
  }

  // ---- Built-in sets before / after ---------------------------------------------------------
  nlohmann::json compare = nlohmann::json::array();
  for (const PreviousSet& previous : kPrevious) {
    if (!compare_previous) break;
    if (!compare_bits.empty() &&
        std::find(compare_bits.begin(), compare_bits.end(), previous.bits) == compare_bits.end())
      continue;
    const FailureBound bound = previous.bound == 40 ? FailureBound::k2m40 : FailureBound::k2m64;
    const PbsParameters before = to_parameters(previous);
    const PbsParameters& after = default_parameters(MessageBits{previous.bits}, bound);
    if (before == after) continue;
    KsPbsBench bench_before(before, previous.bits, 7000 + previous.bits);
    KsPbsBench bench_after(after, previous.bits, 8000 + previous.bits);
    std::vector<double> t_before, t_after;
    for (int r = 0; r < rounds; ++r) {  // interleaved: both see the same hour of this VM
      t_before.push_back(bench_before.round(5, min_seconds));
      t_after.push_back(bench_after.round(5, min_seconds));
    }
    const double b = median(t_before), a = median(t_after);
    compare.push_back({{"bits", previous.bits},
                       {"log2_p_fail_bound", -static_cast<int>(previous.bound)},
                       {"before", describe(before)},
                       {"after", describe(after)},
                       {"before_ms", b * 1e-6},
                       {"after_ms", a * 1e-6},
                       {"ratio", a / b},
                       {"errors", bench_before.errors() + bench_after.errors()}});
    std::fprintf(stderr, "%zu bits 2^-%zu: %s %.2f ms -> %s %.2f ms (%.2fx)\n", previous.bits,
                 previous.bound, describe(before).c_str(), b * 1e-6, describe(after).c_str(),
                 a * 1e-6, a / b);
  }
  if (!compare.empty()) out["builtin_before_after"] = compare;

  if (output.empty()) {
    std::cout << out.dump(1) << "\n";
  } else {
    std::ofstream(output) << out.dump(1) << "\n";
  }
  return 0;
}
