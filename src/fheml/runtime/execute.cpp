// kExecute: keys, encryption, the server's levelized evaluation on ciphertexts, decryption.
#include <sodium.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "fheml/runtime/detail.h"
#include "fheml/runtime/runtime.h"
#include "fheml/tfhe/serialization.h"

namespace fheml::runtime {
namespace {

using tfhe::LweCiphertextList;
using tfhe::Torus;

std::string node_name(std::size_t i) { return "%" + std::to_string(i); }

tfhe::LweDimension big_dimension(const tfhe::PbsParameters& p) {
  return tfhe::extracted_lwe_dimension(p.glwe_dimension, p.polynomial_size);
}

// Splits [0, count) into about 8 chunks per thread: few enough that the pool's per-item lock
// costs nothing, enough to balance uneven rows.
template <class Body>
void parallel_chunks(tfhe::ThreadPool& pool, std::size_t count, const Body& body) {
  if (count == 0) return;
  const std::size_t chunk = std::max<std::size_t>(1, count / (8 * pool.size()));
  pool.parallel_for((count + chunk - 1) / chunk, [&](std::size_t item, std::size_t worker) {
    const std::size_t end = std::min(count, (item + 1) * chunk);
    for (std::size_t i = item * chunk; i < end; ++i) body(i, worker);
  });
}

// The work of one stage over several nodes, flattened: item t is element (t - begin[k]) of the
// batch of node nodes[k], i.e. sample (t - begin[k]) / count and element (t - begin[k]) % count.
struct Flattened {
  std::vector<std::uint32_t> nodes;
  std::vector<std::size_t> begin;  // nodes.size() + 1 prefix sums

  Flattened(const ir::IntGraph& graph, std::vector<std::uint32_t> ids, std::size_t batch)
      : nodes(std::move(ids)), begin{0} {
    for (const auto id : nodes) {
      begin.push_back(begin.back() + batch * ir::element_count(graph.nodes[id].shape));
    }
  }
  std::size_t total() const { return begin.back(); }
  // (index into nodes, offset inside that node's batch)
  std::pair<std::size_t, std::size_t> locate(std::size_t t) const {
    const auto k =
        static_cast<std::size_t>(std::upper_bound(begin.begin(), begin.end(), t) - begin.begin()) -
        1;
    return {k, t - begin[k]};
  }
};

const tfhe::ServerKey& server_key(const EvaluationKeys& keys, std::size_t partition) {
  return partition == 0 ? *keys.server_key : keys.partition_server_keys[partition - 1];
}

// KS+PBS of each input with the table its lookup names, with the keys of the lookup's partition
// (both checked by the callers). One batch per partition present.
LweCiphertextList bootstrap(const Program& program, const EvaluationKeys& keys,
                            const LweCiphertextList& inputs, std::span<const StageLookup> lookups,
                            tfhe::ThreadPool& pool) {
  std::vector<const tfhe::LookupTable*> tables(lookups.size());
  std::vector<std::vector<std::size_t>> members(program.partitions().size());
  for (std::size_t i = 0; i < lookups.size(); ++i) {
    tables[i] = &program.tables(ir::ValueId{lookups[i].node})[lookups[i].table];
    members[program.partition(ir::ValueId{lookups[i].node})].push_back(i);
  }
  if (members[0].size() == lookups.size()) {
    return tfhe::keyswitch_bootstrap_batch(*keys.server_key, inputs, tables, pool);
  }
  const std::size_t length = tfhe::lwe_size(inputs.dimension);
  LweCiphertextList outputs(inputs.dimension, lookups.size());
  for (std::size_t p = 0; p < members.size(); ++p) {
    if (members[p].empty()) continue;
    LweCiphertextList part(inputs.dimension, members[p].size());
    std::vector<const tfhe::LookupTable*> part_tables;
    for (std::size_t j = 0; j < members[p].size(); ++j) {
      const std::span<const Torus> in = inputs.at(members[p][j]);
      std::copy(in.begin(), in.end(), part.at(j).begin());
      part_tables.push_back(tables[members[p][j]]);
    }
    const LweCiphertextList done =
        tfhe::keyswitch_bootstrap_batch(server_key(keys, p), part, part_tables, pool);
    for (std::size_t j = 0; j < members[p].size(); ++j) {
      std::copy(done.data.begin() + static_cast<std::ptrdiff_t>(j * length),
                done.data.begin() + static_cast<std::ptrdiff_t>((j + 1) * length),
                outputs.at(members[p][j]).begin());
    }
  }
  return outputs;
}

// The levelized evaluation of one batch: linear nodes here, each stage's bootstraps here with
// the server key (keys) or handed to a StageRunner (stages), exactly one of the two given.
class Evaluator {
 public:
  Evaluator(const Program& program, const EvaluationKeys* keys, const StageRunner* stages,
            std::size_t batch, const RunOptions& options)
      : program_(program),
        graph_(program.circuit().graph),
        keys_(keys),
        stages_(stages),
        batch_(batch),
        pool_(options.pool != nullptr ? *options.pool : tfhe::ThreadPool::global()),
        trace_(options.trace),
        big_(big_dimension(program.circuit().parameters)),
        owned_(graph_.nodes.size()),
        values_(graph_.nodes.size(), nullptr),
        uses_left_(graph_.nodes.size(), 0) {
    for (const ir::IntNode& node : graph_.nodes) {
      for (const ir::ValueId in : node.inputs) ++uses_left_[in.index];
    }
    for (const ir::ValueId out : graph_.outputs) ++uses_left_[out.index];  // never released
  }

