#include "test_util.h"

#include <openssl/evp.h>

#include <cstdio>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace mf::test {

std::vector<float> random_floats(size_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

std::string shared_dir() {
  const char* env = std::getenv("MOEFORGE_SHARED");
  return env ? env : "../shared";
}

std::string temp_dir() {
  static std::atomic<int> counter{0};
  auto dir = std::filesystem::temp_directory_path() /
             ("moeforge-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f << bytes;
}

CmdResult run_cli(const std::string& args) {
  const char* bin = std::getenv("MOEFORGE_BIN");
  std::string exe = bin ? bin : "build/bin/moeforge";
  std::string dir = temp_dir();
  std::string out = dir + "/out", err = dir + "/err";
  std::string cmd = exe + " " + args + " >" + out + " 2>" + err;
  int status = std::system(cmd.c_str());
  CmdResult r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_file(out);
  r.err = read_file(err);
  std::filesystem::remove_all(dir);
  return r;
}

std::string pulled_model_file(const std::string& name, const std::string& file) {
  const char* home = std::getenv("MOEFORGE_HOME");
  const char* user = std::getenv("HOME");
  const std::filesystem::path base = home && *home ? std::filesystem::path(home)
                                                   : std::filesystem::path(user && *user ? user : "/tmp") / ".cache/moeforge";
  const std::filesystem::path p = base / "models" / name / file;
  return std::filesystem::exists(p) ? p.string() : "";
}

std::string sha256_hex(const uint8_t* data, size_t len) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(data, len, md, &n, EVP_sha256(), nullptr) != 1) throw std::runtime_error("sha256: OpenSSL failed");
  std::string hex;
  char b[3];
  for (unsigned i = 0; i < n; ++i) std::snprintf(b, sizeof b, "%02x", md[i]), hex += b;
  return hex;
}

}  // namespace mf::test
