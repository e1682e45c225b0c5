// Payload layouts (all inside a tfhe envelope; u64 little-endian unless said otherwise; i64 as
// its two's complement u64; f64 by bit pattern; a string is a u64 length then its bytes; a
// shape is a u64 rank then the dimensions; a nested object is a u64 length then its own
// envelope):
//
//   ClientSpec      format version, circuit id, parameters, has_lookups, input encodings,
//                   output encodings (each: shape, width, range, key class, noise bits),
//                   partitions, key
//                   switch pairs (from, to), input quantizers, output dequantizers,
//                   post-processing, metadata
//   ServerCircuit   format version, parameters, has_lookups, parameter choice, log2_p_error,
//                   global_p_error, nodes, outputs, widths, input quantizers, output
//                   dequantizers, noise sites, partitions, partition per node, output noise
//                   bits
//   EvaluationKeys  format version, key id, parameters, has a server key, [nested
//                   CompressedServerKey], partition server keys (count, nested each), key
//                   switches between big keys (count; from, to, nested SeededKeyswitchKey)
//   EncryptedInputs / EncryptedOutputs
//                   format version, circuit id, key id, count, per list: batch, nested
//                   SeededLweCiphertextList / LweCiphertextList
// (The last two kinds, keys and ciphertexts, are in artifact_payloads.cpp.)
#include "fheml/deploy/artifacts.h"

#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

#include "fheml/deploy/artifact_wire.h"
#include "fheml/models/linear_model.h"
#include "fheml/tfhe/wire.h"

