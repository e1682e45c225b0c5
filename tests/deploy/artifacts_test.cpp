#include "fheml/deploy/artifacts.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "fheml/compiler/compile.h"
#include "fheml/deploy/deploy.h"
#include "fheml/ir/float_graph.h"
#include "fheml/models/linear_model.h"
#include "fheml/runtime/runtime.h"
#include "fheml/tfhe/csprng.h"
#include "fheml/tfhe/serialization.h"
#include "fheml/tfhe/wire.h"
#include "test_helpers.h"

namespace fheml::deploy {
namespace {

namespace fs = std::filesystem;
using runtime::Mode;

// x [1, 4] -> gemm 4x3 -> relu -> gemm 3x2: a model with 3 bootstraps per sample.
compiler::Circuit small_mlp(std::uint32_t output_noise_bits = 0) {
  tfhe::Csprng rng(tfhe::test_seed(5));
  const auto uniform = [&] { return 2 * rng.next_unit_double() - 1; };
  const auto tensor = [&](ir::Shape shape) {
    ir::FloatTensor t(std::move(shape));
    for (double& v : t.data) v = uniform();
    return t;
  };
  ir::FloatGraph g;
  const auto x = g.input("x", {1, 4});
  const auto h = g.unary(ir::FloatOp::kRelu, g.gemm(x, g.constant("w1", tensor({4, 3})),
                                                    g.constant("b1", tensor({3})), false, "fc1"));
  g.mark_output(
      g.gemm(h, g.constant("w2", tensor({3, 2})), g.constant("b2", tensor({2})), false, "fc2"));
  std::vector<quant::Sample> calibration;
  for (int i = 0; i < 50; ++i) calibration.push_back({tensor({1, 4})});
  compiler::CompileOptions options;
  options.quantization.n_bits = quant::NBits::uniform(3);
  options.quantization.max_lookup_bits = 4;
  options.quantization.rounding_threshold_bits = 4;
  options.output_noise_bits = output_noise_bits;
  return compiler::compile(g, calibration, options);
}

// x [1, 6] -> 12 -> relu -> 12 -> relu -> 3, the second layer's weights large: compiled with
// partitions, the first layer's lookups and the rest get sets of their own.
compiler::Circuit partitioned_mlp() {
  tfhe::Csprng rng(tfhe::test_seed(8));
  const auto tensor = [&](ir::Shape shape) {
    ir::FloatTensor t(std::move(shape));
    for (double& v : t.data) v = 2 * rng.next_unit_double() - 1;
    return t;
  };
  ir::FloatGraph g;
  const auto x = g.input("x", {1, 6});
  const auto h1 = g.unary(ir::FloatOp::kRelu, g.gemm(x, g.constant("w1", tensor({6, 12})),
                                                     g.constant("b1", tensor({12})), false, "fc1"));
  const auto h2 = g.unary(ir::FloatOp::kRelu, g.gemm(h1, g.constant("w2", tensor({12, 12})),
                                                     g.constant("b2", tensor({12})), false, "fc2"));
  g.mark_output(
      g.gemm(h2, g.constant("w3", tensor({12, 3})), g.constant("b3", tensor({3})), false, "fc3"));
  std::vector<quant::Sample> calibration;
  for (int i = 0; i < 100; ++i) calibration.push_back({tensor({1, 6})});
  compiler::CompileOptions options;
  options.quantization.n_bits = quant::NBits::uniform(3);
  options.quantization.max_lookup_bits = 4;
  options.quantization.rounding_threshold_bits = 4;
  options.max_partitions = 3;
  return compiler::compile(g, calibration, options);
}

compiler::Circuit small_linear() {
  const models::Matrix coef{3, 2, {0.5, -1.0, 0.25, 2.0, -0.75, 0.1}};
  const models::Matrix rows{4, 3, {0, 1, 2, -1, 0.5, 3, 2, 2, 2, 0.3, -0.2, 0.1}};
  models::LinearModel model(coef, std::vector<double>{0.1, -0.2}, models::Link::kSoftmax, rows);
  return model.circuit().circuit();
}

std::vector<runtime::FloatSample> rows(std::size_t count, std::size_t features,
                                       std::uint64_t seed) {
  tfhe::Csprng rng(tfhe::test_seed(seed));
  std::vector<runtime::FloatSample> samples;
  for (std::size_t i = 0; i < count; ++i) {
    ir::FloatTensor t({1, features});
    for (double& v : t.data) v = 2 * rng.next_unit_double() - 1;
    samples.push_back({t});
  }
  return samples;
}

using fheml::test::error_of;
using fheml::test::TempDir;

TEST(Artifacts, ServerCircuitRoundTripsExactly) {
  for (const compiler::Circuit& c : {small_mlp(), small_linear()}) {
    const std::vector<std::uint8_t> bytes = serialize_server_circuit(c);
    const compiler::Circuit back = deserialize_server_circuit(bytes);
    EXPECT_EQ(ir::to_string(back.graph), ir::to_string(c.graph));
    EXPECT_EQ(back.width, c.width);
    EXPECT_EQ(back.parameters, c.parameters);
    EXPECT_EQ(back.has_lookups, c.has_lookups);
    EXPECT_EQ(back.inputs[0].scale, c.inputs[0].scale);
    EXPECT_EQ(back.outputs[0].bias, c.outputs[0].bias);
    EXPECT_EQ(back.noise_sites.size(), c.noise_sites.size());
    EXPECT_EQ(serialize_server_circuit(back), bytes);  // deterministic, nothing lost
    EXPECT_EQ(circuit_id(back), circuit_id(c));
  }
  EXPECT_NE(circuit_id(small_mlp()), circuit_id(small_linear()));
}

TEST(Artifacts, ClientSpecHoldsNoWeightsAndRoundTrips) {
  const compiler::Circuit c = small_mlp();
  const ClientSpec spec = make_client_spec(c, "softmax", R"({"classes": [0, 1]})");
  const ClientSpec back = deserialize_client_spec(serialize(spec));
  EXPECT_EQ(back.circuit, spec.circuit);
  EXPECT_EQ(back.circuit_id, circuit_id(c));
  EXPECT_EQ(back.post_processing, "softmax");
  EXPECT_EQ(back.metadata, R"({"classes": [0, 1]})");
  EXPECT_EQ(back.input_quantizers[0].zero_point, c.inputs[0].zero_point);
  // The client's file is far smaller than the server's: encodings and quantizers only.
  EXPECT_LT(serialize(spec).size() * 2, serialize_server_circuit(c).size());
  EXPECT_THROW(make_client_spec(c, "logit"), std::invalid_argument);
}

TEST(Artifacts, ApproximateOutputsTravelWithTheCircuitAndTheSpec) {
  const compiler::Circuit c = small_mlp(2);
  const compiler::Circuit back = deserialize_server_circuit(serialize_server_circuit(c));
  EXPECT_EQ(back.output_noise_bits, 2u);
  EXPECT_EQ(back.noise_sites.back().bits, c.noise_sites.back().bits);
  // Another decoding is another circuit: its replies do not pass for the exact one's.
  EXPECT_NE(circuit_id(c), circuit_id(small_mlp()));
  ClientSpec spec = make_client_spec(c);
  EXPECT_EQ(deserialize_client_spec(serialize(spec)).circuit.outputs[0].noise_bits, 2u);
  // A spec whose noise bits reach its width would decode garbage: refused when read.
  spec.circuit.outputs[0].noise_bits = spec.circuit.outputs[0].width;
  EXPECT_NE(error_of([&] { (void)deserialize_client_spec(serialize(spec)); }).find("noise bits"),
            std::string::npos);
}

TEST(Deploy, ClientServerEqualsLocalExecution) {
  const TempDir dir("deploy");
  const compiler::Circuit c = small_mlp();
  save_artifacts(dir.path() / "model", c, "identity", "{}");
  Client client(dir.path() / "model", dir.path() / "keys");
  client.generate_private_and_evaluation_keys();
  const Server server(dir.path() / "model");
  EXPECT_EQ(server.circuit_id(), circuit_id(c));

  const std::vector<runtime::FloatSample> samples = rows(5, 4, 7);
  const std::vector<std::uint8_t> request = client.quantize_encrypt_serialize(samples);
  const std::vector<std::uint8_t> reply =
      server.run(request, server.load_evaluation_keys(client.serialized_evaluation_keys()));
  const std::vector<runtime::FloatSample> results = client.deserialize_decrypt_dequantize(reply);

  runtime::FheCircuit local(c);
  const std::vector<runtime::FloatSample> clear = local.predict(samples, Mode::kDisable);
  ASSERT_EQ(results.size(), clear.size());
  // Exact rounding: encrypted equals clear (up to the 2^-40 failure bound per bootstrap).
  for (std::size_t s = 0; s < clear.size(); ++s) EXPECT_EQ(results[s][0].data, clear[s][0].data);
}

TEST(Deploy, PartitionedModelsRoundTripAndRunThroughFiles) {
  const compiler::Circuit c = partitioned_mlp();
  ASSERT_GE(c.partitions.size(), 2u) << c.parameter_choice;
  const compiler::Circuit back = deserialize_server_circuit(serialize_server_circuit(c));
  EXPECT_EQ(back.partitions, c.partitions);
  EXPECT_EQ(back.partition, c.partition);
  for (std::size_t i = 0; i < c.noise_sites.size(); ++i) {
    EXPECT_EQ(back.noise_sites[i].sources, c.noise_sites[i].sources);
  }
  const ClientSpec spec = make_client_spec(c);
  EXPECT_EQ(spec.circuit.partitions, c.partitions);
  EXPECT_EQ(deserialize_client_spec(serialize(spec)).circuit, spec.circuit);

  const TempDir dir("deploy");
  save_artifacts(dir.path() / "model", c, "identity", "{}");
  const std::vector<runtime::FloatSample> samples = rows(3, 6, 11);
  std::vector<std::uint8_t> evaluation, reply;
  {
    Client client(dir.path() / "model", dir.path() / "keys");
    client.generate_private_and_evaluation_keys();
    evaluation = client.serialized_evaluation_keys();
    const runtime::CompressedEvaluationKeys parsed = deserialize_evaluation_keys(evaluation);
    EXPECT_EQ(parsed.partition_server_keys.size(), c.partitions.size() - 1);
    const Server server(dir.path() / "model");
    reply = server.run(client.quantize_encrypt_serialize(samples),
                       server.load_evaluation_keys(evaluation));
  }
  // A later session: the secret key file alone brings back every partition's small key (they
  // derive from it), so evaluation keys made again from it run the model and the old reply
  // decrypts.
  fs::remove(dir.path() / "keys" / kEvaluationKeysFile);
  Client again(dir.path() / "model", dir.path() / "keys");
  again.generate_private_and_evaluation_keys();
  runtime::FheCircuit local(c);
  const auto clear = local.predict(samples, Mode::kDisable);
  const auto results = again.deserialize_decrypt_dequantize(reply);
  for (std::size_t s = 0; s < samples.size(); ++s) EXPECT_EQ(results[s][0].data, clear[s][0].data);
  const Server server(dir.path() / "model");
  const auto fresh = again.deserialize_decrypt_dequantize(
      server.run(again.quantize_encrypt_serialize(samples),
                 server.load_evaluation_keys(again.serialized_evaluation_keys())));
  for (std::size_t s = 0; s < samples.size(); ++s) EXPECT_EQ(fresh[s][0].data, clear[s][0].data);
  // The keys of a partition are refused for another model's evaluation.
  const runtime::CompressedEvaluationKeys parsed = deserialize_evaluation_keys(evaluation);
  runtime::CompressedEvaluationKeys missing = parsed;
  missing.partition_server_keys.clear();
  EXPECT_THROW(server.run(again.quantize_encrypt_serialize(samples),
                          server.load_evaluation_keys(serialize(missing))),
               std::invalid_argument);
}

TEST(Deploy, LinearModelsAreExactThroughFilesAndKeysPersist) {
  const TempDir dir("deploy");
  const compiler::Circuit c = small_linear();
  save_artifacts(dir.path(), c, "softmax");
  std::vector<std::uint8_t> evaluation;
  std::vector<std::uint8_t> reply;
  const std::vector<runtime::FloatSample> samples = rows(6, 3, 9);
  {
    Client client(dir.path(), dir.path() / "keys");
    client.generate_private_and_evaluation_keys();
    evaluation = client.serialized_evaluation_keys();
    reply = Server(dir.path()).run(client.quantize_encrypt_serialize(samples), evaluation);
  }
  // A later session: the keys come back from the key directory and decrypt the old reply.
  Client again(dir.path(), dir.path() / "keys");
  again.generate_private_and_evaluation_keys();
  EXPECT_EQ(again.serialized_evaluation_keys(), evaluation);
  runtime::FheCircuit local(c);
  const auto clear = local.predict(samples, Mode::kDisable);
  const auto results = again.deserialize_decrypt_dequantize(reply);
  for (std::size_t s = 0; s < samples.size(); ++s) EXPECT_EQ(results[s][0].data, clear[s][0].data);
  // The secret key file is its owner's only.
  const fs::perms perms = fs::status(dir.path() / "keys" / kClientKeyFile).permissions();
  EXPECT_EQ(perms & (fs::perms::group_all | fs::perms::others_all), fs::perms::none);
}

TEST(Deploy, TheSecretKeyIsInNoArtifactAndNoServerInput) {
  const TempDir dir("deploy");
  save_artifacts(dir.path() / "model", small_mlp());
  Client client(dir.path() / "model", dir.path() / "keys");
  client.generate_private_and_evaluation_keys();
  const std::vector<std::uint8_t> secret = read_file(dir.path() / "keys" / kClientKeyFile);
  const tfhe::ClientKey key = tfhe::deserialize_client_key(secret);
  // The GLWE key's bytes as the serializer writes them (one byte per coefficient): a run of 64
  // of them is a fingerprint no public object reproduces by chance.
  const std::vector<std::uint8_t> glwe = tfhe::serialize(key.glwe_key);
  const std::vector<std::uint8_t> needle(glwe.end() - 16 - 64, glwe.end() - 16);
  const auto contains_key = [&](const std::vector<std::uint8_t>& bytes) {
    return std::search(bytes.begin(), bytes.end(), needle.begin(), needle.end()) != bytes.end();
  };
  ASSERT_TRUE(contains_key(secret));
  for (const auto& entry : fs::directory_iterator(dir.path() / "model")) {
    const std::vector<std::uint8_t> bytes = read_file(entry.path());
    EXPECT_FALSE(contains_key(bytes)) << entry.path();
    EXPECT_NE(tfhe::read_envelope_header(bytes).object_type,
              static_cast<std::uint16_t>(tfhe::ObjectType::kClientKey));
  }
  EXPECT_FALSE(contains_key(client.serialized_evaluation_keys()));
  EXPECT_FALSE(contains_key(client.quantize_encrypt_serialize(rows(2, 4, 3))));
}

TEST(Deploy, InsecureParametersAreRefusedThroughEveryEntryPoint) {
  // A spec or circuit whose parameters sit below the 128-bit curve (a corrupt or hostile maker)
  // is refused by every loader; only the explicitly unsafe option reads it (test vectors).
  compiler::Circuit insecure = small_mlp();
  insecure.parameters.lwe_noise = tfhe::NoiseStdDev{insecure.parameters.lwe_noise.value / 2};
  // Every partition's set below the curve too (partition 0 is the parameters).
  for (tfhe::PbsParameters& p : insecure.partitions) p.lwe_noise = insecure.parameters.lwe_noise;
  const TempDir dir("deploy-insecure");
  std::filesystem::create_directories(dir.path());
  write_file(dir.path() / kServerFile, serialize_server_circuit(insecure));
  ClientSpec spec = make_client_spec(small_mlp());
  spec.circuit.parameters = insecure.parameters;
  spec.circuit.partitions.clear();
  write_file(dir.path() / kClientFile, serialize(spec));
  const auto below_curve = [](const std::string& message) {
    return message.find("below the 128-bit security curve") != std::string::npos;
  };
  const std::vector<std::uint8_t> spec_bytes = read_file(dir.path() / kClientFile);
  const std::vector<std::uint8_t> circuit_bytes = read_file(dir.path() / kServerFile);
  EXPECT_TRUE(below_curve(error_of([&] { (void)deserialize_client_spec(spec_bytes); })));
  EXPECT_TRUE(below_curve(error_of([&] { (void)deserialize_server_circuit(circuit_bytes); })));
  EXPECT_TRUE(below_curve(error_of([&] { Client client(dir.path(), ""); })));
  EXPECT_TRUE(below_curve(error_of([&] { Server server(dir.path()); })));
  const std::vector<std::uint8_t> keys =
      serialize(runtime::CompressedEvaluationKeys{insecure.parameters, std::nullopt, 1, {}});
  EXPECT_TRUE(below_curve(error_of([&] { (void)deserialize_evaluation_keys(keys); })));
  EXPECT_TRUE(below_curve(error_of([&] { (void)runtime::keygen(insecure); })));
  EXPECT_TRUE(below_curve(error_of([&] {
    runtime::FheCircuit fhe(insecure);
    fhe.keygen();
  })));
  tfhe::DeserializeOptions unsafe;
  unsafe.unsafe_allow_insecure_parameters = true;
  EXPECT_NO_THROW((void)deserialize_server_circuit(circuit_bytes, unsafe));
}

TEST(Deploy, BadBytesAreRefusedWithNamedErrors) {
  const TempDir dir("deploy");
  const compiler::Circuit c = small_linear();
  save_artifacts(dir.path(), c);
  Client client(dir.path(), "");
  client.generate_private_and_evaluation_keys();
  const Server server(dir.path());
  const runtime::EvaluationKeys keys =
      server.load_evaluation_keys(client.serialized_evaluation_keys());
  const std::vector<std::uint8_t> request = client.quantize_encrypt_serialize(rows(2, 3, 1));

  // Every truncation of every object is refused, never crashes.
  const std::vector<std::uint8_t> spec = read_file(dir.path() / kClientFile);
  const std::vector<std::uint8_t> circuit = read_file(dir.path() / kServerFile);
  for (std::size_t n = 0; n < spec.size(); n += 7)
    EXPECT_THROW(deserialize_client_spec(std::span(spec).first(n)), tfhe::DeserializationError);
  for (std::size_t n = 0; n < circuit.size(); n += 13)
    EXPECT_THROW(deserialize_server_circuit(std::span(circuit).first(n)),
                 tfhe::DeserializationError);
  for (std::size_t n = 0; n < request.size(); n += 5)
    EXPECT_THROW(server.run(std::span(request).first(n), keys), std::invalid_argument);

  std::vector<std::uint8_t> flipped = request;
  flipped[flipped.size() / 2] ^= 1;
  EXPECT_NE(error_of([&] { server.run(flipped, keys); }).find("checksum"), std::string::npos);

  // Inputs for another model.
  Client other(make_client_spec(small_mlp()), "");
  other.generate_private_and_evaluation_keys();
  const std::vector<std::uint8_t> foreign = other.quantize_encrypt_serialize(rows(1, 4, 2));
  EXPECT_NE(error_of([&] { server.run(foreign, keys); }).find("were made for"), std::string::npos);
  EXPECT_NE(error_of([&] {
              server.load_evaluation_keys(other.serialized_evaluation_keys());
            }).find("made for another parameter set"),
            std::string::npos);
  // The wrong object type.
  EXPECT_NE(error_of([&] { deserialize_client_spec(circuit); }).find("ClientSpec"),
            std::string::npos);

  // Another artifact format version (an older one, 1, before input encodings; a newer one):
  // re-sealed with a valid checksum, refused by its version.
  for (const std::uint64_t version : {std::uint64_t{1}, kArtifactFormatVersion + 1}) {
    std::vector<std::uint8_t> payload(spec.begin() + tfhe::kEnvelopeHeaderBytes,
                                      spec.end() - tfhe::kEnvelopeChecksumBytes);
    payload[0] = static_cast<std::uint8_t>(version);
    tfhe::wire::Writer w = tfhe::wire::begin_envelope(
        tfhe::ObjectType::kClientSpec, tfhe::fingerprint(c.parameters), payload.size());
    w.bytes(payload);
    const std::vector<std::uint8_t> other_version =
        tfhe::wire::finish_envelope(std::move(w), payload.size());
    EXPECT_NE(error_of([&] { deserialize_client_spec(other_version); })
                  .find("artifact format version " + std::to_string(version) +
                        ", this fheml reads " + std::to_string(kArtifactFormatVersion)),
              std::string::npos);
  }

  // A missing artifact names its path; the good request still runs after all of this.
  EXPECT_NE(error_of([&] { Server(dir.path() / "nowhere"); }).find("nowhere"), std::string::npos);
  EXPECT_EQ(client.deserialize_decrypt(server.run(request, keys)).size(), 2u);
  EXPECT_THROW(Client(make_client_spec(c), "").serialized_evaluation_keys(), std::logic_error);
}

}  // namespace
}  // namespace fheml::deploy
