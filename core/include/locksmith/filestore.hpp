// FileStore (gocept.filestore 0.5): a maildir-like hand-off directory. Producers write a message
// into ROOT/tmp/NAME and publish it by renaming it into ROOT/new/NAME; consumers claim it by
// renaming ROOT/new/NAME to ROOT/cur/NAME. The directory names are gocept's, so a Python
// gocept.filestore user sees the same files.
//
// Semantics
//  - Nothing partial is ever visible in new/ or cur/: a Writer writes into tmp/, and commit()
//    fsyncs the file, renames it into new/ and fsyncs new/. A Writer destroyed without commit()
//    unlinks its tmp/ file. A producer killed mid-write leaves only tmp/ litter.
//  - Exactly-once claim: claim() is one rename(2) of new/NAME to cur/NAME. The kernel serialises
//    renames of one directory entry, so of several concurrent claimers exactly one succeeds and
//    the others get ENOENT (reported as `false`). This holds between processes, threads and
//    hosts sharing a local filesystem. NFS: rename is atomic on the server, but a retransmitted
//    RENAME after a lost reply can report ENOENT to the winner (message claimed, nobody told);
//    use one claimer per message on NFS or reconcile with cur/.
//  - Names are single path components: "", ".", "..", and names containing '/' or NUL are
//    rejected with EINVAL (std::errc::invalid_argument), so no name escapes the store.
//    unique_name() gives maildir-style names (seconds.Musec P pid R random) that sort by creation
//    time.
//  - commit() never replaces a message already in new/ (renameat2 RENAME_NOREPLACE; on
//    filesystems without it, a plain rename). move() replaces, as gocept's os.rename does.
//  - claim_next() reads new/ on every call and tries names in sorted order, skipping names
//    starting with '.' (maildir convention, and the in-flight names of copy()). Its cost is that
//    readdir: ~20 us with 1 message waiting, ~0.8 ms with 1000 (ext4, bench_filestore).
//  - Durability (sync = true): commit() fsyncs the file and new/; claim(), move() and copy()
//    fsync the destination directory, so a claim is not undone by a crash after it returned.
//  - All descriptors are O_CLOEXEC; files are created O_EXCL | O_NOFOLLOW with the given
//    permissions (before the umask); directories made by prepare() get the same bits plus x
//    where r is set (0644 -> 0755).
//  - POSIX only (filestore_posix.cpp).
#pragma once

#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "locksmith/unique_fd.hpp"

namespace locksmith {

class FileStore {
 public:
  static constexpr std::string_view kTmp = "tmp";
  static constexpr std::string_view kNew = "new";
  static constexpr std::string_view kCur = "cur";

  // A message being written into tmp/NAME: committed into new/ or discarded.
  class Writer {
   public:
    Writer(Writer&&) noexcept;
    Writer& operator=(Writer&&) noexcept;
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;
    ~Writer();  // discards unless committed

    // Writes all of `data` (retrying short writes and EINTR).
    void write(std::string_view data);
    std::error_code write(std::span<const std::byte> data) noexcept;

    // fsync, rename tmp/NAME -> new/NAME (never over an existing new/NAME), fsync new/.
    void commit();
    std::error_code commit(std::nothrow_t) noexcept;
    // Closes and unlinks tmp/NAME.
    void discard() noexcept;

    const std::string& name() const noexcept { return name_; }
    std::filesystem::path temp_path() const;
    bool active() const noexcept { return fd_.valid(); }
    native_handle native() const noexcept { return fd_.get(); }

   private:
    friend class FileStore;
    Writer() = default;
    std::filesystem::path root_;
    std::string name_;
    bool sync_ = true;
    UniqueFd fd_;
  };

  explicit FileStore(std::filesystem::path root, unsigned permissions = 0644, bool sync = true);

  const std::filesystem::path& path() const noexcept { return root_; }
  // ROOT/section (section checked like a name).
  std::filesystem::path section_path(std::string_view section) const;

  // Makes ROOT (not its parents), tmp/, new/ and cur/ where missing.
  void prepare();
  std::error_code prepare(std::nothrow_t) noexcept;

  // Opens tmp/NAME (O_EXCL: an existing tmp/NAME is EEXIST).
  Writer create(std::string_view name);
  Writer create(std::string_view name, std::error_code& ec) noexcept;

  // rename(ROOT/from/NAME, ROOT/to/NAME); replaces an existing destination.
  void move(std::string_view name, std::string_view from, std::string_view to);
  std::error_code move(std::string_view name, std::string_view from, std::string_view to,
                       std::nothrow_t) noexcept;
  // Copies ROOT/from/NAME to ROOT/to/NAME through a hidden file in tmp/ and a rename, so the
  // destination is never partial (gocept copies in place).
  void copy(std::string_view name, std::string_view from, std::string_view to);
  std::error_code copy(std::string_view name, std::string_view from, std::string_view to,
                       std::nothrow_t) noexcept;
  void remove(std::string_view name, std::string_view section);
  std::error_code remove(std::string_view name, std::string_view section, std::nothrow_t) noexcept;

  // Full paths of the entries of ROOT/section, sorted by name.
  std::vector<std::filesystem::path> list(std::string_view section) const;
  std::error_code list(std::string_view section,
                       std::vector<std::filesystem::path>& out) const noexcept;

  std::string read(std::string_view name, std::string_view section) const;
  std::error_code read(std::string_view name, std::string_view section,
                       std::string& out) const noexcept;

  // Moves new/NAME to cur/NAME. true: this caller claimed it; false: it is not (or no longer) in
  // new/ — another consumer won. `consumer` names the claimer in error messages only; the file
  // keeps its name so gocept users find it in cur/.
  bool claim(std::string_view name, std::string_view consumer);
  std::error_code claim(std::string_view name, std::string_view consumer, bool& claimed) noexcept;
  // Claims the first (by name) message in new/ that this caller wins; nullopt when new/ held
  // nothing this caller could claim.
  std::optional<std::string> claim_next(std::string_view consumer);
  std::error_code claim_next(std::string_view consumer, std::optional<std::string>& out) noexcept;

  // "SECONDS.MUSECPpidRrandom": time, pid and 64 random bits from getrandom.
  static std::string unique_name();
  static std::error_code unique_name(std::string& out) noexcept;

  // Whether `name` is a single path component the store accepts.
  static bool valid_name(std::string_view name) noexcept;

 private:
  std::filesystem::path root_;
  unsigned permissions_;
  bool sync_;
};

}  // namespace locksmith
