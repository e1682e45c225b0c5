// kExecute: the server's levelized evaluation on ciphertexts (encryption and decryption:
// client.cpp; the keys: keys.cpp).
#include <algorithm>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "fheml/runtime/detail.h"
#include "fheml/runtime/runtime.h"

namespace fheml::runtime {
namespace {

using detail::big_dimension;
using detail::check_batches;
using detail::ListSpec;
using tfhe::LweCiphertextList;
using tfhe::Torus;

std::string node_name(std::size_t i) { return "%" + std::to_string(i); }

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

// The key switch from the big key of key class `from` to partition p's small key: p's own for
// its own big key, otherwise the one of the pair (both checked by check_keys).
const tfhe::KeyswitchKey32& keyswitch_key(const EvaluationKeys& keys, std::uint32_t from,
                                          std::uint32_t p, std::uint32_t p_class) {
  if (from == p_class) {
    const tfhe::KeyswitchKey32& own = server_key(keys, p).keyswitch_key;
    if (own.data.empty()) {
      throw std::invalid_argument("the evaluation keys of partition " + std::to_string(p) +
                                  " were expanded without their own key switch (decompress for "
                                  "another circuit): decompress them for this one");
    }
    return own;
  }
  for (const auto& [pair, key] : keys.keyswitch_keys) {
    if (pair.from == from && pair.to == p) return key;
  }
  throw std::invalid_argument(
      "the evaluation keys hold no key switch from the big key of "
      "partition " +
      std::to_string(from) + " to partition " + std::to_string(p) +
      ": generate keys for this circuit");
}

// What a stage's bootstraps return: per partition present, its outputs (under its big key),
// and where each input's result is.
struct Bootstrapped {
  std::vector<LweCiphertextList> parts;
  std::vector<std::pair<std::uint32_t, std::size_t>> where;  // per input: (partition, index)
  std::span<const Torus> at(std::size_t i) const {
    return parts[where[i].first].at(where[i].second);
  }
};

// KS+PBS of each input (all under the big key of key class `from`) with the table its lookup
// names, with the keys of the lookup's partition (both checked by the callers). One batch per
// partition present.
Bootstrapped bootstrap(const Program& program, const EvaluationKeys& keys, std::uint32_t from,
                       const LweCiphertextList& inputs, std::span<const StageLookup> lookups,
                       tfhe::ThreadPool& pool) {
  const std::vector<std::uint32_t> classes = big_key_classes(program.partitions());
  std::vector<const tfhe::LookupTable*> tables(lookups.size());
  std::vector<std::vector<std::size_t>> members(program.partitions().size());
  Bootstrapped out;
  out.parts.resize(members.size());
  out.where.resize(lookups.size());
  for (std::size_t i = 0; i < lookups.size(); ++i) {
    tables[i] = &program.tables(ir::ValueId{lookups[i].node})[lookups[i].table];
    const std::uint32_t p = program.partition(ir::ValueId{lookups[i].node});
    out.where[i] = {p, members[p].size()};
    members[p].push_back(i);
  }
  for (std::uint32_t p = 0; p < members.size(); ++p) {
    if (members[p].empty()) continue;
    const tfhe::KeyswitchKey32& ks = keyswitch_key(keys, from, p, classes[p]);
    const tfhe::FourierBootstrapKey& bsk = server_key(keys, p).bootstrap_key;
    if (members[p].size() == lookups.size()) {
      out.parts[p] = tfhe::keyswitch_bootstrap_batch(ks, bsk, inputs, tables, pool);
      continue;
    }
    LweCiphertextList part(inputs.dimension, members[p].size());
    std::vector<const tfhe::LookupTable*> part_tables;
    for (std::size_t j = 0; j < members[p].size(); ++j) {
      const std::span<const Torus> in = inputs.at(members[p][j]);
      std::copy(in.begin(), in.end(), part.at(j).begin());
      part_tables.push_back(tables[members[p][j]]);
    }
    out.parts[p] = tfhe::keyswitch_bootstrap_batch(ks, bsk, part, part_tables, pool);
  }
  return out;
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
        owned_(graph_.nodes.size()),
        values_(graph_.nodes.size(), nullptr),
        uses_left_(graph_.nodes.size(), 0) {
    for (const ir::IntNode& node : graph_.nodes) {
      for (const ir::ValueId in : node.inputs) ++uses_left_[in.index];
    }
    for (const ir::ValueId out : graph_.outputs) ++uses_left_[out.index];  // never released
    for (const tfhe::PbsParameters& p : program.partitions())
      dimensions_.push_back(big_dimension(p));
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
      values_[id] = &(owned_[id] = LweCiphertextList(dimension_of(id), batch_ * count_of(id)));
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

  tfhe::LweDimension dimension_of(std::size_t node) const {
    return dimensions_[program_.key_class(ir::ValueId{static_cast<std::uint32_t>(node)})];
  }

  void run_lookups(const Flattened& work) {
    const std::size_t total = work.total();
    if (trace_ != nullptr) trace_->batch_sizes.push_back(total);
    for (std::size_t k = 0; k < work.nodes.size(); ++k) {
      LweCiphertextList& value = owned_[work.nodes[k]];
      value = LweCiphertextList(dimension_of(work.nodes[k]), work.begin[k + 1] - work.begin[k]);
      values_[work.nodes[k]] = &value;
    }
    // One batch per big key the stage reads (a circuit of one big key: the whole stage).
    std::vector<std::vector<std::size_t>> by_class(dimensions_.size());
    for (std::size_t k = 0; k < work.nodes.size(); ++k) {
      const std::size_t source = graph_.nodes[work.nodes[k]].inputs[0].index;
      std::vector<std::size_t>& items =
          by_class[program_.key_class(ir::ValueId{static_cast<std::uint32_t>(source)})];
      for (std::size_t t = work.begin[k]; t < work.begin[k + 1]; ++t) items.push_back(t);
    }
    for (std::uint32_t from = 0; from < by_class.size(); ++from) {
      if (!by_class[from].empty()) run_lookups_from(work, from, by_class[from]);
    }
    consumed(work);
  }

  // The lookups `items` of `work`, whose inputs are under the big key of key class `from`.
  void run_lookups_from(const Flattened& work, std::uint32_t from,
                        const std::vector<std::size_t>& items) {
    LweCiphertextList inputs(dimensions_[from], items.size());
    std::vector<StageLookup> lookups(items.size());
    parallel_chunks(pool_, items.size(), [&](std::size_t j, std::size_t) {
      const std::size_t t = items[j];
      const auto [k, offset] = work.locate(t);
      const std::uint32_t id = work.nodes[k];
      const ir::IntLookup& lookup = graph_.nodes[id].lookup;
      const std::size_t source = graph_.nodes[id].inputs[0].index;
      const std::uint32_t width = program_.circuit().width[source];
      const std::span<Torus> ct = inputs.at(j);
      const std::span<const Torus> in = values_[source]->at(offset);
      std::copy(in.begin(), in.end(), ct.begin());
      // ((v + offset) >> shift) lands in the top bits + 1 of the torus: the bootstrap's p-bit
      // message with its padding bit (circuit.h).
      tfhe::lwe_add_plaintext_assign(ct, detail::encode_at(lookup.offset, width));
      const std::uint32_t scale = width - lookup.bits - lookup.shift;
      if (scale > 0) tfhe::lwe_mul_scalar_assign(ct, std::int64_t{1} << scale);
      lookups[j] = StageLookup{id, lookup.table_of_element[offset % count_of(id)]};
    });
    const auto store = [&](const auto& result) {
      parallel_chunks(pool_, items.size(), [&](std::size_t j, std::size_t) {
        const auto [k, offset] = work.locate(items[j]);
        const std::span<const Torus> r = result(j);
        std::copy(r.begin(), r.end(), owned_[work.nodes[k]].at(offset).begin());
      });
    };
    if (stages_ != nullptr) {
      // One list per big key the outputs go under: a list travels with one dimension each way.
      std::vector<std::vector<std::size_t>> by_output(dimensions_.size());
      for (std::size_t j = 0; j < items.size(); ++j) {
        by_output[program_.key_class(ir::ValueId{lookups[j].node})].push_back(j);
      }
      for (std::uint32_t to = 0; to < by_output.size(); ++to) {
        const std::vector<std::size_t>& js = by_output[to];
        if (js.empty()) continue;
        const bool whole = js.size() == items.size();
        LweCiphertextList part(inputs.dimension, whole ? 0 : js.size());
        std::vector<StageLookup> part_lookups;
        if (!whole) {
          for (std::size_t i = 0; i < js.size(); ++i) {
            const std::span<const Torus> in = inputs.at(js[i]);
            std::copy(in.begin(), in.end(), part.at(i).begin());
            part_lookups.push_back(lookups[js[i]]);
          }
        }
        const LweCiphertextList outputs =
            whole ? (*stages_)(inputs, lookups) : (*stages_)(part, part_lookups);
        if (outputs.dimension != dimensions_[to] ||
            outputs.data.size() != js.size() * tfhe::lwe_size(dimensions_[to])) {
          throw std::invalid_argument(
              "the stage runner returned " + std::to_string(outputs.data.size()) +
              " words of dimension " + std::to_string(outputs.dimension.value) + " for " +
              std::to_string(js.size()) + " ciphertexts bootstrapped to dimension " +
              std::to_string(dimensions_[to].value));
        }
        parallel_chunks(pool_, js.size(), [&](std::size_t i, std::size_t) {
          const auto [k, offset] = work.locate(items[js[i]]);
          const std::span<const Torus> r = outputs.at(i);
          std::copy(r.begin(), r.end(), owned_[work.nodes[k]].at(offset).begin());
        });
      }
    } else {
      const Bootstrapped outputs = bootstrap(program_, *keys_, from, inputs, lookups, pool_);
      store([&](std::size_t j) { return outputs.at(j); });
    }
  }

  const Program& program_;
  const ir::IntGraph& graph_;
  const EvaluationKeys* keys_;
  const StageRunner* stages_;
  std::size_t batch_;
  tfhe::ThreadPool& pool_;
  ExecutionTrace* trace_;
  std::vector<tfhe::LweDimension> dimensions_;  // per partition: its big key's k * N
  // Per node: the ciphertexts computed here (or expanded from a seeded input), and the list to
  // read, which is either that one or a borrowed expanded input; nullptr once released.
  std::vector<LweCiphertextList> owned_;
  std::vector<const LweCiphertextList*> values_;
  std::vector<std::size_t> uses_left_;
};

void check_keys(const Program& program, const EvaluationKeys& keys) {
  const compiler::Circuit& circuit = program.circuit();
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
  const std::span<const KeyswitchPair> pairs = program.keyswitch_pairs();
  bool same = keys.keyswitch_keys.size() == pairs.size();
  for (std::size_t i = 0; same && i < pairs.size(); ++i) {
    const auto& [pair, key] = keys.keyswitch_keys[i];
    const tfhe::PbsParameters& to = partitions[pair.to];
    same = pair == pairs[i] &&
           key.shape == tfhe::KeyswitchShape{big_dimension(partitions[pair.from]), to.lwe_dimension,
                                             to.ks_base_log, to.ks_level};
  }
  if (!same) {
    throw std::invalid_argument("the evaluation keys hold " +
                                std::to_string(keys.keyswitch_keys.size()) +
                                " key switches between big keys, not the circuit's " +
                                std::to_string(pairs.size()) + ": generate keys for this circuit");
  }
}

// One graph input or output as the ciphertext lists see it.
std::vector<ListSpec> list_specs(const Program& program, std::span<const ir::ValueId> nodes,
                                 const char* what) {
  std::vector<ListSpec> specs;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    specs.push_back(
        {std::string(what) + " " + std::to_string(i) + " (node " + node_name(nodes[i].index) + ")",
         program.circuit().graph.node(nodes[i]).shape,
         big_dimension(program.partitions()[program.key_class(nodes[i])])});
  }
  return specs;
}

// run on seeded inputs (expanded here) or on expanded ones (read in place), bootstrapping with
// `keys` or through `stages` (one of the two).
template <class Input>
std::vector<EncryptedOutput> run_inputs(const Program& program, const EvaluationKeys* keys,
                                        const StageRunner* stages, std::span<const Input> inputs,
                                        const RunOptions& options) {
  const compiler::Circuit& circuit = program.circuit();
  if (keys != nullptr) check_keys(program, *keys);
  const std::vector<ir::ValueId> input_ids = circuit.graph.inputs();
  // Counts are checked before expanding: a forged count must not allocate.
  const std::size_t batch =
      check_batches<Input>(inputs, list_specs(program, input_ids, "input"), "input");
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
  check_keys(program, keys);
  if (!keys.server_key) throw std::invalid_argument("the circuit has no lookups to bootstrap");
  if (inputs.dimension.value == 0 || inputs.data.size() % tfhe::lwe_size(inputs.dimension) != 0) {
    throw std::invalid_argument("stage ciphertexts of dimension " +
                                std::to_string(inputs.dimension.value) + " (" +
                                std::to_string(inputs.data.size()) +
                                " words): not whole ciphertexts");
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
  // A part of a stage reads one big key and writes one (run_staged's lists): the lookups' inputs
  // and outputs must each be under one key, of the dimension given.
  const auto key_of_input = [&](const StageLookup& l) {
    return program.key_class(circuit.graph.nodes[l.node].inputs[0]);
  };
  const std::uint32_t from = lookups.empty() ? 0 : key_of_input(lookups[0]);
  const std::uint32_t to = lookups.empty() ? 0 : program.key_class(ir::ValueId{lookups[0].node});
  for (std::size_t i = 1; i < lookups.size(); ++i) {
    if (key_of_input(lookups[i]) != from ||
        program.key_class(ir::ValueId{lookups[i].node}) != to) {
      throw std::invalid_argument(
          "stage lookup " + std::to_string(i) + " (node " + node_name(lookups[i].node) +
          ") reads or writes another big key than lookup 0 (node " + node_name(lookups[0].node) +
          "): a part of a stage holds the lookups of one pair of big keys");
    }
  }
  const tfhe::LweDimension in_dimension = big_dimension(program.partitions()[from]);
  if (inputs.dimension != in_dimension) {
    throw std::invalid_argument("stage ciphertexts of dimension " +
                                std::to_string(inputs.dimension.value) + ", the big key its " +
                                "lookups read has " + std::to_string(in_dimension.value));
  }
  tfhe::ThreadPool& pool = options.pool != nullptr ? *options.pool : tfhe::ThreadPool::global();
  if (options.trace != nullptr) options.trace->batch_sizes.push_back(inputs.count());
  const Bootstrapped done = bootstrap(program, keys, from, inputs, lookups, pool);
  for (const LweCiphertextList& part : done.parts) {
    if (part.count() == lookups.size()) return part;
  }
  LweCiphertextList outputs(big_dimension(program.partitions()[to]), lookups.size());
  for (std::size_t i = 0; i < lookups.size(); ++i) {
    const std::span<const Torus> r = done.at(i);
    std::copy(r.begin(), r.end(), outputs.at(i).begin());
  }
  return outputs;
}

}  // namespace fheml::runtime
