// airm::Error — the one exception type the library throws for bad input.
#pragma once

#include <stdexcept>
#include <string>

namespace airm {

// What was wrong, and with which file. what() reads "FILE: PROBLEM", or
// just "PROBLEM" when no file is involved.
class Error : public std::runtime_error {
 public:
  Error(std::string file, std::string problem);
  // "FILE: expected EXPECTED, got GOT"
  Error(std::string file, const std::string& expected, const std::string& got);

  const std::string& file() const noexcept { return file_; }
  const std::string& problem() const noexcept { return problem_; }

 private:
  std::string file_;
  std::string problem_;
};

}  // namespace airm
