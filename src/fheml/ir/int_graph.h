// The integer graph: the contract between quantization, the compiler and the runtime. Three ops
// suffice, because every other integer operation is built from them by the quantizer:
//
//   input   an encrypted tensor of quantized integers in [lo, hi]
//   linear  out[i] = bias[i] + sum_j coefficient_j * source_j  (clear integer coefficients;
//           sources are elements of input or lookup nodes, never of another linear node, so the
//           noise of every element is an exact sum over independent ciphertexts)
//   lookup  out[e] = table[table_of_element[e]][m]: one programmable bootstrap per element
//
// The clear semantics of lookup are exactly what a bootstrap computes on the encoding of
// compiler/encoding.h, wrap-around included, so that `evaluate` (the runtime's `disable` mode)
// equals encrypted execution on EVERY input, not only inside the calibrated ranges:
//   y = x + offset                    (exactly divisible by 2^shift by construction)
//   m = (y >> shift) mod 2^(bits+1)
//   out = m < 2^bits ? T[m] : -T[m - 2^bits]     (negacyclic: the padding bit flips the sign)
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "fheml/ir/tensor.h"

namespace fheml::ir {

struct IntRange {
  std::int64_t lo = 0;
  std::int64_t hi = 0;
  // Bits of an unsigned index over the range: ceil(log2(hi - lo + 1)), at least 1.
  std::uint32_t bits() const;
  bool is_signed() const { return lo < 0; }
  bool operator==(const IntRange&) const = default;
};

enum class IntOp { kInput, kLinear, kLookup };
std::string_view op_name(IntOp op);

struct IntLinearEntry {
  std::uint32_t source = 0;   // index into IntNode::inputs
  std::uint32_t element = 0;  // element of that source
  std::int64_t coefficient = 0;
};

struct IntLinear {
  std::vector<std::size_t> row_begin;  // element_count + 1
  std::vector<IntLinearEntry> entries;
  std::vector<std::int64_t> bias;
};

struct IntLookup {
  std::int64_t offset = 0;
  std::uint32_t shift = 0;
  std::uint32_t bits = 0;                         // p: each table has 2^p entries
  std::vector<std::vector<std::int64_t>> tables;  // distinct tables
  std::vector<std::uint32_t> table_of_element;    // element_count entries
  // Approximate rounding: the low `shift` bits are not cleared first; the index is the nearest,
  // m = ((y + 2^(shift-1)) >> shift) mod 2^(bits+1), which the bootstrap reads from the top bits
  // with the low ones inside the box: near a tie the noise may give the neighbouring index (off
  // by one, never more under the failure bound), so encrypted and clear may differ by one entry.
  bool round_to_nearest = false;
};

struct IntNode {
  IntOp op = IntOp::kInput;
  std::vector<ValueId> inputs;
  Shape shape;
  IntRange range;      // every element's value lies in it (on in-range inputs)
  std::string origin;  // float ops this node stands for, e.g. "gemm fc1" or "relu(add(gemm fc1))"
  IntLinear linear;    // kLinear
  IntLookup lookup;    // kLookup
};

struct IntGraph {
  std::vector<IntNode> nodes;
  std::vector<ValueId> outputs;

  ValueId add(IntNode node);  // checks the invariants above (std::logic_error)
  const IntNode& node(ValueId id) const { return nodes.at(id.index); }
  std::vector<ValueId> inputs() const;
};

// One lookup element on an integer, with the semantics above.
std::int64_t apply_lookup(const IntLookup& lookup, std::size_t element, std::int64_t x);

// Exact clear evaluation (the `disable` mode). Inputs in the order of inputs().
std::vector<IntTensor> evaluate(const IntGraph& graph, std::span<const IntTensor> inputs);
std::vector<IntTensor> evaluate_all(const IntGraph& graph, std::span<const IntTensor> inputs);
IntTensor evaluate_node(const IntNode& node, std::span<const IntTensor* const> inputs);

// Text form, e.g.
//   %3 = lookup %2 {origin="relu(gemm fc1)", offset=812, bits=11, tables=1} : i[0,63] [1,128]
std::string to_string(const IntGraph& graph);

}  // namespace fheml::ir
