// Unit tests of verbs_flow.h (the engine verbs link's credit and selective-signalling
// bookkeeping) on a host without RDMA: a model send queue that completes requests in order and
// reports only the signalled ones, driven by random flushes (seeded, reproducible). Prints
// "ok <name>" per test; exits 1 on the first failure. Run by test/native/engine-verbs-flow.test.ts.
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <random>
#include <string>

#include "engine/verbs_flow.h"

using sluice::engine::kVerbsCtrlSlots;
using sluice::engine::kVerbsImmCtrl;
using sluice::engine::SendTracker;
using sluice::engine::VerbsCredits;

namespace {
int failures = 0;
#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      std::fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);       \
      failures++;                                                                \
      return;                                                                    \
    }                                                                            \
  } while (0)

struct Posted {
  uint64_t seq;
  bool signalled;
};

// Random flushes against a model queue. After every flush and when the sender is idle, the
// guarantees the link relies on hold: the queue never overflows, a signalled request is in
// flight whenever no slot is free, and an idle sender keeps at least `interval` slots and queue
// entries free with no credit message uncovered (so it never waits on a completion it did not
// ask for).
void RandomFlushes(uint32_t slots, uint32_t interval, uint32_t seed) {
  const uint32_t depth = slots + kVerbsCtrlSlots;
  SendTracker t;
  t.Init(slots, depth, interval);
  std::mt19937 rng(seed);
  std::deque<Posted> nic;  // posted, in order
  uint64_t completions = 0, requests = 0;
  for (int round = 0; round < 20000; round++) {
    // A flush: up to free slots / queue room data requests, maybe a credit message.
    const uint32_t want = rng() % 6;
    uint32_t n = 0;
    bool last_signalled = false;
    for (uint32_t i = 0; i < want; i++) {
      if (t.free_slots() == 0 || t.sq_room() == 0) break;
      const uint32_t slot = t.TakeSlot();
      CHECK(slot != SendTracker::kNoSlot);
      const bool inline_send = rng() % 3 == 0;
      bool sig = false;
      const uint64_t seq = t.Record(SendTracker::kData, inline_send ? SendTracker::kNoSlot : slot, false, &sig);
      if (inline_send) t.ReturnSlot(slot);  // copied into the queue at post
      nic.push_back({seq, sig});
      last_signalled = sig;
      n++;
    }
    if (rng() % 4 == 0 && t.sq_room() > 0) {
      bool sig = false;
      const uint64_t seq = t.Record(SendTracker::kCredit, SendTracker::kNoSlot, false, &sig);
      nic.push_back({seq, sig});
      last_signalled = sig;
      n++;
    }
    if (n > 0 && !last_signalled && t.TailNeedsSignal()) {
      nic.back().signalled = true;
      t.Signalled();
    }
    requests += n;
    CHECK(t.outstanding() <= depth);
    CHECK(t.outstanding() >= nic.size());  // the tracker also holds executed, unreported requests
    if (t.free_slots() == 0 || t.sq_room() == 0) {
      bool any = false;
      for (const Posted& p : nic) any = any || p.signalled;
      CHECK(any);  // something will complete and free room
    }
    // The NIC completes a random prefix; only signalled requests are reported.
    const size_t done = nic.empty() ? 0 : rng() % (nic.size() + 1);
    for (size_t i = 0; i < done; i++) {
      const Posted p = nic.front();
      nic.pop_front();
      if (!p.signalled) continue;
      SendTracker::Retired r;
      CHECK(t.Complete(p.seq, &r));
      CHECK(r.requests >= 1);
      completions++;
    }
    if (nic.empty() || rng() % 16 == 0) {
      // Idle: everything posted completes; what stays unretired must leave room to go on.
      while (!nic.empty()) {
        const Posted p = nic.front();
        nic.pop_front();
        if (!p.signalled) continue;
        SendTracker::Retired r;
        CHECK(t.Complete(p.seq, &r));
        completions++;
      }
      CHECK(t.free_slots() >= std::min(interval, slots) || t.outstanding() == 0);
      CHECK(t.sq_room() >= std::min(interval, depth));
      CHECK(!t.TailNeedsSignal());
      // What stays unretired was executed but not reported: the next signalled request retires it.
    }
  }
  // Selective signalling asked for a completion on a fraction of the requests only.
  if (interval > 1) CHECK(completions * 2 < requests);
}

