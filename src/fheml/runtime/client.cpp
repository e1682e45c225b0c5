// kExecute on the client's side: encryption of inputs and decryption of outputs, from the
// circuit's ClientCircuit view (the server's evaluation: execute.cpp).
#include <stdexcept>
#include <string>

#include "fheml/runtime/detail.h"
#include "fheml/runtime/runtime.h"

namespace fheml::runtime {
namespace {

using detail::big_dimension;
using detail::check_batches;
using detail::ListSpec;
using tfhe::Torus;

std::vector<ListSpec> list_specs(const ClientCircuit& circuit,
                                 std::span<const TensorEncoding> tensors, const char* what) {
  const std::vector<tfhe::PbsParameters> partitions = partition_parameters(circuit);
  std::vector<ListSpec> specs;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    specs.push_back({std::string(what) + " " + std::to_string(i), tensors[i].shape,
                     big_dimension(partitions.at(tensors[i].key_class))});
  }
  return specs;
}

// The checks of encrypt and encrypt_expanded, then the plaintexts: one list per graph input, the
// elements of sample 0 first.
std::vector<std::vector<Torus>> encode_inputs(const ClientCircuit& circuit, const ClientKeys& keys,
                                              std::span<const IntSample> samples) {
  detail::check_client_key(circuit, keys);
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

}  // namespace

ClientCircuit client_view(const compiler::Circuit& circuit) {
  detail::check_widths(circuit);
  ClientCircuit view{circuit.parameters, {}, circuit.has_lookups, {}, {}};
  if (circuit.has_lookups && circuit.partitions.size() > 1) view.partitions = circuit.partitions;
  const std::vector<tfhe::PbsParameters> partitions = partition_parameters(circuit);
  detail::KeyClasses classes =
      detail::key_classes(circuit.graph, detail::node_partitions(circuit, partitions.size()),
                          big_key_classes(partitions));
  for (const ir::ValueId id : circuit.graph.inputs()) {
    const ir::IntNode& node = circuit.graph.node(id);
    view.inputs.push_back(
        {node.shape, circuit.width[id.index], node.range, classes.node[id.index]});
  }
  for (const ir::ValueId id : circuit.graph.outputs) {
    const ir::IntNode& node = circuit.graph.node(id);
    view.outputs.push_back({node.shape, circuit.width[id.index], node.range, classes.node[id.index],
                            circuit.output_noise_bits});
  }
  view.keyswitch_pairs = std::move(classes.keyswitch_pairs);
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
      if (t.noise_bits > compiler::kMaxOutputNoiseBits || t.noise_bits >= t.width) {
        throw std::invalid_argument(
            name + ": noise bits " + std::to_string(t.noise_bits) + " outside 0.." +
            std::to_string(std::min(compiler::kMaxOutputNoiseBits, t.width - 1)));
      }
    }
  };
  check(circuit.inputs, "input");
  check(circuit.outputs, "output");
  for (std::size_t i = 0; i < circuit.inputs.size(); ++i) {
    if (circuit.inputs[i].noise_bits != 0) {
      throw std::invalid_argument("input " + std::to_string(i) + ": noise bits " +
                                  std::to_string(circuit.inputs[i].noise_bits) +
                                  " (only outputs may be approximate)");
    }
  }
  if (!circuit.partitions.empty() && !(circuit.partitions[0] == circuit.parameters)) {
    throw std::invalid_argument("partition 0 (" + tfhe::describe(circuit.partitions[0]) +
                                ") is not the circuit's parameters (" +
                                tfhe::describe(circuit.parameters) + ")");
  }
  const std::vector<std::uint32_t> classes = big_key_classes(partition_parameters(circuit));
  const auto is_class = [&](std::uint32_t c) { return c < classes.size() && classes[c] == c; };
  for (const auto* tensors : {&circuit.inputs, &circuit.outputs}) {
    for (const TensorEncoding& t : *tensors) {
      if (!is_class(t.key_class)) {
        throw std::invalid_argument("a tensor under the big key of partition " +
                                    std::to_string(t.key_class) +
                                    ", which is not the first partition of its big key");
      }
    }
  }
  for (const KeyswitchPair& pair : circuit.keyswitch_pairs) {
    if (!is_class(pair.from) || pair.to >= classes.size() || classes[pair.to] == pair.from) {
      throw std::invalid_argument("a key switch from the big key of partition " +
                                  std::to_string(pair.from) + " to partition " +
                                  std::to_string(pair.to) + " that the circuit cannot have");
    }
  }
}

