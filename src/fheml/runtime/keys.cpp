// Keys: the client's secret keys (partition small keys and big keys derived from the one secret
// key), key identities, evaluation keys as they travel and as the server computes with them.
#include <sodium.h>

#include <stdexcept>
#include <string>

#include "fheml/runtime/detail.h"
#include "fheml/runtime/runtime.h"
#include "fheml/tfhe/serialization.h"

namespace fheml::runtime {
namespace detail {

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
  const std::vector<std::uint32_t> classes = big_key_classes(partitions);
  std::size_t own = 0;
  for (std::uint32_t p = 1; p < partitions.size(); ++p) {
    if (classes[p] != p) continue;
    ++own;
    const tfhe::GlweSecretKey& big = keys.big_key(p);
    if (big.glwe_dimension != partitions[p].glwe_dimension ||
        big.polynomial_size != partitions[p].polynomial_size) {
      throw std::invalid_argument("the big key of partition " + std::to_string(p) +
                                  " is not at its k and N (" + tfhe::describe(partitions[p]) + ")");
    }
  }
  if (keys.big_keys.size() != own) {
    throw std::invalid_argument("the client key holds " + std::to_string(keys.big_keys.size() + 1) +
                                " big keys, the circuit has " + std::to_string(own + 1));
  }
}

}  // namespace detail

namespace {

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
        keys.for_partition(partitions, p), noise_rng, mask_seed);
    if (p == 0) {
      evaluation.server_key = std::move(key);
    } else {
      evaluation.partition_server_keys.push_back(std::move(key));
    }
  }
  evaluation.keyswitch_keys.clear();
  for (const KeyswitchPair& pair : circuit.keyswitch_pairs) {
    const tfhe::PbsParameters& to = partitions.at(pair.to);
    const tfhe::Seed mask_seed =
        seed ? tfhe::derive_seed(*seed, "fheml runtime key masks " + std::to_string(pair.from) +
                                            " to " + std::to_string(pair.to))
             : tfhe::random_seed();
    evaluation.keyswitch_keys.emplace_back(
        pair, tfhe::generate_seeded_keyswitch_key(keys.big_key(pair.from).as_lwe_key(),
                                                  keys.for_partition(partitions, pair.to).small_key,
                                                  to.ks_base_log, to.ks_level, to.lwe_noise,
                                                  mask_seed, noise_rng, /*shared_prefix=*/false));
  }
}

tfhe::Csprng make_rng(const std::optional<tfhe::Seed>& seed, std::string_view label) {
  return tfhe::Csprng(seed ? tfhe::derive_seed(*seed, label) : tfhe::random_seed());
}

}  // namespace

const tfhe::GlweSecretKey& ClientKeys::big_key(std::uint32_t key_class) const {
  if (key_class == 0) return key.glwe_key;
  for (const auto& [c, big] : big_keys) {
    if (c == key_class) return big;
  }
  throw std::invalid_argument("the client key has no big key for partition " +
                              std::to_string(key_class));
}

tfhe::ClientKey ClientKeys::for_partition(std::span<const tfhe::PbsParameters> partitions,
                                          std::size_t p) const {
  if (p == 0) return key;
  if (p > partition_keys.size() || p >= partitions.size()) {
    throw std::invalid_argument("the client key has no small key for partition " +
                                std::to_string(p) + " (it holds " +
                                std::to_string(partition_keys.size() + 1) + " partitions)");
  }
  // The big key of its class, read at p's own k and N (the same k * N bits).
  const tfhe::GlweSecretKey& big = big_key(big_key_classes(partitions)[p]);
  return tfhe::ClientKey{
      partitions[p], partition_keys[p - 1],
      tfhe::GlweSecretKey{partitions[p].glwe_dimension, partitions[p].polynomial_size, big.bits}};
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
  const std::vector<std::uint32_t> classes = big_key_classes(partitions);
  for (std::size_t p = 1; p < partitions.size(); ++p) {
    tfhe::validate(partitions[p]);
    if (classes[p] == p) {
      tfhe::Csprng big_rng(tfhe::derive_seed(master, "big key " + std::to_string(p)));
      keys.big_keys.emplace_back(
          static_cast<std::uint32_t>(p),
          tfhe::generate_glwe_secret_key(partitions[p].glwe_dimension,
                                         partitions[p].polynomial_size, big_rng));
    }
    // Each small key is the first n coefficients of its class's big key (tfhe/keyswitch.h,
    // "Shared prefix"): partitions of one class have nested small keys, each LWE instance at
    // its own n and noise.
    if (tfhe::shares_small_key(partitions[p])) {
      keys.partition_keys.push_back(
          tfhe::small_key_of(keys.big_key(classes[p]).as_lwe_key(), partitions[p].lwe_dimension));
    } else {
      tfhe::Csprng rng(tfhe::derive_seed(master, "partition " + std::to_string(p)));
      keys.partition_keys.push_back(
          tfhe::generate_lwe_secret_key(partitions[p].lwe_dimension, rng));
    }
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
  detail::check_client_key(circuit, keys);
  CompressedEvaluationKeys evaluation{circuit.parameters, std::nullopt, key_id(keys.key), {}};
  if (circuit.has_lookups) {
    tfhe::Csprng noise_rng(tfhe::random_seed());
    make_server_keys(circuit, keys, evaluation, noise_rng, std::nullopt);
  }
  return evaluation;
}

namespace {

// needed(p): whether partition p's own key switch is expanded.
template <class Needed>
EvaluationKeys decompress_keys(const CompressedEvaluationKeys& keys, const Needed& needed) {
  EvaluationKeys out{keys.parameters, std::nullopt, keys.key_id, {}};
  if (keys.server_key) {
    if (!(keys.server_key->parameters == keys.parameters)) {
      throw std::invalid_argument(
          "compressed server key parameters (" + tfhe::describe(keys.server_key->parameters) +
          ") differ from the evaluation keys' (" + tfhe::describe(keys.parameters) + ")");
    }
    out.server_key =
        tfhe::decompress(*keys.server_key, tfhe::SecurityCheck::kRequire128, needed(0));
  }
  if (!keys.partition_server_keys.empty() && !keys.server_key) {
    throw std::invalid_argument("evaluation keys hold partition keys but no partition 0 key");
  }
  for (std::size_t p = 0; p < keys.partition_server_keys.size(); ++p) {
    out.partition_server_keys.push_back(tfhe::decompress(
        keys.partition_server_keys[p], tfhe::SecurityCheck::kRequire128,
        needed(static_cast<std::uint32_t>(p + 1))));
  }
  for (const auto& [pair, key] : keys.keyswitch_keys) {
    out.keyswitch_keys.emplace_back(pair, tfhe::expand_to_compute_form(key));
  }
  return out;
}

}  // namespace

EvaluationKeys decompress(const CompressedEvaluationKeys& keys) {
  return decompress_keys(keys, [](std::uint32_t) { return true; });
}

EvaluationKeys decompress(const CompressedEvaluationKeys& keys, const Program& program) {
  // A partition the program does not have (keys for another circuit) keeps its key switch:
  // check_keys refuses such keys with its own message.
  return decompress_keys(keys, [&](std::uint32_t p) {
    return p >= program.partitions().size() || program.reads_own_big_key(p);
  });
}

}  // namespace fheml::runtime
