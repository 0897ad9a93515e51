// On-wire codes for traffic classes and segments, and which classes a segment may carry.
// The design keeps the two segments apart: a frame of one class never travels on the other
// segment. Control traffic (link management) is allowed on both.
import type { SegmentName, TrafficClass } from '../transport/types.ts';

export const CLASS_CODES: Readonly<Record<TrafficClass, number>> = { control: 0, inference: 1, training: 2 };
export const CLASS_BY_CODE: readonly TrafficClass[] = ['control', 'inference', 'training'];

export const SEGMENT_CODES: Readonly<Record<SegmentName, number>> = { inference: 1, training: 2 };
export const SEGMENT_BY_CODE: readonly (SegmentName | undefined)[] = [undefined, 'inference', 'training'];

const ALLOWED: Readonly<Record<SegmentName, readonly TrafficClass[]>> = {
  inference: ['control', 'inference'],
  training: ['control', 'training'],
};

export function classAllowedOnSegment(cls: TrafficClass, segment: SegmentName): boolean {
  return ALLOWED[segment].includes(cls);
}

export function allowedClasses(segment: SegmentName): readonly TrafficClass[] {
  return ALLOWED[segment];
}
