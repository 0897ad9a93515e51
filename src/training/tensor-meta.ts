// Descriptive metadata of a tensor, carried from the sending job to the receiving one.
export type Sink = 'spool' | 'stream';

export interface TensorMeta {
  name: string;
  datatype: string;
  shape: number[];
  attributes: Record<string, string>;
}
