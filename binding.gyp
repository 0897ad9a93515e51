{
  "variables": {
    "with_verbs%": "<!(node -p \"require('fs').existsSync('/usr/include/infiniband/verbs.h') ? 1 : 0\")"
  },
  "targets": [
    {
      "target_name": "sluice_native",
      "sources": ["native/binding.cc", "native/crypto/aes_gcm.cc", "native/runtime/malloc_tuning.cc", "native/runtime/thread_control.cc"],
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
      "conditions": [
        ["with_verbs==1", {
          "defines": ["SLUICE_WITH_VERBS=1"],
          "sources": ["native/verbs/device.cc", "native/verbs/connection.cc"],
          "libraries": ["-libverbs"]
        }]
      ]
    }
  ]
}
