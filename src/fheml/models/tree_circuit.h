// The integer circuit of a tree ensemble (internal to models/tree_ensemble.cpp and
// tree_circuit.cpp): affine expressions over input and lookup ciphertexts, the two per-tree
// schemes (value blocks, reach indicators) and the assembly of their lookups into one integer
// graph. docs/trees.md explains the construction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "fheml/models/tree_ensemble.h"
#include "fheml/quant/quantize.h"

namespace fheml::models::tree_circuit {

struct TreeShape {
  std::vector<std::int32_t> parent;  // -1 for the root
  std::vector<std::uint32_t> depth;
  std::vector<std::size_t> internal;  // internal nodes, in index order (parents first)
  std::size_t leaves = 0;
  std::uint32_t max_depth = 0;
};

inline bool is_leaf(const TreeNode& n) { return n.feature == TreeNode::kLeaf; }

// --- Affine expressions over ciphertexts. Sources: 0 is the thermometer input; s >= 1 the
// checkpoint lookups of stage s (the index class). Output expressions read value lookups.

struct Term {
  std::uint32_t source = 0;
  std::size_t element = 0;
  std::int64_t coefficient = 0;
};

struct Expr {
  std::int64_t bias = 0;
  std::vector<Term> terms;

  Expr& add(const Expr& other, std::int64_t factor = 1) {
    bias += factor * other.bias;
    for (Term t : other.terms) {
      t.coefficient *= factor;
      terms.push_back(t);
    }
    return *this;
  }
  // Equal (source, element) terms merged, zero coefficients dropped.
  void simplify() {
    std::map<std::pair<std::uint32_t, std::size_t>, std::int64_t> merged;
    for (const Term& t : terms) merged[{t.source, t.element}] += t.coefficient;
    terms.clear();
    for (const auto& [key, c] : merged)
      if (c != 0) terms.push_back({key.first, key.second, c});
  }
};

inline Expr constant(std::int64_t v) { return Expr{v, {}}; }

// One lookup element to build: its index and its table (2^bits entries).
struct LookupRequest {
  Expr index;
  std::vector<std::int64_t> table;
  std::string origin;
};

struct Stage {
  std::vector<LookupRequest> values;       // outputs: read by the output node only
  std::vector<LookupRequest> checkpoints;  // 0/1 reach indicators read by later indices
};

// The integer graph under construction.
struct Plan {
  std::uint32_t bits = 0;
  std::vector<Stage> stages;  // stage s + 1 at index s
  std::vector<Expr> outputs;  // Term.source = stage (1-based) of a value lookup
  std::vector<std::int64_t> out_lo, out_hi;
  TreeCircuitStats stats;

  // Adds a value lookup at `stage` (1-based); returns its term source and element.
  Term add_value(std::uint32_t stage, LookupRequest r) {
    if (stages.size() < stage) stages.resize(stage);
    stages[stage - 1].values.push_back(std::move(r));
    return Term{stage, stages[stage - 1].values.size() - 1, 1};
  }
  Term add_checkpoint(std::uint32_t stage, LookupRequest r) {
    if (stages.size() < stage) stages.resize(stage);
    stages[stage - 1].checkpoints.push_back(std::move(r));
    return Term{stage, stages[stage - 1].checkpoints.size() - 1, 1};
  }
};

struct TreeContext {
  const Tree& tree;
  std::size_t index;  // of the tree in the ensemble
  TreeShape shape;
  std::vector<Expr> goes_left;                  // per internal node: [x_f <= t] on the grid
  std::vector<std::size_t> outputs;             // outputs this tree moves (non-constant)
  std::vector<std::vector<std::int64_t>> leaf;  // per node, per output: quantized leaf value
};

inline constexpr std::size_t kInfeasible = std::numeric_limits<std::size_t>::max() / 4;

TreeShape shape_of(const Tree& tree);

// Scheme "value blocks": per block with leaves, one lookup per moved output returning the
// reached leaf's value. Returns the cost (lookups) and the chosen height per internal node;
// kInfeasible when some leaf cannot be reached within `bits`.
std::pair<std::size_t, std::vector<std::uint32_t>> plan_value_blocks(const TreeContext& t,
                                                                     std::uint32_t bits);

// Scheme "reach indicators": one lookup per internal node (the indicator of its left child),
// plus one per checkpoint.
std::size_t indicator_cost(const TreeContext& t, std::uint32_t bits);

void emit_value_blocks(const TreeContext& t, const std::vector<std::uint32_t>& height, Plan& plan);

void emit_indicators(const TreeContext& t, Plan& plan);

// Builds the integer graph of a plan: per stage an index node and a lookup node for the value
// lookups and for the checkpoints, then the output node over the value lookups. The output
// node reads lookups only, so the outputs' (wide) encoding class never holds a lookup's index.
quant::QuantizedGraph assemble(Plan& plan, const quant::InputQuantizer& input,
                               const quant::OutputDequantizer& output);

}  // namespace fheml::models::tree_circuit
