// Internal helpers shared by the runtime's modes and statistics: not part of the API.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "fheml/compiler/circuit.h"
#include "fheml/ir/int_graph.h"
#include "fheml/runtime/runtime.h"
#include "fheml/tfhe/parameters.h"
#include "fheml/tfhe/types.h"

namespace fheml::runtime::detail {

// Lookup depth of every node: 0 for inputs, 1 + the operand's for a lookup, the maximum over
// the sources for a linear node (the graph is topologically ordered).
std::vector<std::uint32_t> lookup_depths(const ir::IntGraph& graph);

// v at width W: (v mod 2^(W+1)) * 2^(63-W), wrapping.
inline tfhe::Torus encode_at(std::int64_t v, std::uint32_t width) {
  return static_cast<tfhe::Torus>(v) << (63 - width);
}

// The representative of v modulo 2^(W+1) in [lo, lo + 2^(W+1)).
inline std::int64_t wrap_into_window(std::int64_t v, std::uint32_t width, std::int64_t lo) {
  const std::uint64_t mask = (std::uint64_t{2} << width) - 1;
  const std::uint64_t d = (static_cast<std::uint64_t>(v) - static_cast<std::uint64_t>(lo)) & mask;
  return static_cast<std::int64_t>(static_cast<std::uint64_t>(lo) + d);
}

// A phase rounded to the nearest multiple of 2^(63-W), its W+1-bit value mapped into the window.
inline std::int64_t decode_phase(tfhe::Torus phase, std::uint32_t width, std::int64_t lo) {
  const int shift = 63 - static_cast<int>(width);
  const tfhe::Torus rounded = ((phase >> (shift - 1)) + 1) >> 1;
  return wrap_into_window(static_cast<std::int64_t>(rounded), width, lo);
}

// An output's phase decoded: exact outputs (noise_bits 0) into [range.lo, range.lo + 2^(W+1));
// approximate ones (compiler::Circuit::output_noise_bits) into the window that starts
// 2^(noise_bits-1) below the range, then clamped into the range (the exact value lies in it, so
// clamping only brings a noisy value closer).
inline std::int64_t decode_output(tfhe::Torus phase, std::uint32_t width, ir::IntRange range,
                                  std::uint32_t noise_bits) {
  if (noise_bits == 0) return decode_phase(phase, width, range.lo);
  const std::int64_t margin = std::int64_t{1} << (noise_bits - 1);
  return std::clamp(decode_phase(phase, width, range.lo - margin), range.lo, range.hi);
}

// Throws std::invalid_argument unless circuit.width has one entry per node, each in 1..62.
void check_widths(const compiler::Circuit& circuit);

// Throws std::invalid_argument unless `keys` are at the circuit's parameters and hold a small
// key per partition and a big key per key class beyond 0, each of the right size.
void check_client_key(const ClientCircuit& circuit, const ClientKeys& keys);

// Per node: circuit.partition (zeros when empty), checked against the partition count.
std::vector<std::uint32_t> node_partitions(const compiler::Circuit& circuit,
                                           std::size_t partition_count);

// Per node: the key class of its ciphertexts (Program::key_class), and the key switches between
// big keys its lookups need (Program::keyswitch_pairs), from the per-node partitions and the key
// class of each partition (big_key_classes). Throws std::invalid_argument for a linear node whose
// operands are under two big keys.
struct KeyClasses {
  std::vector<std::uint32_t> node;
  std::vector<KeyswitchPair> keyswitch_pairs;
};
KeyClasses key_classes(const ir::IntGraph& graph, std::span<const std::uint32_t> partition,
                       std::span<const std::uint32_t> classes);

inline tfhe::LweDimension big_dimension(const tfhe::PbsParameters& p) {
  return tfhe::extracted_lwe_dimension(p.glwe_dimension, p.polynomial_size);
}

// An encrypted list a circuit expects (its inputs, or its outputs for decrypt).
struct ListSpec {
  std::string name;  // "input 0 (node %3)"
  ir::Shape shape;
  tfhe::LweDimension dimension{0};  // the k * N of its big key
};

// The lists hold one batch each, of the specs' shapes and big-key dimensions: the batch size, or
// std::invalid_argument saying which list is wrong.
template <class Ciphertexts>
std::size_t check_batches(std::span<const Ciphertexts> lists, std::span<const ListSpec> specs,
                          const char* what) {
  if (lists.size() != specs.size()) {
    throw std::invalid_argument("expected " + std::to_string(specs.size()) + " encrypted " + what +
                                "s, found " + std::to_string(lists.size()));
  }
  const std::size_t batch = lists.empty() ? 0 : lists[0].batch;
  for (std::size_t i = 0; i < lists.size(); ++i) {
    const std::string& name = specs[i].name;
    const tfhe::LweDimension big = specs[i].dimension;
    if (lists[i].batch != batch) {
      throw std::invalid_argument(name + " holds a batch of " + std::to_string(lists[i].batch) +
                                  " samples, " + what + " 0 of " + std::to_string(batch) +
                                  ": all must hold the same samples");
    }
    // The dimension first: an expanded list's count divides by its ciphertext size.
    if (lists[i].ciphertexts.dimension != big) {
      throw std::invalid_argument(name + ": ciphertext dimension " +
                                  std::to_string(lists[i].ciphertexts.dimension.value) +
                                  ", the circuit's parameters give " + std::to_string(big.value));
    }
    const std::size_t count = ir::element_count(specs[i].shape);
    // batch * count without overflow: a forged batch must not wrap around to a match.
    const bool fits = count == 0 || batch <= lists[i].ciphertexts.count() / count;
    const std::size_t expected = fits ? batch * count : 0;
    bool whole = true;  // an expanded list must hold whole ciphertexts
    if constexpr (requires { lists[i].ciphertexts.data; }) {
      whole =
          lists[i].ciphertexts.data.size() % tfhe::lwe_size(lists[i].ciphertexts.dimension) == 0;
    }
    if (!fits || lists[i].ciphertexts.count() != expected || !whole) {
      throw std::invalid_argument(name + ": expected " + std::to_string(batch) + " samples of " +
                                  std::to_string(count) + " ciphertexts (shape " +
                                  ir::to_string(specs[i].shape) + "), found " +
                                  std::to_string(lists[i].ciphertexts.count()) + " ciphertexts");
    }
  }
  return batch;
}

}  // namespace fheml::runtime::detail