namespace fheml::deploy {
namespace {

using namespace wire_detail;
using tfhe::ObjectType;
using tfhe::wire::fail;
using tfhe::wire::Reader;
using tfhe::wire::Writer;

// Limits of what a loader accepts (beyond anything the compiler makes; they keep every size
// computed from them far from overflow).
constexpr std::uint64_t kMaxRank = 8;
constexpr std::uint64_t kMaxElements = std::uint64_t{1} << 26;
constexpr std::uint64_t kMaxNameBytes = std::uint64_t{1} << 16;
constexpr std::uint64_t kMaxMetadataBytes = std::uint64_t{16} << 20;
constexpr std::uint64_t kMaxInputBits = 24;

void write_i64(Writer& w, std::int64_t v) { w.u64(static_cast<std::uint64_t>(v)); }
std::int64_t read_i64(Reader& r) { return static_cast<std::int64_t>(r.u64()); }

void write_string(Writer& w, const std::string& s) {
  w.u64(s.size());
  w.bytes(std::span(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()));
}

std::string read_string(Reader& r, std::uint64_t max, const char* what) {
  const std::uint64_t size = tfhe::wire::read_count(r, 0, 1, what);
  if (size > max) {
    fail(r.context(), std::string(what) + " of " + std::to_string(size) + " bytes, at most " +
                          std::to_string(max) + " accepted");
  }
  const auto b = r.bytes(size);
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

void write_shape(Writer& w, const ir::Shape& shape) {
  w.u64(shape.size());
  for (const std::size_t d : shape) w.u64(d);
}

ir::Shape read_shape(Reader& r, const char* what) {
  const std::uint64_t rank = r.u64();
  if (rank > kMaxRank) {
    fail(r.context(), std::string(what) + ": rank " + std::to_string(rank) + ", at most " +
                          std::to_string(kMaxRank));
  }
  ir::Shape shape;
  std::uint64_t elements = 1;
  for (std::uint64_t i = 0; i < rank; ++i) {
    const std::uint64_t d = r.u64();
    if (d == 0 || d > kMaxElements || elements * d > kMaxElements) {
      fail(r.context(), std::string(what) + ": dimension " + std::to_string(d) + " (more than " +
                            std::to_string(kMaxElements) + " elements, or zero)");
    }
    elements *= d;
    shape.push_back(static_cast<std::size_t>(d));
  }
  return shape;
}

void write_range(Writer& w, const ir::IntRange& range) {
  write_i64(w, range.lo);
  write_i64(w, range.hi);
}

ir::IntRange read_range(Reader& r, const char* what) {
  ir::IntRange range{read_i64(r), read_i64(r)};
  if (range.lo > range.hi) {
    fail(r.context(), std::string(what) + ": empty range [" + std::to_string(range.lo) + ", " +
                          std::to_string(range.hi) + "]");
  }
  return range;
}

void write_doubles(Writer& w, const std::vector<double>& v) {
  w.u64(v.size());
  for (const double x : v) w.f64(x);
}

// `count` values, where count must be `expected` or `alternative` (per-tensor or per-element).
std::vector<double> read_doubles(Reader& r, std::uint64_t expected, const char* what,
                                 std::uint64_t alternative = 0) {
  const std::uint64_t count = tfhe::wire::read_count(r, 0, 8, what);
  if (count != expected && (alternative == 0 || count != alternative)) {
    fail(r.context(), std::string(what) + ": " + std::to_string(count) + " values, expected " +
                          std::to_string(expected) +
                          (alternative == 0 ? "" : " or " + std::to_string(alternative)));
  }
  std::vector<double> v(count);
  for (double& x : v) {
    x = r.f64();
    if (!std::isfinite(x)) fail(r.context(), std::string(what) + " holds NaN or inf");
  }
  return v;
}

// --- Quantizers.

void write_input_quantizer(Writer& w, const quant::InputQuantizer& q) {
  write_string(w, q.name);
  write_shape(w, q.shape);
  write_doubles(w, q.scale);
  write_doubles(w, q.zero_point);
  w.u64(q.bits);
  write_i64(w, q.headroom);
  w.u64(static_cast<std::uint64_t>(q.encoding));
}

quant::InputQuantizer read_input_quantizer(Reader& r) {
  quant::InputQuantizer q;
  q.name = read_string(r, kMaxNameBytes, "input quantizer name");
  q.shape = read_shape(r, "input quantizer shape");
  const std::uint64_t count = ir::element_count(q.shape);
  q.scale = read_doubles(r, 1, "input quantizer scale", count);
  for (const double s : q.scale) {
    if (!(s > 0)) fail(r.context(), "input quantizer scale must be positive");
  }
  q.zero_point = read_doubles(r, q.scale.size(), "input quantizer zero point");
  const std::uint64_t bits = r.u64();
  if (bits < 1 || bits > kMaxInputBits) {
    fail(r.context(), "input quantizer bits " + std::to_string(bits) + " outside 1.." +
                          std::to_string(kMaxInputBits));
  }
  q.bits = static_cast<std::uint32_t>(bits);
  q.headroom = read_i64(r);
  if (q.headroom < 0 || q.headroom > (std::int64_t{16} << bits)) {
    fail(r.context(), "input quantizer headroom " + std::to_string(q.headroom) + " outside 0.." +
                          std::to_string(std::int64_t{16} << bits));
  }
  const std::uint64_t encoding = r.u64();
  if (encoding > static_cast<std::uint64_t>(quant::InputEncoding::kThermometer)) {
    fail(r.context(), "input quantizer encoding " + std::to_string(encoding) +
                          " unknown (0: integer, 1: thermometer)");
  }
  q.encoding = static_cast<quant::InputEncoding>(encoding);
  if (q.encoding == quant::InputEncoding::kThermometer) {
    if (bits > quant::kMaxThermometerBits || q.headroom != 0) {
      fail(r.context(), "thermometer input quantizer with " + std::to_string(bits) +
                            " bits and headroom " + std::to_string(q.headroom) + " (at most " +
                            std::to_string(quant::kMaxThermometerBits) + " bits, no headroom)");
    }
    if (ir::element_count(q.shape) * q.levels() > kMaxElements) {
      fail(r.context(), "thermometer input quantizer: more than " + std::to_string(kMaxElements) +
                            " encoded elements");
    }
  }
  return q;
}

void write_output_dequantizer(Writer& w, const quant::OutputDequantizer& d) {
  write_shape(w, d.shape);
  write_doubles(w, d.scale);
  write_doubles(w, d.bias);
}

quant::OutputDequantizer read_output_dequantizer(Reader& r) {
  quant::OutputDequantizer d;
  d.shape = read_shape(r, "output dequantizer shape");
  const std::uint64_t count = ir::element_count(d.shape);
  d.scale = read_doubles(r, count, "output dequantizer scale");
  d.bias = read_doubles(r, count, "output dequantizer bias");
  return d;
}

// --- Encodings.

void write_encodings(Writer& w, const std::vector<runtime::TensorEncoding>& tensors) {
  w.u64(tensors.size());
  for (const runtime::TensorEncoding& t : tensors) {
    write_shape(w, t.shape);
    w.u64(t.width);
    write_range(w, t.range);
    w.u64(t.key_class);
    w.u64(t.noise_bits);
  }
}

std::vector<runtime::TensorEncoding> read_encodings(Reader& r, const char* what) {
  const std::uint64_t count = tfhe::wire::read_count(r, 0, 4 * 8, what);
  std::vector<runtime::TensorEncoding> tensors(count);
  for (runtime::TensorEncoding& t : tensors) {
    t.shape = read_shape(r, what);
    const std::uint64_t width = r.u64();
    if (width < 1 || width > 62) {
      fail(r.context(), std::string(what) + ": width " + std::to_string(width) + " outside 1..62");
    }
    t.width = static_cast<std::uint32_t>(width);
    t.range = read_range(r, what);
    // runtime::validate checks that it names the first partition of a big key.
    t.key_class = read_index(r, compiler::kMaxPartitions, "key class");
    // runtime::validate checks it against the width and the kind of tensor.
    t.noise_bits = read_index(r, compiler::kMaxOutputNoiseBits + 1, "noise bits");
  }
  return tensors;
}

// --- Integer graph.

void write_node(Writer& w, const ir::IntNode& n) {
  w.u64(static_cast<std::uint64_t>(n.op));
  w.u64(n.inputs.size());
  for (const ir::ValueId in : n.inputs) w.u64(in.index);
  write_shape(w, n.shape);
  write_range(w, n.range);
  write_string(w, n.origin);
  if (n.op == ir::IntOp::kLinear) {
    w.u64(n.linear.row_begin.size());
    for (const std::size_t b : n.linear.row_begin) w.u64(b);
    w.u64(n.linear.entries.size());
    for (const ir::IntLinearEntry& e : n.linear.entries) {
      w.u64(e.source);
      w.u64(e.element);
      write_i64(w, e.coefficient);
    }
    w.u64(n.linear.bias.size());
    for (const std::int64_t b : n.linear.bias) write_i64(w, b);
  } else if (n.op == ir::IntOp::kLookup) {
    write_i64(w, n.lookup.offset);
    w.u64(n.lookup.shift);
    w.u64(n.lookup.bits);
    w.u64(n.lookup.round_to_nearest ? 1 : 0);
    w.u64(n.lookup.tables.size());
    for (const auto& table : n.lookup.tables) {
      w.u64(table.size());
      for (const std::int64_t v : table) write_i64(w, v);
    }
    w.u64(n.lookup.table_of_element.size());
    for (const std::uint32_t t : n.lookup.table_of_element) w.u64(t);
  }
}

ir::IntNode read_node(Reader& r, std::size_t index) {
  ir::IntNode n;
  const std::uint64_t op = r.u64();
  if (op > static_cast<std::uint64_t>(ir::IntOp::kLookup)) {
    fail(r.context(), "node " + std::to_string(index) + ": unknown op " + std::to_string(op));
  }
  n.op = static_cast<ir::IntOp>(op);
  const std::uint64_t inputs = tfhe::wire::read_count(r, 0, 8, "node operand");
  for (std::uint64_t i = 0; i < inputs; ++i)
    n.inputs.push_back(ir::ValueId{read_index(r, index, "operand")});
  n.shape = read_shape(r, "node shape");
  n.range = read_range(r, "node range");
  n.origin = read_string(r, kMaxNameBytes, "node origin");
  if (n.op == ir::IntOp::kLinear) {
    const std::uint64_t rows = tfhe::wire::read_count(r, 0, 8, "linear row offset");
    n.linear.row_begin.resize(rows);
    for (std::size_t& b : n.linear.row_begin) b = static_cast<std::size_t>(r.u64());
    const std::uint64_t entries = tfhe::wire::read_count(r, 0, 3 * 8, "linear entry");
    n.linear.entries.resize(entries);
    for (ir::IntLinearEntry& e : n.linear.entries) {
      e.source = read_index(r, n.inputs.size(), "linear entry source");
      e.element = read_index(r, kMaxElements, "linear entry element");
      e.coefficient = read_i64(r);
    }
    const std::uint64_t bias = tfhe::wire::read_count(r, 0, 8, "linear bias");
    n.linear.bias.resize(bias);
    for (std::int64_t& b : n.linear.bias) b = read_i64(r);
  } else if (n.op == ir::IntOp::kLookup) {
    n.lookup.offset = read_i64(r);
    n.lookup.shift = read_index(r, 63, "lookup shift");
    n.lookup.bits = read_index(r, 25, "lookup bits");
    n.lookup.round_to_nearest = read_flag(r, "lookup rounding flag") == 1;
    const std::uint64_t tables = tfhe::wire::read_count(r, 0, 8, "lookup table");
    n.lookup.tables.resize(tables);
    for (auto& table : n.lookup.tables) {
      const std::uint64_t size = tfhe::wire::read_count(r, 0, 8, "lookup table entry");
      if (size != (std::uint64_t{1} << n.lookup.bits)) {
        fail(r.context(), "node " + std::to_string(index) + ": lookup table of " +
                              std::to_string(size) + " entries, 2^" +
                              std::to_string(n.lookup.bits) + " expected");
      }
      table.resize(size);
      for (std::int64_t& v : table) v = read_i64(r);
    }
    const std::uint64_t elements = tfhe::wire::read_count(r, 0, 8, "lookup element");
    n.lookup.table_of_element.resize(elements);
    for (std::uint32_t& t : n.lookup.table_of_element)
      t = read_index(r, tables, "lookup table index");
  }
  return n;
}

// A list of parameter sets (partitions), each behind its own fingerprint.
void write_partitions(Writer& w, const std::vector<tfhe::PbsParameters>& partitions) {
  w.u64(partitions.size());
  for (const tfhe::PbsParameters& p : partitions) {
    w.u64(tfhe::fingerprint(p));
    tfhe::wire::write_parameters(w, p);
  }
}

std::vector<tfhe::PbsParameters> read_partitions(Reader& r, tfhe::SecurityCheck check) {
  const std::uint64_t count = tfhe::wire::read_count(
      r, 0, 8 + tfhe::wire::parameters_payload_bytes(r.format_version()), "partition");
  if (count > compiler::kMaxPartitions) {
    fail(r.context(), std::to_string(count) + " parameter sets (partitions), at most " +
                          std::to_string(compiler::kMaxPartitions));
  }
  std::vector<tfhe::PbsParameters> partitions;
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::uint64_t fp = r.u64();
    partitions.push_back(tfhe::wire::read_parameters(r, fp, check));
  }
  return partitions;
}

// The fields of a ClientSpec payload after the version.
void write_client_circuit(Writer& w, const runtime::ClientCircuit& c) {
  tfhe::wire::write_parameters(w, c.parameters);
  w.u64(c.has_lookups ? 1 : 0);
  write_encodings(w, c.inputs);
  write_encodings(w, c.outputs);
  write_partitions(w, c.partitions);
  w.u64(c.keyswitch_pairs.size());
  for (const runtime::KeyswitchPair& pair : c.keyswitch_pairs) {
    w.u64(pair.from);
    w.u64(pair.to);
  }
}

// Key switches between big keys, each (from, to) a pair of partition indices below
// kMaxPartitions (runtime::validate or the evaluation keys' reader checks the rest).
std::vector<runtime::KeyswitchPair> read_keyswitch_pairs(Reader& r, std::uint64_t count) {
  std::vector<runtime::KeyswitchPair> pairs;
  for (std::uint64_t i = 0; i < count; ++i) {
    runtime::KeyswitchPair pair;
    pair.from = read_index(r, compiler::kMaxPartitions, "key switch source partition");
    pair.to = read_index(r, compiler::kMaxPartitions, "key switch target partition");
    pairs.push_back(pair);
  }
  return pairs;
}

void check_post_processing(const std::string& name) {
  models::parse_link(name);  // throws std::invalid_argument naming the accepted names
}

}  // namespace

std::vector<std::uint8_t> serialize_server_circuit(const compiler::Circuit& c) {
  Writer w;
  w.u64(kArtifactFormatVersion);
  tfhe::wire::write_parameters(w, c.parameters);
  w.u64(c.has_lookups ? 1 : 0);
  write_string(w, c.parameter_choice);
  w.f64(c.log2_p_error);
  w.f64(c.global_p_error);
  w.u64(c.graph.nodes.size());
  for (const ir::IntNode& n : c.graph.nodes) write_node(w, n);
  w.u64(c.graph.outputs.size());
  for (const ir::ValueId o : c.graph.outputs) w.u64(o.index);
  w.u64(c.width.size());
  for (const std::uint32_t width : c.width) w.u64(width);
  w.u64(c.inputs.size());
  for (const auto& q : c.inputs) write_input_quantizer(w, q);
  w.u64(c.outputs.size());
  for (const auto& d : c.outputs) write_output_dequantizer(w, d);
  w.u64(c.noise_sites.size());
  for (const compiler::NoiseSite& s : c.noise_sites) {
    w.u64(s.node.index);
    w.u64(s.is_output ? 1 : 0);
    w.u64(s.bits);
    w.f64(s.nu2);
    w.f64(s.nu2_fresh);
    w.f64(s.log2_p_fail);
    write_string(w, s.label);
    w.u64(s.sources.size());
    for (const compiler::SourceShare& share : s.sources) {
      w.u64(share.node.index);
      w.f64(share.nu2);
    }
  }
  write_partitions(w, c.partitions);
  w.u64(c.partition.size());
  for (const std::uint32_t p : c.partition) w.u64(p);
  w.u64(c.output_noise_bits);
  return seal(ObjectType::kServerCircuit, tfhe::fingerprint(c.parameters), std::move(w));
}

compiler::Circuit deserialize_server_circuit(std::span<const std::uint8_t> bytes,
                                             const tfhe::DeserializeOptions& options) {
  const auto opts = with_default_limit(options, kMaxCircuitBytes);
  compiler::Circuit c =
      open_payload(bytes, ObjectType::kServerCircuit, opts, [&](Reader& r, std::uint64_t fp) {
        compiler::Circuit out;
        out.parameters = tfhe::wire::read_parameters(r, fp, security_of(opts));
        out.has_lookups = read_flag(r, "has_lookups") == 1;
        out.parameter_choice = read_string(r, kMaxMetadataBytes, "parameter choice");
        out.log2_p_error = r.f64();
        out.global_p_error = r.f64();
        const std::uint64_t nodes = tfhe::wire::read_count(r, 0, 8 * 8, "node");
        for (std::uint64_t i = 0; i < nodes; ++i) {
          ir::IntNode node = read_node(r, static_cast<std::size_t>(i));
          try {
            out.graph.add(std::move(node));
          } catch (const std::logic_error& e) {
            fail(r.context(), "node " + std::to_string(i) + " is invalid: " + e.what());
          }
        }
        const std::uint64_t outputs = tfhe::wire::read_count(r, 0, 8, "graph output");
        for (std::uint64_t i = 0; i < outputs; ++i)
          out.graph.outputs.push_back(ir::ValueId{read_index(r, nodes, "graph output")});
        const std::uint64_t widths = tfhe::wire::read_count(r, 0, 8, "width");
        if (widths != nodes) {
          fail(r.context(),
               std::to_string(widths) + " widths for " + std::to_string(nodes) + " nodes");
        }
        for (std::uint64_t i = 0; i < widths; ++i) out.width.push_back(read_index(r, 63, "width"));
        const std::uint64_t inputs = tfhe::wire::read_count(r, 0, 8, "input quantizer");
        for (std::uint64_t i = 0; i < inputs; ++i) out.inputs.push_back(read_input_quantizer(r));
        const std::uint64_t deqs = tfhe::wire::read_count(r, 0, 8, "output dequantizer");
        for (std::uint64_t i = 0; i < deqs; ++i) out.outputs.push_back(read_output_dequantizer(r));
        const std::uint64_t sites = tfhe::wire::read_count(r, 0, 6 * 8, "noise site");
        for (std::uint64_t i = 0; i < sites; ++i) {
          compiler::NoiseSite s;
          s.node = ir::ValueId{read_index(r, nodes, "noise site node")};
          s.is_output = read_flag(r, "noise site output flag") == 1;
          s.bits = read_index(r, 63, "noise site bits");
          s.nu2 = r.f64();
          s.nu2_fresh = r.f64();
          if (!(s.nu2 >= 0 && s.nu2_fresh >= 0 && std::isfinite(s.nu2 + s.nu2_fresh))) {
            fail(r.context(), "noise site " + std::to_string(i) + ": nu2 " + std::to_string(s.nu2) +
                                  " and " + std::to_string(s.nu2_fresh) +
                                  " must be finite and >= 0");
          }
          s.log2_p_fail = r.f64();
          s.label = read_string(r, kMaxNameBytes, "noise site label");
          const std::uint64_t sources = tfhe::wire::read_count(r, 0, 2 * 8, "noise site source");
          for (std::uint64_t k = 0; k < sources; ++k) {
            compiler::SourceShare share;
            share.node = ir::ValueId{read_index(r, nodes, "noise site source node")};
            share.nu2 = r.f64();
            if (!(share.nu2 >= 0 && std::isfinite(share.nu2))) {
              fail(r.context(), "noise site " + std::to_string(i) + ": source nu2 " +
                                    std::to_string(share.nu2) + " must be finite and >= 0");
            }
            s.sources.push_back(share);
          }
          out.noise_sites.push_back(std::move(s));
        }
        out.partitions = read_partitions(r, security_of(opts));
        const std::uint64_t indices = tfhe::wire::read_count(r, 0, 8, "partition index");
        if (indices != 0 && indices != nodes) {
          fail(r.context(), std::to_string(indices) + " partition indices for " +
                                std::to_string(nodes) + " nodes");
        }
        for (std::uint64_t i = 0; i < indices; ++i) {
          out.partition.push_back(
              read_index(r, std::max<std::size_t>(1, out.partitions.size()), "partition index"));
        }
        out.output_noise_bits =
            read_index(r, compiler::kMaxOutputNoiseBits + 1, "output noise bits");
        return out;
      });
  // What the runtime needs beyond the graph's own invariants: one quantizer per input and per
  // output with their shapes, and widths and tables that Program accepts.
  const std::string context = tfhe::wire::loader_name(ObjectType::kServerCircuit);
  const std::vector<ir::ValueId> inputs = c.graph.inputs();
  if (c.inputs.size() != inputs.size() || c.outputs.size() != c.graph.outputs.size()) {
    fail(context, std::to_string(c.inputs.size()) + " input quantizers and " +
                      std::to_string(c.outputs.size()) + " output dequantizers for " +
                      std::to_string(inputs.size()) + " inputs and " +
                      std::to_string(c.graph.outputs.size()) + " outputs");
  }
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (c.inputs[i].encoded_shape() != c.graph.node(inputs[i]).shape)
      fail(context, "input quantizer " + std::to_string(i) + " has the wrong shape");
  }
  for (std::size_t o = 0; o < c.outputs.size(); ++o) {
    if (c.outputs[o].shape != c.graph.node(c.graph.outputs[o]).shape)
      fail(context, "output dequantizer " + std::to_string(o) + " has the wrong shape");
  }
  try {
    runtime::Program check(c);
  } catch (const std::invalid_argument& e) {
    fail(context, std::string("the circuit cannot run: ") + e.what());
  }
  return c;
}

