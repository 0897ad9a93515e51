// Errors of the verbs core: a stable code (SLUICE_ERR_RDMA_*) and a message that says what
// failed and, where it helps, what to do. The binding turns them into JS errors {code, message}.
#pragma once

#include <stdexcept>
#include <string>

namespace sluice::verbs {

class Error : public std::runtime_error {
 public:
  Error(std::string code, const std::string& message) : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

// "ibv_create_qp failed: Cannot allocate memory (ENOMEM)" from an errno value.
std::string errno_text(const char* what, int err);

}  // namespace sluice::verbs