  void set_input(std::size_t node, LweCiphertextList ciphertexts) {
    values_[node] = &(owned_[node] = std::move(ciphertexts));
  }
  // Read in place: `ciphertexts` must outlive run() and value().
  void borrow_input(std::size_t node, const LweCiphertextList& ciphertexts) {
    values_[node] = &ciphertexts;
  }

  void run() {
    const auto depth = program_.depth();
    for (std::uint32_t d = 0; d <= program_.stage_count(); ++d) {
      std::vector<std::uint32_t> lookups, linears;
      for (std::uint32_t i = 0; i < graph_.nodes.size(); ++i) {
        if (depth[i] != d) continue;
        if (graph_.nodes[i].op == ir::IntOp::kLookup) lookups.push_back(i);
        if (graph_.nodes[i].op == ir::IntOp::kLinear) linears.push_back(i);
      }
      if (!lookups.empty()) run_lookups(Flattened(graph_, std::move(lookups), batch_));
      if (!linears.empty()) run_linear(Flattened(graph_, std::move(linears), batch_));
    }
  }

  const LweCiphertextList& value(ir::ValueId id) const { return *values_[id.index]; }

 private:
  std::size_t count_of(std::size_t node) const {
    return ir::element_count(graph_.nodes[node].shape);
  }

  // Frees the operands whose last consumer has run.
  void consumed(const Flattened& work) {
    for (const auto id : work.nodes) {
      for (const ir::ValueId in : graph_.nodes[id].inputs) {
        if (--uses_left_[in.index] == 0) {
          owned_[in.index] = LweCiphertextList();
          values_[in.index] = nullptr;
        }
      }
    }
  }

  void run_linear(const Flattened& work) {
    for (const auto id : work.nodes) {
      values_[id] = &(owned_[id] = LweCiphertextList(big_, batch_ * count_of(id)));
    }
    parallel_chunks(pool_, work.total(), [&](std::size_t t, std::size_t) {
      const auto [k, offset] = work.locate(t);
      const std::uint32_t id = work.nodes[k];
      const ir::IntNode& node = graph_.nodes[id];
      const std::size_t count = count_of(id);
      const std::size_t sample = offset / count;
      const std::size_t row = offset % count;
      const std::uint32_t width = program_.circuit().width[id];
      const std::span<Torus> out = owned_[id].at(offset);  // zero from the allocation
      for (std::size_t e = node.linear.row_begin[row]; e < node.linear.row_begin[row + 1]; ++e) {
        const ir::IntLinearEntry& entry = node.linear.entries[e];
        const std::size_t source = node.inputs[entry.source].index;
        const std::span<const Torus> in =
            values_[source]->at(sample * count_of(source) + entry.element);
        if (entry.coefficient == 1) {
          tfhe::lwe_add_assign(out, in);
        } else if (entry.coefficient == -1) {
          tfhe::lwe_sub_assign(out, in);
        } else if (entry.coefficient != 0) {
          tfhe::lwe_add_scaled_assign(out, in, entry.coefficient);
        }
      }
      tfhe::lwe_add_plaintext_assign(out, detail::encode_at(node.linear.bias[row], width));
    });
    consumed(work);
  }

