// deploy::KeyStore on real keys: ids are content hashes (idempotent uploads), bad keys are
// refused with the loader's message and leave nothing on disk, ids from outside are checked
// before any path is built, the memory bound evicts least recently used keys without pulling
// them from under a request that holds them, files survive a restart, and a file altered on
// disk is caught by its name.
#include "fheml/deploy/key_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <thread>

#include "deploy/serving_fixtures.h"

namespace fheml::deploy {
namespace {

using test::deployed;
using test::ModelKind;
using test::TempDir;
using ::testing::HasSubstr;

namespace fs = std::filesystem;

std::vector<fs::path> files_in(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

// The keys compute: a batch encrypted by the model's client, run with them, decrypts to the
// clear integer circuit's result.
void expect_keys_work(const Server& server, const runtime::EvaluationKeys& keys,
                      const test::DeployedModel& model) {
  std::mt19937 rng(11);
  const auto floats = test::uniform_samples(model.circuit.inputs[0].shape, 3, rng);
  std::vector<runtime::IntSample> samples;
  for (const auto& f : floats) samples.push_back({model.circuit.inputs[0].quantize(f[0])});
  auto client = model.new_client();
  const auto reply = server.run(client->encrypt_serialize(samples), keys);
  EXPECT_EQ(client->deserialize_decrypt(reply), runtime::run_clear(model.circuit, samples));
}

TEST(KeyStore, IdIsTheContentHashAndUploadsAreIdempotent) {
  const auto& model = deployed(ModelKind::kMlp);
  const Server server(model.artifact_dir);
  TempDir dir("key-store");
  KeyStore store(server, dir.path(), 4);

  const KeyStore::PutResult first = store.put(model.keys);
  EXPECT_TRUE(first.created);
  EXPECT_TRUE(is_valid_key_id(first.key_id)) << first.key_id;
  EXPECT_EQ(first.key_id, key_id_of(model.keys));
  // Written before put() returned, byte for byte as uploaded (compressed), and nothing else.
  EXPECT_EQ(files_in(dir.path()), std::vector<fs::path>{dir.path() / (first.key_id + ".keys")});
  EXPECT_EQ(read_file(dir.path() / (first.key_id + ".keys")), model.keys);

  const KeyStore::PutResult again = store.put(model.keys);
  EXPECT_FALSE(again.created);
  EXPECT_EQ(again.key_id, first.key_id);
  EXPECT_EQ(files_in(dir.path()).size(), 1u);
  EXPECT_EQ(store.in_memory(), 1u);

  const auto keys = store.get(first.key_id);
  ASSERT_NE(keys, nullptr);
  expect_keys_work(server, *keys, model);
}

TEST(KeyStore, RefusesBadKeysWithTheLoadersMessageAndStoresNothing) {
  const auto& model = deployed(ModelKind::kMlp);
  const Server server(model.artifact_dir);
  TempDir dir("key-store");
  KeyStore store(server, dir.path(), 4);

  const auto refuses = [&](std::vector<std::uint8_t> bytes, const std::string& message) {
    try {
      store.put(bytes);
      ADD_FAILURE() << "accepted keys that should say: " << message;
    } catch (const std::invalid_argument& e) {
      EXPECT_THAT(e.what(), HasSubstr(message));
    }
  };
  refuses({}, "");
  refuses({model.keys.begin(), model.keys.begin() + 100}, "");
  std::vector<std::uint8_t> flipped = model.keys;
  flipped[flipped.size() / 2] ^= 1;
  refuses(flipped, "checksum");
  // Keys of a circuit without lookups: other parameters, and no server key.
  refuses(deployed(ModelKind::kLinear).keys, "");
  EXPECT_TRUE(files_in(dir.path()).empty());
  EXPECT_EQ(store.in_memory(), 0u);
}

TEST(KeyStore, ChecksIdsBeforeBuildingAnyPath) {
  const auto& model = deployed(ModelKind::kMlp);
  const Server server(model.artifact_dir);
  TempDir dir("key-store");
  KeyStore store(server, dir.path(), 4);
  const std::string id = store.put(model.keys).key_id;
  std::string upper = id;
  std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
  for (const std::string& bad :
       {std::string("../../etc/passwd"), std::string(""), id.substr(1), id + "0", upper,
        "../" + id.substr(3), id.substr(0, 31) + "/", id.substr(0, 31) + "g", std::string(32, '.'),
        id.substr(0, 16) + std::string(1, '\0') + id.substr(17)}) {
    if (bad == id) continue;  // the upper-casing of an id without letters
    EXPECT_THROW(store.get(bad), std::invalid_argument) << bad;
  }
  std::string unknown = id;
  unknown[0] = unknown[0] == '0' ? '1' : '0';
  try {
    store.get(unknown);
    ADD_FAILURE() << "an id never uploaded was found";
  } catch (const UnknownKeyError& e) {
    EXPECT_THAT(e.what(), HasSubstr("unknown key id " + unknown));
  }
}

TEST(KeyStore, EvictsLeastRecentlyUsedButKeysInUseStayAlive) {
  const auto& model = deployed(ModelKind::kMlp);
  const Server server(model.artifact_dir);
  TempDir dir("key-store");
  KeyStore store(server, dir.path(), 1);
  // A second client of the same model with keys of its own (memory only).
  Client other(model.artifact_dir, "");
  other.generate_private_and_evaluation_keys();

  const std::string a = store.put(model.keys).key_id;
  const auto held = store.get(a);  // a request in flight
  const std::string b = store.put(other.serialized_evaluation_keys()).key_id;
  EXPECT_NE(a, b);
  EXPECT_EQ(store.in_memory(), 1u);
  expect_keys_work(server, *held, model);  // evicted from the cache, still alive here
  // Reloaded from disk on demand: a different object, the same keys.
  const auto reloaded = store.get(a);
  EXPECT_NE(reloaded, held);
  expect_keys_work(server, *reloaded, model);
  EXPECT_EQ(store.in_memory(), 1u);
}

TEST(KeyStore, KeysSurviveARestartAndConcurrentReloadsShareOneCopy) {
  const auto& model = deployed(ModelKind::kMlp);
  const Server server(model.artifact_dir);
  TempDir dir("key-store");
  const std::string id = KeyStore(server, dir.path(), 2).put(model.keys).key_id;

  KeyStore restarted(server, dir.path(), 2);
  EXPECT_EQ(restarted.in_memory(), 0u);
  std::vector<std::shared_ptr<const runtime::EvaluationKeys>> got(4);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < got.size(); ++t) {
    threads.emplace_back([&, t] { got[t] = restarted.get(id); });
  }
  for (auto& t : threads) t.join();
  for (const auto& keys : got) EXPECT_EQ(keys, got[0]);
  EXPECT_EQ(restarted.in_memory(), 1u);
  expect_keys_work(server, *got[0], model);
}

// Servers behind one load balancer share a key directory: each process has its own store.
TEST(KeyStore, StoresSharingADirectoryUploadConcurrentlyAndSeeEachOthersKeys) {
  const auto& model = deployed(ModelKind::kMlp);
  const Server server_a(model.artifact_dir), server_b(model.artifact_dir);
  TempDir dir("key-store");
  KeyStore a(server_a, dir.path(), 2), b(server_b, dir.path(), 2);
  std::vector<std::string> ids(6);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < ids.size(); ++t) {
    threads.emplace_back([&, t] { ids[t] = (t % 2 ? a : b).put(model.keys).key_id; });
  }
  for (auto& t : threads) t.join();
  for (const std::string& id : ids) EXPECT_EQ(id, key_id_of(model.keys));
  // One whole file, no temporary left behind.
  EXPECT_EQ(files_in(dir.path()), std::vector<fs::path>{dir.path() / (ids[0] + ".keys")});
  EXPECT_EQ(read_file(dir.path() / (ids[0] + ".keys")), model.keys);
  // A store that never saw the upload serves the keys (another process behind the balancer).
  KeyStore c(server_a, dir.path(), 1);
  expect_keys_work(server_a, *c.get(ids[0]), model);
}

// Concurrent writers of one path (threads here, processes in a server fleet): every write
// succeeds and the file always holds one writer's whole content.
TEST(WriteFile, ConcurrentWritersOfOnePathLeaveOneWholeFile) {
  TempDir dir("write-file");
  const fs::path path = dir.path() / "shared.bin";
  constexpr std::size_t kWriters = 6, kWrites = 15, kBytes = 256 * 1024;
  std::vector<std::vector<std::uint8_t>> payloads;
  for (std::size_t w = 0; w < kWriters; ++w) {
    payloads.emplace_back(kBytes, static_cast<std::uint8_t>(w + 1));
  }
  std::atomic<std::size_t> failures{0};
  std::vector<std::thread> threads;
  for (std::size_t w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (std::size_t i = 0; i < kWrites; ++i) {
        try {
          write_file(path, payloads[w]);
        } catch (const std::exception&) {
          ++failures;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0u);
  const std::vector<std::uint8_t> stored = read_file(path);
  EXPECT_NE(std::find(payloads.begin(), payloads.end(), stored), payloads.end())
      << "the file mixes writers' content (" << stored.size() << " bytes)";
  EXPECT_EQ(files_in(dir.path()), std::vector<fs::path>{path});
}

TEST(KeyStore, AFileAlteredOnDiskIsAServerFaultNotKeys) {
  const auto& model = deployed(ModelKind::kMlp);
  const Server server(model.artifact_dir);
  TempDir dir("key-store");
  const std::string id = KeyStore(server, dir.path(), 2).put(model.keys).key_id;
  std::vector<std::uint8_t> bytes = model.keys;
  bytes[bytes.size() / 3] ^= 0x10;
  write_file(dir.path() / (id + ".keys"), bytes);

  KeyStore restarted(server, dir.path(), 2);
  try {
    restarted.get(id);
    ADD_FAILURE() << "altered keys were served";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("the file was altered on disk"));
  }
  // Uploading the keys again repairs the file.
  EXPECT_EQ(restarted.put(model.keys).key_id, id);
  KeyStore repaired(server, dir.path(), 2);
  expect_keys_work(server, *repaired.get(id), model);
}

TEST(KeyStore, MaxOnDiskDeletesTheOldestFiles) {
  const auto& model = deployed(ModelKind::kMlp);
  const Server server(model.artifact_dir);
  TempDir dir("key-store");
  KeyStore store(server, dir.path(), 1, /*max_on_disk=*/1);
  Client other(model.artifact_dir, "");
  other.generate_private_and_evaluation_keys();
  const std::string a = store.put(model.keys).key_id;
  const std::string b = store.put(other.serialized_evaluation_keys()).key_id;
  EXPECT_EQ(files_in(dir.path()), std::vector<fs::path>{dir.path() / (b + ".keys")});
  EXPECT_THROW(store.get(a), UnknownKeyError);
  EXPECT_NE(store.get(b), nullptr);
}

TEST(KeyStore, RefusesAZeroMemoryBound) {
  const Server server(deployed(ModelKind::kLinear).artifact_dir);
  TempDir dir("key-store");
  EXPECT_THROW(KeyStore(server, dir.path(), 0), std::invalid_argument);
}

}  // namespace
}  // namespace fheml::deploy
