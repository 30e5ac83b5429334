// Descriptor-relative file access inside a directory another account may control (the data
// directory, written as root): the parts shared by the file helpers declared in embedded.hpp
// and by the data-directory checks.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <utility>

namespace gen_durable::detail::embedded {

// Closes a descriptor on every path out.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// strerror(errno).
std::string Errno();
// The permission bits of `mode` in octal, e.g. "0700".
std::string ModeText(mode_t mode);
// The account's name, or "uid N" when it has no passwd entry.
std::string UserName(uid_t uid);
// Opens directory `dir` for use with the *at() calls. With `owner_uid`, it must belong to that
// user and be writable by no one else: then whatever is written relative to it lands in a
// directory that user controls anyway, wherever a link on the way pointed.
Fd OpenDir(const std::string& dir, std::optional<uid_t> owner_uid);
// Writes all of `content` to `fd` (`what` names the file in the error).
void WriteAll(int fd, const std::string& content, const std::string& what);

}  // namespace gen_durable::detail::embedded
