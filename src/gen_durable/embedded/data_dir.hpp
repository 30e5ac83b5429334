// The checks and preparation of the data directory before initdb or a start: who must own it,
// its mode, its parent's, the path the server account must be able to traverse, and the lock
// that serializes starts of one cluster across processes.
#pragma once

#include <filesystem>

#include "gen_durable/embedded/embedded.hpp"

namespace gen_durable::detail::embedded {

// The `postgres` OS account, required only when we are root; throws Error when it is missing.
FileOwner LookUpServerAccount();
// Who owns the data directory and the files written into it: the server's account when root,
// else this process's user.
FileOwner ExpectedOwner();
// Creates each missing ancestor of `dir` with mode 0755 (whatever the umask), so that the server
// account can traverse them.
void CreateParents(const std::filesystem::path& dir);
// The data directory's parent must not let other users rename or replace the data directory:
// a directory anyone may write to is refused unless it is sticky (like /tmp, where only the
// owner of an entry may rename it).
void CheckParent(const std::filesystem::path& dir);
// The data directory must be owned by the account that runs the server and be mode 0700, as
// initdb makes it: otherwise another account could plant files in it, or read the cluster. An
// existing directory is never chowned or chmodded: taking over a directory someone else made
// is how a link planted in advance would get followed. A missing one is created so.
void EnsureDataDir(const std::filesystem::path& dir, const FileOwner& expected);
// When root, the server runs as `postgres` and must be able to reach its data directory.
void CheckTraversable(const std::filesystem::path& dir, const FileOwner& account);

// Serializes initdb/start of one data directory across processes (an exclusive flock on its
// parent directory, released when this object dies or the process exits).
class StartLock {
 public:
  explicit StartLock(const std::filesystem::path& parent);
  ~StartLock();
  StartLock(const StartLock&) = delete;
  StartLock& operator=(const StartLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace gen_durable::detail::embedded
