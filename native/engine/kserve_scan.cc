#include "engine/kserve_scan.h"

#include <cmath>
#include <cstdio>
#include <cstring>

namespace sluice::engine {

namespace {

enum WireType : uint32_t { kVarint = 0, kI64 = 1, kLen = 2, kI32 = 5 };
constexpr double kMaxSafeInteger = 9007199254740991.0;
// readVarint's marker for a value above 2^53 - 1 (or a negative int64).
constexpr int64_t kVarintTooBig = -1;

CallError Malformed(const std::string& what) {
  return CallError::Of(GrpcStatus::kInvalidArgument, err::kMalformedProtobuf, "malformed protobuf: " + what);
}

CallError BadRequest(std::string m) { return CallError::Of(GrpcStatus::kInvalidArgument, err::kBadRequest, std::move(m)); }
CallError TensorSize(std::string m) { return CallError::Of(GrpcStatus::kInvalidArgument, err::kTensorSize, std::move(m)); }

// A bounds-checked protobuf reader over [pos, end) of untrusted bytes (src/kserve/proto-reader.ts).
struct Reader {
  const uint8_t* buf;
  size_t pos;
  size_t end;
  bool done() const { return pos >= end; }

  // Unsigned varint; kVarintTooBig when it exceeds 2^53 - 1.
  CallError Varint(int64_t* out) {
    uint64_t value = 0;
    for (int i = 0; i < 10; i++) {
      if (pos >= end) return Malformed("truncated varint");
      uint8_t b = buf[pos++];
      if (i == 9 && b > 1) return Malformed("varint longer than 64 bits");
      value |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
      if (b < 0x80) {
        *out = value > 9007199254740991ull ? kVarintTooBig : static_cast<int64_t>(value);
        return CallError::Ok();
      }
    }
    return Malformed("varint longer than 10 bytes");
  }

  CallError Tag(uint32_t* field, uint32_t* wt) {
    int64_t tag = 0;
    CallError e = Varint(&tag);
    if (!e.ok()) return e;
    if (tag == kVarintTooBig || tag > 0xffffffffll) return Malformed("tag out of range");
    if ((tag >> 3) == 0) return Malformed("field number 0");
    *field = static_cast<uint32_t>(tag >> 3);
    *wt = static_cast<uint32_t>(tag & 7);
    return CallError::Ok();
  }

  CallError LengthEnd(size_t* out) {
    int64_t len = 0;
    CallError e = Varint(&len);
    if (!e.ok()) return e;
    if (len == kVarintTooBig || static_cast<uint64_t>(len) > end - pos) return Malformed("length past the end of the message");
    *out = pos + static_cast<size_t>(len);
    return CallError::Ok();
  }

  CallError Span(ByteSpan* s) {
    size_t e_end = 0;
    CallError e = LengthEnd(&e_end);
    if (!e.ok()) return e;
    s->start = static_cast<uint32_t>(pos);
    s->end = static_cast<uint32_t>(e_end);
    pos = e_end;
    return CallError::Ok();
  }