void CompleteUnknown() {
  SendTracker t;
  t.Init(4, 8, 4);
  SendTracker::Retired r;
  CHECK(!t.Complete(0, &r));  // nothing posted
  bool sig = false;
  const uint32_t slot = t.TakeSlot();
  const uint64_t seq = t.Record(SendTracker::kData, slot, false, &sig);
  CHECK(!t.Complete(seq + 1, &r));
  CHECK(t.Complete(seq, &r));
  CHECK(r.slots == 1 && r.requests == 1);
  CHECK(!t.Complete(seq, &r));  // twice
  CHECK(t.free_slots() == 4);
}

void SignalEveryNth() {
  SendTracker t;
  t.Init(64, 68, 8);
  int signalled = 0;
  for (int i = 0; i < 32; i++) {
    bool sig = false;
    t.Record(SendTracker::kData, t.TakeSlot(), false, &sig);
    if (sig) signalled++;
  }
  CHECK(signalled == 4);
  // The last of a flush is signalled when few slots remain.
  CHECK(t.free_slots() == 32);
  bool sig = false;
  for (int i = 0; i < 24; i++) t.Record(SendTracker::kData, t.TakeSlot(), false, &sig);
  CHECK(t.free_slots() == 8);
  t.Record(SendTracker::kData, t.TakeSlot(), false, &sig);
  CHECK(!sig);
  CHECK(t.TailNeedsSignal());  // 7 free < interval 8
}

void CreditsRoundTrip() {
  // Two ends with windows 16 and 4; the wire is the immediate.
  VerbsCredits a, b;
  a.Init(16);
  b.Init(4);
  a.Connect(4);
  b.Connect(16);
  for (int round = 0; round < 1000; round++) {
    // a sends to b while it has credit; b reposts and returns credit by message or piggyback.
    uint32_t sent = 0;
    while (a.CanSendData() && sent < 3) {
      const uint32_t imm = a.SpendForData();
      CHECK((imm & kVerbsImmCtrl) == 0);
      CHECK(b.OnImmediate(imm) == VerbsCredits::Arrival::kData);
      b.Reposted();
      sent++;
    }
    CHECK(a.send_credits() + a.uncredited() == 4);
    if (round % 2 == 0 && b.CanSendData()) {
      const uint32_t imm = b.SpendForData();
      CHECK(a.OnImmediate(imm) == VerbsCredits::Arrival::kData);
      a.Reposted();
    } else if (b.CreditMessageDue()) {
      const uint32_t imm = b.SpendForCreditMessage();
      CHECK(a.OnImmediate(imm) == VerbsCredits::Arrival::kCredit);
      b.CreditMessageRetired();
    }
    if (a.CreditMessageDue()) {
      CHECK(b.OnImmediate(a.SpendForCreditMessage()) == VerbsCredits::Arrival::kCredit);
      a.CreditMessageRetired();
    }
    CHECK(a.send_credits() + a.uncredited() == 4);
    CHECK(b.send_credits() + b.uncredited() == 16);
  }
  // More credit back than sends outstanding is refused.
  VerbsCredits c;
  c.Init(4);
  c.Connect(4);
  c.SpendForData();
  CHECK(c.OnImmediate(2) == VerbsCredits::Arrival::kOverflow);
  CHECK(c.OnImmediate(kVerbsImmCtrl | 1) == VerbsCredits::Arrival::kCredit);
  CHECK(c.OnImmediate(kVerbsImmCtrl | 1) == VerbsCredits::Arrival::kOverflow);
}

void CreditMessagesBounded() {
  VerbsCredits r;
  r.Init(16);
  r.Connect(16);
  for (int i = 0; i < 16; i++) r.Reposted();
  int msgs = 0;
  while (r.CreditMessageDue()) {
    r.SpendForCreditMessage();
    msgs++;
    for (int i = 0; i < 16; i++) r.Reposted();
  }
  CHECK(msgs == static_cast<int>(kVerbsCtrlSlots));  // no more than the peer's spare receives
}
}  // namespace

int main() {
  struct {
    const char* name;
    void (*fn)();
  } tests[] = {{"complete-unknown", CompleteUnknown}, {"signal-every-nth", SignalEveryNth}, {"credits-round-trip", CreditsRoundTrip},
               {"credit-messages-bounded", CreditMessagesBounded}};
  for (auto& t : tests) {
    const int before = failures;
    t.fn();
    if (failures == before) std::printf("ok %s\n", t.name);
  }
  for (uint32_t seed = 1; seed <= 20; seed++) {
    for (uint32_t interval : {1u, 4u, 8u, 16u}) {
      const int before = failures;
      RandomFlushes(16, interval, seed);
      if (failures != before) {
        std::fprintf(stderr, "random flushes failed: seed %u interval %u\n", seed, interval);
        return 1;
      }
    }
  }
  std::printf("ok random-flushes\n");
  return failures == 0 ? 0 : 1;
}