  void run_lookups(const Flattened& work) {
    const std::size_t total = work.total();
    LweCiphertextList inputs(big_, total);
    std::vector<StageLookup> lookups(total);
    parallel_chunks(pool_, total, [&](std::size_t t, std::size_t) {
      const auto [k, offset] = work.locate(t);
      const std::uint32_t id = work.nodes[k];
      const ir::IntLookup& lookup = graph_.nodes[id].lookup;
      const std::size_t source = graph_.nodes[id].inputs[0].index;
      const std::uint32_t width = program_.circuit().width[source];
      const std::span<Torus> ct = inputs.at(t);
      const std::span<const Torus> in = values_[source]->at(offset);
      std::copy(in.begin(), in.end(), ct.begin());
      // ((v + offset) >> shift) lands in the top bits + 1 of the torus: the bootstrap's p-bit
      // message with its padding bit (circuit.h).
      tfhe::lwe_add_plaintext_assign(ct, detail::encode_at(lookup.offset, width));
      const std::uint32_t scale = width - lookup.bits - lookup.shift;
      if (scale > 0) tfhe::lwe_mul_scalar_assign(ct, std::int64_t{1} << scale);
      lookups[t] = StageLookup{id, lookup.table_of_element[offset % count_of(id)]};
    });
    if (trace_ != nullptr) trace_->batch_sizes.push_back(total);
    LweCiphertextList outputs;
    if (stages_ != nullptr) {
      outputs = (*stages_)(inputs, lookups);
      if (outputs.dimension != big_ || outputs.data.size() != inputs.data.size()) {
        throw std::invalid_argument(
            "the stage runner returned " + std::to_string(outputs.data.size()) +
            " words of dimension " + std::to_string(outputs.dimension.value) + " for " +
            std::to_string(total) + " ciphertexts of dimension " + std::to_string(big_.value));
      }
    } else {
      outputs = bootstrap(program_, *keys_, inputs, lookups, pool_);
    }
    const std::size_t length = tfhe::lwe_size(big_);
    for (std::size_t k = 0; k < work.nodes.size(); ++k) {
      LweCiphertextList& value = owned_[work.nodes[k]];
      value = LweCiphertextList(big_, work.begin[k + 1] - work.begin[k]);
      values_[work.nodes[k]] = &value;
      std::copy(outputs.data.begin() + static_cast<std::ptrdiff_t>(work.begin[k] * length),
                outputs.data.begin() + static_cast<std::ptrdiff_t>(work.begin[k + 1] * length),
                value.data.begin());
    }
    consumed(work);
  }

