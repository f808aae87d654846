/**
 * A minimal ONNX protobuf writer: enough of ModelProto / GraphProto / NodeProto / ValueInfoProto to
 * build single-node models in code (no downloads, no protobuf dependency). Field numbers follow
 * onnx/onnx.proto3.
 */
class Writer {
  private bytes: number[] = [];
  varint(v: number): this {
    let x = BigInt(v);
    if (x < 0n) x += 1n << 64n;
    while (x >= 0x80n) { this.bytes.push(Number(x & 0x7fn) | 0x80); x >>= 7n; }
    this.bytes.push(Number(x));
    return this;
  }
  tag(field: number, wire: number): this { return this.varint((field << 3) | wire); }
  int(field: number, v: number): this { return this.tag(field, 0).varint(v); }
  float(field: number, v: number): this {
    this.tag(field, 5);
    const b = new Uint8Array(new Float32Array([v]).buffer);
    this.bytes.push(...b);
    return this;
  }
  bytesField(field: number, b: Uint8Array): this {
    this.tag(field, 2).varint(b.length);
    for (let i = 0; i < b.length; i++) this.bytes.push(b[i]);
    return this;
  }
  str(field: number, s: string): this { return this.bytesField(field, new TextEncoder().encode(s)); }
  msg(field: number, w: Writer): this { return this.bytesField(field, w.finish()); }
  finish(): Uint8Array { return Uint8Array.from(this.bytes); }
}

export type Attr = { name: string; i: number } | { name: string; f: number };
/** ONNX TensorProto.DataType codes used here. */
export const ONNX_FLOAT = 1;
export const ONNX_INT32 = 6;

export interface ValueInfo { name: string; elemType: number; dims: (number | string)[] }
export interface Initializer { name: string; dims: number[]; data: Float32Array }
export interface NodeSpec { opType: string; domain?: string; inputs: string[]; outputs: string[]; attrs?: Attr[] }

function valueInfo(v: ValueInfo): Writer {
  const shape = new Writer();
  for (const d of v.dims) shape.msg(1, typeof d === 'number' ? new Writer().int(1, d) : new Writer().str(2, d));
  const tensorType = new Writer().int(1, v.elemType).msg(2, shape);
  return new Writer().str(1, v.name).msg(2, new Writer().msg(1, tensorType));
}

/** Serialises a one-graph model (IR 8) importing the default opset 17 and com.microsoft 1. */
export function buildModel(nodes: NodeSpec[], inputs: ValueInfo[], outputs: ValueInfo[], inits: Initializer[] = []): Uint8Array {
  const graph = new Writer();
  nodes.forEach((n, k) => {
    const node = new Writer();
    for (const i of n.inputs) node.str(1, i);
    for (const o of n.outputs) node.str(2, o);
    node.str(3, `node${k}`).str(4, n.opType);
    for (const a of n.attrs ?? []) {
      const aw = new Writer().str(1, a.name);
      if ('i' in a) aw.int(3, a.i).int(20, 2);
      else aw.float(2, a.f).int(20, 1);
      node.msg(5, aw);
    }
    if (n.domain) node.str(7, n.domain);
    graph.msg(1, node);
  });
  graph.str(2, 'g');
  for (const t of inits) {
    const tw = new Writer();
    for (const d of t.dims) tw.int(1, d);
    tw.int(2, ONNX_FLOAT).str(8, t.name).bytesField(9, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    graph.msg(5, tw);
  }
  for (const i of inputs) graph.msg(11, valueInfo(i));
  for (const o of outputs) graph.msg(12, valueInfo(o));
  return new Writer()
    .int(1, 8)
    .str(2, 'tfjs-attention-rope-bench')
    .msg(7, graph)
    .msg(8, new Writer().str(1, '').int(2, 17))
    .msg(8, new Writer().str(1, 'com.microsoft').int(2, 1))
    .finish();
}
