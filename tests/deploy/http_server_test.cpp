// The HTTP inference server (`fheml serve`, cli::HttpServer) in-process on a loopback port,
// called with cpp-httplib's client on real models and real keys: results through HTTP equal
// local execution; keys survive a restart; concurrent clients for a fixed time see no error;
// every bad request of a corpus gets its status and message and leaves the server serving with
// its stored keys; the secret key reaches neither the wire nor the server's disk.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "deploy/serving_fixtures.h"
#include "fheml/cli/commands.h"
#include "fheml/deploy/key_store.h"
#include "fheml/tfhe/serialization.h"
#include "tfhe/test_support.h"

namespace fheml::deploy {
namespace {

using json = nlohmann::json;
using test::deployed;
using test::DeployedModel;
using test::ModelKind;
using test::TempDir;
using ::testing::HasSubstr;

namespace fs = std::filesystem;

std::string as_string(std::span<const std::uint8_t> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

std::span<const std::uint8_t> as_bytes(const std::string& body) {
  return {reinterpret_cast<const std::uint8_t*>(body.data()), body.size()};
}

// A server serving on its own thread, stopped and joined at the end of the scope.
class RunningServer {
 public:
  explicit RunningServer(const cli::ServeOptions& options)
      : server_(options), thread_([this] { server_.serve(); }) {}
  ~RunningServer() {
    server_.stop();
    thread_.join();
  }
  int port() const { return server_.port(); }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", server_.port());
    c.set_read_timeout(120);
    c.set_write_timeout(120);
    return c;
  }

 private:
  cli::HttpServer server_;
  std::thread thread_;
};

cli::ServeOptions options_for(const fs::path& artifact_dir, const fs::path& key_dir) {
  cli::ServeOptions options;
  options.artifact_dir = artifact_dir;
  options.key_dir = key_dir;
  options.port = 0;
  options.threads = 4;
  options.log = false;
  return options;
}

json json_of(const httplib::Result& r) {
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
  return json::parse(r->body);
}

std::string upload_keys(httplib::Client& http, const std::vector<std::uint8_t>& keys,
                        int expected_status) {
  const auto r = http.Post("/keys", as_string(keys), "application/octet-stream");
  if (!r) {
    ADD_FAILURE() << "POST /keys: " << httplib::to_string(r.error());
    return "";
  }
  EXPECT_EQ(r->status, expected_status) << r->body;
  return json_of(r).value("key_id", "");
}

std::vector<runtime::IntSample> quantized(const compiler::Circuit& circuit,
                                          const std::vector<runtime::FloatSample>& floats) {
  std::vector<runtime::IntSample> samples;
  for (const auto& f : floats) samples.push_back({circuit.inputs[0].quantize(f[0])});
  return samples;
}

TEST(HttpServer, HealthAndInfoDescribeTheModel) {
  const DeployedModel& model = deployed(ModelKind::kMlp);
  TempDir keys("http-keys");
  RunningServer server(options_for(model.artifact_dir, keys.path()));
  auto http = server.client();

  const auto health = http.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(json_of(health), (json{{"status", "ok"}}));

  const auto info = http.Get("/info");
  ASSERT_TRUE(info);
  ASSERT_EQ(info->status, 200);
  const json j = json_of(info);
  char id[17];
  std::snprintf(id, sizeof id, "%016llx",
                static_cast<unsigned long long>(circuit_id(model.circuit)));
  EXPECT_EQ(j["circuit_id"], id);
  EXPECT_EQ(j["has_lookups"], true);
  EXPECT_EQ(j["parameters"]["polynomial_size"], model.circuit.parameters.polynomial_size.value);
  EXPECT_EQ(j["parameters"]["lwe_dimension"], model.circuit.parameters.lwe_dimension.value);
  EXPECT_EQ(j["inputs"][0]["shape"], (json{1, 2}));
  EXPECT_EQ(j["outputs"][0]["shape"], (json{1, 1}));
  EXPECT_GT(j["per_sample"]["input_bytes"].get<std::size_t>(), 0u);
  EXPECT_GT(j["per_sample"]["bootstraps"].get<std::size_t>(), 0u);
  EXPECT_FALSE(j["fheml_version"].get<std::string>().empty());
  std::printf("GET /info: %s\n", j.dump().c_str());
}

// Client -> HTTP -> client equals the model run locally: the clear integer circuit (which
// execute equals exactly), and FheCircuit's own execute and disable predictions.
void expect_end_to_end(ModelKind kind) {
  const DeployedModel& model = deployed(kind);
  TempDir keys("http-keys");
  RunningServer server(options_for(model.artifact_dir, keys.path()));
  auto http = server.client();

  const std::string id = upload_keys(http, model.keys, 201);
  EXPECT_TRUE(is_valid_key_id(id)) << id;
  EXPECT_EQ(upload_keys(http, model.keys, 200), id);  // idempotent

  std::mt19937 rng(5);
  const auto floats = test::uniform_samples(model.circuit.inputs[0].shape, 6, rng);
  auto client = model.new_client();
  const auto request = client->quantize_encrypt_serialize(floats);
  const auto r = http.Post("/run/" + id, as_string(request), "application/octet-stream");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/octet-stream");

  EXPECT_EQ(client->deserialize_decrypt(as_bytes(r->body)),
            runtime::run_clear(model.circuit, quantized(model.circuit, floats)));
  runtime::FheCircuit local(model.circuit);
  const auto decrypted = client->deserialize_decrypt_dequantize(as_bytes(r->body));
  EXPECT_EQ(decrypted, local.predict(floats, runtime::Mode::kDisable));
  // Keys of its own and a run: most of this test's time under the sanitizers, which check
  // memory, not arithmetic.
  if (!fheml::test::sanitize_profile()) {
    EXPECT_EQ(decrypted, local.predict(floats, runtime::Mode::kExecute));
  }
}

TEST(HttpServer, EndToEndEqualsLocalExecutionWithLookups) { expect_end_to_end(ModelKind::kMlp); }

TEST(HttpServer, EndToEndEqualsLocalExecutionLinearOnly) { expect_end_to_end(ModelKind::kLinear); }

TEST(HttpServer, StoredKeysSurviveARestart) {
  const DeployedModel& model = deployed(ModelKind::kMlp);
  TempDir keys("http-keys");
  std::string id;
  {
    RunningServer first(options_for(model.artifact_dir, keys.path()));
    auto http = first.client();
    id = upload_keys(http, model.keys, 201);
  }
  RunningServer second(options_for(model.artifact_dir, keys.path()));
  auto http = second.client();
  std::mt19937 rng(6);
  const auto samples =
      quantized(model.circuit, test::uniform_samples(model.circuit.inputs[0].shape, 2, rng));
  auto client = model.new_client();
  const auto r = http.Post("/run/" + id, as_string(client->encrypt_serialize(samples)),
                           "application/octet-stream");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(client->deserialize_decrypt(as_bytes(r->body)),
            runtime::run_clear(model.circuit, samples));
  EXPECT_EQ(upload_keys(http, model.keys, 200), id);  // already stored, from the first run
}

// Keys altered on the server's disk are the server's fault (500), not the client's; the client
// uploads them again and is served.
TEST(HttpServer, AKeyFileAlteredOnDiskIsAServerFaultThatAnUploadRepairs) {
  const DeployedModel& model = deployed(ModelKind::kMlp);
  TempDir keys("http-keys");
  RunningServer server(options_for(model.artifact_dir, keys.path()));
  auto http = server.client();
  // Stored by an earlier run of the server, then altered.
  const std::string id =
      KeyStore(Server(model.artifact_dir), keys.path(), 1).put(model.keys).key_id;
  std::vector<std::uint8_t> altered = model.keys;
  altered[altered.size() / 2] ^= 0x01;
  write_file(keys.path() / (id + ".keys"), altered);

  std::mt19937 rng(12);
  const auto samples =
      quantized(model.circuit, test::uniform_samples(model.circuit.inputs[0].shape, 1, rng));
  auto client = model.new_client();
  const std::string request = as_string(client->encrypt_serialize(samples));
  const auto failed = http.Post("/run/" + id, request, "application/octet-stream");
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->status, 500);
  EXPECT_THAT(json_of(failed)["error"].get<std::string>(),
              HasSubstr("the file was altered on disk; upload the evaluation keys again"));

