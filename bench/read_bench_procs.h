// read_bench_procs.h: the processes read_bench starts (sfsd copies, perf)
// and how it makes sure none outlives it. Used only by read_bench.cc.
//
//   Child            fork + exec with a CPU mask, stdout on a pipe (sfsd
//                    prints its name there), stderr to a log file; the
//                    kernel kills it (PR_SET_PDEATHSIG) if the bench dies.
//   Reaper           one thread that owns SIGINT/SIGTERM/SIGHUP/SIGQUIT
//                    and the overall time limit: on either it kills every
//                    registered child, runs the registered clean-ups (stop
//                    ganesha, remove temporary directories) and exits.
//   cpu_seconds_of   utime + stime of a process from /proc/PID/stat.
//   read_color_cpu   sfsd's CPU by color (its cpu_report, on SIGUSR1).
#pragma once

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace readbench {

using namespace std::chrono_literals;

// utime + stime of pid in seconds, or -1 if it cannot be read (the process
// is gone). Fields 14 and 15 of /proc/PID/stat, counted after the ')' that
// ends the command name (which may itself contain spaces).
inline double cpu_seconds_of(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  std::FILE* f = std::fopen(path, "r");
  if (!f) return -1;
  char buf[1024];
  std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = 0;
  const char* p = std::strrchr(buf, ')');
  if (!p) return -1;
  p += 2;  // ") " then field 3 (state)
  unsigned long long ut = 0, st = 0;
  // state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
  if (std::sscanf(p, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) return -1;
  return static_cast<double>(ut + st) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// utime + stime of every thread of pid, by thread id (the busiest thread
// of sfsd tells whether one color, e.g. one connection's sealing, is the
// limit: a worker near 100% of the wall time is).
inline std::vector<std::pair<pid_t, double>> thread_cpu_seconds(pid_t pid) {
  std::vector<std::pair<pid_t, double>> out;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const pid_t tid = static_cast<pid_t>(std::strtol(e.path().filename().c_str(), nullptr, 10));
    char path[96];
    std::snprintf(path, sizeof path, "/proc/%d/task/%d/stat", static_cast<int>(pid), static_cast<int>(tid));
    std::FILE* f = std::fopen(path, "r");
    if (!f) continue;
    char buf[1024];
    std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = 0;
    const char* p = std::strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    if (p && std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2)
      out.emplace_back(tid, static_cast<double>(ut + st) / static_cast<double>(sysconf(_SC_CLK_TCK)));
  }
  return out;
}

// Scheduler counters of all threads of pid: time runnable but waiting for
// a CPU (/proc/PID/task/TID/schedstat, field 2) and voluntary context
// switches (sleeps: each hop to a sleeping worker wakes it). The first
// says how much the machine's other load delayed us; the second how often
// a thread went to sleep and had to be woken.
struct SchedInfo {
  double runq_wait_s = 0;
  unsigned long long voluntary = 0, involuntary = 0;
};
inline SchedInfo sched_info(pid_t pid) {
  SchedInfo si;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string t = e.path().string();
    if (std::FILE* f = std::fopen((t + "/schedstat").c_str(), "r")) {
      unsigned long long run = 0, wait = 0;
      if (std::fscanf(f, "%llu %llu", &run, &wait) == 2) si.runq_wait_s += static_cast<double>(wait) / 1e9;
      std::fclose(f);
    }
    if (std::FILE* f = std::fopen((t + "/status").c_str(), "r")) {
      char line[256];
      unsigned long long v = 0;
      while (std::fgets(line, sizeof line, f)) {
        if (std::sscanf(line, "voluntary_ctxt_switches: %llu", &v) == 1) si.voluntary += v;
        else if (std::sscanf(line, "nonvoluntary_ctxt_switches: %llu", &v) == 1) si.involuntary += v;
      }
      std::fclose(f);
    }
  }
  return si;
}

// sfsd's CPU by color so far: SIGUSR1 makes it rewrite its cpu_report,
// read once the file has changed (up to 2 s). {-1,...} if it did not.
struct ColorCpu {
  double color0 = -1, connections = -1, backend = -1, overhead = -1;
};
// The first `max` bytes of a file ("" if it cannot be read).
inline std::string read_head(const std::string& path, std::size_t max) {
  std::string text(max, '\0');
  std::size_t n = 0;
  if (std::FILE* f = std::fopen(path.c_str(), "r")) {
    n = std::fread(text.data(), 1, max, f);
    std::fclose(f);
  }
  text.resize(n);
  return text;
}

inline ColorCpu read_color_cpu(pid_t pid, const std::string& path) {
  auto slurp = [&] { return read_head(path, 1024); };
  const std::string before = slurp();
  ColorCpu c;
  if (::kill(pid, SIGUSR1) != 0) return c;
  std::string now;
  for (int i = 0; i < 200 && ((now = slurp()).empty() || now == before); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (now.empty() || now == before) return c;
  auto field = [&](const char* key) {
    const std::string k = std::string("\"") + key + "\":";
    const std::size_t at = now.find(k);
    return at == std::string::npos ? -1.0 : std::strtod(now.c_str() + at + k.size(), nullptr);
  };
  c.color0 = field("color0_s");
  c.connections = field("connections_s");
  c.backend = field("backend_s");
  c.overhead = field("overhead_s");
  return c;
}

// The whole machine's CPU time so far from /proc/stat: busy (user, nice,
// system, irq, softirq) and steal, in seconds. Busy minus our processes'
// CPU is what everything else on the machine (other sessions) used.
struct MachineCpu {
  double busy = 0, steal = 0;
};
inline MachineCpu machine_cpu() {
  MachineCpu m;
  std::FILE* f = std::fopen("/proc/stat", "r");
  if (!f) return m;
  unsigned long long v[8] = {};
  if (std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
                  &v[7]) == 8) {
    const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
    m.busy = static_cast<double>(v[0] + v[1] + v[2] + v[5] + v[6]) / hz;
    m.steal = static_cast<double>(v[7]) / hz;
  }
  std::fclose(f);
  return m;
}

// True if pid exists and is not a zombie (an exited process that its
// parent, e.g. init for ganesha, has not reaped yet is not running).
inline bool running(pid_t pid) {
  if (pid <= 0 || ::kill(pid, 0) != 0) return false;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  std::FILE* f = std::fopen(path, "r");
  if (!f) return false;
  char buf[512];
  std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = 0;
  const char* p = std::strrchr(buf, ')');
  return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

// The children alive now, for the reaper. A child is registered between
// fork and its reaping.
class Registry {
 public:
  static Registry& get() {
    static Registry r;
    return r;
  }
  void add(pid_t p) {
    std::lock_guard lk(mu_);
    pids_.insert(p);
  }
  void remove(pid_t p) {
    std::lock_guard lk(mu_);
    pids_.erase(p);
  }
  std::vector<pid_t> snapshot() {
    std::lock_guard lk(mu_);
    return {pids_.begin(), pids_.end()};
  }
  // Clean-ups that run (in order) when the reaper ends the process.
  void on_abort(std::function<void()> fn) {
    std::lock_guard lk(mu_);
    cleanups_.push_back(std::move(fn));
  }
  std::vector<std::function<void()>> cleanups() {
    std::lock_guard lk(mu_);
    return cleanups_;
  }

 private:
  std::mutex mu_;
  std::set<pid_t> pids_;
  std::vector<std::function<void()>> cleanups_;
};

// Set once the reaper has started to stop everything: errors the main
// thread sees after that are consequences, not findings.
inline std::atomic<bool>& aborting() {
  static std::atomic<bool> a{false};
  return a;
}

// SIGTERM to every registered child, a bounded wait, then SIGKILL.
inline void kill_registered_children() {
  auto pids = Registry::get().snapshot();
  for (pid_t p : pids) ::kill(p, SIGTERM);
  const auto end = std::chrono::steady_clock::now() + 3s;
  for (pid_t p : pids) {
    int st;
    while (::waitpid(p, &st, WNOHANG) == 0 && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(10ms);
    if (::waitpid(p, &st, WNOHANG) == 0) {
      ::kill(p, SIGKILL);
      ::waitpid(p, &st, 0);
    }
  }
}

// The signals the reaper takes: SIGUSR2 (its own "go away") and those of
// SIGINT, SIGTERM, SIGHUP, SIGQUIT not ignored when the bench started (a
// shell starts background jobs with SIGINT ignored; nohup ignores SIGHUP).
// Blocked in every thread; children get an empty mask back before exec.
inline const sigset_t& reaper_signals() {
  static const sigset_t set = [] {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR2);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) {
      struct sigaction old {};
      if (sigaction(sig, nullptr, &old) == 0 && old.sa_handler != SIG_IGN) sigaddset(&s, sig);
    }
    return s;
  }();
  return set;
}

// Opens the reaper's signals in the calling thread for its lifetime: for
// starting processes by means that do not reset the mask (popen), which
// would otherwise inherit it and, e.g., ignore SIGTERM. A signal that
// arrives meanwhile ends the bench by its default action.
class ScopedUnblock {
 public:
  ScopedUnblock() { pthread_sigmask(SIG_UNBLOCK, &reaper_signals(), &old_); }
  ~ScopedUnblock() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }

 private:
  sigset_t old_;
};