  CallError Skip(uint32_t wt) {
    switch (wt) {
      case kVarint: {
        int64_t v;
        return Varint(&v);
      }
      case kI64:
        if (end - pos < 8) return Malformed("truncated fixed64");
        pos += 8;
        return CallError::Ok();
      case kLen: {
        size_t e_end = 0;
        CallError e = LengthEnd(&e_end);
        if (!e.ok()) return e;
        pos = e_end;
        return CallError::Ok();
      }
      case kI32:
        if (end - pos < 4) return Malformed("truncated fixed32");
        pos += 4;
        return CallError::Ok();
      default:
        return Malformed("unsupported wire type " + std::to_string(wt));
    }
  }
};

struct DatatypeInfo {
  std::string_view name;
  uint32_t size;            // bytes per element in raw form; 0 for BYTES
  uint32_t contents_field;  // InferTensorContents field; 0 when raw only
};

constexpr DatatypeInfo kDatatypes[] = {
    {"BOOL", 1, 1},   {"UINT8", 1, 4}, {"UINT16", 2, 4}, {"UINT32", 4, 4}, {"UINT64", 8, 5},
    {"INT8", 1, 2},   {"INT16", 2, 2}, {"INT32", 4, 2},  {"INT64", 8, 3},  {"FP16", 2, 0},
    {"BF16", 2, 0},   {"FP32", 4, 6},  {"FP64", 8, 7},   {"BYTES", 0, 8},
};
constexpr const char* kDatatypeList = "BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, BF16, FP32, FP64, BYTES";

const DatatypeInfo* FindDatatype(std::string_view name) {
  for (const DatatypeInfo& d : kDatatypes) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

// JavaScript's String(number) for the integral doubles the messages print.
std::string Num(double v) {
  if (std::isnan(v)) return "NaN";
  if (v == std::floor(v) && std::fabs(v) < 1e21) {
    char b[32];
    std::snprintf(b, sizeof b, "%.0f", v);
    return b;
  }
  char b[32];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}

uint64_t HashBytes(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

CallError KServeScanner::ScanHead(const uint8_t* buf, size_t len, ScannedHead* head) {
  Reader r{buf, 0, len};
  *head = ScannedHead{};
  while (!r.done()) {
    uint32_t field = 0, wt = 0;
    CallError e = r.Tag(&field, &wt);
    if (!e.ok()) return e;
    if (field <= 3 && wt == kLen) {
      ByteSpan s;
      e = r.Span(&s);
      if (!e.ok()) return e;
      (field == 1 ? head->model_name : field == 2 ? head->model_version : head->id) = s;
    } else if (field <= 3) {
      return Malformed("field " + std::to_string(field) + " must be length-delimited");
    } else {
      e = r.Skip(wt);
      if (!e.ok()) return e;
    }
  }
  return CallError::Ok();
}

CallError KServeScanner::ScanInferRequest(const uint8_t* buf, size_t len) {
  if (len > 0xffffffffu) return BadRequest("request larger than 4 GiB");
  CallError e = Scan(buf, len);
  if (!e.ok()) return e;
  e = Validate(buf);
  if (!e.ok()) return e;
  if (head_.model_name.end == head_.model_name.start) return BadRequest("the request names no model");
  return CallError::Ok();
}

CallError KServeScanner::Scan(const uint8_t* buf, size_t len) {
  head_ = ScannedHead{};
  inputs_.clear();
  raw_.clear();
  dims_.clear();
  Reader r{buf, 0, len};
  while (!r.done()) {
    uint32_t field = 0, wt = 0;
    CallError e = r.Tag(&field, &wt);
    if (!e.ok()) return e;
    if (field >= 1 && field <= 7 && field != 4 && field != 6 && wt != kLen) {
      return Malformed("ModelInferRequest field " + std::to_string(field) + " must be length-delimited");
    }
    switch (field) {
      case 1:
        e = r.Span(&head_.model_name);
        break;
      case 2:
        e = r.Span(&head_.model_version);
        break;
      case 3:
        e = r.Span(&head_.id);
        break;
      case 5: {
        size_t end = 0;
        e = r.LengthEnd(&end);
        if (!e.ok()) return e;
        inputs_.emplace_back();
        e = ScanInput(buf, r.pos, end, &inputs_.back());
        r.pos = end;
        break;
      }
      case 7: {
        ByteSpan s;
        e = r.Span(&s);
        if (e.ok()) raw_.push_back(s);
        break;
      }
      default:
        e = r.Skip(wt);
    }
    if (!e.ok()) return e;
  }
  return CallError::Ok();
}

namespace {

// Counts elements per InferTensorContents field, packed or not (both are valid encodings).
CallError CountContents(const uint8_t* buf, size_t start, size_t end, double* counts) {
  Reader r{buf, start, end};
  while (!r.done()) {
    uint32_t field = 0, wt = 0;
    CallError e = r.Tag(&field, &wt);
    if (!e.ok()) return e;
    if (field < 1 || field > 8) {
      e = r.Skip(wt);
      if (!e.ok()) return e;
      continue;
    }
    if (field == 8) {
      if (wt != kLen) return Malformed("bytes_contents must be length-delimited");
      size_t e_end = 0;
      e = r.LengthEnd(&e_end);
      if (!e.ok()) return e;
      r.pos = e_end;
      counts[8] += 1;
    } else if (wt == kLen) {
      size_t e_end = 0;
      e = r.LengthEnd(&e_end);
      if (!e.ok()) return e;
      size_t n = e_end - r.pos;
      if (field == 6) {
        if (n % 4 != 0) return Malformed("packed fp32_contents length is not a multiple of 4");
        counts[6] += static_cast<double>(n / 4);
      } else if (field == 7) {
        if (n % 8 != 0) return Malformed("packed fp64_contents length is not a multiple of 8");
        counts[7] += static_cast<double>(n / 8);
      } else {
        size_t k = 0;
        for (size_t p = r.pos; p < e_end; p++) k += buf[p] < 0x80 ? 1 : 0;
        if (n > 0 && buf[e_end - 1] >= 0x80) return Malformed("packed varints end inside a varint");
        counts[field] += static_cast<double>(k);
      }
      r.pos = e_end;
    } else {
      uint32_t expected = field == 6 ? kI32 : field == 7 ? kI64 : kVarint;
      if (wt != expected) return Malformed("InferTensorContents field " + std::to_string(field) + " has the wrong wire type");
      e = r.Skip(wt);
      if (!e.ok()) return e;
      counts[field] += 1;
    }
  }
  return CallError::Ok();
}

}  // namespace

CallError KServeScanner::ScanInput(const uint8_t* buf, size_t start, size_t end, ScannedInput* in) {
  Reader r{buf, start, end};
  in->dims_start = static_cast<uint32_t>(dims_.size());
  while (!r.done()) {
    uint32_t field = 0, wt = 0;
    CallError e = r.Tag(&field, &wt);
    if (!e.ok()) return e;
    if (field == 1 || field == 2) {
      if (wt != kLen) return Malformed("InferInputTensor field " + std::to_string(field) + " must be length-delimited");
      e = r.Span(field == 1 ? &in->name : &in->datatype);
    } else if (field == 3) {
      if (wt == kLen) {
        size_t e_end = 0;
        e = r.LengthEnd(&e_end);
        if (!e.ok()) return e;
        Reader packed{buf, r.pos, e_end};
        while (!packed.done()) {
          int64_t d = 0;
          e = packed.Varint(&d);
          if (!e.ok()) return e;
          dims_.push_back(d);
        }
        r.pos = e_end;
      } else if (wt == kVarint) {
        int64_t d = 0;
        e = r.Varint(&d);
        if (e.ok()) dims_.push_back(d);
      } else {
        return Malformed("InferInputTensor.shape has the wrong wire type");
      }
    } else if (field == 5) {
      if (wt != kLen) return Malformed("InferInputTensor.contents must be length-delimited");
      size_t e_end = 0;
      e = r.LengthEnd(&e_end);
      if (!e.ok()) return e;
      in->has_contents = true;
      e = CountContents(buf, r.pos, e_end, in->contents);
      r.pos = e_end;
    } else {
      e = r.Skip(wt);
    }
    if (!e.ok()) return e;
  }
  in->dims_count = static_cast<uint32_t>(dims_.size()) - in->dims_start;
  return CallError::Ok();
}

CallError CheckBytesElements(const uint8_t* buf, ByteSpan span, double count, const std::string& what) {
  size_t pos = span.start;
  double n = 0;
  while (pos < span.end) {
    if (span.end - pos < 4) return TensorSize(what + ": truncated BYTES element length");
    uint32_t len = static_cast<uint32_t>(buf[pos]) | (static_cast<uint32_t>(buf[pos + 1]) << 8) |
                   (static_cast<uint32_t>(buf[pos + 2]) << 16) | (static_cast<uint32_t>(buf[pos + 3]) << 24);
    pos += 4;
    if (len > span.end - pos) return TensorSize(what + ": BYTES element " + Num(n) + " runs past the tensor");
    pos += len;
    n += 1;
  }
  if (n != count) return TensorSize(what + ": has " + Num(n) + " BYTES elements, shape needs " + Num(count));
  return CallError::Ok();
}

CallError KServeScanner::Validate(const uint8_t* buf) {
  const bool use_raw = !raw_.empty();
  if (use_raw && raw_.size() != inputs_.size()) {
    return BadRequest("raw_input_contents has " + std::to_string(raw_.size()) + " entries for " + std::to_string(inputs_.size()) +
                      " inputs; give one per input, in order");
  }
  size_t cap = 16;
  while (cap < inputs_.size() * 2) cap <<= 1;
  name_slots_.assign(cap, UINT32_MAX);
  auto describe = [&](const ScannedInput& in) {
    std::string s = "input '";
    s.append(View(buf, in.name));
    s += "' (";
    s.append(View(buf, in.datatype));
    s += " [";
    for (uint32_t k = 0; k < in.dims_count; k++) {
      if (k > 0) s += ',';
      s += std::to_string(dims_[in.dims_start + k]);
    }
    s += "])";
    return s;
  };
  for (size_t i = 0; i < inputs_.size(); i++) {
    const ScannedInput& in = inputs_[i];
    std::string_view name = View(buf, in.name);
    if (name.empty()) return BadRequest("input " + std::to_string(i) + " has no name");
    for (size_t slot = HashBytes(name) & (cap - 1);; slot = (slot + 1) & (cap - 1)) {
      uint32_t other = name_slots_[slot];
      if (other == UINT32_MAX) {
        name_slots_[slot] = static_cast<uint32_t>(i);
        break;
      }
      if (View(buf, inputs_[other].name) == name) return BadRequest("input '" + std::string(name) + "' appears twice");
    }
    const DatatypeInfo* dt = FindDatatype(View(buf, in.datatype));
    if (dt == nullptr) {
      return CallError::Of(GrpcStatus::kInvalidArgument, err::kUnknownDatatype,
                           "input '" + std::string(name) + "': unknown datatype '" + std::string(View(buf, in.datatype)) +
                               "'; expected one of " + kDatatypeList);
    }
    // Element count with JavaScript's double arithmetic, so overflow and 0 read as they do there.
    double count = 1;
    bool negative = false;
    for (uint32_t k = 0; k < in.dims_count; k++) {
      int64_t d = dims_[in.dims_start + k];
      if (d < 0) {
        negative = true;
        break;
      }
      count *= static_cast<double>(d);
    }
    if (negative || std::isnan(count)) return BadRequest(describe(in) + ": shape dimensions must be non-negative integers");
    if (!(count <= kMaxSafeInteger)) return TensorSize(describe(in) + ": too many elements");
    if (use_raw) {
      if (in.has_contents) return BadRequest(describe(in) + ": contents must not be set when raw_input_contents is used");
      ByteSpan span = raw_[i];
      double len = static_cast<double>(span.end - span.start);
      if (dt->size > 0) {
        double need = count * dt->size;
        if (len != need) {
          return TensorSize(describe(in) + " needs " + Num(need) + " bytes; raw_input_contents[" + std::to_string(i) + "] has " + Num(len));
        }
      } else {
        CallError e = CheckBytesElements(buf, span, count, describe(in) + ": raw_input_contents[" + std::to_string(i) + "]");
        if (!e.ok()) return e;
      }
      continue;
    }
    if (dt->contents_field == 0) {
      if (count == 0) continue;
      return BadRequest(describe(in) + ": " + std::string(dt->name) + " has no typed contents; send it in raw_input_contents");
    }
    double got = in.has_contents ? in.contents[dt->contents_field] : 0;
    if (in.has_contents) {
      for (uint32_t f = 1; f <= 8; f++) {
        if (f != dt->contents_field && in.contents[f] > 0) {
          return BadRequest(describe(in) + ": contents field " + std::to_string(f) + " does not hold " + std::string(dt->name) + " elements");
        }
      }
    }
    if (got != count) return TensorSize(describe(in) + " needs " + Num(count) + " elements; contents has " + Num(got));
  }
  return CallError::Ok();
}

}  // namespace sluice::engine
