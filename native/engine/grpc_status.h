// gRPC status codes and the error of a call on the engine's ingress: the status the client
// gets, the stable SLUICE_ERR_* code (audit, logs, metrics) and a message that says what was
// wrong. The same codes and statuses as src/kserve/inference-error.ts, so a refusal reads the
// same whether the engine or the TypeScript ingress made it.
#pragma once

#include <cstdint>
#include <string>

namespace sluice::engine {

enum class GrpcStatus : uint8_t {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

// SLUICE_ERR_* codes the ingress produces (src/kserve/inference-error.ts).
namespace err {
inline constexpr const char* kBadRequest = "SLUICE_ERR_BAD_REQUEST";
inline constexpr const char* kMalformedProtobuf = "SLUICE_ERR_MALFORMED_PROTOBUF";
inline constexpr const char* kUnknownDatatype = "SLUICE_ERR_UNKNOWN_DATATYPE";
inline constexpr const char* kTensorSize = "SLUICE_ERR_TENSOR_SIZE";
inline constexpr const char* kTooLarge = "SLUICE_ERR_TOO_LARGE";
inline constexpr const char* kDeadlineExceeded = "SLUICE_ERR_DEADLINE_EXCEEDED";
inline constexpr const char* kCancelled = "SLUICE_ERR_CANCELLED";
inline constexpr const char* kInternal = "SLUICE_ERR_INTERNAL";
inline constexpr const char* kMethodNotAllowed = "SLUICE_ERR_METHOD_NOT_ALLOWED";
inline constexpr const char* kUnauthenticated = "SLUICE_ERR_UNAUTHENTICATED";
inline constexpr const char* kTokenExpired = "SLUICE_ERR_TOKEN_EXPIRED";
inline constexpr const char* kPermissionDenied = "SLUICE_ERR_PERMISSION_DENIED";
inline constexpr const char* kTenantDenied = "SLUICE_ERR_TENANT_DENIED";
inline constexpr const char* kRateLimited = "SLUICE_ERR_RATE_LIMITED";
inline constexpr const char* kModelNotFound = "SLUICE_ERR_MODEL_NOT_FOUND";
}  // namespace err

// The failure of one call. `code` points at a static string (one of err::*).
struct CallError {
  GrpcStatus status = GrpcStatus::kOk;
  const char* code = "";
  std::string message;

  bool ok() const { return status == GrpcStatus::kOk; }
  static CallError Ok() { return {}; }
  static CallError Of(GrpcStatus s, const char* c, std::string m) { return CallError{s, c, std::move(m)}; }
};

}  // namespace sluice::engine
