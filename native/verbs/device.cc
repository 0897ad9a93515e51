#include "verbs/device.h"

#include <arpa/inet.h>
#include <net/if.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "verbs/error.h"

namespace sluice::verbs {

std::string errno_text(const char* what, int err) {
  const char* name = strerrorname_np(err);
  return std::string(what) + " failed: " + std::strerror(err) + " (" + (name != nullptr ? name : "errno " + std::to_string(err)) + ")";
}

std::string gid_to_string(const ibv_gid& gid) {
  char buf[INET6_ADDRSTRLEN];
  if (inet_ntop(AF_INET6, gid.raw, buf, sizeof buf) == nullptr) return "";
  return buf;
}

uint32_t mtu_bytes(ibv_mtu mtu) {
  switch (mtu) {
    case IBV_MTU_256: return 256;
    case IBV_MTU_512: return 512;
    case IBV_MTU_1024: return 1024;
    case IBV_MTU_2048: return 2048;
    case IBV_MTU_4096: return 4096;
  }
  return 0;
}

namespace {

struct DeviceListDeleter {
  void operator()(ibv_device** l) const { ibv_free_device_list(l); }
};
using DeviceList = std::unique_ptr<ibv_device*, DeviceListDeleter>;

DeviceList get_devices(int* n) {
  errno = 0;
  ibv_device** list = ibv_get_device_list(n);
  if (list == nullptr) {
    int err = errno != 0 ? errno : ENODEV;
    throw Error("SLUICE_ERR_RDMA_NO_DEVICE", errno_text("ibv_get_device_list", err));
  }
  return DeviceList(list);
}

const char* port_state_name(ibv_port_state s) {
  switch (s) {
    case IBV_PORT_NOP: return "NOP";
    case IBV_PORT_DOWN: return "DOWN";
    case IBV_PORT_INIT: return "INIT";
    case IBV_PORT_ARMED: return "ARMED";
    case IBV_PORT_ACTIVE: return "ACTIVE";
    case IBV_PORT_ACTIVE_DEFER: return "ACTIVE_DEFER";
  }
  return "UNKNOWN";
}

const char* gid_type_name(uint32_t t) {
  switch (t) {
    case IBV_GID_TYPE_IB: return "IB";
    case IBV_GID_TYPE_ROCE_V1: return "RoCE v1";
    case IBV_GID_TYPE_ROCE_V2: return "RoCE v2";
  }
  return "unknown";
}

std::vector<ibv_gid_entry> gid_table(ibv_context* ctx, size_t max_entries) {
  std::vector<ibv_gid_entry> entries(max_entries > 0 ? max_entries : 1);
  ssize_t n = ibv_query_gid_table(ctx, entries.data(), entries.size(), 0);
  if (n < 0) return {};
  entries.resize(static_cast<size_t>(n));
  return entries;
}

std::string ifname(uint32_t ifindex) {
  char buf[IF_NAMESIZE];
  if (ifindex == 0 || if_indextoname(ifindex, buf) == nullptr) return "";
  return buf;
}

bool is_ipv4_mapped(const ibv_gid& g) {
  static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(g.raw, prefix, sizeof prefix) == 0;
}

// Parses a GID or an IPv4 address (mapped to ::ffff:a.b.c.d) into raw bytes.
bool parse_gid(const std::string& s, ibv_gid* out) {
  if (inet_pton(AF_INET6, s.c_str(), out->raw) == 1) return true;
  in_addr v4;
  if (inet_pton(AF_INET, s.c_str(), &v4) == 1) {
    std::memset(out->raw, 0, 10);
    out->raw[10] = 0xff;
    out->raw[11] = 0xff;
    std::memcpy(out->raw + 12, &v4, 4);
    return true;
  }
  return false;
}

// Best GID for a connection on an Ethernet port: RoCE v2 on an IPv4 address, then any RoCE v2.
int pick_gid(const std::vector<ibv_gid_entry>& gids, uint32_t port) {
  int best = -1;
  int score = -1;
  for (const auto& e : gids) {
    if (e.port_num != port) continue;
    int s = 0;
    if (e.gid_type == IBV_GID_TYPE_ROCE_V2) s += 2;
    if (is_ipv4_mapped(e.gid)) s += 1;
    if (s > score) {
      score = s;
      best = static_cast<int>(e.gid_index);
    }
  }
  return best;
}

}  // namespace

std::vector<DeviceInfo> list_devices() {
  int n = 0;
  DeviceList list = get_devices(&n);
  std::vector<DeviceInfo> out;
  for (int i = 0; i < n; i++) {
    ibv_device* dev = list.get()[i];
    DeviceInfo info;
    info.name = ibv_get_device_name(dev);
    info.transport = dev->transport_type == IBV_TRANSPORT_IB ? "InfiniBand" : dev->transport_type == IBV_TRANSPORT_IWARP ? "iWARP" : "other";
    char guid[20];
    uint64_t g = be64toh(ibv_get_device_guid(dev));
    std::snprintf(guid, sizeof guid, "%04x:%04x:%04x:%04x", unsigned(g >> 48) & 0xffff, unsigned(g >> 32) & 0xffff,
                  unsigned(g >> 16) & 0xffff, unsigned(g) & 0xffff);
    info.node_guid = guid;
    ibv_context* ctx = ibv_open_device(dev);
    if (ctx != nullptr) {
      ibv_device_attr attr;
      if (ibv_query_device(ctx, &attr) == 0) {
        size_t total = 0;
        for (uint8_t p = 1; p <= attr.phys_port_cnt; p++) {
          ibv_port_attr pa;
          if (ibv_query_port(ctx, p, &pa) == 0) total += static_cast<size_t>(pa.gid_tbl_len);
        }
        std::vector<ibv_gid_entry> gids = gid_table(ctx, total);
        for (uint8_t p = 1; p <= attr.phys_port_cnt; p++) {
          ibv_port_attr pa;
          if (ibv_query_port(ctx, p, &pa) != 0) continue;
          PortInfo port;
          port.port = p;
          port.state = port_state_name(pa.state);
          port.link_layer = pa.link_layer == IBV_LINK_LAYER_ETHERNET ? "Ethernet" : "InfiniBand";
          port.max_mtu = mtu_bytes(pa.max_mtu);
          port.active_mtu = mtu_bytes(pa.active_mtu);
          port.lid = pa.lid;
          for (const auto& e : gids) {
            if (e.port_num != p) continue;
            port.gids.push_back({e.gid_index, gid_to_string(e.gid), gid_type_name(e.gid_type), ifname(e.ndev_ifindex)});
          }
          info.ports.push_back(std::move(port));
        }
      }
      ibv_close_device(ctx);
    }
    out.push_back(std::move(info));
  }
  return out;
}

Device::Device(const std::string& spec) {
  int n = 0;
  DeviceList list = get_devices(&n);
  if (n == 0) throw Error("SLUICE_ERR_RDMA_NO_DEVICE", "no RDMA devices found");
  ibv_gid want_gid{};
  const bool spec_is_gid = !spec.empty() && parse_gid(spec, &want_gid);

  for (int i = 0; i < n; i++) {
    ibv_device* dev = list.get()[i];
    const std::string dev_name = ibv_get_device_name(dev);
    const bool by_name = spec.empty() || spec == dev_name;
    ibv_context* ctx = ibv_open_device(dev);
    if (ctx == nullptr) {
      if (spec == dev_name) throw Error("SLUICE_ERR_RDMA_DEVICE", errno_text(("ibv_open_device(" + dev_name + ")").c_str(), errno));
      continue;
    }
    ibv_device_attr attr;
    if (ibv_query_device(ctx, &attr) != 0) {
      ibv_close_device(ctx);
      continue;
    }
    size_t total = 0;
    for (uint8_t p = 1; p <= attr.phys_port_cnt; p++) {
      ibv_port_attr pa;
      if (ibv_query_port(ctx, p, &pa) == 0) total += static_cast<size_t>(pa.gid_tbl_len);
    }
    const std::vector<ibv_gid_entry> gids = gid_table(ctx, total);
    for (uint8_t p = 1; p <= attr.phys_port_cnt; p++) {
      ibv_port_attr pa;
      if (ibv_query_port(ctx, p, &pa) != 0) continue;
      if (spec.empty() && pa.state != IBV_PORT_ACTIVE) continue;
      int index = -1;
      if (by_name) {
        index = pa.link_layer == IBV_LINK_LAYER_ETHERNET ? pick_gid(gids, p) : 0;
      } else {
        for (const auto& e : gids) {
          if (e.port_num != p) continue;
          if (spec_is_gid ? std::memcmp(e.gid.raw, want_gid.raw, 16) == 0 : ifname(e.ndev_ifindex) == spec) {
            index = spec_is_gid ? static_cast<int>(e.gid_index) : pick_gid(gids, p);
            break;
          }
        }
      }
      if (index < 0) continue;
      // Found it: keep this context.
      ctx_ = ctx;
      name_ = dev_name;
      port_ = p;
      gid_index_ = index;
      lid_ = pa.lid;
      ethernet_ = pa.link_layer == IBV_LINK_LAYER_ETHERNET;
      active_mtu_ = pa.active_mtu;
      if (ibv_query_gid(ctx, p, index, &gid_) != 0) {
        int err = errno;
        ibv_close_device(ctx);
        throw Error("SLUICE_ERR_RDMA_DEVICE", errno_text(("ibv_query_gid(" + dev_name + ")").c_str(), err));
      }
      pd_ = ibv_alloc_pd(ctx);
      if (pd_ == nullptr) {
        int err = errno;
        ibv_close_device(ctx);
        throw Error("SLUICE_ERR_RDMA_DEVICE", errno_text(("ibv_alloc_pd(" + dev_name + ")").c_str(), err));
      }
      return;
    }
    ibv_close_device(ctx);
    if (spec == dev_name) throw Error("SLUICE_ERR_RDMA_NO_DEVICE", "RDMA device " + dev_name + " has no usable port");
  }
  throw Error("SLUICE_ERR_RDMA_NO_DEVICE",
              spec.empty() ? "no RDMA device has an active port" : "no RDMA device matches \"" + spec + "\" (by name, netdev, GID or IPv4 address)");
}

Device::~Device() {
  if (pd_ != nullptr) ibv_dealloc_pd(pd_);
  if (ctx_ != nullptr) ibv_close_device(ctx_);
}

void Device::check_port_active() const {
  ibv_port_attr pa;
  if (ibv_query_port(ctx_, port_, &pa) != 0) throw Error("SLUICE_ERR_RDMA_DEVICE", errno_text("ibv_query_port", errno));
  if (pa.state != IBV_PORT_ACTIVE) {
    throw Error("SLUICE_ERR_RDMA_PORT_DOWN", "port " + std::to_string(port_) + " of " + name_ + " is " + port_state_name(pa.state) + ", not ACTIVE");
  }
}

}  // namespace sluice::verbs
