// child_process.h: the server half of a benchmark in a child process, this
// same program run again with other arguments. The child's stdin is a pipe
// from us (closing it tells the child to stop) and its stdout a pipe to us
// (it prints what the parent needs, e.g. its port). Its CPU time is what
// wait4() reports when it ends.
#pragma once

#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

extern char** environ;

namespace bench {

struct ChildProcess {
  pid_t pid = -1;
  int to_child = -1;    // its stdin
  int from_child = -1;  // its stdout
};

// Runs /proc/self/exe with `args`; pid -1 on failure.
inline ChildProcess spawn_self(std::vector<std::string> args) {
  ChildProcess c;
  int in[2], out[2];
  if (::pipe(in) != 0) return c;
  if (::pipe(out) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    return c;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addclose(&fa, in[1]);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  std::string self = "/proc/self/exe";
  std::vector<char*> argv{self.data()};
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (posix_spawn(&c.pid, "/proc/self/exe", &fa, nullptr, argv.data(), environ) != 0) c.pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  ::close(in[0]);
  ::close(out[1]);
  if (c.pid < 0) {
    ::close(in[1]);
    ::close(out[0]);
    return c;
  }
  c.to_child = in[1];
  c.from_child = out[0];
  return c;
}

// One line from fd, without its newline ("" at end of file).
inline std::string read_line(int fd) {
  std::string line;
  char ch;
  while (::read(fd, &ch, 1) == 1 && ch != '\n') line += ch;
  return line;
}

// Waits for the child to end; its user + system CPU seconds, or -1.
inline double wait_cpu_seconds(pid_t pid) {
  int status = 0;
  rusage ru{};
  if (::wait4(pid, &status, 0, &ru) != pid) return -1;
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

}  // namespace bench
