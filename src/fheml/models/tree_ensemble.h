// Tree ensembles (decision trees, random forests, extra trees, gradient boosting, XGBoost,
// LightGBM) on encrypted data, from a neutral description of their trees.
//
// The circuit (docs/trees.md has the derivation and the measurements):
//  - Inputs are quantized per feature to n_bits over the calibration range and travel as a
//    thermometer code (quant::InputEncoding::kThermometer): bit j of feature f is [q_f >= j].
//    A split "x_f <= t" becomes "q_f <= k" with k the largest grid level whose dequantized value
//    passes the float test, so the quantized tree decides exactly as the float tree does on
//    dequantized inputs; and [q_f <= k] = 1 - bit k+1 is LINEAR: no comparison costs a
//    bootstrap, however many distinct thresholds the ensemble has. Clipping at the calibration
//    range loses nothing: thresholds lie inside the training range.
//  - A node m at depth d is reached when all d splits above it go its way; their sum s_m (a
//    linear function of the inputs) equals d exactly then. A lookup on an index made of s_m and
//    the split bits of a block of nodes below m (2^b * s_m + binary code) returns the quantized
//    value of the leaf reached inside the block, and 0 when the row does not reach the block or
//    leaves it below. Blocks are chosen per tree by dynamic programming under a lookup width.
//  - Trees with leaf vectors (multi-class forests) use leaf-reach indicators instead when fewer:
//    one lookup per left child [s_n + c_n = d_n + 1]; right children follow linearly
//    (I(right) = I(parent) - I(left)); deep trees get checkpoints (a second stage of lookups).
//  - Leaf values are quantized per output (centred per tree, the centre folded into the output
//    bias) and the sum over trees is a linear node over lookups only (so that the wide output
//    never shares an encoding class with a lookup's index): one ciphertext per output.
//  - The lookup width is chosen among 1..max_lookup_bits by the compiler's cost estimate.
// The link (sigmoid, softmax, ...) and the argmax run on the client after decryption.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "fheml/compiler/compile.h"
#include "fheml/models/linear_model.h"
#include "fheml/runtime/runtime.h"

namespace fheml::models {

// Which way a split sends x_f == threshold: kLessEqual (scikit-learn, LightGBM: left when
// x <= t) or kLess (XGBoost: left when x < t).
enum class SplitRule : std::uint8_t { kLessEqual, kLess };

// One node. Internal: feature >= 0, left and right index nodes of the same tree. Leaf:
// feature == kLeaf, `value` holds one number per output.
struct TreeNode {
  static constexpr std::int32_t kLeaf = -1;
  std::int32_t feature = kLeaf;
  double threshold = 0;
  std::int32_t left = -1;
  std::int32_t right = -1;
  std::vector<double> value;
};

// Nodes of one tree, the root first.
struct Tree {
  std::vector<TreeNode> nodes;
};

// How the trees' outputs combine: a sum (boosting) or a mean (bagging: random forests).
enum class Aggregation : std::uint8_t { kSum, kMean };

// outputs[c] = base_score[c] + aggregate over trees of the reached leaf's value[c], then `link`
// on the client.
struct TreeEnsembleSpec {
  std::size_t features = 0;
  std::size_t outputs = 0;
  SplitRule split = SplitRule::kLessEqual;
  Aggregation aggregation = Aggregation::kSum;
  std::vector<double> base_score;  // outputs values (empty: zeros)
  Link link = Link::kIdentity;
  std::vector<Tree> trees;
};

// Throws std::invalid_argument naming the tree and node on: no tree, a child index out of
// range or not after its parent (so that every tree is acyclic), a node reached twice, a
// feature out of range, a non-finite threshold or value, a leaf value count other than
// `outputs`, a tree deeper than kMaxTreeDepth.
void validate(const TreeEnsembleSpec& spec);
inline constexpr std::size_t kMaxTreeDepth = 64;

// The text form (a C++ user's way to bring trees without Python), one token stream:
//   fheml-trees 1
//   features F outputs C split <=|< aggregation sum|mean link NAME
//   base_score b_1 .. b_C
//   trees T
//   tree NODES            then NODES lines, in index order:
//     split FEATURE THRESHOLD LEFT RIGHT
//     leaf v_1 .. v_C
// '#' starts a comment that runs to the end of the line. Throws std::invalid_argument naming
// the line on anything malformed, and validates the result.
TreeEnsembleSpec read_tree_ensemble(std::istream& in);
std::string to_text(const TreeEnsembleSpec& spec);

inline constexpr std::uint32_t kMinLeafBits = 3;
// Leaf bits the builder may give up below TreeEnsembleOptions::leaf_bits for a faster
// parameter set (at least 10% per bit), beyond those it must give up to find one at all.
inline constexpr std::uint32_t kLeafBitsTradeoff = 2;

struct TreeEnsembleOptions {
  // Bits of each feature's grid (2^n_bits - 1 thermometer ciphertexts per feature, encrypted
  // by the client: the upload and the client's time grow with it, the server's bootstraps do
  // not). 6 by measurement: bench/README.md, trees.
  std::uint32_t n_bits = 6;
  // Bits of a leaf value, per output, over the largest spread of one tree's leaves (at most:
  // the builder narrows them, down to kMinLeafBits, until the sum decrypts under the failure
  // budget, and by up to kLeafBitsTradeoff more where that makes the circuit 10% faster per
  // bit). Leaf values ride out of the lookups for free (a lookup's width is its index's).
  std::uint32_t leaf_bits = 8;
  // Widest lookup allowed. Narrow lookups use faster parameters; the builder tries every width
  // up to this and keeps the one with the lowest estimated latency.
  std::uint32_t max_lookup_bits = 4;
  // Failure budget and the rest of compilation (quantization options are not used: the builder
  // makes its own integer graph).
  compiler::CompileOptions compile;
  runtime::FheCircuitOptions runtime;
};

// What the builder made, for reports and benchmarks.
struct TreeCircuitStats {
  std::size_t trees = 0;
  std::size_t internal_nodes = 0;
  std::size_t leaves = 0;
  std::size_t distinct_splits = 0;   // distinct (feature, threshold) pairs
  std::size_t lookups = 0;           // bootstraps per row
  std::uint32_t lookup_bits = 0;     // their width
  std::uint32_t leaf_bits = 0;       // bits of the quantized leaf values
  std::size_t value_blocks = 0;      // lookups returning leaf values
  std::size_t reach_indicators = 0;  // lookups returning 0/1 reach indicators
  std::size_t affine_blocks = 0;     // blocks computed without a lookup
  std::size_t lookup_depth = 0;      // stages of lookups (1: all in parallel)
  // Concrete ML's scheme (one comparison per internal node, one equality per leaf, tree by
  // tree): internal nodes + leaves of the same trees.
  std::size_t concrete_ml_bootstraps() const { return internal_nodes + leaves; }
};

class TreeEnsemble {
 public:
  // calibration [N, F]: rows whose per-feature minimum and maximum fix the input grid (the
  // training rows). Throws std::invalid_argument (spec errors, NaN in calibration, options out
  // of range, no parameters).
  TreeEnsemble(const TreeEnsembleSpec& spec, const Matrix& calibration,
               const TreeEnsembleOptions& options = {});

