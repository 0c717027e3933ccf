// freeze.h: SIGSTOP a process and wait until every one of its threads is
// stopped. kill() returns before the other threads stop (the thread that
// takes the signal stops them when it next runs), so on a loaded machine a
// server thread could still answer one more call sent right after it.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

namespace sfs_test {

// True once every thread of pid shows 'T' (or 't'); false if pid is gone or
// they did not all stop within `limit`.
inline bool freeze_process(pid_t pid, std::chrono::milliseconds limit) {
  ::kill(pid, SIGSTOP);
  const auto end = std::chrono::steady_clock::now() + limit;
  for (;;) {
    bool all = true;
    std::error_code ec;
    for (const auto& t : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
      std::ifstream f(t.path() / "stat");
      std::string line;
      std::getline(f, line);
      const auto p = line.rfind(')');
      if (p != std::string::npos && p + 2 < line.size() && line[p + 2] != 'T' && line[p + 2] != 't') all = false;
    }
    if (ec) return false;
    if (all) return true;
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace sfs_test