  const Program& program_;
  const ir::IntGraph& graph_;
  const EvaluationKeys* keys_;
  const StageRunner* stages_;
  std::size_t batch_;
  tfhe::ThreadPool& pool_;
  ExecutionTrace* trace_;
  tfhe::LweDimension big_;
  // Per node: the ciphertexts computed here (or expanded from a seeded input), and the list to
  // read, which is either that one or a borrowed expanded input; nullptr once released.
  std::vector<LweCiphertextList> owned_;
  std::vector<const LweCiphertextList*> values_;
  std::vector<std::size_t> uses_left_;
};

void check_keys(const compiler::Circuit& circuit, const EvaluationKeys& keys) {
  if (!(keys.parameters == circuit.parameters)) {
    throw std::invalid_argument("evaluation keys were made for " + tfhe::describe(keys.parameters) +
                                ", the circuit needs " + tfhe::describe(circuit.parameters) +
                                ": generate keys for it");
  }
  if (circuit.has_lookups && !keys.server_key) {
    throw std::invalid_argument(
        "the circuit has lookups but the evaluation keys hold no server key: generate them "
        "with runtime::keygen for this circuit");
  }
  if (keys.server_key && !(keys.server_key->parameters == circuit.parameters)) {
    throw std::invalid_argument("server key parameters (" +
                                tfhe::describe(keys.server_key->parameters) +
                                ") differ from the circuit's");
  }
  const std::vector<tfhe::PbsParameters> partitions = partition_parameters(circuit);
  const std::size_t expected = circuit.has_lookups ? partitions.size() - 1 : 0;
  if (keys.partition_server_keys.size() != expected) {
    throw std::invalid_argument(
        "the evaluation keys hold " + std::to_string(keys.partition_server_keys.size() + 1) +
        " partitions' keys, the circuit has " + std::to_string(expected + 1) +
        " partitions: generate keys for this circuit");
  }
  for (std::size_t p = 1; p <= expected; ++p) {
    if (!(keys.partition_server_keys[p - 1].parameters == partitions[p])) {
      throw std::invalid_argument("the server key of partition " + std::to_string(p) + " (" +
                                  tfhe::describe(keys.partition_server_keys[p - 1].parameters) +
                                  ") differs from the circuit's (" + tfhe::describe(partitions[p]) +
                                  ")");
    }
  }
}

// One graph input or output as the ciphertext lists see it.
struct ListSpec {
  std::string name;  // "input 0 (node %3)"
  ir::Shape shape;
};

template <class Ciphertexts>
std::size_t check_batches(const tfhe::PbsParameters& parameters, std::span<const Ciphertexts> lists,
                          std::span<const ListSpec> specs, const char* what) {
  if (lists.size() != specs.size()) {
    throw std::invalid_argument("expected " + std::to_string(specs.size()) + " encrypted " + what +
                                "s, found " + std::to_string(lists.size()));
  }
  const std::size_t batch = lists.empty() ? 0 : lists[0].batch;
  const tfhe::LweDimension big = big_dimension(parameters);
  for (std::size_t i = 0; i < lists.size(); ++i) {
    const std::string& name = specs[i].name;
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

std::vector<ListSpec> list_specs(const compiler::Circuit& circuit,
                                 std::span<const ir::ValueId> nodes, const char* what) {
  std::vector<ListSpec> specs;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    specs.push_back(
        {std::string(what) + " " + std::to_string(i) + " (node " + node_name(nodes[i].index) + ")",
         circuit.graph.node(nodes[i]).shape});
  }
  return specs;
}

std::vector<ListSpec> list_specs(std::span<const TensorEncoding> tensors, const char* what) {
  std::vector<ListSpec> specs;
  for (std::size_t i = 0; i < tensors.size(); ++i)
    specs.push_back({std::string(what) + " " + std::to_string(i), tensors[i].shape});
  return specs;
}

void check_client_key(const ClientCircuit& circuit, const ClientKeys& keys) {
  if (!(keys.key.parameters == circuit.parameters)) {
    throw std::invalid_argument("client key was made for " + tfhe::describe(keys.key.parameters) +
                                ", the circuit needs " + tfhe::describe(circuit.parameters));
  }
  const std::vector<tfhe::PbsParameters> partitions = partition_parameters(circuit);
  if (keys.partition_keys.size() + 1 != partitions.size()) {
    throw std::invalid_argument("the client key holds " +
                                std::to_string(keys.partition_keys.size() + 1) +
                                " partitions' small keys, the circuit has " +
                                std::to_string(partitions.size()) + " partitions");
  }
  for (std::size_t p = 1; p < partitions.size(); ++p) {
    if (keys.partition_keys[p - 1].bits.size() != partitions[p].lwe_dimension.value) {
      throw std::invalid_argument("the small key of partition " + std::to_string(p) + " has " +
                                  std::to_string(keys.partition_keys[p - 1].bits.size()) +
                                  " coefficients, its parameters need " +
                                  std::to_string(partitions[p].lwe_dimension.value));
    }
  }
}

// The compressed evaluation keys of every partition of `circuit` (with lookups).
void make_server_keys(const ClientCircuit& circuit, const ClientKeys& keys,
                      CompressedEvaluationKeys& evaluation, tfhe::Csprng& noise_rng,
                      const std::optional<tfhe::Seed>& seed) {
  const std::vector<tfhe::PbsParameters> partitions = partition_parameters(circuit);
  evaluation.partition_server_keys.clear();
  for (std::size_t p = 0; p < partitions.size(); ++p) {
    // Each key's masks from a seed of its own (derived per partition for reproducible tests).
    const tfhe::Seed mask_seed =
        seed ? tfhe::derive_seed(*seed, p == 0 ? std::string("fheml runtime key masks")
                                               : "fheml runtime key masks " + std::to_string(p))
             : tfhe::random_seed();
    tfhe::CompressedServerKey key = tfhe::generate_compressed_server_key(
        keys.for_partition(p, partitions[p]), noise_rng, mask_seed);
    if (p == 0) {
      evaluation.server_key = std::move(key);
    } else {
      evaluation.partition_server_keys.push_back(std::move(key));
    }
  }
}

tfhe::Csprng make_rng(const std::optional<tfhe::Seed>& seed, std::string_view label) {
  return tfhe::Csprng(seed ? tfhe::derive_seed(*seed, label) : tfhe::random_seed());
}

// The checks of encrypt and encrypt_expanded, then the plaintexts: one list per graph input, the
// elements of sample 0 first.
std::vector<std::vector<Torus>> encode_inputs(const ClientCircuit& circuit, const ClientKeys& keys,
                                              std::span<const IntSample> samples) {
  check_client_key(circuit, keys);
  for (std::size_t s = 0; s < samples.size(); ++s) {
    if (samples[s].size() != circuit.inputs.size()) {
      throw std::invalid_argument("sample " + std::to_string(s) + " has " +
                                  std::to_string(samples[s].size()) + " tensors, the circuit " +
                                  std::to_string(circuit.inputs.size()) + " inputs");
    }
  }
  std::vector<std::vector<Torus>> plaintexts(circuit.inputs.size());
  for (std::size_t i = 0; i < circuit.inputs.size(); ++i) {
    const TensorEncoding& input = circuit.inputs[i];
    const std::size_t count = ir::element_count(input.shape);
    plaintexts[i].reserve(samples.size() * count);
    for (std::size_t s = 0; s < samples.size(); ++s) {
      const ir::IntTensor& x = samples[s][i];
      if (x.shape != input.shape || x.data.size() != count) {
        throw std::invalid_argument(
            "sample " + std::to_string(s) + ", input " + std::to_string(i) + ": expected shape " +
            ir::to_string(input.shape) + " with " + std::to_string(count) + " values, found " +
            ir::to_string(x.shape) + " with " + std::to_string(x.data.size()));
      }
      for (const std::int64_t v : x.data)
        plaintexts[i].push_back(detail::encode_at(v, input.width));
    }
  }
  return plaintexts;
}

// run on seeded inputs (expanded here) or on expanded ones (read in place), bootstrapping with
// `keys` or through `stages` (one of the two).
template <class Input>
std::vector<EncryptedOutput> run_inputs(const Program& program, const EvaluationKeys* keys,
                                        const StageRunner* stages, std::span<const Input> inputs,
                                        const RunOptions& options) {
  const compiler::Circuit& circuit = program.circuit();
  if (keys != nullptr) check_keys(circuit, *keys);
  const std::vector<ir::ValueId> input_ids = circuit.graph.inputs();
  // Counts are checked before expanding: a forged count must not allocate.
  const std::size_t batch = check_batches<Input>(circuit.parameters, inputs,
                                                 list_specs(circuit, input_ids, "input"), "input");
  Evaluator evaluator(program, keys, stages, batch, options);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if constexpr (std::is_same_v<Input, EncryptedInput>) {
      evaluator.set_input(input_ids[i].index, tfhe::expand(inputs[i].ciphertexts));
    } else {
      evaluator.borrow_input(input_ids[i].index, inputs[i].ciphertexts);
    }
  }
  evaluator.run();
  std::vector<EncryptedOutput> outputs;
  for (const ir::ValueId out : circuit.graph.outputs) {
    outputs.push_back(EncryptedOutput{batch, evaluator.value(out)});
  }
  return outputs;
}

}  // namespace

ClientCircuit client_view(const compiler::Circuit& circuit) {
  detail::check_widths(circuit);
  ClientCircuit view{circuit.parameters, {}, circuit.has_lookups, {}, {}};
  if (circuit.has_lookups && circuit.partitions.size() > 1) view.partitions = circuit.partitions;
  for (const ir::ValueId id : circuit.graph.inputs()) {
    const ir::IntNode& node = circuit.graph.node(id);
    view.inputs.push_back({node.shape, circuit.width[id.index], node.range});
  }
  for (const ir::ValueId id : circuit.graph.outputs) {
    const ir::IntNode& node = circuit.graph.node(id);
    view.outputs.push_back({node.shape, circuit.width[id.index], node.range});
  }
  return view;
}

void validate(const ClientCircuit& circuit) {
  const auto check = [](const std::vector<TensorEncoding>& tensors, const char* what) {
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      const TensorEncoding& t = tensors[i];
      const std::string name = std::string(what) + " " + std::to_string(i);
      if (t.width < 1 || t.width > 62) {
        throw std::invalid_argument(name + ": width " + std::to_string(t.width) + " outside 1..62");
      }
      if (t.range.lo > t.range.hi) {
        throw std::invalid_argument(name + ": empty range [" + std::to_string(t.range.lo) + ", " +
                                    std::to_string(t.range.hi) + "]");
      }
    }
  };
  check(circuit.inputs, "input");
  check(circuit.outputs, "output");
  if (!circuit.partitions.empty() && !(circuit.partitions[0] == circuit.parameters)) {
    throw std::invalid_argument("partition 0 (" + tfhe::describe(circuit.partitions[0]) +
                                ") is not the circuit's parameters (" +
                                tfhe::describe(circuit.parameters) + ")");
  }
  detail::check_partitions(circuit.partitions);
}

