// `fheml serve ARTIFACT_DIR --port N`: the HTTP inference server of a deployment (commands.h
// lists the endpoints).
//
// The server holds the circuit and the clients' evaluation keys, never a secret key: a client
// uploads its evaluation keys once (POST /keys, stored by deploy::KeyStore on disk and cached in
// memory), then sends encrypted inputs under the key id it got back. Everything a request
// carries is validated by the deploy loaders before it is used, and every refusal is a 4xx
// with the loader's message, so that a bad request costs its sender an error and the server
// nothing. Requests run concurrently on cpp-httplib's worker threads; deploy::Server::run is
// thread-safe, and the bootstraps of concurrent requests share the engine's global pool.
#include <httplib.h>
#include <pthread.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <iostream>
#include <mutex>
#include <new>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "fheml/cli/commands.h"
#include "fheml/deploy/deploy.h"
#include "fheml/deploy/key_store.h"
#include "fheml/runtime/statistics.h"
#include "fheml/tfhe/parameters.h"

#ifndef FHEML_VERSION
#define FHEML_VERSION "unknown"
#endif

namespace fheml::cli {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kEndpoints = "GET /health, GET /info, POST /keys, POST /run/<key_id>";

// Parts of a request are bytes from anyone: printed only as printable ASCII, and not too long.
std::string printable(const std::string& text, std::size_t max_chars = 80) {
  std::string out;
  for (char c : text.substr(0, max_chars)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  if (text.size() > max_chars) out += "...";
  return out;
}

std::string hex16(std::uint64_t id) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i, id >>= 4) s[static_cast<std::size_t>(i)] = kDigits[id & 15];
  return s;
}

void reply_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  // Messages are ours, but may quote bytes of a request: never throw on invalid UTF-8.
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void reply_error(httplib::Response& res, int status, const std::string& message) {
  reply_json(res, status, json{{"error", message}});
}

std::span<const std::uint8_t> bytes_of(const std::string& body) {
  return {reinterpret_cast<const std::uint8_t*>(body.data()), body.size()};
}

json shape_json(const ir::Shape& shape) {
  json j = json::array();
  for (const std::size_t d : shape) j.push_back(d);
  return j;
}

// When the current worker thread started the request it is answering: set by the pre-routing
// handler, read by the logger (cpp-httplib runs both on the thread that serves the connection).
thread_local std::optional<Clock::time_point> request_start;

}  // namespace

struct HttpServer::Impl {
  ServeOptions options;
  deploy::Server model;
  deploy::KeyStore keys;
  json info;
  httplib::Server http;
  int port = 0;
  std::mutex log_mutex;
  std::atomic<bool> stopping{false};
  std::atomic<bool> serving{false};

  explicit Impl(const ServeOptions& o)
      : options(o),
        model(o.artifact_dir),
        keys(model, o.key_dir.empty() ? o.artifact_dir / "keys" : o.key_dir, o.max_keys_in_memory,
             o.max_keys_on_disk),
        info(make_info()) {
    routes();
    if (options.max_body_bytes == 0) {
      throw std::invalid_argument("the body limit must be at least 1 byte, found 0");
    }
    http.set_payload_max_length(static_cast<std::size_t>(options.max_body_bytes));
    if (options.threads > 0) {
      const std::size_t threads = options.threads;
      http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    }
    port = options.port == 0 ? http.bind_to_any_port(options.host)
                             : (http.bind_to_port(options.host, options.port) ? options.port : -1);
    if (port < 0) {
      throw std::runtime_error("cannot listen on " + options.host + ":" +
                               std::to_string(options.port) +
                               ": the port is taken or the host is not an address of this "
                               "machine; pick another --port or --host");
    }
  }