std::uint64_t circuit_id(const compiler::Circuit& circuit) {
  const std::vector<std::uint8_t> bytes = serialize_server_circuit(circuit);
  // The envelope ends with BLAKE2b-128 of everything before it.
  std::uint64_t id = 0;
  for (int i = 7; i >= 0; --i)
    id = (id << 8) |
         bytes[bytes.size() - tfhe::kEnvelopeChecksumBytes + static_cast<std::size_t>(i)];
  return id;
}

ClientSpec make_client_spec(const compiler::Circuit& circuit, std::string post_processing,
                            std::string metadata) {
  check_post_processing(post_processing);
  if (metadata.size() > kMaxMetadataBytes) {
    throw std::invalid_argument("metadata of " + std::to_string(metadata.size()) +
                                " bytes, at most " + std::to_string(kMaxMetadataBytes));
  }
  return ClientSpec{circuit_id(circuit), runtime::client_view(circuit), circuit.inputs,
                    circuit.outputs,     std::move(post_processing),    std::move(metadata)};
}

std::vector<std::uint8_t> serialize(const ClientSpec& spec) {
  Writer w;
  w.u64(kArtifactFormatVersion);
  w.u64(spec.circuit_id);
  write_client_circuit(w, spec.circuit);
  w.u64(spec.input_quantizers.size());
  for (const auto& q : spec.input_quantizers) write_input_quantizer(w, q);
  w.u64(spec.output_dequantizers.size());
  for (const auto& d : spec.output_dequantizers) write_output_dequantizer(w, d);
  write_string(w, spec.post_processing);
  write_string(w, spec.metadata);
  return seal(ObjectType::kClientSpec, tfhe::fingerprint(spec.circuit.parameters), std::move(w));
}

