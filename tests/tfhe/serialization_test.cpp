// Serialization: round trips of every type, a corruption matrix (every header field, truncations,
// bit flips, forged sizes and dimensions) that must be refused with a precise message, and the
// committed corpus of v1 blobs that every later version must still load.
#include "fheml/tfhe/serialization.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "fheml/tfhe/engine.h"
#include "fheml/tfhe/wire.h"

namespace fheml::tfhe {
namespace {

using Bytes = std::vector<std::uint8_t>;
using Loader = std::function<void(std::span<const std::uint8_t>, const DeserializeOptions&)>;

// Toy parameters, INSECURE (n = 16): small enough that every key round-trips in milliseconds.
PbsParameters toy_parameters() {
  PbsParameters p{};
  p.lwe_dimension = LweDimension{16};
  p.glwe_dimension = GlweDimension{1};
  p.polynomial_size = PolynomialSize{256};
  p.lwe_noise = NoiseStdDev{std::ldexp(1.0, -30)};
  p.glwe_noise = NoiseStdDev{std::ldexp(1.0, -50)};
  p.pbs_base_log = DecompositionBaseLog{10};
  p.pbs_level = DecompositionLevelCount{2};
  p.ks_base_log = DecompositionBaseLog{4};
  p.ks_level = DecompositionLevelCount{2};
  return p;
}

PbsParameters other_parameters() {
  PbsParameters p = toy_parameters();
  p.lwe_dimension = LweDimension{32};
  p.polynomial_size = PolynomialSize{512};
  return p;
}

constexpr MessageBits kBits{3};

struct Objects {
  PbsParameters parameters = toy_parameters();
  ClientKey client;
  LweCiphertext ciphertext;
  LweCiphertextList list;
  SeededLweCiphertextList seeded_list;
  GlweCiphertext glwe;
  CompressedServerKey server;
  KeyswitchKey keyswitch_key;
  BootstrapKey bootstrap_key;
};

// Built once through the real generators: key generation dominates the test's time.
const Objects& objects() {
  static const Objects o = [] {
    Objects o;
    Csprng rng(test_seed(1));
    o.client = generate_client_key(o.parameters, rng, SecurityCheck::kUnsafeAllowInsecure);
    o.ciphertext = encrypt(o.client, 5, kBits, rng);
    o.list = LweCiphertextList(o.client.big_dimension(), 3);
    for (std::size_t i = 0; i < 3; ++i) {
      const LweCiphertext ct = encrypt(o.client, i + 1, kBits, rng);
      std::copy(ct.data.begin(), ct.data.end(), o.list.at(i).begin());
    }
    const std::vector<Torus> plaintexts = {encode(1, kBits), encode(6, kBits)};
    o.seeded_list = encrypt_seeded_lwe_list(o.client.glwe_key.to_lwe_key(), plaintexts,
                                            o.parameters.glwe_noise, test_seed(2), rng);
    o.glwe = GlweCiphertext(o.parameters.glwe_dimension, o.parameters.polynomial_size);
    std::vector<Torus> message(o.parameters.polynomial_size.value);
    for (std::size_t i = 0; i < message.size(); ++i) message[i] = encode(i % 8, kBits);
    encrypt_glwe(o.glwe.data, o.client.glwe_key, message, o.parameters.glwe_noise, rng, rng);
    o.server = generate_compressed_server_key(o.client, rng, test_seed(3),
                                              SecurityCheck::kUnsafeAllowInsecure);
    o.keyswitch_key = expand(o.server.keyswitch_key);
    o.bootstrap_key = expand(o.server.bootstrap_key);
    return o;
  }();
  return o;
}

// The objects use toy parameters, so every load opts in to insecure parameters; the refusal by
// default is tested separately (RefusesInsecureParametersByDefault).
DeserializeOptions toy(DeserializeOptions o) {
  o.unsafe_allow_insecure_parameters = true;
  return o;
}

#define FHEML_LOADER(fn) \
  [](std::span<const std::uint8_t> b, const DeserializeOptions& o) { (void)fn(b, toy(o)); }

const std::map<std::string, Loader>& loaders() {
  static const std::map<std::string, Loader> table = {
      {"PbsParameters", FHEML_LOADER(deserialize_pbs_parameters)},
      {"LweSecretKey", FHEML_LOADER(deserialize_lwe_secret_key)},
      {"GlweSecretKey", FHEML_LOADER(deserialize_glwe_secret_key)},
      {"ClientKey", FHEML_LOADER(deserialize_client_key)},
      {"LweCiphertext", FHEML_LOADER(deserialize_lwe_ciphertext)},
      {"LweCiphertextList", FHEML_LOADER(deserialize_lwe_ciphertext_list)},
      {"SeededLweCiphertextList", FHEML_LOADER(deserialize_seeded_lwe_ciphertext_list)},
      {"GlweCiphertext", FHEML_LOADER(deserialize_glwe_ciphertext)},
      {"KeyswitchKey", FHEML_LOADER(deserialize_keyswitch_key)},
      {"SeededKeyswitchKey", FHEML_LOADER(deserialize_seeded_keyswitch_key)},
      {"BootstrapKey", FHEML_LOADER(deserialize_bootstrap_key)},
      {"SeededBootstrapKey", FHEML_LOADER(deserialize_seeded_bootstrap_key)},
      {"CompressedServerKey", FHEML_LOADER(deserialize_compressed_server_key)},
  };
  return table;
}

struct Case {
  std::string type;
  Bytes blob;
  bool own_parameters;  // holds a PbsParameters, so the header always carries its fingerprint
};

std::vector<Case> all_cases() {
  const Objects& o = objects();
  return {
      {"PbsParameters", serialize(o.parameters), true},
      {"LweSecretKey", serialize(o.client.small_key), false},
      {"GlweSecretKey", serialize(o.client.glwe_key), false},
      {"ClientKey", serialize(o.client), true},
      {"LweCiphertext", serialize(o.ciphertext), false},
      {"LweCiphertextList", serialize(o.list), false},
      {"SeededLweCiphertextList", serialize(o.seeded_list), false},
      {"GlweCiphertext", serialize(o.glwe), false},
      {"KeyswitchKey", serialize(o.keyswitch_key), false},
      {"SeededKeyswitchKey", serialize(o.server.keyswitch_key), false},
      {"BootstrapKey", serialize(o.bootstrap_key), false},
      {"SeededBootstrapKey", serialize(o.server.bootstrap_key), false},
      {"CompressedServerKey", serialize(o.server), true},
  };
}

::testing::AssertionResult refused(const Loader& load, std::span<const std::uint8_t> bytes,
                                   const std::string& fragment,
                                   const DeserializeOptions& options = {}) {
  try {
    load(bytes, options);
  } catch (const DeserializationError& e) {
    if (std::string(e.what()).find(fragment) != std::string::npos) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure()
           << "message \"" << e.what() << "\" lacks \"" << fragment << "\"";
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw a non-DeserializationError: " << e.what();
  }
  return ::testing::AssertionFailure()
         << "accepted bytes that should fail with \"" << fragment << "\"";
}

void put_u16(Bytes& b, std::size_t at, std::uint16_t v) {
  b[at] = static_cast<std::uint8_t>(v);
  b[at + 1] = static_cast<std::uint8_t>(v >> 8);
}

void put_u64(Bytes& b, std::size_t at, std::uint64_t v) {
  for (std::size_t i = 0; i < 8; ++i) b[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
}

std::uint64_t get_u64(const Bytes& b, std::size_t at) {
  std::uint64_t v = 0;
  for (std::size_t i = 8; i-- > 0;) v = (v << 8) | b[at + i];
  return v;
}

// Recomputes the checksum, as a forger would: the structural checks must hold on their own.
Bytes reseal(Bytes b) {
  const std::size_t body = b.size() - kEnvelopeChecksumBytes;
  const auto sum = wire::checksum(std::span<const std::uint8_t>(b).first(body));
  std::copy(sum.begin(), sum.end(), b.begin() + static_cast<std::ptrdiff_t>(body));
  return b;
}

// Byte offset of payload word `i` (u64 fields).
constexpr std::size_t field(std::size_t i) { return kEnvelopeHeaderBytes + 8 * i; }

// --- Round trips ------------------------------------------------------------------------------

template <class T, class Load>
void expect_round_trip(const T& value, Load load) {
  const Bytes bytes = serialize(value);
  EXPECT_EQ(bytes.size(), serialized_size(value));
  EXPECT_EQ(load(bytes, toy({})), value);
  const PbsParameters p = toy_parameters();
  EXPECT_EQ(load(bytes, toy({&p})), value);
  EXPECT_EQ(serialize(value), bytes);  // deterministic
}

TEST(Serialization, RoundTripsEveryType) {
  const Objects& o = objects();
  expect_round_trip(o.parameters, deserialize_pbs_parameters);
  expect_round_trip(o.client.small_key, deserialize_lwe_secret_key);
  expect_round_trip(o.client.glwe_key, deserialize_glwe_secret_key);
  expect_round_trip(o.ciphertext, deserialize_lwe_ciphertext);
  expect_round_trip(o.list, deserialize_lwe_ciphertext_list);
  expect_round_trip(o.seeded_list, deserialize_seeded_lwe_ciphertext_list);
  expect_round_trip(o.glwe, deserialize_glwe_ciphertext);
  expect_round_trip(o.keyswitch_key, deserialize_keyswitch_key);
  expect_round_trip(o.server.keyswitch_key, deserialize_seeded_keyswitch_key);
  expect_round_trip(o.bootstrap_key, deserialize_bootstrap_key);
  expect_round_trip(o.server.bootstrap_key, deserialize_seeded_bootstrap_key);

  const Bytes client_bytes = serialize(o.client);
  EXPECT_EQ(client_bytes.size(), serialized_size(o.client));
  const ClientKey client = deserialize_client_key(client_bytes, toy({}));
  EXPECT_EQ(client.parameters, o.client.parameters);
  EXPECT_EQ(client.small_key, o.client.small_key);
  EXPECT_EQ(client.glwe_key, o.client.glwe_key);
  // The loaded key still decrypts what the original encrypted.
  EXPECT_EQ(decrypt(client, deserialize_lwe_ciphertext(serialize(o.ciphertext)).data, kBits), 5u);

  const Bytes server_bytes = serialize(o.server);
  EXPECT_EQ(server_bytes.size(), serialized_size(o.server));
  const CompressedServerKey server = deserialize_compressed_server_key(server_bytes, toy({}));
  EXPECT_EQ(server.parameters, o.server.parameters);
  EXPECT_EQ(server.keyswitch_key, o.server.keyswitch_key);
  EXPECT_EQ(server.bootstrap_key, o.server.bootstrap_key);
}

TEST(Serialization, HeaderLayoutIsFixed) {
  const Bytes b = serialize(toy_parameters());
  const Bytes magic = {0x89, 'F', 'H', 'E', 'M', 'L', 0x0D, 0x0A};
  EXPECT_TRUE(std::equal(magic.begin(), magic.end(), b.begin()));
  EXPECT_EQ(b[8], 3);  // version, little-endian
  EXPECT_EQ(b[9], 0);
  EXPECT_EQ(b[10], static_cast<std::uint8_t>(ObjectType::kPbsParameters));
  EXPECT_EQ(get_u64(b, 12), fingerprint(toy_parameters()));
  EXPECT_EQ(get_u64(b, 20), 80u);
  EXPECT_EQ(get_u64(b, field(0)), 16u);                  // n
  EXPECT_EQ(get_u64(b, field(3)), 0x3E10000000000000u);  // 2^-30 as IEEE-754
  const EnvelopeInfo info = read_envelope_header(b);
  EXPECT_EQ(info.object_type, static_cast<std::uint16_t>(ObjectType::kPbsParameters));
  EXPECT_EQ(info.payload_bytes, 80u);
}

// Format 3 carries extension_log (lookup tables larger than the key's ring): it round-trips, is
// part of the fingerprint only where it is not 0 (so format 2 objects keep theirs), and a value
// the engine cannot run is refused.
TEST(Serialization, ExtensionLogRoundTripsAndIsValidated) {
  PbsParameters extended = toy_parameters();
  extended.extension_log = 2;
  const Bytes b = serialize(extended);
  EXPECT_EQ(get_u64(b, field(9)), 2u);
  EXPECT_EQ(deserialize_pbs_parameters(b, toy({})), extended);
  EXPECT_NE(fingerprint(extended), fingerprint(toy_parameters()));
  // A format 2 object: nine fields and the fingerprint without extension_log.
  Bytes v2(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(field(9)));
  v2.resize(v2.size() + kEnvelopeChecksumBytes);
  put_u16(v2, 8, 2);
  put_u64(v2, 12, fingerprint(toy_parameters()));
  put_u64(v2, 20, 72);
  EXPECT_EQ(deserialize_pbs_parameters(reseal(v2), toy({})), toy_parameters());
  for (const std::uint64_t bad : {std::uint64_t{7}, std::uint64_t{64}, ~std::uint64_t{0}}) {
    Bytes corrupt = b;
    put_u64(corrupt, field(9), bad);
    PbsParameters claimed = extended;
    claimed.extension_log = static_cast<std::size_t>(bad);
    put_u64(corrupt, 12, fingerprint(claimed));
    EXPECT_TRUE(refused(loaders().at("PbsParameters"), reseal(corrupt), "extension_log")) << bad;
  }
}

TEST(Serialization, BindingBareObjectsToParameters) {
  const Objects& o = objects();
  const PbsParameters p = toy_parameters();
  const PbsParameters other = other_parameters();
  const Bytes bound = serialize(o.ciphertext, SerializeOptions{&p});
  EXPECT_EQ(get_u64(bound, 12), fingerprint(p));
  EXPECT_EQ(deserialize_lwe_ciphertext(bound, toy({&p})), o.ciphertext);
  EXPECT_TRUE(refused(loaders().at("LweCiphertext"), bound, "parameter fingerprint",
                      DeserializeOptions{&other}));
  // Binding to parameters the object does not fit is a caller error, caught when writing.
  EXPECT_THROW((void)serialize(o.ciphertext, SerializeOptions{&other}), std::invalid_argument);
  EXPECT_THROW((void)serialize(o.keyswitch_key, SerializeOptions{&other}), std::invalid_argument);
}

TEST(Serialization, RefusesToWriteANonBinaryKey) {
  LweSecretKey key = objects().client.small_key;
  key.bits[3] = 256;  // would silently become 0 if truncated to a byte
  EXPECT_THROW((void)serialize(key), std::logic_error);
}

// --- Corruption matrix ------------------------------------------------------------------------

TEST(Serialization, RefusesEmptyAndTruncatedInput) {
  std::mt19937_64 rng(42);
  for (const Case& c : all_cases()) {
    SCOPED_TRACE(c.type);
    const Loader& load = loaders().at(c.type);
    EXPECT_TRUE(refused(load, {}, "empty input"));
    const std::size_t payload_end = c.blob.size() - kEnvelopeChecksumBytes;
    std::vector<std::size_t> cuts = {1,
                                     4,
                                     7,
                                     8,
                                     9,
                                     10,
                                     12,
                                     20,
                                     27,
                                     kEnvelopeHeaderBytes,
                                     kEnvelopeHeaderBytes + 1,
                                     payload_end,
                                     c.blob.size() - 1};
    for (int i = 0; i < 20; ++i) cuts.push_back(1 + rng() % (c.blob.size() - 1));
    for (std::size_t cut : cuts) {
      SCOPED_TRACE(cut);
      EXPECT_TRUE(refused(load, std::span(c.blob).first(cut), "truncated"));
    }
    Bytes longer = c.blob;
    longer.push_back(0);
    EXPECT_TRUE(refused(load, longer, "trailing bytes"));
  }
}

TEST(Serialization, RefusesEveryAlteredHeaderField) {
  const PbsParameters p = toy_parameters();
  for (const Case& c : all_cases()) {
    SCOPED_TRACE(c.type);
    const Loader& load = loaders().at(c.type);
    for (std::size_t i = 0; i < 8; ++i) {
      Bytes b = c.blob;
      b[i] ^= 0x20;
      EXPECT_TRUE(refused(load, b, "bad magic"));
    }
    for (std::uint16_t version : {4, 0xFFFF}) {
      Bytes b = c.blob;
      put_u16(b, 8, version);
      EXPECT_TRUE(refused(load, reseal(b),
                          "written by a newer fheml (format " + std::to_string(version) + ")"));
      EXPECT_TRUE(refused(load, reseal(b), "upgrade"));
    }
    Bytes zero_version = c.blob;
    put_u16(zero_version, 8, 0);
    EXPECT_TRUE(refused(load, reseal(zero_version), "format version 0"));
    for (const auto& [other, other_load] : loaders()) {
      if (other == c.type) continue;
      EXPECT_TRUE(refused(other_load, c.blob, "wrong object type: expected " + other));
    }
    Bytes unknown = c.blob;
    put_u16(unknown, 10, 999);
    EXPECT_TRUE(refused(load, unknown, "unknown object type 999"));

    Bytes fp = c.blob;
    put_u64(fp, 12, get_u64(fp, 12) + 1);
    EXPECT_TRUE(refused(load, fp, "checksum mismatch"));
    EXPECT_TRUE(refused(load, fp, "parameter fingerprint", DeserializeOptions{&p}));
    if (c.own_parameters) {
      EXPECT_TRUE(refused(load, reseal(fp), "parameter fingerprint in the header"));
    }

    const std::uint64_t length = get_u64(c.blob, 20);
    Bytes more = c.blob;
    put_u64(more, 20, length + 1);
    EXPECT_TRUE(refused(load, more, "truncated"));
    Bytes less = c.blob;
    put_u64(less, 20, length - 1);
    EXPECT_TRUE(refused(load, less, "trailing bytes"));
    // A forged length must be refused from the header alone, before any allocation.
    Bytes huge = c.blob;
    put_u64(huge, 20, std::uint64_t{1} << 62);
    EXPECT_TRUE(refused(load, huge, "max_bytes"));
    EXPECT_TRUE(refused(load, huge, "truncated",
                        DeserializeOptions{nullptr, std::numeric_limits<std::uint64_t>::max()}));
    EXPECT_TRUE(refused(load, c.blob, "max_bytes", DeserializeOptions{nullptr, length - 1}));
  }
}

TEST(Serialization, RefusesFlippedPayloadAndChecksumBits) {
  std::mt19937_64 rng(7);
  for (const Case& c : all_cases()) {
    SCOPED_TRACE(c.type);
    const Loader& load = loaders().at(c.type);
    for (int i = 0; i < 8; ++i) {
      Bytes b = c.blob;
      const std::size_t bit = 8 * kEnvelopeHeaderBytes + rng() % (8 * (b.size() - 28));
      b[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
      EXPECT_TRUE(refused(load, b, "checksum mismatch"));
    }
  }
}

TEST(Serialization, RefusesMismatchedExpectedParameters) {
  const PbsParameters other = other_parameters();
  for (const Case& c : all_cases()) {
    SCOPED_TRACE(c.type);
    const std::string fragment =
        c.own_parameters ? "parameter fingerprint" : "does not match the expected parameters";
    EXPECT_TRUE(refused(loaders().at(c.type), c.blob, fragment, DeserializeOptions{&other}));
  }
}

// Forged payloads with a valid checksum: the structural checks must stand on their own.
TEST(Serialization, RefusesForgedPayloads) {
  const auto& L = loaders();
  const Objects& o = objects();
  auto forge = [](Bytes b, std::size_t at, std::uint64_t v) {
    put_u64(b, at, v);
    return reseal(std::move(b));
  };
  auto forge_byte = [](Bytes b, std::size_t at, std::uint8_t v) {
    b[at] = v;
    return reseal(std::move(b));
  };
  // Secret key coefficients outside {0, 1}.
  EXPECT_TRUE(refused(L.at("LweSecretKey"), forge_byte(serialize(o.client.small_key), field(1), 2),
                      "secret key coefficient 0 is 2"));
  EXPECT_TRUE(refused(L.at("GlweSecretKey"),
                      forge_byte(serialize(o.client.glwe_key), field(2) + 9, 2),
                      "secret key coefficient 9 is 2"));
  const Bytes client = serialize(o.client);
  EXPECT_TRUE(
      refused(L.at("ClientKey"), forge_byte(client, field(10) + 3, 255), "small LWE secret"));
  EXPECT_TRUE(refused(L.at("ClientKey"), forge_byte(client, client.size() - 17, 2), "GLWE secret"));
  // Dimensions out of range or inconsistent with the payload size.
  const Bytes ct = serialize(o.ciphertext);
  EXPECT_TRUE(refused(L.at("LweCiphertext"), forge(ct, field(0), 0), "out of range"));
  EXPECT_TRUE(refused(L.at("LweCiphertext"), forge(ct, field(0), 1ULL << 40), "out of range"));
  EXPECT_TRUE(refused(L.at("LweCiphertext"), forge(ct, field(0), 255), "payload size"));
  const Bytes glwe = serialize(o.glwe);
  EXPECT_TRUE(refused(L.at("GlweCiphertext"), forge(glwe, field(1), 255), "power of two"));
  EXPECT_TRUE(refused(L.at("GlweCiphertext"), forge(glwe, field(1), 1ULL << 20), "power of two"));
  EXPECT_TRUE(refused(L.at("GlweCiphertext"), forge(glwe, field(0), 0), "GLWE dimension k"));
  EXPECT_TRUE(refused(L.at("GlweCiphertext"), forge(glwe, field(0), 17), "GLWE dimension k"));
  EXPECT_TRUE(
      refused(L.at("LweCiphertextList"), forge(serialize(o.list), field(1), 1ULL << 62), "count"));
  EXPECT_TRUE(
      refused(L.at("LweCiphertextList"), forge(serialize(o.list), field(1), 2), "payload size"));
  EXPECT_TRUE(refused(L.at("SeededLweCiphertextList"),
                      forge(serialize(o.seeded_list), field(1), ~0ULL), "count"));
  const Bytes ksk = serialize(o.server.keyswitch_key);
  EXPECT_TRUE(refused(L.at("SeededKeyswitchKey"), forge(ksk, field(2), 32), "decomposition"));
  EXPECT_TRUE(refused(L.at("SeededKeyswitchKey"), forge(ksk, field(3), 0), "decomposition"));
  EXPECT_TRUE(
      refused(L.at("SeededKeyswitchKey"), forge(ksk, field(3), 1ULL << 40), "decomposition"));
  const Bytes bsk = serialize(o.bootstrap_key);
  EXPECT_TRUE(refused(L.at("BootstrapKey"), forge(bsk, field(0), 1ULL << 30), "out of range"));
  EXPECT_TRUE(refused(L.at("BootstrapKey"), forge(bsk, field(2), 1ULL << 17), "payload size"));
  // Parameters: noise must be a finite fraction of the torus.
  const Bytes params = serialize(o.parameters);
  EXPECT_TRUE(refused(L.at("PbsParameters"), forge(params, field(3), 0x7FF8000000000000ULL),
                      "noise standard deviation"));
  EXPECT_TRUE(refused(L.at("PbsParameters"), forge(params, field(4), 0x3FF0000000000000ULL),
                      "noise standard deviation"));
  // A server key whose sub-keys disagree with its own parameters (ten fields since format 3).
  const Bytes server = serialize(o.server);
  EXPECT_TRUE(refused(L.at("CompressedServerKey"), forge(server, field(10 + 2), 5),
                      "key switching key shape"));
  // The key switching key's shape has five fields since format 2 (the shared prefix last).
  EXPECT_TRUE(
      refused(L.at("CompressedServerKey"), forge(server, field(10 + 4), 3), "shared prefix 3"));
  EXPECT_TRUE(refused(L.at("SeededKeyswitchKey"), forge(ksk, field(4), 3), "shared prefix 3"));
  const std::size_t bsk_shape = 10 + 5 + 4 + o.server.keyswitch_key.bodies.size();
  EXPECT_TRUE(refused(L.at("CompressedServerKey"), forge(server, field(bsk_shape + 3), 5),
                      "bootstrap key shape"));
}

// --- Committed corpus -------------------------------------------------------------------------

std::filesystem::path corpus_dir() {
  if (const char* env = std::getenv("FHEML_TEST_DATA"))
    return std::filesystem::path(env) / "corpus";
  return std::filesystem::path(__FILE__).parent_path().parent_path() / "data" / "corpus";
}

Bytes read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST(SerializationCorpus, VersionOneBlobsStillLoad) {
  const auto dir = corpus_dir();
  const ClientKey client = deserialize_client_key(read_file(dir / "client_key.v1.bin"), toy({}));
  const PbsParameters p =
      deserialize_pbs_parameters(read_file(dir / "pbs_parameters.v1.bin"), toy({}));
  EXPECT_EQ(p, toy_parameters());
  EXPECT_EQ(client.parameters, p);
  const DeserializeOptions expect = toy({&p});
  const LweCiphertext ct =
      deserialize_lwe_ciphertext(read_file(dir / "lwe_ciphertext.v1.bin"), expect);
  EXPECT_EQ(decrypt(client, ct.data, kBits), 5u);
  const SeededLweCiphertextList seeded = deserialize_seeded_lwe_ciphertext_list(
      read_file(dir / "seeded_lwe_ciphertext_list.v1.bin"), expect);
  const LweCiphertextList list = expand(seeded);
  ASSERT_EQ(list.count(), 4u);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(decrypt(client, list.at(i), kBits), i + 1);
  const CompressedServerKey server =
      deserialize_compressed_server_key(read_file(dir / "compressed_server_key.v1.bin"), toy({}));
  EXPECT_EQ(server.parameters.lwe_dimension, LweDimension{4});
  EXPECT_EQ(server.parameters.polynomial_size, PolynomialSize{32});
  EXPECT_EQ(server.keyswitch_key.bodies.size(), 32u * 2u);
  EXPECT_EQ(server.bootstrap_key.bodies.size(), 4u * 2u * 2u * 32u);
  // Runnable by the server: the shapes match the parameters and the FFT takes N = 32.
  const ServerKey expanded = decompress(server, SecurityCheck::kUnsafeAllowInsecure);
  EXPECT_THROW((void)decompress(server), std::invalid_argument);  // refused by default
  EXPECT_EQ(expanded.bootstrap_key.data.size(), server.bootstrap_key.shape.length());
}

// Format 2 (small keys shared with the big key): a client key, a ciphertext under it and the
// server key made from it, at the toy parameters; the server key runs a bootstrap whose result
// the client key decrypts. A format 1 client key still decrypts (above) but no longer makes
// evaluation keys: its small key is independent of its big key.
TEST(SerializationCorpus, VersionTwoBlobsStillLoad) {
  const auto dir = corpus_dir();
  const ClientKey client = deserialize_client_key(read_file(dir / "client_key.v2.bin"), toy({}));
  EXPECT_EQ(client.parameters, toy_parameters());
  EXPECT_NO_THROW(check_shared_prefix(client));
  const DeserializeOptions expect = toy({&client.parameters});
  const LweCiphertext ct =
      deserialize_lwe_ciphertext(read_file(dir / "lwe_ciphertext.v2.bin"), expect);
  EXPECT_EQ(decrypt(client, ct.data, kBits), 5u);
  const CompressedServerKey compressed =
      deserialize_compressed_server_key(read_file(dir / "compressed_server_key.v2.bin"), expect);
  EXPECT_EQ(compressed.keyswitch_key.shape.shared_prefix, 16u);
  const ServerKey server = decompress(compressed, SecurityCheck::kUnsafeAllowInsecure);
  std::vector<std::uint64_t> plus_one(8);
  for (std::size_t m = 0; m < 8; ++m) plus_one[m] = (m + 1) % 8;
  const LookupTable table =
      make_lookup_table(lookup_polynomial_size(client.parameters), kBits, plus_one, kBits);
  const LweCiphertextList out = keyswitch_bootstrap(server, ct.data, table);
  EXPECT_EQ(decrypt(client, out.at(0), kBits), 6u);

  const ClientKey old = deserialize_client_key(read_file(dir / "client_key.v1.bin"), toy({}));
  EXPECT_THROW(check_shared_prefix(old), std::invalid_argument);
  Csprng rng(test_seed(9));
  try {
    (void)generate_compressed_server_key(old, rng, test_seed(10),
                                         SecurityCheck::kUnsafeAllowInsecure);
    ADD_FAILURE() << "a format 1 client key made evaluation keys";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("generate a new key"), std::string::npos) << e.what();
  }
}

// Every row "| `file` | Type | `fragment` |" of the corpus README: the blob must be refused by
// Type's loader with a message containing the fragment ("loads" for a valid blob).
TEST(SerializationCorpus, ReadmeRowsHold) {
  const auto dir = corpus_dir();
  std::ifstream readme(dir / "README.md");
  ASSERT_TRUE(readme) << "corpus README missing under " << dir;
  std::string line;
  int rows = 0;
  while (std::getline(readme, line)) {
    if (line.rfind("| `", 0) != 0) continue;
    std::vector<std::string> cells;
    std::stringstream split(line);
    std::string cell;
    while (std::getline(split, cell, '|')) {
      const auto first = cell.find_first_not_of(" `");
      const auto last = cell.find_last_not_of(" `");
      if (first != std::string::npos) cells.push_back(cell.substr(first, last - first + 1));
    }
    ASSERT_EQ(cells.size(), 3u) << line;
    SCOPED_TRACE(cells[0]);
    ++rows;
    const Bytes blob = read_file(dir / cells[0]);
    const Loader& load = loaders().at(cells[1]);
    if (cells[2] == "loads") {
      EXPECT_NO_THROW(load(blob, {}));
    } else {
      EXPECT_TRUE(refused(load, blob, cells[2]));
    }
  }
  EXPECT_GE(rows, 10);
}

TEST(Serialization, RefusesInsecureParametersByDefault) {
  const Objects& o = objects();
  for (const auto& [type, blob] :
       {std::pair{std::string("PbsParameters"), serialize(o.parameters)},
        std::pair{std::string("ClientKey"), serialize(o.client)},
        std::pair{std::string("CompressedServerKey"), serialize(o.server)}}) {
    bool refused_insecure = false;
    try {
      if (type == "PbsParameters") (void)deserialize_pbs_parameters(blob);
      if (type == "ClientKey") (void)deserialize_client_key(blob);
      if (type == "CompressedServerKey") (void)deserialize_compressed_server_key(blob);
    } catch (const DeserializationError& e) {
      refused_insecure = std::string(e.what()).find("128-bit security") != std::string::npos;
    }
    EXPECT_TRUE(refused_insecure) << type;
  }
  // And key generation refuses them unless a test asks otherwise.
  Csprng rng(test_seed(9));
  EXPECT_THROW((void)generate_client_key(o.parameters, rng), std::invalid_argument);
  // The built-in sets pass.
  const Bytes secure = serialize(default_parameters(MessageBits{4}));
  EXPECT_EQ(deserialize_pbs_parameters(secure), default_parameters(MessageBits{4}));
}

}  // namespace
}  // namespace fheml::tfhe