  json make_info() const {
    const compiler::Circuit& c = model.circuit();
    const tfhe::PbsParameters& p = c.parameters;
    const runtime::Statistics stats = runtime::compute_statistics(c);
    json inputs = json::array();
    for (const auto& q : c.inputs) {
      inputs.push_back({{"name", q.name}, {"shape", shape_json(q.shape)}, {"bits", q.bits}});
    }
    json outputs = json::array();
    const runtime::ClientCircuit view = runtime::client_view(c);
    for (const auto& o : view.outputs) {
      outputs.push_back({{"shape", shape_json(o.shape)}, {"width", o.width}});
    }
    const std::size_t key_bytes =
        c.has_lookups ? stats.key_sizes.keyswitch_compressed + stats.key_sizes.bootstrap_compressed
                      : 0;
    return json{
        {"fheml_version", FHEML_VERSION},
        {"circuit_id", hex16(model.circuit_id())},
        {"artifact_format_version", deploy::kArtifactFormatVersion},
        {"has_lookups", c.has_lookups},
        {"parameters",
         {{"lwe_dimension", p.lwe_dimension.value},
          {"glwe_dimension", p.glwe_dimension.value},
          {"polynomial_size", p.polynomial_size.value},
          {"lwe_noise_std", p.lwe_noise.value},
          {"glwe_noise_std", p.glwe_noise.value},
          {"pbs_base_log", p.pbs_base_log.value},
          {"pbs_level", p.pbs_level.value},
          {"ks_base_log", p.ks_base_log.value},
          {"ks_level", p.ks_level.value},
          {"fingerprint", hex16(tfhe::fingerprint(p))},
          {"description", tfhe::describe(p)}}},
        {"log2_p_error", c.log2_p_error},
        {"global_p_error", c.global_p_error},
        {"inputs", inputs},
        {"outputs", outputs},
        {"per_sample",
         {{"bootstraps", stats.bootstraps},
          {"input_bytes", stats.input_bytes},
          {"output_bytes", stats.output_bytes}}},
        // The key material without its envelopes (a few hundred bytes less than uploaded).
        {"evaluation_keys_approx_bytes", key_bytes},
        {"max_body_bytes", options.max_body_bytes},
    };
  }

  void log(const httplib::Request& req, const httplib::Response& res) {
    if (!options.log) return;
    std::string ms = "-";
    if (request_start) {
      const double elapsed =
          std::chrono::duration<double, std::milli>(Clock::now() - *request_start).count();
      char buffer[32];
      std::snprintf(buffer, sizeof buffer, "%.1f", elapsed);
      ms = buffer;
    }
    request_start.reset();
    const std::string line = printable(req.method, 16) + " " + printable(req.path) + " " +
                             std::to_string(res.status) + " " + ms + " ms\n";
    std::lock_guard lock(log_mutex);
    std::fputs(line.c_str(), stderr);
  }

  // Runs a handler; anything it throws becomes a JSON error with the status its type calls
  // for. Bad bytes from the client are std::invalid_argument (tfhe::DeserializationError
  // included); anything else is the server's own fault.
  template <class Body>
  void guarded(const httplib::Request& req, httplib::Response& res, Body&& body) {
    try {
      body();
    } catch (const deploy::UnknownKeyError& e) {
      reply_error(res, 404, e.what());
    } catch (const std::invalid_argument& e) {
      reply_error(res, 400, e.what());
    } catch (const std::bad_alloc&) {
      reply_error(res, 503, "out of memory while serving the request: retry later");
    } catch (const std::exception& e) {
      // The operator's problem first: the request line only says 500.
      {
        std::lock_guard lock(log_mutex);
        std::cerr << "fheml serve: internal error on " << printable(req.path) << ": " << e.what()
                  << "\n";
      }
      reply_error(res, 500, std::string("internal error: ") + e.what());
    }
  }

