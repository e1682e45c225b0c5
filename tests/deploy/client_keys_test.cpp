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

}  // namespace
}  // namespace fheml::deploy