tfhe::ClientKey ClientKeys::for_partition(std::size_t p,
                                          const tfhe::PbsParameters& parameters) const {
  if (p == 0) return key;
  if (p > partition_keys.size()) {
    throw std::invalid_argument("the client key has no small key for partition " +
                                std::to_string(p) + " (it holds " +
                                std::to_string(partition_keys.size() + 1) + " partitions)");
  }
  return tfhe::ClientKey{parameters, partition_keys[p - 1], key.glwe_key};
}

Keys keygen(const compiler::Circuit& circuit, const KeygenOptions& options) {
  return keygen(client_view(circuit), options);
}

std::uint64_t key_id(const tfhe::ClientKey& key) {
  static constexpr char kLabel[] = "fheml secret key id v1";
  std::vector<std::uint8_t> bytes = tfhe::serialize(key);
  std::uint8_t hash[16];
  crypto_generichash(hash, sizeof hash, bytes.data(), bytes.size(),
                     reinterpret_cast<const unsigned char*>(kLabel), sizeof kLabel - 1);
  sodium_memzero(bytes.data(), bytes.size());  // a copy of the secret key
  std::uint64_t id = 0;
  for (int i = 7; i >= 0; --i) id = (id << 8) | hash[i];
  return id;
}

ClientKeys client_keys(tfhe::ClientKey key, const ClientCircuit& circuit) {
  validate(circuit);
  if (!(key.parameters == circuit.parameters)) {
    throw std::invalid_argument("client key was made for " + tfhe::describe(key.parameters) +
                                ", the circuit needs " + tfhe::describe(circuit.parameters));
  }
  ClientKeys keys{std::move(key), {}};
  const std::vector<tfhe::PbsParameters> partitions = partition_parameters(circuit);
  if (partitions.size() == 1) return keys;
  static constexpr char kLabel[] = "fheml partition keys v1";
  std::vector<std::uint8_t> bytes = tfhe::serialize(keys.key);
  tfhe::Seed master;
  crypto_generichash(master.data(), master.size(), bytes.data(), bytes.size(),
                     reinterpret_cast<const unsigned char*>(kLabel), sizeof kLabel - 1);
  sodium_memzero(bytes.data(), bytes.size());  // a copy of the secret key
  for (std::size_t p = 1; p < partitions.size(); ++p) {
    tfhe::validate(partitions[p]);
    tfhe::Csprng rng(tfhe::derive_seed(master, "partition " + std::to_string(p)));
    keys.partition_keys.push_back(tfhe::generate_lwe_secret_key(partitions[p].lwe_dimension, rng));
  }
  sodium_memzero(master.data(), master.size());
  return keys;
}

