// lines.h: walking a text file's contents line by line, with line numbers
// for error messages ("FILE:LINE: ..."), without copying.
#pragma once

#include <cstddef>
#include <string_view>

namespace sfs {

// Lines end at '\n'; the last may lack one. Numbers start at 1.
class LineCursor {
 public:
  explicit LineCursor(std::string_view text) : rest_(text) {}

  // The next line into *line; false at the end.
  bool next(std::string_view* line) {
    if (rest_.empty()) return false;
    const std::size_t nl = rest_.find('\n');
    *line = rest_.substr(0, nl);
    rest_ = nl == std::string_view::npos ? std::string_view{} : rest_.substr(nl + 1);
    ++number_;
    return true;
  }
  // The number of the line next() returned last.
  std::size_t number() const { return number_; }

 private:
  std::string_view rest_;
  std::size_t number_ = 0;
};

}  // namespace sfs
