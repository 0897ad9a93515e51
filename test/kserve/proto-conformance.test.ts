// proto/grpc_service.proto must be wire-compatible with the published KServe Open Inference
// Protocol and Triton definitions: same messages, field numbers, types, labels and RPCs.
// The fixtures transcribe the published files field by field.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import protobuf from 'protobufjs';
import { PROTO_FILE } from '../../src/kserve/proto.ts';

interface Fixture {
  source: string;
  package: string;
  service: string;
  methods: Record<string, string>;
  messages: Record<string, Record<string, string>>;
}

const fixtures: Fixture[] = ['oip-kserve-fields.json', 'triton-grpc-service-fields.json'].map(
  (f) => JSON.parse(readFileSync(new URL(`../fixtures/${f}`, import.meta.url), 'utf8')) as Fixture,
);

const root = new protobuf.Root();
root.loadSync(PROTO_FILE, { keepCase: true });
root.resolveAll();

interface FieldSpec {
  id: number;
  type: string;
  label: 'repeated' | 'map' | 'oneof' | 'single';
  keyType?: string;
  oneof?: string;
}

function parseSpec(spec: string): FieldSpec {
  let m = /^oneof (\w+) ([\w.]+) = (\d+)$/.exec(spec);
  if (m) return { id: Number(m[3]), type: m[2]!, label: 'oneof', oneof: m[1]! };
  m = /^map<(\w+), ([\w.]+)> = (\d+)$/.exec(spec);
  if (m) return { id: Number(m[3]), type: m[2]!, label: 'map', keyType: m[1]! };
  m = /^repeated ([\w.]+) = (\d+)$/.exec(spec);
  if (m) return { id: Number(m[2]), type: m[1]!, label: 'repeated' };
  m = /^([\w.]+) = (\d+)$/.exec(spec);
  if (m) return { id: Number(m[2]), type: m[1]!, label: 'single' };
  throw new Error(`bad fixture spec: ${spec}`);
}

function describeField(f: protobuf.Field): FieldSpec {
  const type = f.resolvedType?.name ?? f.type;
  if (f instanceof protobuf.MapField) return { id: f.id, type, label: 'map', keyType: f.keyType };
  if (f.partOf !== null) return { id: f.id, type, label: 'oneof', oneof: f.partOf.name };
  return { id: f.id, type, label: f.repeated ? 'repeated' : 'single' };
}

for (const fx of fixtures) {
  test(`proto/ matches ${fx.source.split(':')[0]}: every message and field`, () => {
    for (const [msgName, fields] of Object.entries(fx.messages)) {
      const type = root.lookupType(`${fx.package}.${msgName}`);
      for (const [fieldName, spec] of Object.entries(fields)) {
        const f = type.fields[fieldName];
        assert.ok(f, `${msgName}.${fieldName} is missing from proto/`);
        assert.deepEqual(describeField(f), parseSpec(spec), `${msgName}.${fieldName}`);
      }
    }
  });

  test(`proto/ matches ${fx.source.split(':')[0]}: service ${fx.service}`, () => {
    const svc = root.lookupService(`${fx.package}.${fx.service}`);
    for (const [name, sig] of Object.entries(fx.methods)) {
      const m = svc.methods[name];
      assert.ok(m, `rpc ${name} is missing`);
      const [req, res] = sig.split(' -> ') as [string, string];
      assert.equal(m.requestType, req.replace('stream ', ''), `${name} request`);
      assert.equal(m.responseType, res.replace('stream ', ''), `${name} response`);
      assert.equal(Boolean(m.requestStream), req.startsWith('stream '), `${name} request streaming`);
      assert.equal(Boolean(m.responseStream), res.startsWith('stream '), `${name} response streaming`);
    }
  });
}

test('every field of proto/ is in a published definition with the same number and type', () => {
  const visit = (ns: protobuf.NamespaceBase, prefix: string): void => {
    for (const nested of ns.nestedArray) {
      if (nested instanceof protobuf.Type) {
        const name = prefix === '' ? nested.name : `${prefix}.${nested.name}`;
        const known = fixtures.map((fx) => fx.messages[name]).filter((m) => m !== undefined);
        assert.ok(known.length > 0, `message ${name} is in no published definition`);
        for (const f of nested.fieldsArray) {
          const specs = known.map((m) => m[f.name]).filter((s): s is string => s !== undefined);
          assert.ok(specs.length > 0, `${name}.${f.name} is in no published definition`);
          for (const s of specs) assert.deepEqual(describeField(f), parseSpec(s), `${name}.${f.name}`);
        }
        visit(nested, name);
      }
    }
  };
  visit(root.lookup('inference') as protobuf.Namespace, '');
});

test('a request encoded from proto/ carries the published tags on the wire', () => {
  const t = root.lookupType('inference.ModelInferRequest');
  const bytes = t
    .encode({ model_name: 'm', model_version: 'v', id: 'i', raw_input_contents: [Buffer.from([7])] })
    .finish();
  // field 1 LEN "m", field 2 LEN "v", field 3 LEN "i", field 7 LEN [7]
  assert.deepEqual([...bytes], [0x0a, 1, 0x6d, 0x12, 1, 0x76, 0x1a, 1, 0x69, 0x3a, 1, 7]);
});