ClientSpec deserialize_client_spec(std::span<const std::uint8_t> bytes,
                                   const tfhe::DeserializeOptions& options) {
  const auto opts = with_default_limit(options, kMaxSpecBytes);
  return open_payload(bytes, ObjectType::kClientSpec, opts, [&](Reader& r, std::uint64_t fp) {
    ClientSpec spec;
    spec.circuit_id = r.u64();
    spec.circuit.parameters = tfhe::wire::read_parameters(r, fp, security_of(opts));
    spec.circuit.has_lookups = read_flag(r, "has_lookups") == 1;
    spec.circuit.inputs = read_encodings(r, "input encoding");
    spec.circuit.outputs = read_encodings(r, "output encoding");
    spec.circuit.partitions = read_partitions(r, security_of(opts));
    const std::uint64_t pairs = tfhe::wire::read_count(r, 0, 16, "key switch pair");
    if (pairs > kMaxKeyswitchPairs) {
      fail(r.context(), std::to_string(pairs) + " key switches between big keys, at most " +
                            std::to_string(kMaxKeyswitchPairs));
    }
    spec.circuit.keyswitch_pairs = read_keyswitch_pairs(r, pairs);
    try {
      runtime::validate(spec.circuit);
    } catch (const std::invalid_argument& e) {
      fail(r.context(), e.what());
    }
    const std::uint64_t inputs = tfhe::wire::read_count(r, 0, 8, "input quantizer");
    if (inputs != spec.circuit.inputs.size()) {
      fail(r.context(), std::to_string(inputs) + " input quantizers for " +
                            std::to_string(spec.circuit.inputs.size()) + " inputs");
    }
    for (std::uint64_t i = 0; i < inputs; ++i) {
      spec.input_quantizers.push_back(read_input_quantizer(r));
      if (spec.input_quantizers.back().encoded_shape() != spec.circuit.inputs[i].shape)
        fail(r.context(), "input quantizer " + std::to_string(i) + " has the wrong shape");
    }
    const std::uint64_t outputs = tfhe::wire::read_count(r, 0, 8, "output dequantizer");
    if (outputs != spec.circuit.outputs.size()) {
      fail(r.context(), std::to_string(outputs) + " output dequantizers for " +
                            std::to_string(spec.circuit.outputs.size()) + " outputs");
    }
    for (std::uint64_t o = 0; o < outputs; ++o) {
      spec.output_dequantizers.push_back(read_output_dequantizer(r));
      if (spec.output_dequantizers.back().shape != spec.circuit.outputs[o].shape)
        fail(r.context(), "output dequantizer " + std::to_string(o) + " has the wrong shape");
    }
    spec.post_processing = read_string(r, kMaxNameBytes, "post-processing");
    try {
      check_post_processing(spec.post_processing);
    } catch (const std::invalid_argument& e) {
      fail(r.context(), std::string("post-processing: ") + e.what());
    }
    spec.metadata = read_string(r, kMaxMetadataBytes, "metadata");
    return spec;
  });
}

}  // namespace fheml::deploy