  void routes() {
    http.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
      request_start = Clock::now();
      // A body without a length: cpp-httplib would read until the read timeout (seconds) and
      // answer a bare 400; say what is missing at once instead.
      if ((req.method == "POST" || req.method == "PUT" || req.method == "PATCH") &&
          !req.has_header("Content-Length") && !req.has_header("Transfer-Encoding")) {
        reply_error(res, 411,
                    "a " + req.method + " needs a Content-Length header (or chunked encoding)");
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    http.set_logger(
        [this](const httplib::Request& req, const httplib::Response& res) { log(req, res); });
    // Called for every status >= 400: fills in the errors cpp-httplib answers by itself (no
    // route, body too large, malformed request) and leaves ours alone.
    http.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req,
                                                                       httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      if (res.status == 413 &&
          req.get_header_value("Content-Type") == "application/x-www-form-urlencoded") {
        // cpp-httplib parses form bodies and caps them at 8 KiB (curl --data-binary sends
        // this type unless told otherwise).
        reply_error(res, 413,
                    "a form-encoded (application/x-www-form-urlencoded) body is limited to 8192 "
                    "bytes: send the serialized bytes as application/octet-stream");
      } else if (res.status == 413) {
        reply_error(res, 413,
                    "request body of " + printable(req.get_header_value("Content-Length"), 20) +
                        " bytes is larger than the " + std::to_string(options.max_body_bytes) +
                        " accepted (--max-body-mb): " +
                        (req.path == "/keys"
                             ? "this model's evaluation keys are about " +
                                   info["evaluation_keys_approx_bytes"].dump() +
                                   " bytes; start the server with a larger --max-body-mb"
                             : "send fewer samples per request (about " +
                                   info["per_sample"]["input_bytes"].dump() + " bytes each)"));
      } else if (res.status == 404) {
        const bool known_path = req.path == "/health" || req.path == "/info" ||
                                req.path == "/keys" || req.path.rfind("/run/", 0) == 0;
        reply_error(res, known_path ? 405 : 404,
                    std::string(known_path ? "method not allowed: " : "no route ") +
                        printable(req.method, 16) + " " + printable(req.path) +
                        "; the endpoints are " + kEndpoints);
      } else {
        reply_error(res, res.status,
                    "malformed HTTP request (status " + std::to_string(res.status) + ")");
      }
      return httplib::Server::HandlerResponse::Handled;
    }));
    http.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr error) {
          // Handlers catch their own exceptions (guarded); this is the last line.
          try {
            std::rethrow_exception(error);
          } catch (const std::exception& e) {
            reply_error(res, 500, std::string("internal error: ") + e.what());
          } catch (...) {
            reply_error(res, 500, "internal error");
          }
        });

    http.Get("/health", [](const httplib::Request&, httplib::Response& res) {
      reply_json(res, 200, json{{"status", "ok"}});
    });
    http.Get("/info", [this](const httplib::Request&, httplib::Response& res) {
      reply_json(res, 200, info);
    });
    http.Post("/keys", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(req, res, [&] {
        if (req.body.empty()) {
          throw std::invalid_argument(
              "empty body: POST the serialized evaluation keys "
              "(Client::serialized_evaluation_keys) as application/octet-stream");
        }
        const deploy::KeyStore::PutResult stored = keys.put(bytes_of(req.body));
        reply_json(res, stored.created ? 201 : 200, json{{"key_id", stored.key_id}});
      });
    });
    http.Post(R"(/run/(.*))", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(req, res, [&] {
        // The id first: an unknown id answers 404 whatever the body holds.
        const auto evaluation_keys = keys.get(req.matches[1].str());
        if (req.body.empty()) {
          throw std::invalid_argument(
              "empty body: POST the serialized encrypted inputs "
              "(Client::quantize_encrypt_serialize) as application/octet-stream");
        }
        const std::vector<std::uint8_t> outputs = model.run(bytes_of(req.body), *evaluation_keys);
        res.status = 200;
        res.set_content(std::string(outputs.begin(), outputs.end()), "application/octet-stream");
      });
    });
  }
};

HttpServer::HttpServer(const ServeOptions& options) : impl_(std::make_unique<Impl>(options)) {}

HttpServer::~HttpServer() { stop(); }

int HttpServer::port() const { return impl_->port; }

std::uint64_t HttpServer::circuit_id() const { return impl_->model.circuit_id(); }