Keys keygen(const ClientCircuit& circuit, const KeygenOptions& options) {
  validate(circuit);
  tfhe::Csprng secret_rng = make_rng(options.seed, "fheml runtime secret keys");
  Keys keys{client_keys(tfhe::generate_client_key(circuit.parameters, secret_rng), circuit),
            CompressedEvaluationKeys{circuit.parameters, std::nullopt, 0, {}}};
  keys.evaluation.key_id = key_id(keys.client.key);
  if (circuit.has_lookups) {
    tfhe::Csprng noise_rng = make_rng(options.seed, "fheml runtime key noise");
    make_server_keys(circuit, keys.client, keys.evaluation, noise_rng, options.seed);
  }
  return keys;
}

CompressedEvaluationKeys evaluation_keys_for(const ClientCircuit& circuit, const ClientKeys& keys) {
  if (!(keys.key.parameters == circuit.parameters)) {
    throw std::invalid_argument("the client key was made for other parameters than this model's");
  }
  check_client_key(circuit, keys);
  CompressedEvaluationKeys evaluation{circuit.parameters, std::nullopt, key_id(keys.key), {}};
  if (circuit.has_lookups) {
    tfhe::Csprng noise_rng(tfhe::random_seed());
    make_server_keys(circuit, keys, evaluation, noise_rng, std::nullopt);
  }
  return evaluation;
}

