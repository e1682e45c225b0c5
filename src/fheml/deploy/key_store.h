// The server's store of evaluation keys uploaded by clients, addressed by a key id.
//
// A client uploads its (compressed) evaluation keys once and then names them by id in every
// request. The id is the lowercase hex BLAKE2b-128 of the uploaded bytes: uploading the same keys
// twice gives the same id and stores nothing new, and a file's name is a checksum of its content.
//
// Disk is the record: put() writes dir/<id>.keys (compressed, as uploaded; atomically) before it
// returns, so an id handed to a client survives a restart. Memory is a cache: at most
// max_in_memory decompressed key sets, least recently used evicted first. get() hands out a
// shared_ptr, so a request still running keeps its keys alive after they are evicted.
//
// Evaluation keys hold no secret: the client's secret key never reaches this store (put() accepts
// only what deploy::Server::load_evaluation_keys accepts, which is not a ClientKey).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <list>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>

#include "fheml/deploy/deploy.h"
#include "fheml/runtime/runtime.h"

namespace fheml::deploy {

// A well-formed key id that is neither in memory nor on disk (an HTTP server answers 404).
class UnknownKeyError : public std::out_of_range {
 public:
  using std::out_of_range::out_of_range;
};

inline constexpr std::size_t kKeyIdChars = 32;  // hex of BLAKE2b-128
inline constexpr const char* kKeyFileExtension = ".keys";

// Whether `id` is exactly 32 lowercase hexadecimal digits: the only strings from which a path
// is ever built.
bool is_valid_key_id(std::string_view id);

// The id of serialized evaluation keys: lowercase hex of BLAKE2b-128 of the bytes.
std::string key_id_of(std::span<const std::uint8_t> serialized_keys);

class KeyStore {
 public:
  struct PutResult {
    std::string key_id;
    bool created = false;  // false: these keys were already stored
  };

  // Creates `dir` if missing (std::runtime_error when it cannot). max_in_memory >= 1
  // (std::invalid_argument otherwise). max_on_disk == 0 keeps every key file; otherwise, after
  // each new file, the files least recently uploaded or reloaded beyond max_on_disk are deleted
  // (their ids then answer UnknownKeyError once out of memory too). `server` must outlive the
  // store.
  KeyStore(const Server& server, std::filesystem::path dir, std::size_t max_in_memory,
           std::size_t max_on_disk = 0);

  // Validates the keys against the server's circuit (Server::load_evaluation_keys: its
  // std::invalid_argument, with the loader's message, for truncated, corrupt or mismatched
  // keys; nothing is stored then), writes them to disk unless their file already holds these
  // bytes (an upload repairs a file altered on disk), then caches the decompressed form.
  // Uploading keys already in memory skips the validation: same id, same bytes.
  // std::runtime_error when the file cannot be written.
  PutResult put(std::span<const std::uint8_t> serialized_keys);

  // The keys of `id`: from memory, else reloaded from disk (and cached). std::invalid_argument
  // for an id that is not 32 lowercase hex digits, UnknownKeyError for one not stored,
  // std::runtime_error for a stored file that no longer holds the keys its name promises.
  std::shared_ptr<const runtime::EvaluationKeys> get(const std::string& id);

  const std::filesystem::path& dir() const { return dir_; }
  std::size_t in_memory() const;

 private:
  using KeysPtr = std::shared_ptr<const runtime::EvaluationKeys>;
  struct Entry {
    KeysPtr keys;
    std::list<std::string>::iterator position;  // in recency_
  };

  std::filesystem::path path_of(const std::string& id) const;
  // Under mutex_: the cached keys of id (now the most recent), or null.
  KeysPtr find_locked(const std::string& id);
  // Under mutex_: caches keys for id (keeps an entry already there) and evicts beyond the bound.
  KeysPtr insert_locked(const std::string& id, KeysPtr keys);
  void trim_disk(const std::string& keep_id);

  const Server& server_;
  std::filesystem::path dir_;
  std::size_t max_in_memory_;
  std::size_t max_on_disk_;

  mutable std::mutex mutex_;
  std::list<std::string> recency_;  // most recent first
  std::unordered_map<std::string, Entry> cache_;
  std::mutex disk_mutex_;  // one writer/trimmer of the directory at a time
};

}  // namespace fheml::deploy
