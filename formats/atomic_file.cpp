#include "formats/atomic_file.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "core/error.h"

namespace mf {

AtomicFile::AtomicFile(const std::string& path) : path_(path), tmp_(path + ".tmp") {
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_) fail(path, ": cannot write: ", std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (f_) {
    std::fclose(f_);
    std::remove(tmp_.c_str());
  }
}

void AtomicFile::write(const void* data, size_t n) {
  if (n && std::fwrite(data, 1, n, f_) != n) fail(path_, ": write failed: ", std::strerror(errno));
  offset_ += n;
}

void AtomicFile::pad_to(size_t alignment, uint8_t byte) {
  size_t pad = (alignment - offset_ % alignment) % alignment;
  std::vector<uint8_t> zeros(pad, byte);
  write(zeros.data(), pad);
}

void AtomicFile::commit() {
  if (std::fflush(f_) != 0 || std::fclose(f_) != 0) {
    f_ = nullptr;
    std::remove(tmp_.c_str());
    fail(path_, ": write failed: ", std::strerror(errno));
  }
  f_ = nullptr;
  std::error_code ec;
  std::filesystem::rename(tmp_, path_, ec);
  if (ec) {
    std::remove(tmp_.c_str());
    fail(path_, ": cannot rename temporary into place: ", ec.message());
  }
}

}  // namespace mf
