// Finished experts of a long build, kept on disk so that an interrupted build resumes where it
// stopped. With the default sequential gate-up re-fit an expert of a 135M model takes 20-40
// minutes on 2 cores, so a build of four is hours: a killed session should cost at most the
// expert in progress.
// One GGUF file per expert in a directory, each stamped with a key that names everything the
// expert depends on (the caller's: the program, its options and inputs). A file with another
// key, or one that cannot be read, is ignored and rebuilt.
#pragma once
#include <optional>
#include <string>

#include "model/model.h"
#include "moe/expert.h"

namespace mf {

class ExpertCheckpoint {
 public:
  ExpertCheckpoint(std::string dir, std::string key) : dir_(std::move(dir)), key_(std::move(key)) {}

  // The expert saved at `index` under this key, its FFN bytes copied out of the file and its
  // attention views pointing into `model`; nullopt if there is none, it has another key, or it
  // does not fit the model (then `why` says so when given).
  std::optional<Expert> load(const Model& model, size_t index, std::string* why = nullptr) const;
  // Writes the expert atomically (a temporary renamed into place). False, with the reason in
  // `why`, if it cannot (a full disk): a long build then goes on without its checkpoint.
  bool save(const Model& model, size_t index, const Expert& e, std::string* why = nullptr) const;
  // Removes the directory and its files (the build they served is written).
  void remove() const;

  const std::string& dir() const { return dir_; }
  std::string path(size_t index) const;

 private:
  std::string dir_, key_;
};

}  // namespace mf
