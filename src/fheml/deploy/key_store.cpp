#include "fheml/deploy/key_store.h"

#include <sodium.h>

#include <algorithm>
#include <system_error>
#include <utility>
#include <vector>

#include "fheml/tfhe/errors.h"

namespace fheml::deploy {

namespace fs = std::filesystem;

namespace {

bool holds(const fs::path& path, std::span<const std::uint8_t> bytes) {
  std::error_code ec;
  if (fs::file_size(path, ec) != bytes.size() || ec) return false;
  try {
    const std::vector<std::uint8_t> stored = read_file(path, bytes.size());
    return std::equal(stored.begin(), stored.end(), bytes.begin(), bytes.end());
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

bool is_valid_key_id(std::string_view id) {
  return id.size() == kKeyIdChars && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string key_id_of(std::span<const std::uint8_t> serialized_keys) {
  static_assert(kKeyIdChars / 2 >= crypto_generichash_BYTES_MIN);
  // Idempotent and thread-safe; picks libsodium's fastest implementation for this CPU.
  [[maybe_unused]] static const bool initialized = sodium_init() >= 0;
  unsigned char hash[kKeyIdChars / 2];
  crypto_generichash(hash, sizeof hash, serialized_keys.data(), serialized_keys.size(), nullptr, 0);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  id.reserve(kKeyIdChars);
  for (unsigned char b : hash) {
    id.push_back(kHex[b >> 4]);
    id.push_back(kHex[b & 15]);
  }
  return id;
}

KeyStore::KeyStore(const Server& server, fs::path dir, std::size_t max_in_memory,
                   std::size_t max_on_disk)
    : server_(server),
      dir_(std::move(dir)),
      max_in_memory_(max_in_memory),
      max_on_disk_(max_on_disk) {
  if (max_in_memory_ == 0) {
    throw std::invalid_argument(
        "key store: max_in_memory must be at least 1 (the keys of a request are held in "
        "memory while it runs), found 0");
  }
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec || !fs::is_directory(dir_)) {
    throw std::runtime_error("key store: cannot create the key directory " + dir_.string() +
                             (ec ? ": " + ec.message() : ": a file of that name is in the way"));
  }
}

fs::path KeyStore::path_of(const std::string& id) const {
  // Never reached with an id from outside that is not 32 hex digits: no "..", no "/".
  FHEML_ASSERT_EQ(is_valid_key_id(id), true);
  return dir_ / (id + kKeyFileExtension);
}

KeyStore::KeysPtr KeyStore::find_locked(const std::string& id) {
  const auto it = cache_.find(id);
  if (it == cache_.end()) return nullptr;
  recency_.splice(recency_.begin(), recency_, it->second.position);
  return it->second.keys;
}

KeyStore::KeysPtr KeyStore::insert_locked(const std::string& id, KeysPtr keys) {
  // Another request may have loaded the same id meanwhile: keep one copy.
  if (KeysPtr existing = find_locked(id)) return existing;
  recency_.push_front(id);
  cache_.emplace(id, Entry{keys, recency_.begin()});
  while (cache_.size() > max_in_memory_) {
    // A request still holding the evicted keys keeps them alive through its shared_ptr.
    cache_.erase(recency_.back());
    recency_.pop_back();
  }
  return keys;
}

std::size_t KeyStore::in_memory() const {
  std::lock_guard lock(mutex_);
  return cache_.size();
}

KeyStore::PutResult KeyStore::put(std::span<const std::uint8_t> serialized_keys) {
  PutResult result;
  result.key_id = key_id_of(serialized_keys);
  KeysPtr keys;
  {
    std::lock_guard lock(mutex_);
    keys = find_locked(result.key_id);
  }
  if (!keys) {
    // The slow part (deserialize, check, expand the keys to their Fourier form) runs unlocked:
    // other requests keep being served meanwhile.
    keys = std::make_shared<const runtime::EvaluationKeys>(
        server_.load_evaluation_keys(serialized_keys));
  }
  {
    // The file is the record that outlives the process, so it is checked whether or not the
    // keys are cached (the cache may hold keys whose file max_on_disk trimmed), and rewritten
    // unless it holds these very bytes (an upload repairs a file altered on disk).
    std::lock_guard disk_lock(disk_mutex_);
    const fs::path path = path_of(result.key_id);
    std::error_code ec;
    result.created = !fs::exists(path, ec);
    if (result.created || !holds(path, serialized_keys)) {
      try {
        write_file(path, serialized_keys);
      } catch (const std::exception& e) {
        // Not the client's fault: write_file's invalid_argument would answer a 4xx.
        throw std::runtime_error(std::string("key store: ") + e.what());
      }
      if (max_on_disk_ > 0) trim_disk(result.key_id);
    } else {
      // Keeps the most recently uploaded files when the directory is trimmed.
      fs::last_write_time(path, fs::file_time_type::clock::now(), ec);
    }
  }
  std::lock_guard lock(mutex_);
  insert_locked(result.key_id, std::move(keys));
  return result;
}

std::shared_ptr<const runtime::EvaluationKeys> KeyStore::get(const std::string& id) {
  if (!is_valid_key_id(id)) {
    // Not echoed whole: it is arbitrary bytes from a request.
    throw std::invalid_argument("key id must be " + std::to_string(kKeyIdChars) +
                                " lowercase hexadecimal digits (as POST /keys returns), found " +
                                std::to_string(id.size()) + " characters");
  }
  {
    std::lock_guard lock(mutex_);
    if (KeysPtr keys = find_locked(id)) return keys;
  }
  const fs::path path = path_of(id);
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    throw UnknownKeyError("unknown key id " + id + ": no keys stored under it; upload the " +
                          "evaluation keys (POST /keys) and use the id it returns");
  }
  std::vector<std::uint8_t> bytes;
  try {
    bytes = read_file(path);
  } catch (const std::exception& e) {
    // Deleted between the check and the read (max_on_disk trimming it): as if never there.
    if (!fs::exists(path, ec)) {
      throw UnknownKeyError("unknown key id " + id + ": no keys stored under it; upload the " +
                            "evaluation keys (POST /keys) and use the id it returns");
    }
    throw std::runtime_error(std::string("key store: cannot read ") + path.string() + ": " +
                             e.what());
  }
  // The name is the checksum of the content: a file altered on disk is a server fault, not the
  // client's, and must not be run with.
  if (key_id_of(bytes) != id) {
    throw std::runtime_error("key store: " + path.string() + " does not hold the keys its name " +
                             "says (content id " + key_id_of(bytes) + "): the file was altered " +
                             "on disk; upload the evaluation keys again");
  }
  KeysPtr keys;
  try {
    keys = std::make_shared<const runtime::EvaluationKeys>(server_.load_evaluation_keys(bytes));
  } catch (const std::exception& e) {
    // Stored by put() after the same check: the artifact changed under the stored keys.
    throw std::runtime_error("key store: " + path.string() + " no longer loads for this " +
                             "circuit (was the artifact replaced?): " + e.what());
  }
  fs::last_write_time(path, fs::file_time_type::clock::now(), ec);
  std::lock_guard lock(mutex_);
  return insert_locked(id, std::move(keys));
}

void KeyStore::trim_disk(const std::string& keep_id) {
  struct File {
    fs::file_time_type time;
    fs::path path;
  };
  std::vector<File> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    const fs::path& p = entry.path();
    const std::string stem = p.stem().string();
    // Only the store's own files: temporaries of write_file and anything else are left alone.
    if (p.extension() != kKeyFileExtension || !is_valid_key_id(stem) || stem == keep_id) continue;
    std::error_code time_ec;
    const auto time = fs::last_write_time(p, time_ec);
    if (!time_ec) files.push_back({time, p});
  }
  if (files.size() + 1 <= max_on_disk_) return;
  const std::size_t excess = files.size() + 1 - max_on_disk_;
  std::partial_sort(files.begin(), files.begin() + static_cast<std::ptrdiff_t>(excess), files.end(),
                    [](const File& a, const File& b) { return a.time < b.time; });
  for (std::size_t i = 0; i < excess; ++i) fs::remove(files[i].path, ec);
}

}  // namespace fheml::deploy
