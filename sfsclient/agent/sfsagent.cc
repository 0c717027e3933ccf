// sfsagent: a user's key agent. It keeps the user's private SFS keys in
// memory and signs logins for sfsclient, which never reads key files.
// The work is in the sfsagent_link library (sfs/agent.h); this file is the
// program around it: options, keys given on the command line, the control
// socket (before daemonizing, so that errors reach the terminal),
// daemonizing, signals. docs/agent.md says how to run it.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "asmp/runtime.h"
#include "sfs/agent.h"
#include "sfs/agent_control.h"

namespace {

constexpr const char* kUsage =
    "usage: sfsagent [--foreground] [--control PATH] [--registration PATH] [--add FILE]...\n"
    "\n"
    "Holds your SFS private keys in memory and signs logins for sfsclient, which\n"
    "never reads your key files. Add keys with 'sfskey add'; list them with\n"
    "'sfskey list'.\n"
    "\n"
    "  --foreground         stay in the foreground and log to stderr (default:\n"
    "                       become a daemon, print its pid, log to syslog)\n"
    "  --control PATH       the agent's own socket for sfskey (default:\n"
    "                       $SFS_AGENT_SOCK, else $XDG_RUNTIME_DIR/sfs-agent.sock,\n"
    "                       else ~/.sfs/agent.sock)\n"
    "  --registration PATH  sfsclient's socket (default /run/sfs/agent.sock)\n"
    "  --add FILE           load this key file at start (repeatable), with your\n"
    "                       login name as the SFS user name\n"
    "  --help               this text\n";

int usage_error(const std::string& why) {
  std::fprintf(stderr, "sfsagent: %s\n%s", why.c_str(), kUsage);
  return 2;
}

int fail(const std::string& why) {
  std::fprintf(stderr, "sfsagent: %s\n", why.c_str());
  return 1;
}

std::string absolute(const std::string& path) {
  char buf[PATH_MAX];
  if (::realpath(path.c_str(), buf)) return buf;
  return path;
}

void log_to_syslog(const std::string& line) { ::syslog(LOG_AUTH | LOG_INFO, "%s", line.c_str()); }

// Forks; the parent reports the child's pid and exits without running any
// destructor (the control socket and its lock now belong to the child).
void daemonize(const std::string& control_path) {
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    std::perror("sfsagent: fork");
    std::exit(1);
  }
  if (pid > 0) {
    std::printf("sfsagent: started, pid %d, control socket %s\n", static_cast<int>(pid),
                control_path.c_str());
    std::fflush(stdout);
    ::_exit(0);
  }
  ::setsid();
  if (::chdir("/") != 0) {
  }  // "/" always exists; nothing to do if it somehow fails
  const int null = ::open("/dev/null", O_RDWR | O_NOCTTY);
  if (null >= 0) {
    ::dup2(null, 0);
    ::dup2(null, 1);
    ::dup2(null, 2);
    if (null > 2) ::close(null);
  }
  ::openlog("sfsagent", LOG_PID, LOG_AUTH);
}

}  // namespace

int main(int argc, char** argv) {
  bool foreground = false;
  std::string control_path, registration_path = sfs::kDefaultRegistrationPath;
  std::vector<std::string> add_files;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&](const char* opt) -> const char* {
      if (i + 1 >= argc) return nullptr;
      (void)opt;
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--foreground") {
      foreground = true;
    } else if (a == "--control" || a == "--registration" || a == "--add") {
      const char* v = value(argv[i]);
      if (!v || !*v) return usage_error(std::string(a) + " needs a value");
      if (a == "--control")
        control_path = v;
      else if (a == "--registration")
        registration_path = v;
      else
        add_files.push_back(v);
    } else {
      return usage_error("unknown argument \"" + std::string(a) + "\"");
    }
  }
  if (control_path.empty()) {
    auto p = sfs::default_control_path();
    if (!p) return fail(p.error());
    control_path = p.value();
  }
  if (control_path[0] != '/') control_path = absolute(".") + "/" + control_path;

  // Nobody but root may read this process's memory or get a core dump of
  // it; other processes of the same uid lose ptrace access too.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  ::signal(SIGPIPE, SIG_IGN);

  std::string default_user;
  if (auto n = sfs::local_user_name(); n) default_user = n.value();
  sfs::KeyRing keys;
  for (const std::string& f : add_files) {
    auto key = sfs::read_own_user_key(f, ::getuid());
    if (!key) return fail(key.error());
    auto added = keys.add(std::move(key.value()), default_user, "", absolute(f));
    if (!added)
      return fail("cannot use " + f + ": " + added.error() + " (or add it later: sfskey add " + f +
                  " --name NAME)");
  }

  auto control = sfs::ControlSocket::open(control_path, ::getuid());
  if (!control) return fail(control.error());

  if (!foreground) daemonize(control_path);
  control.value().record_pid();

  asmp::Runtime rt(asmp::RuntimeOptions{.threads = 1});
  sfs::AgentOptions opts;
  opts.registration_path = registration_path;
  opts.default_user = default_user;
  opts.owner = ::getuid();
  if (!foreground) opts.log = log_to_syslog;
  sfs::Agent* agent_ptr = nullptr;
  int exit_code = 0;
  auto quit = [&rt, &agent_ptr, &exit_code](int code) {
    exit_code = code;
    agent_ptr->stop([&rt, code] { rt.stop(code); });
  };
  opts.on_replaced = [&quit](const std::string&) { quit(0); };
  sfs::Agent agent(rt, 0, std::move(control.value()), std::move(keys), std::move(opts));
  agent_ptr = &agent;
  rt.sigcb(SIGTERM, [&quit] { quit(0); });
  rt.sigcb(SIGINT, [&quit] { quit(0); });
  rt.sigcb(SIGHUP, [] {});  // the terminal going away is no reason to drop the keys
  agent.start();
  if (foreground)
    std::fprintf(stderr, "sfsagent: running, pid %d, control socket %s\n",
                 static_cast<int>(::getpid()), control_path.c_str());
  const int code = rt.run();
  return code == 0 ? exit_code : code;
}
