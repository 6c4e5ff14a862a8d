// Output file written to "<path>.tmp" and renamed into place by commit(), so a failure
// never leaves a half-written file behind.
#pragma once
#include <cstdio>
#include <string>

namespace mf {

class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();  // removes the temporary if commit() was not reached
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void pad_to(size_t alignment, uint8_t byte = 0);  // zero-pad the stream to a multiple of alignment
  size_t offset() const { return offset_; }
  void commit();

 private:
  std::string path_, tmp_;
  FILE* f_ = nullptr;
  size_t offset_ = 0;
};

}  // namespace mf
