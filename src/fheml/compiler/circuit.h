// What the compiler hands to the runtime (and later to deployment): the integer graph, how its
// values are encoded on the torus, the client's quantizers and the crypto parameters.
//
// Encoding. Values joined by linear nodes share an encoding class with a width W: a ciphertext
// of a value v of that class encrypts the torus element (v mod 2^(W+1)) * 2^(63-W), i.e. v modulo
// 2^(W+1) without padding. Linear nodes are then exact modular arithmetic (clear coefficients,
// trivially-encrypted biases). A lookup with (offset, shift, bits p) on a value of width W
// adds offset * 2^(63-W) and multiplies by 2^(W-p-shift) (needs W >= p + shift), which leaves
// exactly ((v + offset) >> shift) * 2^(63-p) mod 2^64: the bootstrap's p-bit input with its
// padding bit, the wrap-around semantics of ir/int_graph.h. The shift multiplies the noise
// variance by 4^(W-p-shift): it is part of the lookup's nu2. Lookup outputs are encoded at the
// width of their own class. An output of range [lo, hi] needs 2^(W+1) > hi - lo and is decoded
// into [lo, lo + 2^(W+1)).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fheml/ir/int_graph.h"
#include "fheml/quant/quantizers.h"
#include "fheml/tfhe/parameters.h"

namespace fheml::compiler {

using quant::InputQuantizer;
using quant::OutputDequantizer;

// Part of a site's nu2: the outputs of one lookup node, max over the site's elements.
struct SourceShare {
  ir::ValueId node;
  double nu2 = 0.0;
  bool operator==(const SourceShare&) const = default;
};

// One per lookup node and one per output: the inputs of the parameter search and of the report.
struct NoiseSite {
  ir::ValueId node;
  bool is_output = false;
  std::uint32_t bits = 0;  // p of the lookup, or W of the output's class
  // Squared 2-norm of the weights over the ciphertexts the site reads, max over elements: on
  // lookup outputs (bootstrapped), in units of tfhe::ciphertext_variance(params); on the
  // circuit's inputs (fresh encryptions), in units of the fresh encryption variance.
  double nu2 = 0.0;
  double nu2_fresh = 0.0;
  double log2_p_fail = 0;  // per element under the chosen parameters (filled by the optimizer)
  std::string label;       // "lookup %12 relu(gemm fc2)"
  // nu2 split by the lookup node whose outputs carry it (sorted by node; the shares sum to at
  // least nu2): what the partition search needs to know a lookup's consumers.
  std::vector<SourceShare> sources{};
};

// The most parameter sets (partitions) a circuit may have; deployment artifacts refuse more.
inline constexpr std::size_t kMaxPartitions = 8;

struct Circuit {
  ir::IntGraph graph;
  std::vector<InputQuantizer> inputs;      // one per graph input, same order
  std::vector<OutputDequantizer> outputs;  // one per graph output, same order
  std::vector<std::uint32_t> width;        // per node: W of its encoding class
  std::vector<NoiseSite> noise_sites;
  bool has_lookups = false;          // false: no server key, no bootstrap
  tfhe::PbsParameters parameters{};  // lookups off: only k, N and glwe_noise are used
  // With lookups: the parameter set of each partition (at least one; partitions[0] ==
  // parameters). Partitions with the same k, N and GLWE noise share one big key; a partition of
  // its own k or N has its own, and a lookup reading values under another big key key-switches
  // from that one (runtime::Program::keyswitch_pairs). Per node: the partition of a lookup
  // node's bootstraps (its outputs are under that partition's big key), the partition whose big
  // key encrypts an input, 0 for linear nodes, which stay under their operands' big key (all
  // operands of one linear node under one). Empty: all in partition 0.
  std::vector<tfhe::PbsParameters> partitions{};
  std::vector<std::uint32_t> partition{};
  std::string parameter_choice;  // which constraint bound the choice, and why
  double log2_p_error = -40;     // per-lookup bound the parameters meet
  double global_p_error = 0;     // union bound over one evaluation of the circuit
  // 0: every output decrypts to the exact integer of the graph (with probability 1 - the
  // site's p_fail). b > 0 (CompileOptions::output_noise_bits): the noise may change an output's
  // lowest b bits: it decrypts within 2^(b-1) of the exact value, clamped into the output's
  // range, with that probability. Its noise site is checked at W - b bits and its window starts
  // 2^(b-1) below the range (runtime::TensorEncoding::noise_bits).
  std::uint32_t output_noise_bits = 0;
};

// The most output_noise_bits a circuit may have.
inline constexpr std::uint32_t kMaxOutputNoiseBits = 16;

}  // namespace fheml::compiler
