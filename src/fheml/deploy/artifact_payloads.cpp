// Artifact payloads of keys and ciphertexts (layouts at the top of artifacts.cpp):
// EvaluationKeys, EncryptedInputs, EncryptedOutputs.
#include <string>
#include <utility>

#include "fheml/deploy/artifact_wire.h"
#include "fheml/deploy/artifacts.h"

namespace fheml::deploy {

using namespace wire_detail;

std::vector<std::uint8_t> serialize(const runtime::CompressedEvaluationKeys& keys) {
  Writer w;
  w.u64(kArtifactFormatVersion);
  w.u64(keys.key_id);
  tfhe::wire::write_parameters(w, keys.parameters);
  w.u64(keys.server_key ? 1 : 0);
  if (keys.server_key) write_nested(w, tfhe::serialize(*keys.server_key));
  w.u64(keys.partition_server_keys.size());
  for (const tfhe::CompressedServerKey& key : keys.partition_server_keys) {
    write_nested(w, tfhe::serialize(key));
  }
  w.u64(keys.keyswitch_keys.size());
  for (const auto& [pair, key] : keys.keyswitch_keys) {
    w.u64(pair.from);
    w.u64(pair.to);
    write_nested(w, tfhe::serialize(key));
  }
  return seal(ObjectType::kEvaluationKeys, tfhe::fingerprint(keys.parameters), std::move(w));
}

runtime::CompressedEvaluationKeys deserialize_evaluation_keys(
    std::span<const std::uint8_t> bytes, const tfhe::DeserializeOptions& options) {
  return open_payload(
      bytes, ObjectType::kEvaluationKeys, options, [&](Reader& r, std::uint64_t fp) {
        runtime::CompressedEvaluationKeys keys;
        keys.key_id = r.u64();
        keys.parameters = tfhe::wire::read_parameters(r, fp, security_of(options));
        if (read_flag(r, "server key flag") == 1) {
          tfhe::DeserializeOptions inner = options;
          inner.expected_parameters = &keys.parameters;
          keys.server_key =
              tfhe::deserialize_compressed_server_key(read_nested(r, "server key"), inner);
        }
        const std::uint64_t partitions = tfhe::wire::read_count(r, 0, 8, "partition server key");
        if (partitions > 0 && !keys.server_key) {
          fail(r.context(), "partition server keys without a partition 0 server key");
        }
        for (std::uint64_t i = 0; i < partitions; ++i) {
          tfhe::DeserializeOptions inner = options;
          inner.expected_parameters = nullptr;
          keys.partition_server_keys.push_back(tfhe::deserialize_compressed_server_key(
              read_nested(r, "partition server key"), inner));
        }
        // Partition p's parameters: those of its server key.
        const auto partition = [&](std::uint32_t p) -> const tfhe::PbsParameters& {
          return p == 0 ? keys.parameters : keys.partition_server_keys[p - 1].parameters;
        };
        const std::size_t partition_count =
            keys.server_key ? keys.partition_server_keys.size() + 1 : 0;
        const std::uint64_t switches =
            tfhe::wire::read_count(r, 0, 16, "key switch between big keys");
        if (switches > kMaxKeyswitchPairs) {
          fail(r.context(), std::to_string(switches) + " key switches between big keys, at most " +
                                std::to_string(kMaxKeyswitchPairs));
        }
        for (std::uint64_t i = 0; i < switches; ++i) {
          runtime::KeyswitchPair pair;
          pair.from = read_index(r, std::max<std::size_t>(1, partition_count), "key switch source");
          pair.to = read_index(r, std::max<std::size_t>(1, partition_count), "key switch target");
          if (partition_count == 0) fail(r.context(), "a key switch without server keys");
          tfhe::DeserializeOptions inner = options;
          inner.expected_parameters = nullptr;
          tfhe::SeededKeyswitchKey key =
              tfhe::deserialize_seeded_keyswitch_key(read_nested(r, "key switch"), inner);
          const tfhe::PbsParameters& from = partition(pair.from);
          const tfhe::PbsParameters& to = partition(pair.to);
          const tfhe::KeyswitchShape expected{
              tfhe::extracted_lwe_dimension(from.glwe_dimension, from.polynomial_size),
              to.lwe_dimension, to.ks_base_log, to.ks_level, 0};  // another big key: no sharing
          if (!(key.shape == expected)) {
            fail(r.context(), "the key switch from partition " + std::to_string(pair.from) +
                                  " to partition " + std::to_string(pair.to) +
                                  " does not have the shape their parameters give");
          }
          keys.keyswitch_keys.emplace_back(pair, std::move(key));
        }
        return keys;
      });
}

namespace {

template <class List, class Serialize>
std::vector<std::uint8_t> serialize_lists(ObjectType type, std::uint64_t id, std::uint64_t key_id,
                                          const std::vector<List>& lists, Serialize serialize) {
  Writer w;
  w.u64(kArtifactFormatVersion);
  w.u64(id);
  w.u64(key_id);
  w.u64(lists.size());
  for (const List& l : lists) {
    w.u64(l.batch);
    write_nested(w, serialize(l.ciphertexts));
  }
  return seal(type, 0, std::move(w));
}

}  // namespace

std::vector<std::uint8_t> serialize(const EncryptedInputs& inputs) {
  return serialize_lists(ObjectType::kEncryptedInputs, inputs.circuit_id, inputs.key_id,
                         inputs.inputs,
                         [](const tfhe::SeededLweCiphertextList& l) { return tfhe::serialize(l); });
}

std::vector<std::uint8_t> serialize(const EncryptedOutputs& outputs) {
  return serialize_lists(ObjectType::kEncryptedOutputs, outputs.circuit_id, outputs.key_id,
                         outputs.outputs,
                         [](const tfhe::LweCiphertextList& l) { return tfhe::serialize(l); });
}

namespace {

// The payload of EncryptedInputs / EncryptedOutputs: circuit id, key id, then (batch, nested
// list) pairs.
template <class Message, class List, class Deserialize>
Message deserialize_lists(std::span<const std::uint8_t> bytes, ObjectType type,
                          const tfhe::DeserializeOptions& options,
                          std::vector<List> Message::*lists, Deserialize deserialize) {
  return open_payload(bytes, type, options, [&](Reader& r, std::uint64_t) {
    Message message;
    message.circuit_id = r.u64();
    message.key_id = r.u64();
    const std::uint64_t count = tfhe::wire::read_count(r, 0, 2 * 8, "ciphertext list");
    for (std::uint64_t i = 0; i < count; ++i) {
      const auto batch = static_cast<std::size_t>(r.u64());
      (message.*lists).push_back(List{batch, deserialize(read_nested(r, "ciphertext list"))});
    }
    return message;
  });
}

}  // namespace

EncryptedInputs deserialize_encrypted_inputs(std::span<const std::uint8_t> bytes,
                                             const tfhe::DeserializeOptions& options) {
  return deserialize_lists(bytes, ObjectType::kEncryptedInputs, options, &EncryptedInputs::inputs,
                           [&](std::span<const std::uint8_t> list) {
                             return tfhe::deserialize_seeded_lwe_ciphertext_list(list, options);
                           });
}

EncryptedOutputs deserialize_encrypted_outputs(std::span<const std::uint8_t> bytes,
                                               const tfhe::DeserializeOptions& options) {
  return deserialize_lists(bytes, ObjectType::kEncryptedOutputs, options,
                           &EncryptedOutputs::outputs, [&](std::span<const std::uint8_t> list) {
                             return tfhe::deserialize_lwe_ciphertext_list(list, options);
                           });
}

}  // namespace fheml::deploy
