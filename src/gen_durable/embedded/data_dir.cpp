// The data directory's checks before initdb or a start (owner, mode, parent, traversal), the
// lock serializing starts, and where the data directory is by default.
#include "gen_durable/embedded/data_dir.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "gen_durable/embedded/data_files.hpp"
#include "gen_durable/embedded/process.hpp"
#include "gen_durable/error.hpp"

namespace gen_durable::detail {

namespace fs = std::filesystem;

namespace embedded {

FileOwner LookUpServerAccount() {
  passwd* pw = getpwnam(kServerUser);
  if (pw == nullptr) {
    throw Error(
        "embedded postgres: running as root, but the `postgres` OS user does not exist "
        "(initdb refuses to run as root); install the `postgresql` package, which creates it, "
        "or run as a non-root user");
  }
  return {pw->pw_uid, pw->pw_gid};
}

FileOwner ExpectedOwner() {
  if (IsRoot()) return LookUpServerAccount();
  return {geteuid(), getegid()};
}

void CreateParents(const fs::path& dir) {
  std::vector<fs::path> missing;
  std::error_code ec;
  for (fs::path p = dir.parent_path(); !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
    missing.push_back(p);
    if (p == p.root_path()) break;
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (mkdir(it->c_str(), 0755) != 0) {
      if (errno == EEXIST) continue;  // made by someone else meanwhile: left as it is
      throw Error("embedded postgres: cannot create directory " + it->string() + ": " +
                  std::strerror(errno));
    }
    // Through a descriptor: a link swapped in for the new directory must not get the mode.
    const Fd fd(open(it->c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (fd.get() >= 0) fchmod(fd.get(), 0755);
  }
}

void CheckParent(const fs::path& dir) {
  const fs::path parent = dir.parent_path();
  struct stat st {};
  if (stat(parent.c_str(), &st) != 0) return;  // reported when the data directory is created
  if ((st.st_mode & S_IWOTH) != 0 && (st.st_mode & S_ISVTX) == 0) {
    throw ConfigError("embedded postgres: " + parent.string() + " (mode " + ModeText(st.st_mode) +
                      ") may be written by any user, who could replace the data directory " +
                      dir.string() + "; choose a data directory elsewhere (GEN_DURABLE_HOME)");
  }
}

void EnsureDataDir(const fs::path& dir, const FileOwner& expected) {
  const std::string d = dir.string();
  if (mkdir(d.c_str(), 0700) == 0) {
    Fd fd(open(d.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (fd.get() < 0) throw Error("embedded postgres: cannot open " + d + ": " + Errno());
    if (fchmod(fd.get(), 0700) != 0 ||
        (IsRoot() && fchown(fd.get(), expected.uid, expected.gid) != 0)) {
      throw Error("embedded postgres: cannot give " + d + " to " + UserName(expected.uid) +
                  " with mode 0700: " + Errno());
    }
  } else if (errno != EEXIST) {
    throw Error("embedded postgres: cannot create " + d + ": " + Errno());
  }
  struct stat st {};
  if (stat(d.c_str(), &st) != 0) {
    throw Error("embedded postgres: cannot stat " + d + ": " + Errno());
  }
  if (!S_ISDIR(st.st_mode)) {
    throw ConfigError("embedded postgres: " + d + " exists and is not a directory");
  }
  if (st.st_uid != expected.uid) {
    throw ConfigError("embedded postgres: the data directory " + d + " is owned by " +
                      UserName(st.st_uid) + ", not by " + UserName(expected.uid) +
                      ", which runs the server; run `chown -R " + UserName(expected.uid) + " " + d +
                      "` if it is yours, or choose another data directory");
  }
  if ((st.st_mode & 07777) != 0700) {
    throw ConfigError("embedded postgres: the data directory " + d + " has mode " +
                      ModeText(st.st_mode) + "; it must be mode 0700 (only " +
                      UserName(expected.uid) + " may enter it): run `chmod 0700 " + d + "`");
  }
}

void CheckTraversable(const fs::path& dir, const FileOwner& account) {
  for (fs::path p = dir.parent_path(); !p.empty(); p = p.parent_path()) {
    struct stat st {};
    if (stat(p.c_str(), &st) == 0) {
      bool ok = (st.st_mode & S_IXOTH) || (st.st_uid == account.uid && (st.st_mode & S_IXUSR)) ||
                (st.st_gid == account.gid && (st.st_mode & S_IXGRP));
      if (!ok) {
        throw Error(
            "embedded postgres: the server runs as the `postgres` user, which cannot "
            "enter " +
            p.string() + " (on the way to " + dir.string() + "); run `chmod o+x " + p.string() +
            "` or choose a data directory elsewhere");
      }
    }
    if (p == p.root_path()) break;
  }
}

StartLock::StartLock(const fs::path& parent) {
  fd_ = open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd_ < 0) return;  // best effort: the attach-after-failure path still covers races
  while (flock(fd_, LOCK_EX) != 0 && errno == EINTR) {
  }
}

StartLock::~StartLock() {
  if (fd_ >= 0) close(fd_);
}

}  // namespace embedded

using embedded::IsRoot;

std::string DefaultDataDir() {
  if (const char* home = std::getenv("GEN_DURABLE_HOME"); home != nullptr && *home != '\0') {
    return (fs::path(home) / "pgdata").string();
  }
  if (IsRoot()) return "/var/lib/gen_durable/pgdata";
  fs::path base;
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg != nullptr && *xdg == '/') {
    base = xdg;
  } else {
    const char* home = std::getenv("HOME");
    if (home == nullptr || *home == '\0') {
      passwd* pw = getpwuid(geteuid());
      home = pw != nullptr ? pw->pw_dir : nullptr;
    }
    // A shared directory such as /tmp would let another user create the cluster first.
    if (home == nullptr || *home != '/') {
      throw ConfigError(
          "embedded postgres: no home directory to put the data directory in (HOME is unset "
          "and the user has no passwd entry); set GEN_DURABLE_HOME or pass --database");
    }
    base = fs::path(home) / ".local" / "share";
  }
  return (base / "gen_durable" / "pgdata").string();
}

}  // namespace gen_durable::detail
