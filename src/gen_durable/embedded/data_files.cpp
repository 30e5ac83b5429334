// The file helpers of embedded.hpp: every file in the data directory is opened relative to the
// directory with O_NOFOLLOW, and replaced through a fresh O_EXCL temporary file renamed into place.
#include "gen_durable/embedded/data_files.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "gen_durable/embedded/embedded.hpp"
#include "gen_durable/error.hpp"

namespace gen_durable::detail {
namespace embedded {

std::string Errno() { return std::strerror(errno); }

std::string ModeText(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

std::string UserName(uid_t uid) {
  passwd* pw = getpwuid(uid);
  return pw != nullptr ? std::string(pw->pw_name) : "uid " + std::to_string(uid);
}

Fd OpenDir(const std::string& dir, std::optional<uid_t> owner_uid) {
  Fd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) throw Error("embedded postgres: cannot open directory " + dir + ": " + Errno());
  if (owner_uid) {
    struct stat st {};
    if (fstat(fd.get(), &st) != 0) {
      throw Error("embedded postgres: cannot stat " + dir + ": " + Errno());
    }
    if (st.st_uid != *owner_uid || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
      throw Error("embedded postgres: refusing to write into " + dir + " (owned by " +
                  UserName(st.st_uid) + ", mode " + ModeText(st.st_mode) + "): it must belong to " +
                  UserName(*owner_uid) + " and be writable by no one else");
    }
  }
  return fd;
}

void WriteAll(int fd, const std::string& content, const std::string& what) {
  std::size_t done = 0;
  while (done < content.size()) {
    ssize_t n = write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error("embedded postgres: cannot write " + what + ": " + Errno());
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace embedded

using embedded::Errno;
using embedded::Fd;
using embedded::OpenDir;
using embedded::UserName;
using embedded::WriteAll;

void ReplaceDataFile(const std::string& dir, const std::string& name, const std::string& content,
                     const std::optional<FileOwner>& owner) {
  const Fd dir_fd = OpenDir(dir, owner ? owner->uid : geteuid());
  const std::string what = dir + "/" + name;
  // A fresh name each try: O_CREAT|O_EXCL fails on anything already there, a link included,
  // so a name planted in advance costs a retry, never a write through it.
  static std::atomic<unsigned> counter{0};
  std::string tmp;
  int raw = -1;
  for (int attempt = 0; attempt < 100 && raw < 0; ++attempt) {
    tmp = name + ".tmp." + std::to_string(getpid()) + "." + std::to_string(counter++);
    raw = openat(dir_fd.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                 0600);
    if (raw < 0 && errno != EEXIST) {
      throw Error("embedded postgres: cannot create a temporary file in " + dir + ": " + Errno());
    }
  }
  if (raw < 0) throw Error("embedded postgres: no free temporary name for " + what);
  const Fd fd(raw);
  try {
    WriteAll(fd.get(), content, what);
    if (fchmod(fd.get(), 0600) != 0) {
      throw Error("embedded postgres: cannot chmod " + what + ": " + Errno());
    }
    if (owner && fchown(fd.get(), owner->uid, owner->gid) != 0) {
      throw Error("embedded postgres: cannot chown " + what + ": " + Errno());
    }
    // rename replaces a link at `name` itself, never what it points to.
    if (renameat(dir_fd.get(), tmp.c_str(), dir_fd.get(), name.c_str()) != 0) {
      throw Error("embedded postgres: cannot write " + what + ": " + Errno());
    }
  } catch (...) {
    unlinkat(dir_fd.get(), tmp.c_str(), 0);
    throw;
  }
}

void AppendToDataFile(const std::string& dir, const std::string& name, const std::string& content,
                      uid_t owner_uid) {
  const Fd dir_fd = OpenDir(dir, owner_uid);
  const std::string what = dir + "/" + name;
  const Fd fd(openat(dir_fd.get(), name.c_str(),
                     O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (fd.get() < 0) throw Error("embedded postgres: cannot open " + what + ": " + Errno());
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) {
    throw Error("embedded postgres: cannot stat " + what + ": " + Errno());
  }
  // A hard link would let the other account aim this write at a file it cannot write itself.
  if (!S_ISREG(st.st_mode) || st.st_uid != owner_uid || st.st_nlink != 1) {
    throw Error("embedded postgres: refusing to append to " + what +
                ": not a regular file of its own owned by " + UserName(owner_uid));
  }
  WriteAll(fd.get(), content, what);
}

std::string ReadDataFileTail(const std::string& dir, const std::string& name,
                             std::size_t max_bytes) {
  Fd dir_fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() < 0) return "";
  // O_NONBLOCK: a FIFO planted at `name` must not block the open.
  const Fd fd(openat(dir_fd.get(), name.c_str(),
                     O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (fd.get() < 0) return "";
  struct stat st {};
  if (fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return "";
  const off_t size = st.st_size;
  off_t offset = size > static_cast<off_t>(max_bytes) ? size - static_cast<off_t>(max_bytes) : 0;
  std::string out;
  char buf[4096];
  while (out.size() < max_bytes) {
    const std::size_t want = std::min(sizeof(buf), max_bytes - out.size());
    const ssize_t n = pread(fd.get(), buf, want, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    offset += n;
  }
  return out;
}

}  // namespace gen_durable::detail
