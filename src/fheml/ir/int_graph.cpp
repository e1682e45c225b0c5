#include "fheml/ir/int_graph.h"

#include <bit>
#include <cstdio>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace fheml::ir {
namespace {

[[noreturn]] void broken(const std::string& what) {
  throw std::logic_error("integer graph: " + what);
}

std::string id(ValueId v) {
  std::string s("%");  // not "%" + to_string: GCC 12 -O3 warns falsely (-Wrestrict) on that
  s += std::to_string(v.index);
  return s;
}

}  // namespace

std::uint32_t IntRange::bits() const {
  if (hi < lo) broken("empty range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  const auto span = static_cast<std::uint64_t>(hi) - static_cast<std::uint64_t>(lo);
  return span == 0 ? 1u : static_cast<std::uint32_t>(std::bit_width(span));
}

std::string_view op_name(IntOp op) {
  switch (op) {
    case IntOp::kInput:
      return "input";
    case IntOp::kLinear:
      return "linear";
    case IntOp::kLookup:
      return "lookup";
  }
  return "?";
}

ValueId IntGraph::add(IntNode node) {
  const std::size_t count = element_count(node.shape);
  for (const ValueId in : node.inputs) {
    if (in.index >= nodes.size()) broken("input " + id(in) + " does not precede the node");
  }
  if (node.range.hi < node.range.lo) broken("node range is empty");
  switch (node.op) {
    case IntOp::kInput:
      if (!node.inputs.empty()) broken("an input node has no operands");
      break;
    case IntOp::kLinear: {
      const IntLinear& l = node.linear;
      if (l.row_begin.size() != count + 1 || l.bias.size() != count || l.row_begin.front() != 0 ||
          l.row_begin.back() != l.entries.size()) {
        broken("linear rows do not match the shape " + to_string(node.shape));
      }
      for (std::size_t r = 0; r < count; ++r) {
        if (l.row_begin[r] > l.row_begin[r + 1]) broken("linear row offsets decrease");
      }
      for (const ValueId in : node.inputs) {
        if (nodes[in.index].op == IntOp::kLinear) {
          broken("linear node reads linear node " + id(in) + ": compose them instead");
        }
      }
      for (const IntLinearEntry& e : l.entries) {
        if (e.source >= node.inputs.size()) broken("linear entry names a missing source");
        if (e.element >= element_count(nodes[node.inputs[e.source].index].shape)) {
          broken("linear entry element out of range");
        }
      }
      break;
    }
    case IntOp::kLookup: {
      const IntLookup& t = node.lookup;
      if (node.inputs.size() != 1) broken("a lookup has one operand");
      if (nodes[node.inputs[0].index].shape != node.shape) broken("a lookup keeps its shape");
      if (t.bits < 1 || t.bits > 24) broken("lookup bits must be in 1..24");
      if (t.shift > 62) broken("lookup shift too large");
      if (t.tables.empty() || t.table_of_element.size() != count) broken("lookup tables missing");
      for (const auto& table : t.tables) {
        if (table.size() != (std::size_t{1} << t.bits)) broken("lookup table size is not 2^bits");
      }
      for (const auto i : t.table_of_element) {
        if (i >= t.tables.size()) broken("lookup element names a missing table");
      }
      break;
    }
  }
  nodes.push_back(std::move(node));
  return ValueId{static_cast<std::uint32_t>(nodes.size() - 1)};
}

std::vector<ValueId> IntGraph::inputs() const {
  std::vector<ValueId> result;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].op == IntOp::kInput) result.push_back(ValueId{static_cast<std::uint32_t>(i)});
  }
  return result;
}

std::int64_t apply_lookup(const IntLookup& lookup, std::size_t element, std::int64_t x) {
  // Wrapping arithmetic on purpose: it is what the torus does.
  auto y = static_cast<std::uint64_t>(x) + static_cast<std::uint64_t>(lookup.offset);
  if (lookup.round_to_nearest && lookup.shift > 0) {
    y += std::uint64_t{1} << (lookup.shift - 1);
  } else if (lookup.shift > 0 && (y & ((std::uint64_t{1} << lookup.shift) - 1)) != 0) {
    broken("lookup input " + std::to_string(x) + " + offset is not a multiple of 2^" +
           std::to_string(lookup.shift));
  }
  const std::uint64_t m = (y >> lookup.shift) & ((std::uint64_t{2} << lookup.bits) - 1);
  const std::uint64_t half = std::uint64_t{1} << lookup.bits;
  const auto& table = lookup.tables[lookup.table_of_element[element]];
  return m < half ? table[m] : -table[m - half];
}