EvaluationKeys decompress(const CompressedEvaluationKeys& keys) {
  EvaluationKeys out{keys.parameters, std::nullopt, keys.key_id, {}};
  if (keys.server_key) {
    if (!(keys.server_key->parameters == keys.parameters)) {
      throw std::invalid_argument(
          "compressed server key parameters (" + tfhe::describe(keys.server_key->parameters) +
          ") differ from the evaluation keys' (" + tfhe::describe(keys.parameters) + ")");
    }
    out.server_key = tfhe::decompress(*keys.server_key);
  }
  if (!keys.partition_server_keys.empty() && !keys.server_key) {
    throw std::invalid_argument("evaluation keys hold partition keys but no partition 0 key");
  }
  for (const tfhe::CompressedServerKey& key : keys.partition_server_keys) {
    detail::check_partitions(std::vector<tfhe::PbsParameters>{keys.parameters, key.parameters});
    out.partition_server_keys.push_back(tfhe::decompress(key));
  }
  return out;
}

std::vector<EncryptedInput> encrypt(const compiler::Circuit& circuit, const ClientKeys& keys,
                                    std::span<const IntSample> samples, tfhe::Csprng& noise_rng) {
  return encrypt(client_view(circuit), keys, samples, noise_rng);
}

std::vector<EncryptedInput> encrypt(const ClientCircuit& circuit, const ClientKeys& keys,
                                    std::span<const IntSample> samples, tfhe::Csprng& noise_rng) {
  validate(circuit);
  const std::vector<std::vector<Torus>> plaintexts = encode_inputs(circuit, keys, samples);
  const std::span<const std::uint64_t> key = keys.key.glwe_key.as_lwe_key();
  std::vector<EncryptedInput> encrypted;
  for (const std::vector<Torus>& p : plaintexts) {
    encrypted.push_back(EncryptedInput{
        samples.size(), tfhe::encrypt_seeded_lwe_list(key, p, circuit.parameters.glwe_noise,
                                                      tfhe::random_seed(), noise_rng)});
  }
  return encrypted;
}

std::vector<ExpandedInput> encrypt_expanded(const compiler::Circuit& circuit,
                                            const ClientKeys& keys,
                                            std::span<const IntSample> samples,
                                            tfhe::Csprng& noise_rng) {
  const ClientCircuit view = client_view(circuit);
  const std::vector<std::vector<Torus>> plaintexts = encode_inputs(view, keys, samples);
  const std::span<const std::uint64_t> key = keys.key.glwe_key.as_lwe_key();
  // Public but unpredictable masks: a ChaCha20 stream under a fresh OS seed, like the seeds of
  // encrypt, one stream for every list of the call (no two ciphertexts share a mask).
  tfhe::Csprng mask_rng(tfhe::random_seed());
  std::vector<ExpandedInput> encrypted;
  for (const std::vector<Torus>& p : plaintexts) {
    encrypted.push_back(ExpandedInput{
        samples.size(),
        tfhe::encrypt_lwe_list(key, p, circuit.parameters.glwe_noise, mask_rng, noise_rng)});
  }
  return encrypted;
}

