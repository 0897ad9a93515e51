// The sampled tensor tap of the engine's gRPC ingress (security.threats): for a sample of the
// fast-path ModelInfer calls, the loop thread copies the numeric input tensors (the KServe scan
// already knows where they are) into a bounded ring in memory JavaScript owns, and TypeScript
// drains the ring in batches into the threat detectors (src/engine/engine-tensor-tap.ts). The
// call never waits: when the ring has no room the sample is dropped and counted. Nothing is
// allocated per sample (the ring is the pool). One writer: the loop thread; one reader: JS.
//
// Sampling keeps src/security/threats/threat-monitor.ts shouldSample(): a deterministic
// accumulator, one call in 1/rate.
//
// Layout (the ABI shared with engine-tensor-tap.ts), little-endian:
//   header (64 bytes): u32 write offset (free-running, release-stored here), u32 read offset
//   (free-running, stored by JS), u32 samples dropped (ring full), u32 armed (JS stores 1 after
//   it drained; the writer that finds 1 takes it and wakes JS once), u32 samples written,
//   then reserved; data: `capacity` bytes (a power of two), records 8-byte aligned, never split:
//   at the end of the data a u32 0xffffffff means "the next record starts at offset 0".
//   record: u32 length (with this header and padding, a multiple of 8), u32 tenant id,
//           u16 model length, u16 request id length, u16 inputs (0xffff: one blob, the whole
//           request message: its inputs use typed contents), u16 0, model, request id,
//           then per input, 8-aligned: u16 name length, u8 datatype code, u8 dims, u32 data
//           bytes, dims x f64, name, pad to 8, data, pad to 8.
//   Datatype codes: 1 UINT8 2 UINT16 3 UINT32 4 UINT64 5 INT8 6 INT16 7 INT32 8 INT64 9 FP16
//   10 FP32 11 FP64 12 BF16 (BYTES and BOOL are not tapped, as in threats/inference-tap.ts).
#ifndef SLUICE_NATIVE_ENGINE_TENSOR_TAP_H_
#define SLUICE_NATIVE_ENGINE_TENSOR_TAP_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "engine/kserve_scan.h"

namespace sluice {
namespace engine {

class TensorTap {
 public:
  static constexpr size_t kHeaderBytes = 64;
  static constexpr uint32_t kWrap = 0xffffffffu;
  static constexpr uint16_t kWholeMessage = 0xffff;
  static constexpr size_t kMinCapacity = 4096;
  static constexpr size_t kMaxCapacity = size_t{1} << 30;

  // Whether `bytes` at `mem` can hold a ring: 8-aligned, a header and a power-of-two data area.
  static bool Fits(const void* mem, size_t bytes) {
    if (mem == nullptr || reinterpret_cast<uintptr_t>(mem) % 8 != 0 || bytes < kHeaderBytes + kMinCapacity) return false;
    const size_t cap = bytes - kHeaderBytes;
    return cap <= kMaxCapacity && (cap & (cap - 1)) == 0;
  }

