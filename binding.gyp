{
  "variables": {
    "with_verbs%": "<!(node -p \"require('fs').existsSync('/usr/include/infiniband/verbs.h') ? 1 : 0\")"
  },
  "targets": [
    {
      "target_name": "sluice_native",
      "sources": [
        "native/binding.cc", "native/crypto/aes_gcm.cc", "native/runtime/malloc_tuning.cc", "native/runtime/thread_control.cc",
        "native/engine/event_loop.cc", "native/engine/event_channel.cc", "native/engine/wire.cc",
        "native/engine/key_schedule.cc", "native/engine/traffic_keys.cc", "native/engine/link_receiver.cc",
        "native/engine/handshake.cc", "native/engine/tcp_link.cc", "native/engine/link_endpoints.cc",
        "native/engine/engine.cc", "native/engine/egress.cc", "native/engine/front_calls.cc",
        "native/engine/grpc_ingress.cc", "native/engine/rx_timestamp.cc", "native/engine/grpc_server_session.cc", "native/engine/grpc_deframer.cc",
        "native/engine/grpc_compression.cc", "native/engine/kserve_scan.cc", "native/engine/policy_table.cc",
        "native/engine/tls_server.cc"
      ],
      # nghttp2 (Debian libnghttp2-dev) for the egress's HTTP/2 client. Node's binary exports the
      # same nghttp2_* symbols, so at run time the addon may bind to Node's copy: only the stable
      # public API is used.
      "libraries": ["-lnghttp2", "-lz"],
      # OpenSSL headers are Node's own (<node_root_dir>/include/node/openssl, also added by node-gyp):
      # the EVP symbols resolve from the node binary at load time, so nothing links libcrypto.
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native",
        "<(node_root_dir)/include/node"
      ],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-Wall", "-Wextra"],
      "cflags_cc!": ["-fno-exceptions"],
      "ldflags": ["-pthread"],
      "configurations": {
        # Release drops assert(): nothing reachable from the network or a NIC may abort.
        "Release": { "defines": ["NDEBUG"] }
      },
      "conditions": [
        ["with_verbs==1", {
          "defines": ["SLUICE_WITH_VERBS=1"],
          "sources": ["native/verbs/device.cc", "native/verbs/connection.cc", "native/engine/verbs_link.cc"],
          "libraries": ["-libverbs"]
        }]
      ]
    },
    {
      # The engine verbs link's credit and selective-signalling bookkeeping (verbs_flow.h, sans-IO):
      # test/native/engine-verbs-flow.test.ts runs it on any host, RDMA or not.
      "target_name": "engine_verbs_flow_tests",
      "type": "executable",
      "sources": ["native/engine/test/verbs_flow_tests.cc"],
      "include_dirs": ["native"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra"]
    },
    {
      # The engine ingress's sans-IO unit tests and the scanner's differential-test mode
      # (test/native/engine-ingress.test.ts runs it). nghttp2 and zlib from Debian
      # (libnghttp2-dev, zlib1g-dev): inside node the addon resolves nghttp2_* from node itself.
      "target_name": "engine_ingress_tests",
      "type": "executable",
      "sources": [
        "native/engine/test/ingress_tests.cc",
        "native/engine/event_loop.cc",
        "native/engine/rx_timestamp.cc",
        "native/engine/grpc_compression.cc",
        "native/engine/grpc_deframer.cc",
        "native/engine/grpc_server_session.cc",
        "native/engine/kserve_scan.cc",
        "native/engine/policy_table.cc"
      ],
      "include_dirs": ["native"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "libraries": ["-lnghttp2", "-lz", "-lcrypto"]
    }
  ,
    {
      # One engine in one process (ingress, link to itself, egress) for the ingress's end-to-end
      # tests (test/native/engine-ingress-e2e.test.ts). libcrypto: outside node the EVP calls
      # need it (inside node they resolve from node itself).
      "target_name": "engine_ingress_main",
      "type": "executable",
      "sources": [
        "native/engine/test/ingress_engine_main.cc",
        "native/crypto/aes_gcm.cc",
        "native/engine/event_loop.cc", "native/engine/event_channel.cc", "native/engine/wire.cc",
        "native/engine/key_schedule.cc", "native/engine/traffic_keys.cc", "native/engine/link_receiver.cc",
        "native/engine/handshake.cc", "native/engine/tcp_link.cc", "native/engine/link_endpoints.cc",
        "native/engine/engine.cc", "native/engine/egress.cc", "native/engine/front_calls.cc",
        "native/engine/grpc_ingress.cc", "native/engine/rx_timestamp.cc", "native/engine/grpc_server_session.cc", "native/engine/grpc_deframer.cc",
        "native/engine/grpc_compression.cc", "native/engine/kserve_scan.cc", "native/engine/policy_table.cc",
        "native/engine/tls_server.cc"
      ],
      "include_dirs": ["native"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "ldflags": ["-pthread"],
      # libssl: the ingress's TLS (tls_server.cc); inside node the SSL_* calls resolve from node.
      "libraries": ["-lnghttp2", "-lz", "-lssl", "-lcrypto"]
    }
  ]
}
