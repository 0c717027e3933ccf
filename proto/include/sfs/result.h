// result.h: a value or a message saying what went wrong.
//
// Contract
//   - Result<T> holds either a T or an error string meant for a person
//     ("what happened, to what, what to do"). C++20 has no std::expected;
//     this is the smallest stand-in the proto library needs.
//   - Used on cold paths only (key files, names, handshake, login). The
//     per-record hot path (channel.h) reports errors as enum codes instead,
//     so it never allocates.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace sfs {

struct Error {
  std::string message;
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error e) : v_(std::move(e)) {}      // NOLINT: implicit by design

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const std::string& error() const { return std::get<1>(v_).message; }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success or an error.
struct Status {
  Status() = default;
  Status(Error e) : failed_(true), message_(std::move(e.message)) {}  // NOLINT
  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const std::string& error() const { return message_; }

 private:
  bool failed_ = false;
  std::string message_;
};

inline Error make_error(std::string message) { return Error{std::move(message)}; }

}  // namespace sfs