  // The datatype code of a KServe datatype name (0: not tapped).
  static uint8_t DatatypeCode(std::string_view dt) {
    static constexpr std::string_view kNames[] = {"", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BF16"};
    for (uint8_t i = 1; i < sizeof kNames / sizeof kNames[0]; i++) {
      if (kNames[i] == dt) return i;
    }
    return 0;
  }

  // Loop thread.
  void Attach(uint8_t* mem, size_t bytes, double sample_rate) {
    if (!Fits(mem, bytes)) return;
    mem_ = mem;
    capacity_ = static_cast<uint32_t>(bytes - kHeaderBytes);
    rate_ = sample_rate < 0 ? 0 : sample_rate > 1 ? 1 : sample_rate;
    acc_ = 0;
  }
  void Detach() { mem_ = nullptr; }
  // The wake-up could not be sent: the next record tries again.
  void Rearm() {
    if (mem_ != nullptr) __atomic_store_n(reinterpret_cast<uint32_t*>(mem_) + 3, 1u, __ATOMIC_RELEASE);
  }
  bool attached() const { return mem_ != nullptr; }

  // Whether this call is sampled (threat-monitor.ts shouldSample()).
  bool Sample() {
    if (mem_ == nullptr || rate_ <= 0) return false;
    acc_ += rate_;
    if (acc_ >= 1) {
      acc_ -= 1;
      return true;
    }
    return false;
  }

  // Copies the numeric inputs of a scanned ModelInferRequest (`msg`, scanned by `scan`) into the
  // ring. Returns true when JS must be woken (it had drained and re-armed); false otherwise,
  // including a drop (no room; counted in the header) or a call with nothing to tap.
  bool Offer(uint32_t tenant, std::string_view model, std::string_view request_id, const uint8_t* msg, size_t len, const KServeScanner& scan) {
    if (mem_ == nullptr) return false;
    if (model.size() > 0xffff) model = model.substr(0, 0xffff);
    if (request_id.size() > 0xffff) request_id = request_id.substr(0, 0xffff);
    const auto& inputs = scan.inputs();
    const auto& raw = scan.raw();
    const bool whole = raw.empty();
    size_t need = Align(16 + model.size() + request_id.size());
    uint32_t count = 0;
    if (whole) {
      bool typed = false;
      for (const ScannedInput& in : inputs) typed = typed || in.has_contents;
      if (!typed) return false;
      need += Align(8) + Align(len);
    } else {
      for (size_t i = 0; i < inputs.size() && i < raw.size(); i++) {
        const ScannedInput& in = inputs[i];
        if (DatatypeCode(KServeScanner::View(msg, in.datatype)) == 0 || in.dims_count > 255 || in.name.end - in.name.start > 0xffff) continue;
        need += Align(8 + 8 * in.dims_count + (in.name.end - in.name.start)) + Align(raw[i].end - raw[i].start);
        count++;
      }
      if (count == 0) return false;
    }
    uint32_t* h = reinterpret_cast<uint32_t*>(mem_);
    const uint32_t w = __atomic_load_n(&h[0], __ATOMIC_RELAXED);
    const uint32_t r = __atomic_load_n(&h[1], __ATOMIC_ACQUIRE);
    const uint32_t used = w - r;
    const uint32_t off = w & (capacity_ - 1);
    const uint32_t tail = capacity_ - off;
    // A record is at most half the ring (so it always fits once the reader catches up).
    const size_t total = need + (tail < need ? tail : 0);
    if (need > capacity_ / 2 || used > capacity_ || total > capacity_ - used) {
      __atomic_store_n(&h[2], __atomic_load_n(&h[2], __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
      return false;
    }
    uint32_t at = w;
    if (tail < need) {
      Put32(Data() + off, kWrap);
      at += tail;
    }
    uint8_t* rec = Data() + (at & (capacity_ - 1));
    Put32(rec, static_cast<uint32_t>(need));
    Put32(rec + 4, tenant);
    Put16(rec + 8, static_cast<uint16_t>(model.size()));
    Put16(rec + 10, static_cast<uint16_t>(request_id.size()));
    Put16(rec + 12, whole ? kWholeMessage : static_cast<uint16_t>(count));
    Put16(rec + 14, 0);
    size_t p = 16;
    std::memcpy(rec + p, model.data(), model.size());
    p += model.size();
    std::memcpy(rec + p, request_id.data(), request_id.size());
    p = Pad(rec, p + request_id.size());
    if (whole) {
      Put16(rec + p, 0);
      rec[p + 2] = 0;
      rec[p + 3] = 0;
      Put32(rec + p + 4, static_cast<uint32_t>(len));
      p += 8;
      std::memcpy(rec + p, msg, len);
      p = Pad(rec, p + len);
    } else {
      const auto& dims = scan.dims();
      for (size_t i = 0; i < inputs.size() && i < raw.size(); i++) {
        const ScannedInput& in = inputs[i];
        const uint8_t code = DatatypeCode(KServeScanner::View(msg, in.datatype));
        const uint32_t name_len = in.name.end - in.name.start;
        if (code == 0 || in.dims_count > 255 || name_len > 0xffff) continue;
        const uint32_t bytes = raw[i].end - raw[i].start;
        Put16(rec + p, static_cast<uint16_t>(name_len));
        rec[p + 2] = code;
        rec[p + 3] = static_cast<uint8_t>(in.dims_count);
        Put32(rec + p + 4, bytes);
        p += 8;
        for (uint32_t d = 0; d < in.dims_count; d++) {
          const double v = static_cast<double>(dims[in.dims_start + d]);
          std::memcpy(rec + p, &v, 8);
          p += 8;
        }
        std::memcpy(rec + p, msg + in.name.start, name_len);
        p = Pad(rec, p + name_len);
        std::memcpy(rec + p, msg + raw[i].start, bytes);
        p = Pad(rec, p + bytes);
      }
    }
    // The release store publishes the record before the offset JS Atomics.loads.
    __atomic_store_n(&h[0], at + static_cast<uint32_t>(need), __ATOMIC_RELEASE);
    __atomic_store_n(&h[4], __atomic_load_n(&h[4], __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
    return __atomic_exchange_n(&h[3], 0u, __ATOMIC_ACQ_REL) == 1;
  }

 private:
  static size_t Align(size_t n) { return (n + 7) & ~size_t{7}; }
  static size_t Pad(uint8_t* rec, size_t p) {
    const size_t to = Align(p);
    std::memset(rec + p, 0, to - p);
    return to;
  }
  static void Put16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }
  static void Put32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
  uint8_t* Data() { return mem_ + kHeaderBytes; }

  uint8_t* mem_ = nullptr;
  uint32_t capacity_ = 0;
  double rate_ = 0;
  double acc_ = 0;
};

}  // namespace engine
}  // namespace sluice

#endif  // SLUICE_NATIVE_ENGINE_TENSOR_TAP_H_