// Block the signals *before* any other thread exists (the runtime's
// workers inherit the mask), then start the reaper. SIGUSR2 is the reaper's
// "we are done, go away" from finish().
class Reaper {
 public:
  explicit Reaper(std::chrono::seconds limit) {
    pthread_sigmask(SIG_BLOCK, &reaper_signals(), nullptr);
    thread_ = std::thread([this, limit] { loop(limit); });
  }
  ~Reaper() { finish(); }
  void finish() {
    if (!thread_.joinable()) return;
    done_ = true;
    pthread_kill(thread_.native_handle(), SIGUSR2);
    thread_.join();
  }

 private:
  void loop(std::chrono::seconds limit) {
    const sigset_t& s = reaper_signals();
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      auto left = deadline - std::chrono::steady_clock::now();
      if (left <= 0s) {
        std::fprintf(stderr, "read_bench: time limit of %lld s reached; stopping everything it started\n",
                     static_cast<long long>(limit.count()));
        abort_all(124);
      }
      auto sec = std::chrono::duration_cast<std::chrono::seconds>(left);
      timespec ts{static_cast<time_t>(sec.count()),
                  static_cast<long>(std::chrono::duration_cast<std::chrono::nanoseconds>(left - sec).count())};
      int sig = sigtimedwait(&s, nullptr, &ts);
      if (sig == SIGUSR2 && done_) return;
      if (sig > 0 && sig != SIGUSR2) {
        std::fprintf(stderr, "read_bench: %s; stopping everything it started\n", strsignal(sig));
        abort_all(128 + sig);
      }
    }
  }
  [[noreturn]] static void abort_all(int code) {
    aborting() = true;
    kill_registered_children();
    for (auto& fn : Registry::get().cleanups()) fn();
    std::fflush(stdout);
    std::fflush(stderr);
    ::_exit(code);
  }
  std::thread thread_;
  std::atomic<bool> done_{false};
};

