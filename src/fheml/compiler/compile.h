// The compiler's entry point: float graph + calibration samples -> a Circuit the runtime can
// run in the clear, simulated or encrypted. Passes: quant::quantize (integer graph, fused
// lookups, rounding) -> assign_encoding (classes, widths, noise multipliers) ->
// choose_parameters (one 128-bit parameter set meeting the failure budget at least cost).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "fheml/compiler/circuit.h"
#include "fheml/ir/float_graph.h"
#include "fheml/quant/quantize.h"
#include "fheml/tfhe/parameters.h"

namespace fheml::compiler {

// Who may see decrypted results, and the failure budget that follows (README, "Security").
//  kStandard: decrypted results stay with the key holder. 128-bit keys unless search.security
//    says 132; p_error 2^-40 per bootstrap unless set.
//  kIndCpaD: decrypted results, or whether a result was wrong, may reach the server or another
//    party. A decryption failure then leaks a linear relation on the secret key, and enough of
//    them recover it (Li-Micciancio, "On the security of homomorphic encryption on approximate
//    numbers", EUROCRYPT 2021; for exact schemes and TFHE: Cheon et al., "Attacks against the
//    IND-CPA-D security of exact FHE schemes", CCS 2024). So every bootstrap and every
//    decrypted output fails with probability at most 2^-64 (the default p_error; a larger
//    p_error or global_p_error is refused) and the keys sit on the 132-bit curve (TFHE-rs's
//    design level): about 1.1x the time and keys of kStandard (bench/README.md).
enum class Profile : std::uint8_t { kStandard, kIndCpaD };
inline constexpr double kIndCpaDLog2PError = -64.0;

std::string_view to_string(Profile profile);   // "standard", "ind-cpa-d"
Profile parse_profile(std::string_view name);  // throws std::invalid_argument

struct CompileOptions {
  quant::QuantizeOptions quantization;
  // Failure budget: per bootstrap (p_error) or for one whole evaluation of the circuit
  // (global_p_error, a union bound over every bootstrap and decrypted output). Setting both is
  // an error; neither means p_error = 2^-40.
  std::optional<double> p_error;
  std::optional<double> global_p_error;
  // Ranges of the parameter search (its log2_p_fail and nu2 are set from the above).
  tfhe::SearchOptions search;
  // kIndCpaD tightens the above: p_error defaults to 2^-64, security to 132 bits.
  Profile profile = Profile::kStandard;
  // Up to this many parameter sets, one per partition of the lookups, each kept only if it
  // saves 5% of the estimated cost (tfhe::CircuitSearchOptions::max_partitions); each costs a
  // bootstrap key and a key switching key of its own. 1: one set for the whole circuit.
  std::size_t max_partitions = 3;  // 1..kMaxPartitions
  // Partitions may take another k and N, each with a big key of its own, where no linear part
  // adds their outputs to the others' (tfhe::CircuitSearchOptions::own_big_keys): a lookup
  // reading another big key key-switches from it. false: all share one big key.
  bool own_big_keys = true;
  // Approximate outputs: the noise may change the lowest output_noise_bits bits of each
  // decrypted output (0..kMaxOutputNoiseBits; each output's range must span more bits): it
  // decrypts within 2^(b-1) of the exact integer with probability 1 - p_error, clamped into the
  // output's range. A wide output read by a dot product of large weights otherwise forces
  // low-noise, costlier bootstraps on the lookups it reads (bench/README.md, "Approximate
  // outputs"). Keep b where 2^(b-1) stays below the output's own quantization error (the
  // report's output noise site says what it is checked at). 0: exact.
  std::uint32_t output_noise_bits = 0;
  // Max pools (quant::QuantizeOptions::refresh_max_pool): with or without an identity lookup on
  // their outputs. Unset: a graph with a max pool is compiled both ways and the one of lower
  // estimated cost kept (the refresh costs a bootstrap per pooled value and lets the pool's
  // inputs and relus take cheaper sets; the digits CNN: bench/README.md).
  std::optional<bool> refresh_max_pool;
};

// The cost model's estimate of one evaluation: sum over lookup nodes of their bootstraps times
// tfhe::estimated_cost of their partition's set (0 without lookups).
double estimated_cost(const Circuit& circuit);

// Throws std::invalid_argument with a diagnostic (op, numbers, what to change) when the graph
// cannot be quantized or no parameter set meets the budget.
Circuit compile(const ir::FloatGraph& graph, std::span<const quant::Sample> calibration,
                const CompileOptions& options = {});

// From an integer graph built elsewhere (a model builder, a test).
Circuit compile(quant::QuantizedGraph quantized, const CompileOptions& options = {});

// Fills circuit.parameters, parameter_choice, log2_p_error, global_p_error and the
// noise_sites' log2_p_fail from circuit.noise_sites (assign_encoding must have run).
void choose_parameters(Circuit& circuit, const CompileOptions& options);

// Whether a compiled circuit meets kIndCpaD whatever options made it: every noise site's bound
// at most 2^-64 and the keys at 132 bits (what a deployment that shows decrypted results to the
// server must check; the report and statistics say it).
bool meets_ind_cpa_d(const Circuit& circuit);

}  // namespace fheml::compiler
