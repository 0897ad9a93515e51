// An RDMA device opened for use: its verbs context, one protection domain, and the port and GID
// index connections on it use. Also lists every device with its ports and GIDs for operators.
#pragma once

#include <infiniband/verbs.h>

#include <cstdint>
#include <string>
#include <vector>

namespace sluice::verbs {

struct GidInfo {
  uint32_t index;
  std::string gid;     // textual IPv6 form, e.g. ::ffff:10.0.2.15
  std::string type;    // "IB", "RoCE v1", "RoCE v2"
  std::string netdev;  // the netdev the GID sits on ("" for IB)
};

struct PortInfo {
  uint32_t port;
  std::string state;       // "ACTIVE", "DOWN", ...
  std::string link_layer;  // "InfiniBand" or "Ethernet"
  uint32_t max_mtu;        // bytes
  uint32_t active_mtu;     // bytes
  uint16_t lid;
  std::vector<GidInfo> gids;
};

struct DeviceInfo {
  std::string name;
  std::string node_guid;
  std::string transport;
  std::vector<PortInfo> ports;
};

std::vector<DeviceInfo> list_devices();

class Device {
 public:
  // `spec` names the device (rxe0, mlx5_0), the netdev it sits on (eth0), one of its GIDs
  // (::ffff:10.0.2.15) or an IPv4 address mapped into one (10.0.2.15). Empty: the first device
  // with an active port.
  explicit Device(const std::string& spec);
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  ibv_context* context() const { return ctx_; }
  ibv_pd* pd() const { return pd_; }
  const std::string& name() const { return name_; }
  uint8_t port() const { return port_; }
  int gid_index() const { return gid_index_; }
  const ibv_gid& gid() const { return gid_; }
  uint16_t lid() const { return lid_; }
  bool is_ethernet() const { return ethernet_; }
  ibv_mtu active_mtu() const { return active_mtu_; }
  // Refreshes port state; throws when the port is no longer active.
  void check_port_active() const;

 private:
  ibv_context* ctx_ = nullptr;
  ibv_pd* pd_ = nullptr;
  std::string name_;
  uint8_t port_ = 1;
  int gid_index_ = 0;
  ibv_gid gid_{};
  uint16_t lid_ = 0;
  bool ethernet_ = false;
  ibv_mtu active_mtu_ = IBV_MTU_1024;
};

std::string gid_to_string(const ibv_gid& gid);
uint32_t mtu_bytes(ibv_mtu mtu);

}  // namespace sluice::verbs
