#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace CLI {
class App;
}

namespace fheml::cli {

// `fheml bench`: latency, throughput and key sizes of key switch + bootstrap per precision.
void add_bench_command(CLI::App& app);
// `fheml compile-onnx`: an ONNX network and calibration rows (.npy) -> deployment artifacts.
void add_compile_onnx_command(CLI::App& app);
// `fheml demo`: an end-to-end encrypted prediction on a real data set (the quick start's job).
void add_demo_command(CLI::App& app);
// `fheml serve`: the HTTP inference server of a deployment artifact (HttpServer below).
void add_serve_command(CLI::App& app);

// --- The HTTP server behind `fheml serve` (serve_command.cpp), also started in-process by the
// tests. It lives here, not in the library, so that the library (and the Python module built
// from it) does not depend on an HTTP library.
//
//   GET  /health          200 {"status":"ok"}
//   GET  /info            200 the model: circuit id, parameters, shapes, sizes, version
//   POST /keys            serialized evaluation keys -> 201 {"key_id": ...} (200: already stored)
//   POST /run/<key_id>    serialized EncryptedInputs -> 200 serialized EncryptedOutputs
//
// Errors are JSON {"error": "..."}: 400 bad bytes (keys, inputs, key id), 404 unknown key id or
// route, 413 body over max_body_bytes, 500 only for faults of the server itself.

struct ServeOptions {
  std::filesystem::path artifact_dir;  // holds server.fheml (deploy::save_artifacts)
  std::string host = "127.0.0.1";
  int port = 8000;                // 0: any free port (port() says which)
  std::filesystem::path key_dir;  // empty: artifact_dir/keys
  std::size_t max_keys_in_memory = 8;
  std::size_t max_keys_on_disk = 0;  // 0: unbounded
  std::uint64_t max_body_bytes = std::uint64_t{512} << 20;
  std::size_t threads = 0;  // HTTP worker threads; 0: cpp-httplib's default (at least 8)
  bool log = true;          // one line per request on stderr
};

class HttpServer {
 public:
  // Loads the artifact, opens the key store and binds the port; throws std::invalid_argument
  // (bad artifact or options) or std::runtime_error (key directory, port) before serving
  // anything.
  explicit HttpServer(const ServeOptions& options);
  ~HttpServer();  // stops serving (waits for serve() to return if another thread runs it)
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const;
  std::uint64_t circuit_id() const;  // of the model served (deploy::circuit_id)
  // Serves until stop(); returns false when listening failed.
  bool serve();
  // From any thread, before, during or after serve(): serve() returns once the requests in
  // flight are answered.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fheml::cli
