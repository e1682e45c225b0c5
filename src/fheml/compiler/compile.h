// The compiler's entry point: float graph + calibration samples -> a Circuit the runtime can
// run in the clear, simulated or encrypted. Passes: quant::quantize (integer graph, fused
// lookups, rounding) -> assign_encoding (classes, widths, noise multipliers) ->
// choose_parameters (one 128-bit parameter set meeting the failure budget at least cost).
#pragma once

#include <optional>
#include <span>

#include "fheml/compiler/circuit.h"
#include "fheml/ir/float_graph.h"
#include "fheml/quant/quantize.h"
#include "fheml/tfhe/parameters.h"

namespace fheml::compiler {

struct CompileOptions {
  quant::QuantizeOptions quantization;
  // Failure budget: per bootstrap (p_error) or for one whole evaluation of the circuit
  // (global_p_error, a union bound over every bootstrap and decrypted output). Setting both is
  // an error; neither means p_error = 2^-40.
  std::optional<double> p_error;
  std::optional<double> global_p_error;
  // Ranges of the parameter search (its log2_p_fail and nu2 are set from the above).
  tfhe::SearchOptions search;
};

// Throws std::invalid_argument with a diagnostic (op, numbers, what to change) when the graph
// cannot be quantized or no parameter set meets the budget.
Circuit compile(const ir::FloatGraph& graph, std::span<const quant::Sample> calibration,
                const CompileOptions& options = {});

// From an integer graph built elsewhere (a model builder, a test).
Circuit compile(quant::QuantizedGraph quantized, const CompileOptions& options = {});

// Fills circuit.parameters, parameter_choice, log2_p_error, global_p_error and the
// noise_sites' log2_p_fail from circuit.noise_sites (assign_encoding must have run).
void choose_parameters(Circuit& circuit, const CompileOptions& options);

}  // namespace fheml::compiler