// One child process.
class Child {
 public:
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  Child(Child&& o) noexcept { *this = std::move(o); }
  Child& operator=(Child&& o) noexcept {
    std::swap(pid_, o.pid_);
    std::swap(out_fd_, o.out_fd_);
    std::swap(status_, o.status_);
    return *this;
  }
  ~Child() {
    stop(SIGTERM, 5s);
    if (out_fd_ >= 0) ::close(out_fd_);
  }

  // Starts argv[0] with argv, on the CPUs in `cpus` (empty: inherit),
  // stdout on a pipe (if capture_stdout) else /dev/null, stderr appended to
  // err_file ("" = inherited). Returns false if fork failed.
  // `env` (NAME=VALUE) is added to this process's environment.
  bool spawn(const std::vector<std::string>& args, const std::vector<int>& cpus, bool capture_stdout,
             const std::string& err_file, const std::vector<std::string>& env = {}) {
    std::vector<std::string> copy = args;
    std::vector<char*> argv;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_copy = env;
    std::vector<char*> envp;
    for (auto& e : env_copy) envp.push_back(e.data());
    for (char** e = environ; *e; ++e) {
      const char* eq = std::strchr(*e, '=');
      const std::size_t n = eq ? static_cast<std::size_t>(eq - *e) + 1 : std::strlen(*e);
      bool overridden = false;
      for (auto& mine : env_copy) overridden |= mine.compare(0, n, *e, n) == 0;
      if (!overridden) envp.push_back(*e);
    }
    envp.push_back(nullptr);
    cpu_set_t mask;
    CPU_ZERO(&mask);
    for (int c : cpus) CPU_SET(c, &mask);
    int outp[2] = {-1, -1};
    if (capture_stdout && ::pipe2(outp, O_CLOEXEC) != 0) return false;
    const pid_t parent = ::getpid();
    // Everything the child touches is prepared above: after fork in a
    // threaded process only async-signal-safe calls are allowed.
    pid_t pid = ::fork();
    if (pid < 0) return false;
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // dies with the bench, even by SIGKILL
      if (::getppid() != parent) ::_exit(126);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::signal(SIGPIPE, SIG_DFL);
      if (!cpus.empty() && ::sched_setaffinity(0, sizeof mask, &mask) != 0) ::_exit(125);
      int null = ::open("/dev/null", O_RDWR);
      ::dup2(null, 0);
      ::dup2(capture_stdout ? outp[1] : null, 1);
      if (!err_file.empty()) {
        int e = ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (e >= 0) ::dup2(e, 2);
      }
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    pid_ = pid;
    Registry::get().add(pid);
    if (capture_stdout) {
      ::close(outp[1]);
      out_fd_ = outp[0];
      ::fcntl(out_fd_, F_SETFL, O_NONBLOCK);
    }
    return true;
  }

