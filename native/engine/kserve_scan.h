// Reads the fields of a serialized KServe ModelInferRequest the ingress needs (model, version,
// id, each input's name, datatype, shape and where its contents are) without decoding tensor
// bytes, and checks what can be checked without them: known datatypes, sane shapes, and that
// each tensor's raw bytes or typed element count match its shape. A port of
// src/kserve/infer-request-scan.ts (same rules, same statuses, same messages) for the engine.
// The scanner keeps its arrays between requests, so scanning allocates nothing once they have
// grown to the largest request seen. Field numbers: proto/grpc_service.proto.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "engine/grpc_status.h"

namespace sluice::engine {

struct ByteSpan {
  uint32_t start = 0;
  uint32_t end = 0;
};

struct ScannedInput {
  ByteSpan name;
  ByteSpan datatype;
  // Dimensions live in KServeScanner::dims(); a dimension that is negative or above 2^53 - 1
  // reads as -1 (as the TypeScript scanner has it).
  uint32_t dims_start = 0;
  uint32_t dims_count = 0;
  bool has_contents = false;
  // Element count per InferTensorContents field (index = field number 1-8).
  double contents[9] = {};
};

struct ScannedHead {
  ByteSpan model_name;
  ByteSpan model_version;
  ByteSpan id;
};

class KServeScanner {
 public:
  // Scans and validates a ModelInferRequest. On success, head(), inputs(), raw() describe it.
  CallError ScanInferRequest(const uint8_t* buf, size_t len);
  // Reads only fields 1-3 (ModelInferRequest, ModelReadyRequest, ModelMetadataRequest).
  static CallError ScanHead(const uint8_t* buf, size_t len, ScannedHead* head);

  const ScannedHead& head() const { return head_; }
  const std::vector<ScannedInput>& inputs() const { return inputs_; }
  const std::vector<ByteSpan>& raw() const { return raw_; }
  const std::vector<int64_t>& dims() const { return dims_; }

  static std::string_view View(const uint8_t* buf, ByteSpan s) {
    return std::string_view(reinterpret_cast<const char*>(buf) + s.start, s.end - s.start);
  }

 private:
  CallError Scan(const uint8_t* buf, size_t len);
  CallError ScanInput(const uint8_t* buf, size_t start, size_t end, ScannedInput* in);
  CallError Validate(const uint8_t* buf);

  ScannedHead head_;
  std::vector<ScannedInput> inputs_;
  std::vector<ByteSpan> raw_;
  std::vector<int64_t> dims_;
  // Open-addressing set of input indices by name (duplicate names), reused.
  std::vector<uint32_t> name_slots_;
};

// BYTES raw layout: each element is a 4-byte little-endian length, then that many bytes.
// `what` names the tensor in the message.
CallError CheckBytesElements(const uint8_t* buf, ByteSpan span, double count, const std::string& what);

}  // namespace sluice::engine