IntTensor evaluate_node(const IntNode& node, std::span<const IntTensor* const> inputs) {
  if (inputs.size() != node.inputs.size()) broken("wrong operand count");
  IntTensor out(node.shape);
  switch (node.op) {
    case IntOp::kInput:
      broken("input nodes are not evaluated");
    case IntOp::kLinear: {
      const IntLinear& l = node.linear;
      for (std::size_t r = 0; r < out.size(); ++r) {
        // Modular like the ciphertexts; the ranges keep true values far from overflow.
        auto acc = static_cast<std::uint64_t>(l.bias[r]);
        for (std::size_t k = l.row_begin[r]; k < l.row_begin[r + 1]; ++k) {
          const IntLinearEntry& e = l.entries[k];
          acc += static_cast<std::uint64_t>(e.coefficient) *
                 static_cast<std::uint64_t>(inputs[e.source]->data[e.element]);
        }
        out.data[r] = static_cast<std::int64_t>(acc);
      }
      break;
    }
    case IntOp::kLookup:
      for (std::size_t e = 0; e < out.size(); ++e) {
        out.data[e] = apply_lookup(node.lookup, e, inputs[0]->data[e]);
      }
      break;
  }
  return out;
}

std::vector<IntTensor> evaluate_all(const IntGraph& graph, std::span<const IntTensor> inputs) {
  const auto input_ids = graph.inputs();
  if (inputs.size() != input_ids.size()) {
    throw std::invalid_argument("expected " + std::to_string(input_ids.size()) +
                                " input tensors, found " + std::to_string(inputs.size()));
  }
  std::vector<IntTensor> values(graph.nodes.size());
  std::size_t next_input = 0;
  std::vector<const IntTensor*> operands;
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    const IntNode& node = graph.nodes[i];
    if (node.op == IntOp::kInput) {
      const IntTensor& x = inputs[next_input++];
      if (x.shape != node.shape || x.data.size() != element_count(node.shape)) {
        throw std::invalid_argument("input " + id(ValueId{static_cast<std::uint32_t>(i)}) +
                                    ": expected shape " + to_string(node.shape) + ", found " +
                                    to_string(x.shape));
      }
      values[i] = x;
      continue;
    }
    operands.clear();
    for (const ValueId in : node.inputs) operands.push_back(&values[in.index]);
    values[i] = evaluate_node(node, operands);
  }
  return values;
}

std::vector<IntTensor> evaluate(const IntGraph& graph, std::span<const IntTensor> inputs) {
  auto values = evaluate_all(graph, inputs);
  std::vector<IntTensor> outputs;
  for (const ValueId out : graph.outputs) outputs.push_back(values[out.index]);
  return outputs;
}

std::string to_string(const IntGraph& graph) {
  std::ostringstream s;
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    const IntNode& n = graph.nodes[i];
    s << '%' << i << " = " << op_name(n.op);
    for (std::size_t k = 0; k < n.inputs.size(); ++k) s << (k ? ", " : " ") << id(n.inputs[k]);
    s << " {";
    if (!n.origin.empty()) s << "origin=\"" << n.origin << "\"";
    if (n.op == IntOp::kLinear) {
      std::int64_t max_abs = 0;
      for (const auto& e : n.linear.entries) {
        max_abs = std::max(max_abs, e.coefficient < 0 ? -e.coefficient : e.coefficient);
      }
      s << (n.origin.empty() ? "" : ", ") << "terms=" << n.linear.entries.size()
        << ", max|w|=" << max_abs;
    } else if (n.op == IntOp::kLookup) {
      s << (n.origin.empty() ? "" : ", ") << "offset=" << n.lookup.offset
        << ", bits=" << n.lookup.bits;
      if (n.lookup.shift) s << ", shift=" << n.lookup.shift;
      if (n.lookup.round_to_nearest) s << ", approximate";
      s << ", tables=" << n.lookup.tables.size();
    }
    s << "} : i[" << n.range.lo << "," << n.range.hi << "]u" << n.range.bits() << ' '
      << to_string(n.shape) << '\n';
  }
  for (const ValueId out : graph.outputs) s << "output " << id(out) << '\n';
  return s.str();
}

}  // namespace fheml::ir
