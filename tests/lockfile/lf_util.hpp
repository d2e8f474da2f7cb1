// Helpers for the lockfile-convention tests: running a peer to completion, files and listings.
// (Child processes come from tests/support/subprocess.hpp.)
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "wait_limit.hpp"

namespace lftest {

using namespace std::chrono_literals;

// Runs argv and returns (exit code or -1, stdout).
std::pair<int, std::string> run(const std::vector<std::string>& argv,
                                std::chrono::milliseconds timeout = locksmith::test::kWaitLimit);

std::string read_file(const std::filesystem::path& p);
void write_file(const std::filesystem::path& p, const std::string& content);
// Sets the mtime `age` into the past and the atime to now.
void age_file(const std::filesystem::path& p, std::chrono::seconds age);
// Names in a directory, sorted.
std::vector<std::string> list_dir(const std::filesystem::path& dir);

}  // namespace lftest
