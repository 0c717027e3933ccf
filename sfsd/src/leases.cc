// leases.cc: see leases.h.
#include "leases.h"

#include <algorithm>
#include <string_view>

namespace sfsd {

std::size_t HandleHash::operator()(const asmp::nfs::FileHandle& fh) const noexcept {
  auto b = fh.bytes();
  return std::hash<std::string_view>{}(
      std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
}

void LeaseTable::grant(ConnId conn, const asmp::nfs::FileHandle& fh, Clock::time_point until,
                       std::vector<asmp::nfs::FileHandle>* evicted) {
  auto& holders = by_handle_[fh];
  PerConn& pc = by_conn_[conn];
  for (Holder& h : holders) {
    if (h.conn != conn) continue;
    h.until = std::max(h.until, until);
    // Renewed: now the youngest of this connection's leases.
    auto it = pc.pos.find(fh);
    if (it != pc.pos.end()) pc.order.splice(pc.order.end(), pc.order, it->second);
    return;
  }
  holders.push_back({conn, until});
  pc.order.push_back(fh);
  pc.pos.emplace(fh, std::prev(pc.order.end()));
  ++total_;
  while (pc.order.size() > max_per_conn_) {
    asmp::nfs::FileHandle oldest = pc.order.front();
    remove_holder(conn, oldest);
    if (evicted) evicted->push_back(oldest);
  }
}

void LeaseTable::remove_holder(ConnId conn, const asmp::nfs::FileHandle& fh) {
  auto hit = by_handle_.find(fh);
  if (hit != by_handle_.end()) {
    auto& v = hit->second;
    auto it = std::find_if(v.begin(), v.end(), [&](const Holder& h) { return h.conn == conn; });
    if (it != v.end()) {
      *it = v.back();
      v.pop_back();
      --total_;
    }
    if (v.empty()) by_handle_.erase(hit);
  }
  auto cit = by_conn_.find(conn);
  if (cit == by_conn_.end()) return;
  PerConn& pc = cit->second;
  auto p = pc.pos.find(fh);
  if (p != pc.pos.end()) {
    pc.order.erase(p->second);
    pc.pos.erase(p);
  }
  if (pc.order.empty()) by_conn_.erase(cit);
}

void LeaseTable::take_holders(const asmp::nfs::FileHandle& fh, ConnId writer, Clock::time_point now,
                              std::vector<ConnId>* out) {
  auto hit = by_handle_.find(fh);
  if (hit == by_handle_.end()) return;
  std::vector<ConnId> gone;
  for (const Holder& h : hit->second) {
    if (h.conn == writer) continue;
    if (h.until > now) out->push_back(h.conn);
    gone.push_back(h.conn);
  }
  for (ConnId c : gone) remove_holder(c, fh);
}

bool LeaseTable::others_hold_any(ConnId conn) const {
  return by_conn_.size() > (by_conn_.count(conn) ? 1u : 0u);
}

void LeaseTable::drop_connection(ConnId conn) {
  auto cit = by_conn_.find(conn);
  if (cit == by_conn_.end()) return;
  std::vector<asmp::nfs::FileHandle> held(cit->second.order.begin(), cit->second.order.end());
  for (const auto& fh : held) remove_holder(conn, fh);
}

void LeaseTable::expire(Clock::time_point now, Clock::time_point forget_before) {
  std::vector<std::pair<ConnId, asmp::nfs::FileHandle>> dead;
  for (const auto& [fh, holders] : by_handle_)
    for (const Holder& h : holders)
      if (h.until <= now) dead.emplace_back(h.conn, fh);
  for (const auto& [c, fh] : dead) remove_holder(c, fh);
  std::erase_if(changes_, [&](const auto& kv) { return kv.second.when < forget_before; });
}

void LeaseTable::note_change(const asmp::nfs::FileHandle& fh, std::uint64_t change,
                             Clock::time_point now) {
  changes_[fh] = {change, now};
}

std::uint64_t LeaseTable::last_change(const asmp::nfs::FileHandle& fh) const {
  auto it = changes_.find(fh);
  return it == changes_.end() ? 0 : it->second.number;
}

std::size_t LeaseTable::held_by(ConnId conn) const {
  auto it = by_conn_.find(conn);
  return it == by_conn_.end() ? 0 : it->second.order.size();
}

}  // namespace sfsd