  std::size_t features() const { return spec_.features; }
  std::size_t outputs() const { return spec_.outputs; }
  Link link() const { return spec_.link; }
  const TreeEnsembleSpec& spec() const { return spec_; }
  const TreeCircuitStats& stats() const { return stats_; }

  // The float model on x [rows, F]: base + aggregate of the leaves (before the link).
  Matrix float_decision_function(const Matrix& x) const;
  // The same trees on the dequantized grid values of x (what the circuit computes, before leaf
  // quantization).
  Matrix quantized_float_decision_function(const Matrix& x) const;

  // x [rows, F] -> the aggregate [rows, C] in `mode`. Throws std::invalid_argument on a wrong
  // feature count or a NaN/inf value (row and column named).
  Matrix decision_function(const Matrix& x, runtime::Mode mode);
  Matrix predict(const Matrix& x, runtime::Mode mode);  // apply_link(link(), ...)

  // The client's steps: floats -> integer grid levels [rows, F] (not yet thermometer-coded) ->
  // the circuit -> floats. quantize_input, run_integers, dequantize_output == decision_function.
  std::vector<std::int64_t> quantize_input(const Matrix& x) const;
  std::vector<std::int64_t> run_integers(std::span<const std::int64_t> levels, std::size_t rows,
                                         runtime::Mode mode);
  Matrix dequantize_output(std::span<const std::int64_t> q, std::size_t rows) const;

  // Grid level k of each split (the node goes left iff q_f <= k), indexed like
  // spec().trees[t].nodes[n]; leaves hold 0. For tests and reports.
  const std::vector<std::vector<std::int64_t>>& split_levels() const { return split_levels_; }

  runtime::FheCircuit& circuit() { return *circuit_; }
  const runtime::FheCircuit& circuit() const { return *circuit_; }

 private:
  void check_rows(const Matrix& x) const;
  void cover_thresholds(std::uint32_t n_bits);

  TreeEnsembleSpec spec_;
  // Calibration range per feature, widened to hold every threshold strictly inside.
  std::vector<double> lo_, hi_;
  std::vector<std::vector<std::int64_t>> split_levels_;
  TreeCircuitStats stats_;
  std::unique_ptr<runtime::FheCircuit> circuit_;
};

}  // namespace fheml::models
