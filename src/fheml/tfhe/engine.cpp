#include "fheml/tfhe/engine.h"

#include <algorithm>
#include <memory>
#include <string>

#include "fheml/tfhe/errors.h"

namespace fheml::tfhe {

ClientKey generate_client_key(const PbsParameters& parameters, Csprng& secret_rng,
                              SecurityCheck check) {
  validate(parameters, check);
  GlweSecretKey big =
      generate_glwe_secret_key(parameters.glwe_dimension, parameters.polynomial_size, secret_rng);
  // The small key is the big key's first n coefficients (keyswitch.h, "Shared prefix").
  LweSecretKey small = shares_small_key(parameters)
                           ? small_key_of(big.as_lwe_key(), parameters.lwe_dimension)
                           : generate_lwe_secret_key(parameters.lwe_dimension, secret_rng);
  return ClientKey{parameters, std::move(small), std::move(big)};
}

CompressedServerKey generate_compressed_server_key(const ClientKey& client, Csprng& noise_rng) {
  return generate_compressed_server_key(client, noise_rng, random_seed());
}

namespace {

// A ClientKey is a plain struct: one built by hand (or altered) reaches here unchecked.
void check_client_key(const ClientKey& client, SecurityCheck check) {
  const PbsParameters& p = client.parameters;
  validate(p, check);
  require_size("client key: small LWE key coefficients", p.lwe_dimension.value,
               client.small_key.bits.size());
  require_size("client key: GLWE key dimension", p.glwe_dimension.value,
               client.glwe_key.glwe_dimension.value);
  require_size("client key: GLWE key polynomial size", p.polynomial_size.value,
               client.glwe_key.polynomial_size.value);
  require_size("client key: GLWE key coefficients",
               p.glwe_dimension.value * p.polynomial_size.value, client.glwe_key.bits.size());
  // Every coefficient 0 or 1, checked without branching on one (an OR of all of them).
  std::uint64_t high = 0;
  for (const std::uint64_t c : client.small_key.bits) high |= c >> 1;
  for (const std::uint64_t c : client.glwe_key.bits) high |= c >> 1;
  if (high != 0) throw_invalid_argument("client key: coefficients must be binary (0 or 1)");
  check_shared_prefix(client);
}

}  // namespace


CompressedServerKey generate_compressed_server_key(const ClientKey& client, Csprng& noise_rng,
                                                   const Seed& mask_seed, SecurityCheck check) {
  const PbsParameters& p = client.parameters;
  check_client_key(client, check);
  // Independent mask seeds per key, derived with domain separation (each key indexes its own
  // streams by entry).
  const Seed ksk_seed = derive_seed(mask_seed, "fheml keyswitch key masks");
  const Seed bsk_seed = derive_seed(mask_seed, "fheml bootstrap key masks");
  return CompressedServerKey{
      p,
      generate_seeded_keyswitch_key(client.glwe_key.as_lwe_key(), client.small_key, p.ks_base_log,
                                    p.ks_level, p.lwe_noise, ksk_seed, noise_rng,
                                    shares_small_key(p)),
      generate_seeded_bootstrap_key(client.small_key, client.glwe_key, p.pbs_base_log, p.pbs_level,
                                    p.glwe_noise, bsk_seed, noise_rng)};
}

ServerKey decompress(const CompressedServerKey& compressed, SecurityCheck check, bool keyswitch) {
  const PbsParameters& p = compressed.parameters;
  validate(p, check);
  // A key of serialization format 1 switches every coefficient (no shared prefix): still run.
  KeyswitchShape ks = keyswitch_shape_of(p);
  if (compressed.keyswitch_key.shape.shared_prefix == 0) ks.shared_prefix = 0;
  const BootstrapShape bs{p.lwe_dimension,
                          {p.glwe_dimension, p.polynomial_size, p.pbs_base_log, p.pbs_level}};
  if (!(compressed.keyswitch_key.shape == ks) || !(compressed.bootstrap_key.shape == bs)) {
    throw_invalid_argument("server key shapes do not match its parameters (" + describe(p) +
                           "): the key is corrupt or was built for other parameters");
  }
  return ServerKey{compressed.parameters,
                   keyswitch ? expand_to_compute_form(compressed.keyswitch_key) : KeyswitchKey32{},
                   expand_to_fourier(compressed.bootstrap_key, ThreadPool::global())};
}

KeySizes key_sizes(const PbsParameters& p) {
  const KeyswitchShape ks = keyswitch_shape_of(p);
  const std::size_t ks_entries = ks.entry_count();
  const GgswShape g{p.glwe_dimension, p.polynomial_size, p.pbs_base_log, p.pbs_level};
  const std::size_t bsk_words = p.lwe_dimension.value * g.length();
  const std::size_t bsk_bodies = p.lwe_dimension.value * g.row_count() * p.polynomial_size.value;
  KeySizes s;
  s.keyswitch_compressed = ks_entries * sizeof(Torus) + kSeedBytes;
  // As the server holds it: the 32-bit compute form.
  s.keyswitch_expanded = ks.length() * sizeof(std::uint32_t);
  s.bootstrap_compressed = bsk_bodies * sizeof(Torus) + kSeedBytes;
  s.bootstrap_expanded = bsk_words * sizeof(Torus);
  s.bootstrap_fourier = bsk_words * sizeof(double);
  return s;
}

LweCiphertext encrypt(const ClientKey& key, std::uint64_t message, MessageBits p, Csprng& rng) {
  LweCiphertext ct(key.big_dimension());
  encrypt_lwe(ct.data, key.glwe_key.as_lwe_key(), encode(message, p), key.parameters.glwe_noise,
              rng, rng);
  return ct;
}

SeededLweCiphertextList encrypt_compressed(const ClientKey& key,
                                           std::span<const std::uint64_t> messages, MessageBits p,
                                           Csprng& noise_rng) {
  std::vector<Torus> plaintexts;
  plaintexts.reserve(messages.size());
  for (const auto m : messages) plaintexts.push_back(encode(m, p));
  return encrypt_seeded_lwe_list(key.glwe_key.to_lwe_key(), plaintexts, key.parameters.glwe_noise,
                                 random_seed(), noise_rng);
}

std::uint64_t decrypt(const ClientKey& key, std::span<const Torus> ct, MessageBits p) {
  return decode(decrypt_lwe_phase(ct, key.glwe_key.as_lwe_key()), p);
}

PbsWorkspace::PbsWorkspace(const ServerKey& key) : PbsWorkspace(key.bootstrap_key.shape) {}

PbsWorkspace::PbsWorkspace(const BootstrapShape& shape)
    : small_(lwe_size(shape.input_dimension)), scratch_(shape) {}

void keyswitch_bootstrap(std::span<Torus> outputs, std::span<const Torus> input,
                         const ServerKey& key, const LookupTable& table, PbsWorkspace& workspace) {
  const auto small =
      std::span<Torus>(workspace.small_).first(lwe_size(key.parameters.lwe_dimension));
  keyswitch(small, input, key.keyswitch_key);
  programmable_bootstrap(outputs, small, key.bootstrap_key, table, workspace.scratch_);
}

LweCiphertextList keyswitch_bootstrap(const ServerKey& key, std::span<const Torus> input,
                                      const LookupTable& table) {
  const LweDimension big = key.bootstrap_key.shape.output_dimension();
  LweCiphertextList out(big, table.function_count);
  PbsWorkspace workspace(key);
  keyswitch_bootstrap(out.data, input, key, table, workspace);
  return out;
}

LweCiphertextList keyswitch_bootstrap_batch(const ServerKey& key, const LweCiphertextList& inputs,
                                            std::span<const LookupTable* const> tables,
                                            ThreadPool& pool) {
  return keyswitch_bootstrap_batch(key.keyswitch_key, key.bootstrap_key, inputs, tables, pool);
}

LweCiphertextList keyswitch_bootstrap_batch(const KeyswitchKey32& keyswitch_key,
                                            const FourierBootstrapKey& bootstrap_key,
                                            const LweCiphertextList& inputs,
                                            std::span<const LookupTable* const> tables,
                                            ThreadPool& pool) {
  require_size("key switch output dimension (the bootstrap key's input)",
               bootstrap_key.shape.input_dimension.value,
               keyswitch_key.shape.output_dimension.value);
  if (inputs.data.size() % lwe_size(inputs.dimension) != 0) {
    throw_invalid_argument("batch input holds " + std::to_string(inputs.data.size()) +
                           " words, not a whole number of ciphertexts of dimension " +
                           std::to_string(inputs.dimension.value));
  }
  const std::size_t count = inputs.count();
  if (tables.empty()) throw_invalid_argument("a batch needs at least one lookup table");
  if (tables.size() != 1) require_size("lookup tables in a batch", count, tables.size());
  for (const LookupTable* t : tables) {
    if (t == nullptr) throw_invalid_argument("null lookup table in a batch");
    require_size("tables per bootstrap (all tables of a batch must agree)",
                 tables[0]->function_count, t->function_count);
  }
  const std::size_t outputs_per_input = tables[0]->function_count;
  const LweDimension big = bootstrap_key.shape.output_dimension();
  require_size("batch input dimension (the key switch's input)",
               keyswitch_key.shape.input_dimension.value, inputs.dimension.value);
  LweCiphertextList out(big, count * outputs_per_input);
  if (count == 0) return out;
  std::vector<std::unique_ptr<PbsWorkspace>> workspaces(pool.size());
  const std::size_t out_len = lwe_size(big) * outputs_per_input;
  // Group size: enough work items to keep every thread busy; groups only while the accumulators
  // of a group and one GGSW stay well inside a 2 MB L2 (up to N = 4096 with k = 1).
  const std::size_t max_group = bootstrap_key.shape.ggsw.length() <= (std::size_t{1} << 15) ? 4 : 1;
  const std::size_t group = std::clamp<std::size_t>(count / pool.size(), 1, max_group);
  const std::size_t small_len = lwe_size(bootstrap_key.shape.input_dimension);
  pool.parallel_for((count + group - 1) / group, [&](std::size_t item, std::size_t worker) {
    if (!workspaces[worker])
      workspaces[worker] = std::make_unique<PbsWorkspace>(bootstrap_key.shape);
    PbsWorkspace& w = *workspaces[worker];
    const std::size_t begin = item * group;
    const std::size_t members = std::min(group, count - begin);
    w.small_.resize(members * small_len);
    std::vector<std::span<Torus>> outputs;
    std::vector<std::span<Torus>> smalls;
    std::vector<std::span<const Torus>> big_inputs;
    std::vector<const LookupTable*> member_tables;
    for (std::size_t c = 0; c < members; ++c) {
      const std::size_t i = begin + c;
      smalls.push_back(std::span<Torus>(w.small_).subspan(c * small_len, small_len));
      big_inputs.push_back(inputs.at(i));
      outputs.push_back(std::span<Torus>(out.data).subspan(i * out_len, out_len));
      member_tables.push_back(tables.size() == 1 ? tables[0] : tables[i]);
    }
    // The group shares the streaming of both keys: the key switching key here, the bootstrap
    // key's GGSWs in the blind rotation.
    keyswitch_group(smalls, big_inputs, keyswitch_key);
    const std::vector<std::span<const Torus>> small_inputs(smalls.begin(), smalls.end());
    programmable_bootstrap_group(outputs, small_inputs, bootstrap_key, member_tables, w.scratch_);
  });
  return out;
}

}  // namespace fheml::tfhe