std::vector<EncryptedOutput> run(const Program& program, const EvaluationKeys& keys,
                                 std::span<const EncryptedInput> inputs,
                                 const RunOptions& options) {
  return run_inputs(program, &keys, nullptr, inputs, options);
}

std::vector<EncryptedOutput> run(const Program& program, const EvaluationKeys& keys,
                                 std::span<const ExpandedInput> inputs, const RunOptions& options) {
  return run_inputs(program, &keys, nullptr, inputs, options);
}

std::vector<EncryptedOutput> run_staged(const Program& program,
                                        std::span<const EncryptedInput> inputs,
                                        const StageRunner& stages, const RunOptions& options) {
  return run_inputs(program, nullptr, &stages, inputs, options);
}

LweCiphertextList run_stage(const Program& program, const EvaluationKeys& keys,
                            const LweCiphertextList& inputs, std::span<const StageLookup> lookups,
                            const RunOptions& options) {
  const compiler::Circuit& circuit = program.circuit();
  check_keys(circuit, keys);
  if (!keys.server_key) throw std::invalid_argument("the circuit has no lookups to bootstrap");
  const tfhe::LweDimension big = big_dimension(circuit.parameters);
  if (inputs.dimension != big || inputs.data.size() % tfhe::lwe_size(big) != 0) {
    throw std::invalid_argument("stage ciphertexts of dimension " +
                                std::to_string(inputs.dimension.value) + " (" +
                                std::to_string(inputs.data.size()) + " words), the circuit's is " +
                                std::to_string(big.value));
  }
  if (inputs.count() != lookups.size()) {
    throw std::invalid_argument("a stage of " + std::to_string(inputs.count()) +
                                " ciphertexts names " + std::to_string(lookups.size()) +
                                " lookups: one each");
  }
  for (std::size_t i = 0; i < lookups.size(); ++i) {
    const StageLookup& l = lookups[i];
    if (l.node >= circuit.graph.nodes.size() ||
        circuit.graph.nodes[l.node].op != ir::IntOp::kLookup) {
      throw std::invalid_argument("stage lookup " + std::to_string(i) + " names node " +
                                  node_name(l.node) + ", not a lookup of the circuit");
    }
    if (l.table >= program.tables(ir::ValueId{l.node}).size()) {
      throw std::invalid_argument("stage lookup " + std::to_string(i) + " names table " +
                                  std::to_string(l.table) + " of node " + node_name(l.node) +
                                  ", which has " +
                                  std::to_string(program.tables(ir::ValueId{l.node}).size()));
    }
  }
  tfhe::ThreadPool& pool = options.pool != nullptr ? *options.pool : tfhe::ThreadPool::global();
  if (options.trace != nullptr) options.trace->batch_sizes.push_back(inputs.count());
  return bootstrap(program, keys, inputs, lookups, pool);
}

std::vector<IntSample> decrypt(const compiler::Circuit& circuit, const ClientKeys& keys,
                               std::span<const EncryptedOutput> outputs) {
  return decrypt(client_view(circuit), keys, outputs);
}

std::vector<IntSample> decrypt(const ClientCircuit& circuit, const ClientKeys& keys,
                               std::span<const EncryptedOutput> outputs) {
  validate(circuit);
  const std::size_t batch = check_batches<EncryptedOutput>(
      circuit.parameters, outputs, list_specs(circuit.outputs, "output"), "output");
  check_client_key(circuit, keys);
  const std::span<const std::uint64_t> key = keys.key.glwe_key.as_lwe_key();
  std::vector<IntSample> samples(batch);
  for (std::size_t o = 0; o < outputs.size(); ++o) {
    const TensorEncoding& output = circuit.outputs[o];
    const std::size_t count = ir::element_count(output.shape);
    for (std::size_t s = 0; s < batch; ++s) {
      ir::IntTensor t(output.shape);
      for (std::size_t e = 0; e < count; ++e) {
        const Torus phase = tfhe::decrypt_lwe_phase(outputs[o].ciphertexts.at(s * count + e), key);
        t.data[e] = detail::decode_phase(phase, output.width, output.range.lo);
      }
      samples[s].push_back(std::move(t));
    }
  }
  return samples;
}

}  // namespace fheml::runtime
