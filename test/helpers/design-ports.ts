// The ports of the design (docs/design.md, "Ports"), for tests that hold the image and the
// Kubernetes manifests to them.
export const DESIGN_PORTS = {
  http: 8000,
  grpc: 8001,
  metrics: 8002,
  training: 8003,
  inferenceSegment: 7470,
  trainingSegment: 7471,
  all: [8000, 8001, 8002, 8003, 7470, 7471] as readonly number[],
} as const;
