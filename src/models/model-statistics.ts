// Triton's per-model inference statistics (ModelStatistics in proto/grpc_service.proto),
// counted from the calls the reference model server really served. Durations are in
// nanoseconds; `success` and `fail` time a request from arrival to its answer; `queue` is the
// time before the model ran (the `delay_ms` parameter's wait counts as queue time); the
// compute phases are decoding the request tensors, running the model, and building the
// response. One execution per request (no dynamic batching); a batch of n counts n inferences.

interface Duration {
  count: number;
  ns: bigint;
}

export interface RequestTiming {
  /** process.hrtime.bigint() at each phase boundary. */
  arrived: bigint;
  started: bigint;
  inputDone: bigint;
  inferDone: bigint;
  outputDone: bigint;
  batchSize: number;
}

function zero(): Duration {
  return { count: 0, ns: 0n };
}

function add(d: Duration, ns: bigint): void {
  d.count++;
  d.ns += ns;
}

interface BatchStats {
  computeInput: Duration;
  computeInfer: Duration;
  computeOutput: Duration;
}

export class ModelStatisticsCounter {
  private lastInferenceMs = 0;
  private inferenceCount = 0;
  private executionCount = 0;
  private readonly success = zero();
  private readonly fail = zero();
  private readonly queue = zero();
  private readonly computeInput = zero();
  private readonly computeInfer = zero();
  private readonly computeOutput = zero();
  private readonly batches = new Map<number, BatchStats>();

  succeeded(t: RequestTiming): void {
    this.lastInferenceMs = Date.now();
    this.inferenceCount += t.batchSize;
    this.executionCount++;
    add(this.success, t.outputDone - t.arrived);
    add(this.queue, t.started - t.arrived);
    add(this.computeInput, t.inputDone - t.started);
    add(this.computeInfer, t.inferDone - t.inputDone);
    add(this.computeOutput, t.outputDone - t.inferDone);
    let b = this.batches.get(t.batchSize);
    if (b === undefined) {
      b = { computeInput: zero(), computeInfer: zero(), computeOutput: zero() };
      this.batches.set(t.batchSize, b);
    }
    add(b.computeInput, t.inputDone - t.started);
    add(b.computeInfer, t.inferDone - t.inputDone);
    add(b.computeOutput, t.outputDone - t.inferDone);
  }

  /** A request for this model that failed (bad input, cancelled, model error). */
  failed(arrived: bigint): void {
    this.lastInferenceMs = Date.now();
    add(this.fail, process.hrtime.bigint() - arrived);
  }

  /** The ModelStatistics message (protobufjs camelCase; uint64 as decimal strings). */
  message(name: string, version: string): object {
    const d = (x: Duration) => ({ count: String(x.count), ns: String(x.ns) });
    return {
      name,
      version,
      lastInference: String(this.lastInferenceMs),
      inferenceCount: String(this.inferenceCount),
      executionCount: String(this.executionCount),
      inferenceStats: {
        success: d(this.success),
        fail: d(this.fail),
        queue: d(this.queue),
        computeInput: d(this.computeInput),
        computeInfer: d(this.computeInfer),
        computeOutput: d(this.computeOutput),
        cacheHit: d(zero()),
        cacheMiss: d(zero()),
      },
      batchStats: [...this.batches.entries()]
        .sort(([a], [b]) => a - b)
        .map(([size, b]) => ({ batchSize: String(size), computeInput: d(b.computeInput), computeInfer: d(b.computeInfer), computeOutput: d(b.computeOutput) })),
    };
  }
}