bool HttpServer::serve() {
  impl_->serving = true;
  bool ok = true;
  if (!impl_->stopping) ok = impl_->http.listen_after_bind();
  impl_->serving = false;
  return ok;
}

void HttpServer::stop() {
  impl_->stopping = true;
  // cpp-httplib's stop() does nothing before listen_after_bind() has started: wait for it to
  // start (or for serve() to give up) so that a stop() racing a serve() is not lost.
  while (impl_->serving && !impl_->http.is_running()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  impl_->http.stop();
  while (impl_->serving) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

namespace {

struct ServeCommand {
  ServeOptions server;
  double max_body_mb = 512;
};

// SIGINT and SIGTERM are blocked in every thread (the HTTP and engine workers inherit the mask)
// and taken by one thread with sigwait, which may then call anything, stop() included: a
// handler proper may call almost nothing.
int run_serve(const ServeCommand& command) {
  ServeOptions options = command.server;
  options.max_body_bytes = static_cast<std::uint64_t>(command.max_body_mb * 1024 * 1024);
  if (!std::filesystem::is_regular_file(options.artifact_dir / deploy::kServerFile)) {
    throw std::invalid_argument(
        "no " + std::string(deploy::kServerFile) + " in " + options.artifact_dir.string() +
        ": pass the directory that deploy::save_artifacts (FHEModelDev.save) wrote");
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  HttpServer server(options);
  std::atomic<bool> served{false};
  std::thread waiter([&] {
    int signal = 0;
    sigwait(&signals, &signal);
    if (!served)
      std::cerr << "fheml serve: " << (signal == SIGINT ? "SIGINT" : "SIGTERM")
                << ", stopping after the requests in flight\n";
    server.stop();
  });
  std::cerr << "fheml serve: circuit " << hex16(server.circuit_id()) << " on http://"
            << options.host << ":" << server.port() << " (keys in "
            << (options.key_dir.empty() ? options.artifact_dir / "keys" : options.key_dir).string()
            << ")\n";
  const bool ok = server.serve();
  // Wakes the waiter when serve() ended on its own.
  served = true;
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  if (!ok)
    throw std::runtime_error("listening on port " + std::to_string(server.port()) + " failed");
  std::cerr << "fheml serve: stopped\n";
  return 0;
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto command = std::make_shared<ServeCommand>();
  CLI::App* serve = app.add_subcommand(
      "serve", "HTTP inference server of a deployment artifact (POST /keys, POST /run/<key_id>)");
  serve
      ->add_option("artifact_dir", command->server.artifact_dir,
                   "directory with server.fheml (deploy::save_artifacts, FHEModelDev.save)")
      ->required();
  serve
      ->add_option("--port", command->server.port,
                   "TCP port (0: any free port, printed on stderr at start)")
      ->required()
      ->check(CLI::Range(0, 65535));
  serve->add_option("--host", command->server.host, "address to listen on")->capture_default_str();
  serve->add_option("--key-dir", command->server.key_dir,
                    "where uploaded evaluation keys are stored (default ARTIFACT_DIR/keys)");
  serve
      ->add_option("--max-keys-in-memory", command->server.max_keys_in_memory,
                   "decompressed key sets cached in memory (least recently used evicted)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20))
      ->capture_default_str();
  serve
      ->add_option("--max-keys-on-disk", command->server.max_keys_on_disk,
                   "key files kept on disk, oldest deleted first (0: all)")
      ->capture_default_str();
  serve->add_option("--max-body-mb", command->max_body_mb, "largest request body, in MiB")
      ->check(CLI::Range(1e-3, 1e6))
      ->capture_default_str();
  serve
      ->add_option("--threads", command->server.threads,
                   "HTTP worker threads (0: cpp-httplib's default, at least 8)")
      ->check(CLI::Range(std::size_t{0}, std::size_t{1024}))
      ->capture_default_str();
  serve->callback([command] { run_serve(*command); });
}

}  // namespace fheml::cli
