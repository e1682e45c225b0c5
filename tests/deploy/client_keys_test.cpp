// The client's key directory: the one thing a user cannot recreate is the secret key, so it is
// never overwritten nor deleted, and keys of one model never pass silently for another's.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "fheml/deploy/deploy.h"
#include "fheml/models/linear_model.h"
#include "test_helpers.h"

namespace fheml::deploy {
namespace {

namespace fs = std::filesystem;
using test::error_of;

compiler::Circuit linear(double weight) {
  const models::Matrix coef{2, 1, {weight, -0.5}};
  const models::Matrix rows{3, 2, {0, 1, 2, -1, 0.5, 3}};
  models::LinearModel model(coef, std::vector<double>{0.1}, models::Link::kIdentity, rows);
  return model.circuit().circuit();
}

std::vector<runtime::FloatSample> one_row() {
  return {{ir::FloatTensor({1, 2}, std::vector<double>{0.5, 1.0})}};
}

unsigned mode_of(const fs::path& p) {
  struct stat st {};
  ::stat(p.c_str(), &st);
  return st.st_mode & 0777u;
}

TEST(ClientKeys, AnotherModelsKeysAreRefusedNamingBothModels) {
  test::TempDir dir("keys-other-model");
  const ClientSpec a = make_client_spec(linear(1.0)), b = make_client_spec(linear(-1.0));
  ASSERT_EQ(a.circuit.parameters, b.circuit.parameters);  // same parameters: only the id tells
  Client(a, dir.path()).generate_private_and_evaluation_keys();
  Client other(b, dir.path());
  const std::string message = error_of([&] { other.generate_private_and_evaluation_keys(); });
  EXPECT_NE(message.find("were made for model"), std::string::npos) << message;
  EXPECT_NE(message.find("this model is"), std::string::npos) << message;
  EXPECT_FALSE(other.has_keys());
}

TEST(ClientKeys, LostEvaluationKeysAreRemadeFromTheKeptSecretKey) {
  test::TempDir dir("keys-lost-evaluation");
  const ClientSpec spec = make_client_spec(linear(1.0));
  Client first(spec, dir.path() / "keys");
  first.generate_private_and_evaluation_keys();
  EXPECT_EQ(mode_of(dir.path() / "keys"), 0700u);
  EXPECT_EQ(mode_of(dir.path() / "keys" / kClientKeyFile), 0600u);
  const std::vector<std::uint8_t> secret = read_file(dir.path() / "keys" / kClientKeyFile);
  Server server(linear(1.0));
  const auto reply =
      server.run(first.quantize_encrypt_serialize(one_row()), first.serialized_evaluation_keys());
  fs::remove(dir.path() / "keys" / kEvaluationKeysFile);

  Client again(spec, dir.path() / "keys");
  again.generate_private_and_evaluation_keys();
  EXPECT_EQ(read_file(dir.path() / "keys" / kClientKeyFile), secret);
  EXPECT_TRUE(fs::exists(dir.path() / "keys" / kEvaluationKeysFile));
  // The reply made under the kept key still decrypts.
  EXPECT_EQ(again.deserialize_decrypt(reply), first.deserialize_decrypt(reply));
}

TEST(ClientKeys, ForceMovesTheOldSecretKeyAsideNeverDeletesIt) {
  test::TempDir dir("keys-force");
  const ClientSpec spec = make_client_spec(linear(1.0));
  Client(spec, dir.path()).generate_private_and_evaluation_keys();
  const std::vector<std::uint8_t> old_secret = read_file(dir.path() / kClientKeyFile);
  Client client(spec, dir.path());
  client.generate_private_and_evaluation_keys(/*force=*/true);
  EXPECT_EQ(read_file(dir.path() / (std::string(kClientKeyFile) + ".replaced.1")), old_secret);
  EXPECT_NE(read_file(dir.path() / kClientKeyFile), old_secret);
  EXPECT_EQ(mode_of(dir.path() / kClientKeyFile), 0600u);
  // Writing a secret key never replaces a file already there.
  EXPECT_NE(error_of([&] {
              write_file(dir.path() / kClientKeyFile, std::vector<std::uint8_t>{1, 2, 3}, true,
                         /*replace=*/false);
            }).find("never overwritten"),
            std::string::npos);
  EXPECT_NE(read_file(dir.path() / kClientKeyFile), (std::vector<std::uint8_t>{1, 2, 3}));
}

TEST(ClientKeys, AReplyUnderAnotherKeyIsRefusedNamingBothKeys) {
  // Issue 11, case 3: it used to decrypt to garbage.
  const ClientSpec spec = make_client_spec(linear(1.0));
  Client alice(spec, ""), bob(spec, "");
  alice.generate_private_and_evaluation_keys();
  bob.generate_private_and_evaluation_keys();
  ASSERT_NE(alice.key_id(), bob.key_id());
  Server server(linear(1.0));
  const auto reply =
      server.run(alice.quantize_encrypt_serialize(one_row()), alice.serialized_evaluation_keys());
  EXPECT_EQ(alice.deserialize_decrypt(reply).size(), 1u);
  const std::string message = error_of([&] { bob.deserialize_decrypt(reply); });
  EXPECT_NE(message.find(hex_id(alice.key_id())), std::string::npos) << message;
  EXPECT_NE(message.find(hex_id(bob.key_id())), std::string::npos) << message;
  EXPECT_NE(error_of([&] { bob.deserialize_decrypt_dequantize(reply); }), "");
}

TEST(ClientKeys, TheServerRefusesInputsWithAnotherKeysEvaluationKeys) {
  const ClientSpec spec = make_client_spec(linear(1.0));
  Client alice(spec, ""), bob(spec, "");
  alice.generate_private_and_evaluation_keys();
  bob.generate_private_and_evaluation_keys();
  Server server(linear(1.0));
  const std::string message = error_of([&] {
    server.run(alice.quantize_encrypt_serialize(one_row()), bob.serialized_evaluation_keys());
  });
  EXPECT_NE(message.find("the encrypted inputs are under key " + hex_id(alice.key_id())),
            std::string::npos)
      << message;
  EXPECT_NE(message.find(hex_id(bob.key_id())), std::string::npos) << message;
}

TEST(ClientKeys, TheKeyIdIsTheSecretKeysAndSurvivesRemadeEvaluationKeys) {
  test::TempDir dir("keys-id");
  const ClientSpec spec = make_client_spec(linear(1.0));
  Client first(spec, dir.path() / "k");
  EXPECT_THROW(first.key_id(), std::logic_error);
  first.generate_private_and_evaluation_keys();
  fs::remove(dir.path() / "k" / kEvaluationKeysFile);
  Client again(spec, dir.path() / "k");
  again.generate_private_and_evaluation_keys();
  EXPECT_EQ(again.key_id(), first.key_id());
  EXPECT_EQ(deserialize_evaluation_keys(again.serialized_evaluation_keys()).key_id, first.key_id());
}

TEST(ClientKeys, EvaluationKeysOfAnotherSecretKeyInTheDirectoryAreRefused) {
  test::TempDir dir("keys-mixed");
  const ClientSpec spec = make_client_spec(linear(1.0));
  Client(spec, dir.path() / "a").generate_private_and_evaluation_keys();
  Client(spec, dir.path() / "b").generate_private_and_evaluation_keys();
  fs::copy_file(dir.path() / "b" / kEvaluationKeysFile, dir.path() / "a" / kEvaluationKeysFile,
                fs::copy_options::overwrite_existing);
  Client client(spec, dir.path() / "a");
  const std::string message = error_of([&] { client.generate_private_and_evaluation_keys(); });
  EXPECT_NE(message.find("were made from secret key"), std::string::npos) << message;
  EXPECT_FALSE(client.has_keys());
}

TEST(ClientKeys, ASecretKeyOthersCanReadIsRefusedUnlessAllowed) {
  test::TempDir dir("keys-readable");
  const ClientSpec spec = make_client_spec(linear(1.0));
  const fs::path keys = dir.path() / "k";
  Client(spec, keys).generate_private_and_evaluation_keys();
  for (const char* file : {kClientKeyFile, kEvaluationKeysFile, kKeysCircuitFile})
    EXPECT_EQ(mode_of(keys / file), 0600u) << file;
  const std::vector<std::uint8_t> secret = read_file(keys / kClientKeyFile);
  fs::permissions(keys / kClientKeyFile, fs::perms::group_read | fs::perms::others_read,
                  fs::perm_options::add);
  Client strict(spec, keys);
  const std::string message = error_of([&] { strict.generate_private_and_evaluation_keys(); });
  EXPECT_NE(message.find("readable or writable by others (mode 0644)"), std::string::npos)
      << message;
  EXPECT_FALSE(strict.has_keys());
  EXPECT_EQ(mode_of(keys / kClientKeyFile), 0644u);  // refused, not changed behind the user's back

  test::CapturedWarnings warnings;
  ClientOptions lenient;
  lenient.allow_readable_secret_key = true;
  Client allowed(spec, keys, lenient);
  allowed.generate_private_and_evaluation_keys();
  EXPECT_TRUE(allowed.has_keys());
  EXPECT_EQ(read_file(keys / kClientKeyFile), secret);
  EXPECT_EQ(warnings.of(WarningKind::kKeyPermissions).size(), 1u);
}

TEST(ClientKeys, AnExistingOpenDirectoryIsKeptWithAWarning) {
  test::TempDir dir("keys-open-dir");
  const fs::path keys = dir.path() / "open";
  fs::create_directory(keys);
  fs::permissions(keys, fs::perms(0755), fs::perm_options::replace);
  test::CapturedWarnings warnings;
  Client client(make_client_spec(linear(1.0)), keys);
  client.generate_private_and_evaluation_keys();
  EXPECT_EQ(mode_of(keys), 0755u);  // left alone
  const auto said = warnings.of(WarningKind::kKeyPermissions);
  ASSERT_EQ(said.size(), 1u);
  EXPECT_NE(said[0].find("mode 0755"), std::string::npos) << said[0];
  // A private one says nothing.
  test::CapturedWarnings quiet;
  Client(make_client_spec(linear(1.0)), dir.path() / "private")
      .generate_private_and_evaluation_keys();
  Client(make_client_spec(linear(1.0)), dir.path() / "private")
      .generate_private_and_evaluation_keys();
  EXPECT_TRUE(quiet.of(WarningKind::kKeyPermissions).empty());
}

TEST(ClientKeys, OutOfRangeInputsWarnRaiseOrClipAsAsked) {
  // Issue 11, case 5: a value far beyond the calibrated range was clipped silently.
  const ClientSpec spec = make_client_spec(linear(1.0));
  const std::vector<runtime::FloatSample> far = {
      {ir::FloatTensor({1, 2}, std::vector<double>{0.5, 1e15})},
      {ir::FloatTensor({1, 2}, std::vector<double>{0.5, 1.0})}};
  {
    test::CapturedWarnings warnings;
    Client client(spec, "");
    client.generate_private_and_evaluation_keys();
    client.quantize_encrypt_serialize(one_row());
    EXPECT_TRUE(warnings.of(WarningKind::kInputRange).empty());
    client.quantize_encrypt_serialize(far);
    const auto said = warnings.of(WarningKind::kInputRange);
    ASSERT_EQ(said.size(), 1u);
    EXPECT_NE(said[0].find("1 value in 1 of 2 rows"), std::string::npos) << said[0];
    EXPECT_NE(said[0].find("feature 1: 1"), std::string::npos) << said[0];
  }
  {
    ClientOptions raise;
    raise.out_of_range = quant::OutOfRange::kRaise;
    Client client(spec, "", raise);
    client.generate_private_and_evaluation_keys();
    const std::string message = error_of([&] { client.quantize_encrypt_serialize(far); });
    EXPECT_NE(message.find("refused"), std::string::npos) << message;
    EXPECT_NE(message.find("feature 1"), std::string::npos) << message;
  }
  {
    test::CapturedWarnings warnings;
    ClientOptions clip;
    clip.out_of_range = quant::OutOfRange::kClip;
    Client client(spec, "", clip);
    client.generate_private_and_evaluation_keys();
    client.quantize_encrypt_serialize(far);
    EXPECT_TRUE(warnings.of(WarningKind::kInputRange).empty());
  }
}

}  // namespace
}  // namespace fheml::deploy