  // The first line the child prints, or "" if it exits or `limit` passes.
  std::string first_line(std::chrono::milliseconds limit) {
    std::string line;
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      char c;
      ssize_t n = ::read(out_fd_, &c, 1);
      if (n == 1) {
        if (c == '\n') return line;
        line += c;
        continue;
      }
      if (n == 0 || exited()) return "";
      std::this_thread::sleep_for(2ms);
    }
    return "";
  }

  bool exited() {
    if (pid_ <= 0) return true;
    int st;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      status_ = st;
      Registry::get().remove(pid_);
      pid_ = -1;
      return true;
    }
    return false;
  }

  // Sends sig, waits up to `limit`, then SIGKILL. Returns the wait status
  // (-1 if it was never started).
  int stop(int sig, std::chrono::milliseconds limit) {
    if (pid_ <= 0) return status_;
    ::kill(pid_, sig);
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!exited() && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(5ms);
    if (!exited()) {
      ::kill(pid_, SIGKILL);
      int st;
      ::waitpid(pid_, &st, 0);
      status_ = st;
      Registry::get().remove(pid_);
      pid_ = -1;
    }
    return status_;
  }

  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int status_ = -1;
};

// The CPUs this process may run on, in order.
inline std::vector<int> allowed_cpus() {
  cpu_set_t m;
  CPU_ZERO(&m);
  std::vector<int> out;
  if (sched_getaffinity(0, sizeof m, &m) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &m)) out.push_back(c);
  if (out.empty()) out.push_back(0);
  return out;
}

}  // namespace readbench