  EXPECT_EQ(upload_keys(http, model.keys, 200), id);
  const auto r = http.Post("/run/" + id, request, "application/octet-stream");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(client->deserialize_decrypt(as_bytes(r->body)),
            runtime::run_clear(model.circuit, samples));
}

TEST(HttpServer, ConcurrentClientsForAFixedTimeSeeNoError) {
  const DeployedModel& model = deployed(ModelKind::kMlp);
  TempDir keys("http-keys");
  RunningServer server(options_for(model.artifact_dir, keys.path()));
  std::string id;
  {
    auto http = server.client();
    id = upload_keys(http, model.keys, 201);
  }
  constexpr std::size_t kClients = 4;
  constexpr std::size_t kRequestsPerClient = 4;  // prepared ahead, sent in turn
  const auto duration = std::chrono::seconds(3);
  using Clock = std::chrono::steady_clock;

  struct Prepared {
    std::string body;
    std::vector<runtime::IntSample> expected;
  };
  std::vector<std::vector<double>> latencies_ms(kClients);
  std::vector<std::size_t> errors(kClients, 0);
  std::vector<std::string> first_error(kClients);
  std::vector<std::thread> threads;
  const Clock::time_point start = Clock::now() + std::chrono::milliseconds(200);
  for (std::size_t t = 0; t < kClients; ++t) {
    threads.emplace_back([&, t] {
      auto client = model.new_client();
      std::mt19937 rng(static_cast<unsigned>(100 + t));
      std::vector<Prepared> prepared;
      for (std::size_t i = 0; i < kRequestsPerClient; ++i) {
        const auto samples = quantized(
            model.circuit, test::uniform_samples(model.circuit.inputs[0].shape, 1 + i % 2, rng));
        prepared.push_back({as_string(client->encrypt_serialize(samples)),
                            runtime::run_clear(model.circuit, samples)});
      }
      auto http = server.client();
      std::this_thread::sleep_until(start);
      for (std::size_t i = 0; Clock::now() - start < duration; ++i) {
        const Prepared& p = prepared[i % prepared.size()];
        const Clock::time_point sent = Clock::now();
        const auto r = http.Post("/run/" + id, p.body, "application/octet-stream");
        latencies_ms[t].push_back(
            std::chrono::duration<double, std::milli>(Clock::now() - sent).count());
        std::string error;
        if (!r) {
          error = "no answer: " + httplib::to_string(r.error());
        } else if (r->status != 200) {
          error = std::to_string(r->status) + " " + r->body;
        } else if (client->deserialize_decrypt(as_bytes(r->body)) != p.expected) {
          error = "decrypted result differs from the clear circuit";
        }
        if (!error.empty() && errors[t]++ == 0) first_error[t] = error;
      }
    });
  }
  for (auto& t : threads) t.join();

  std::vector<double> all;
  for (std::size_t t = 0; t < kClients; ++t) {
    EXPECT_EQ(errors[t], 0u) << "client " << t << ": " << first_error[t];
    EXPECT_FALSE(latencies_ms[t].empty()) << "client " << t << " sent nothing";
    all.insert(all.end(), latencies_ms[t].begin(), latencies_ms[t].end());
  }
  ASSERT_FALSE(all.empty());
  std::sort(all.begin(), all.end());
  const auto percentile = [&](double q) {
    return all[std::min(all.size() - 1, static_cast<std::size_t>(q * all.size()))];
  };
  std::printf(
      "load: %zu clients, %zu requests of 1-2 samples in %lld s (%.1f/s): latency p50 "
      "%.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms\n",
      kClients, all.size(), static_cast<long long>(duration.count()),
      static_cast<double>(all.size()) / static_cast<double>(duration.count()), percentile(0.50),
      percentile(0.95), percentile(0.99), all.back());
}

// One bad request: what is sent, and the status and message part it must be answered with.
struct BadRequest {
  std::string name;
  std::string method;
  std::string path;
  std::string body;
  int status;
  std::string message;
  std::string content_type = "";  // empty: application/octet-stream
};

TEST(HttpServer, BadRequestsGetTheirStatusAndMessageAndTheServerKeepsServing) {
  const DeployedModel& model = deployed(ModelKind::kMlp);
  const DeployedModel& sibling = deployed(ModelKind::kMlp, 1);  // same shapes, other weights
  const DeployedModel& linear = deployed(ModelKind::kLinear);
  ASSERT_NE(circuit_id(sibling.circuit), circuit_id(model.circuit));
  TempDir keys("http-keys");
  cli::ServeOptions options = options_for(model.artifact_dir, keys.path());
  options.max_body_bytes = model.keys.size() + 4096;
  RunningServer server(options);
  auto http = server.client();
  const std::string id = upload_keys(http, model.keys, 201);
  ASSERT_FALSE(id.empty());

  std::mt19937 rng(8);
  const auto samples =
      quantized(model.circuit, test::uniform_samples(model.circuit.inputs[0].shape, 2, rng));
  auto client = model.new_client();
  const std::vector<std::uint8_t> good = client->encrypt_serialize(samples);
  // Well-formed envelopes (checksums recomputed) whose content does not fit the circuit.
  const auto edited = [&](const std::function<void(EncryptedInputs&)>& edit) {
    EncryptedInputs inputs = deserialize_encrypted_inputs(good);
    edit(inputs);
    return as_string(serialize(inputs));
  };
  std::string flipped = as_string(good);
  flipped[flipped.size() / 2] ^= 0x40;
  std::string flipped_keys = as_string(model.keys);
  flipped_keys[flipped_keys.size() / 2] ^= 0x01;
  const std::string secret_key = as_string(read_file(model.client_key_dir / kClientKeyFile));
  std::string unknown_id = id;
  unknown_id[0] = unknown_id[0] == 'a' ? 'b' : 'a';
  const std::string run = "/run/" + id;
  const std::string sibling_inputs = as_string(sibling.new_client()->encrypt_serialize(samples));

  const std::vector<BadRequest> corpus{
      {"truncated inputs", "POST", run, as_string(good).substr(0, good.size() / 2), 400,
       "truncated"},
      {"inputs cut inside the header", "POST", run, as_string(good).substr(0, 10), 400,
       "truncated header"},
      {"flipped byte in the inputs", "POST", run, flipped, 400, "checksum mismatch"},
      {"inputs for another circuit", "POST", run, sibling_inputs, 400, "were made for circuit"},
      {"inputs of a model with other parameters", "POST", run,
       as_string(linear.new_client()->encrypt_serialize(quantized(
           linear.circuit, test::uniform_samples(linear.circuit.inputs[0].shape, 1, rng)))),
       400, "does not match the expected parameters"},
      {"a ciphertext missing", "POST", run,
       edited([](EncryptedInputs& in) { in.inputs[0].ciphertexts.bodies.pop_back(); }), 400,
       "ciphertexts (shape [1,2]), found 3"},
      {"batch larger than the ciphertexts", "POST", run,
       edited([](EncryptedInputs& in) { in.inputs[0].batch = 3; }), 400, "expected 3 samples"},
      {"an input too many", "POST", run,
       edited([](EncryptedInputs& in) { in.inputs.push_back(in.inputs[0]); }), 400,
       "expected 1 encrypted input"},
      {"no input", "POST", run, edited([](EncryptedInputs& in) { in.inputs.clear(); }), 400,
       "expected 1 encrypted input"},
      {"random bytes as inputs", "POST", run, std::string(1000, 'x'), 400, "bad magic"},
      {"evaluation keys as inputs", "POST", run, as_string(model.keys), 400, "wrong object type"},
      {"empty inputs", "POST", run, "", 400, "empty body"},
      {"unknown key id", "POST", "/run/" + unknown_id, as_string(good), 404,
       "unknown key id " + unknown_id},
      {"key id escaping the key directory", "POST", "/run/../../etc/passwd", as_string(good), 400,
       "key id must be 32 lowercase hexadecimal digits"},
      {"encoded path in the key id", "POST", "/run/..%2F..%2Fetc%2Fpasswd", as_string(good), 400,
       "key id must be 32 lowercase hexadecimal digits"},
      {"upper-case key id", "POST", "/run/" + std::string(32, 'A'), as_string(good), 400,
       "key id must be 32 lowercase hexadecimal digits"},
      {"empty key id", "POST", "/run/", as_string(good), 400,
       "key id must be 32 lowercase hexadecimal digits"},
      {"inputs over the limit", "POST", run, std::string(options.max_body_bytes + 1, '\0'), 413,
       "larger than the " + std::to_string(options.max_body_bytes) +
           " accepted (--max-body-mb): send fewer samples per request"},
      {"truncated keys", "POST", "/keys", as_string(model.keys).substr(0, model.keys.size() - 1),
       400, "truncated"},
      {"flipped byte in the keys", "POST", "/keys", flipped_keys, 400, "checksum mismatch"},
      {"keys of a model with other parameters", "POST", "/keys", as_string(linear.keys), 400,
       "parameter"},
      {"the secret key as evaluation keys", "POST", "/keys", secret_key, 400, "wrong object type"},
      {"inputs as evaluation keys", "POST", "/keys", as_string(good), 400, "wrong object type"},
      {"empty keys", "POST", "/keys", "", 400, "empty body"},
      {"keys over the limit", "POST", "/keys", std::string(options.max_body_bytes + 1, 'k'), 413,
       "start the server with a larger --max-body-mb"},
      {"inputs form-encoded (curl --data-binary without a type)", "POST", run,
       std::string(10000, 'x'), 413, "send the serialized bytes as application/octet-stream",
       "application/x-www-form-urlencoded"},
      {"unknown route", "GET", "/predict", "", 404, "no route GET /predict"},
      {"wrong method", "GET", "/keys", "", 405, "method not allowed: GET /keys"},
      {"wrong method on run", "GET", run, "", 405, "method not allowed"},
      {"unknown route for POST", "POST", "/run", as_string(good), 404, "no route POST /run"},
  };

  for (const BadRequest& bad : corpus) {
    SCOPED_TRACE(bad.name);
    const auto r = bad.method == "GET"
                       ? http.Get(bad.path)
                       : http.Post(bad.path, bad.body,
                                   bad.content_type.empty() ? "application/octet-stream"
                                                            : bad.content_type.c_str());
    ASSERT_TRUE(r) << httplib::to_string(r.error());
    EXPECT_EQ(r->status, bad.status) << r->body;
    const json j = json_of(r);
    ASSERT_TRUE(j.contains("error")) << r->body;
    EXPECT_THAT(j["error"].get<std::string>(), HasSubstr(bad.message));
    std::printf("  %d %s: %s\n", r->status, bad.name.c_str(),
                j["error"].get<std::string>().c_str());
  }

  // Still serving, with the stored key, and nothing else stored.
  const auto r = http.Post(run, as_string(good), "application/octet-stream");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(client->deserialize_decrypt(as_bytes(r->body)),
            runtime::run_clear(model.circuit, samples));
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(keys.path())) files.push_back(entry.path());
  EXPECT_EQ(files, std::vector<fs::path>{keys.path() / (id + ".keys")});
}

