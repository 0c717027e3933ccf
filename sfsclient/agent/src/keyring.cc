// keyring.cc: the agent's keys in locked memory (KeyRing in sfs/agent.h).
#include <sodium.h>

#include <algorithm>
#include <new>

#include "sfs/agent.h"
#include "sfs/login.h"
#include "sfs/names.h"

namespace sfs {

namespace {

// sodium_malloc puts the block at the end of a page, so that an overflow
// hits the guard page; its alignment is that of its size. A multiple of 16
// aligns any UserKey.
constexpr std::size_t kLockedBytes = (sizeof(UserKey) + 15) & ~std::size_t{15};
static_assert(alignof(UserKey) <= 16);

std::string describe(const KeyRing::Entry& e) {
  return format_user_public_key(e.key->public_key()) + " as " + e.name + ", for " +
         (e.server.empty() ? std::string("any server") : e.server);
}

}  // namespace

KeyRing::LockedKey::LockedKey(UserKey key) {
  ensure_sodium();
  void* mem = sodium_malloc(kLockedBytes);  // mlock'ed if RLIMIT_MEMLOCK allows
  if (!mem) throw std::bad_alloc();
  p_ = new (mem) UserKey(std::move(key));  // the moved-from key wipes itself
}

KeyRing::LockedKey& KeyRing::LockedKey::operator=(LockedKey&& o) noexcept {
  if (this != &o) {
    release();
    p_ = o.p_;
    o.p_ = nullptr;
  }
  return *this;
}

KeyRing::LockedKey::~LockedKey() { release(); }

void KeyRing::LockedKey::release() noexcept {
  if (!p_) return;
  p_->~UserKey();   // sodium_memzero of the secret
  sodium_free(p_);  // and of the whole block, then munlock
  p_ = nullptr;
}

Result<std::string> KeyRing::add(UserKey key, std::string name, std::string server,
                                 std::string comment) {
  if (!valid_user_name(name))
    return make_error("\"" + printable_text(name) +
                      "\" is not a valid SFS user name ([a-z_][a-z0-9_.-]{0,31}); give one with "
                      "--name");
  if (!server.empty()) {
    auto parsed = parse_name(server);
    if (!parsed) return make_error(parsed.error());
  }
  if (comment.size() > kMaxAgentCommentChars)
    return make_error("comment of " + std::to_string(comment.size()) + " characters (at most " +
                      std::to_string(kMaxAgentCommentChars) + ")");
  for (Entry& e : entries_) {
    if (e.key->public_key() == key.public_key()) {
      e.key = LockedKey(std::move(key));
      e.name = std::move(name);
      e.server = std::move(server);
      e.comment = std::move(comment);
      return "updated " + describe(e);
    }
  }
  if (entries_.size() >= kMaxAgentKeys)
    return make_error("the agent already holds " + std::to_string(kMaxAgentKeys) +
                      " keys; delete one first (sfskey delete)");
  entries_.push_back(
      Entry{LockedKey(std::move(key)), std::move(name), std::move(server), std::move(comment)});
  return "added " + describe(entries_.back());
}

std::size_t KeyRing::remove(DeleteKeyRequest::By by, std::string_view what) {
  const auto matches = [&](const Entry& e) {
    return by == DeleteKeyRequest::By::kPublicKey
               ? format_user_public_key(e.key->public_key()) == what
               : e.comment == what;
  };
  const auto before = entries_.size();
  std::erase_if(entries_, matches);
  return before - entries_.size();
}

std::size_t KeyRing::clear() {
  const auto n = entries_.size();
  entries_.clear();
  return n;
}

std::vector<AgentKeyInfo> KeyRing::list() const {
  std::vector<AgentKeyInfo> out;
  for (const Entry& e : entries_)
    out.push_back({format_user_public_key(e.key->public_key()), e.name, e.server, e.comment});
  return out;
}

const KeyRing::Entry* KeyRing::pick(std::string_view server) const {
  for (const Entry& e : entries_)
    if (e.server.empty() || e.server == server) return &e;
  return nullptr;
}

}  // namespace sfs