std::vector<EncryptedInput> encrypt(const compiler::Circuit& circuit, const ClientKeys& keys,
                                    std::span<const IntSample> samples, tfhe::Csprng& noise_rng) {
  return encrypt(client_view(circuit), keys, samples, noise_rng);
}

std::vector<EncryptedInput> encrypt(const ClientCircuit& circuit, const ClientKeys& keys,
                                    std::span<const IntSample> samples, tfhe::Csprng& noise_rng) {
  validate(circuit);
  const std::vector<std::vector<Torus>> plaintexts = encode_inputs(circuit, keys, samples);
  const std::vector<tfhe::PbsParameters> partitions = partition_parameters(circuit);
  std::vector<EncryptedInput> encrypted;
  for (std::size_t i = 0; i < plaintexts.size(); ++i) {
    const std::uint32_t c = circuit.inputs[i].key_class;
    encrypted.push_back(EncryptedInput{
        samples.size(),
        tfhe::encrypt_seeded_lwe_list(keys.big_key(c).as_lwe_key(), plaintexts[i],
                                      partitions[c].glwe_noise, tfhe::random_seed(), noise_rng)});
  }
  return encrypted;
}

std::vector<ExpandedInput> encrypt_expanded(const compiler::Circuit& circuit,
                                            const ClientKeys& keys,
                                            std::span<const IntSample> samples,
                                            tfhe::Csprng& noise_rng) {
  const ClientCircuit view = client_view(circuit);
  const std::vector<std::vector<Torus>> plaintexts = encode_inputs(view, keys, samples);
  const std::vector<tfhe::PbsParameters> partitions = partition_parameters(view);
  // Public but unpredictable masks: a ChaCha20 stream under a fresh OS seed, like the seeds of
  // encrypt, one stream for every list of the call (no two ciphertexts share a mask).
  tfhe::Csprng mask_rng(tfhe::random_seed());
  std::vector<ExpandedInput> encrypted;
  for (std::size_t i = 0; i < plaintexts.size(); ++i) {
    const std::uint32_t c = view.inputs[i].key_class;
    encrypted.push_back(ExpandedInput{
        samples.size(), tfhe::encrypt_lwe_list(keys.big_key(c).as_lwe_key(), plaintexts[i],
                                               partitions[c].glwe_noise, mask_rng, noise_rng)});
  }
  return encrypted;
}

std::vector<IntSample> decrypt(const compiler::Circuit& circuit, const ClientKeys& keys,
                               std::span<const EncryptedOutput> outputs) {
  return decrypt(client_view(circuit), keys, outputs);
}

std::vector<IntSample> decrypt(const ClientCircuit& circuit, const ClientKeys& keys,
                               std::span<const EncryptedOutput> outputs) {
  validate(circuit);
  const std::size_t batch = check_batches<EncryptedOutput>(
      outputs, list_specs(circuit, circuit.outputs, "output"), "output");
  detail::check_client_key(circuit, keys);
  std::vector<IntSample> samples(batch);
  for (std::size_t o = 0; o < outputs.size(); ++o) {
    const TensorEncoding& output = circuit.outputs[o];
    const std::span<const std::uint64_t> key = keys.big_key(output.key_class).as_lwe_key();
    const std::size_t count = ir::element_count(output.shape);
    for (std::size_t s = 0; s < batch; ++s) {
      ir::IntTensor t(output.shape);
      for (std::size_t e = 0; e < count; ++e) {
        const Torus phase = tfhe::decrypt_lwe_phase(outputs[o].ciphertexts.at(s * count + e), key);
        t.data[e] = detail::decode_output(phase, output.width, output.range, output.noise_bits);
      }
      samples[s].push_back(std::move(t));
    }
  }
  return samples;
}

}  // namespace fheml::runtime