// What the server first answers to `request` sent as raw bytes on a fresh connection (which
// stays open: the server must not wait for more).
std::string raw_exchange(int port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval timeout{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  std::string answer;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0 &&
      ::send(fd, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size())) {
    char buffer[4096];
    // Headers and the short JSON body: until the body's closing brace, or nothing more comes.
    while (answer.find('}') == std::string::npos) {
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      answer.append(buffer, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  return answer;
}

TEST(HttpServer, ProtocolErrorsAreAnsweredAtOnceInJson) {
  const DeployedModel& model = deployed(ModelKind::kLinear);
  TempDir keys("http-keys");
  RunningServer server(options_for(model.artifact_dir, keys.path()));
  const auto start = std::chrono::steady_clock::now();
  // A POST without Content-Length (curl -X POST with no data): cpp-httplib alone would wait for
  // its read timeout, then answer an empty 400.
  const std::string no_length =
      raw_exchange(server.port(), "POST /keys HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(no_length, ::testing::StartsWith("HTTP/1.1 411"));
  EXPECT_THAT(no_length, HasSubstr(R"({"error":"a POST needs a Content-Length header)"));
  const std::string garbage = raw_exchange(server.port(), "NONSENSE\r\n\r\n");
  EXPECT_THAT(garbage, ::testing::StartsWith("HTTP/1.1 400"));
  EXPECT_THAT(garbage, HasSubstr(R"({"error":"malformed HTTP request)"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

// Every coefficient of the client's secret keys, in the two forms a careless serializer would
// write them (one byte each, or one little-endian 64-bit word each): the first 256 of each key.
std::vector<std::string> secret_patterns(const tfhe::ClientKey& key) {
  std::vector<std::string> patterns;
  for (const auto* bits : {&key.small_key.bits, &key.glwe_key.bits}) {
    const std::size_t count = std::min<std::size_t>(bits->size(), 256);
    std::string as_bytes, as_words;
    for (std::size_t i = 0; i < count; ++i) {
      as_bytes.push_back(static_cast<char>((*bits)[i]));
      for (int b = 0; b < 8; ++b) as_words.push_back(static_cast<char>((*bits)[i] >> (8 * b)));
    }
    patterns.push_back(as_bytes);
    patterns.push_back(as_words);
  }
  return patterns;
}

bool contains_any(const std::string& haystack, const std::vector<std::string>& patterns) {
  return std::any_of(patterns.begin(), patterns.end(), [&](const std::string& p) {
    return std::search(haystack.begin(), haystack.end(),
                       std::boyer_moore_searcher(p.begin(), p.end())) != haystack.end();
  });
}

TEST(HttpServer, TheSecretKeyReachesNeitherTheWireNorTheServersDisk) {
  const DeployedModel& model = deployed(ModelKind::kMlp);
  // A copy of the artifacts: the server keeps its keys in their default place, artifact_dir/keys.
  TempDir server_dir("http-server");
  for (const char* file : {kServerFile, kClientFile}) {
    fs::copy_file(model.artifact_dir / file, server_dir.path() / file);
  }
  cli::ServeOptions options = options_for(server_dir.path(), "");

  const std::vector<std::uint8_t> secret_file = read_file(model.client_key_dir / kClientKeyFile);
  const std::vector<std::string> patterns =
      secret_patterns(tfhe::deserialize_client_key(secret_file));
  // The search finds the key where it is.
  ASSERT_TRUE(contains_any(as_string(secret_file), patterns));

  std::vector<std::string> sent;
  {
    RunningServer server(options);
    auto http = server.client();
    sent.push_back(as_string(model.keys));
    const std::string id = upload_keys(http, model.keys, 201);
    std::mt19937 rng(9);
    auto client = model.new_client();
    sent.push_back(as_string(client->quantize_encrypt_serialize(
        test::uniform_samples(model.circuit.inputs[0].shape, 2, rng))));
    const auto r = http.Post("/run/" + id, sent.back(), "application/octet-stream");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    sent.push_back(r->body);
  }
  for (const std::string& bytes : sent) EXPECT_FALSE(contains_any(bytes, patterns));

  std::size_t key_files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(server_dir.path())) {
    if (!entry.is_regular_file()) continue;
    SCOPED_TRACE(entry.path().string());
    const std::vector<std::uint8_t> bytes = read_file(entry.path());
    EXPECT_FALSE(contains_any(as_string(bytes), patterns));
    EXPECT_NE(tfhe::read_envelope_header(bytes).object_type,
              static_cast<std::uint16_t>(tfhe::ObjectType::kClientKey));
    if (entry.path().parent_path() == server_dir.path() / "keys") {
      ++key_files;
      EXPECT_NO_THROW(deserialize_evaluation_keys(bytes));
    }
  }
  EXPECT_EQ(key_files, 1u);
}

}  // namespace
}  // namespace fheml::deploy
