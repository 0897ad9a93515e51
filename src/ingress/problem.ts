// RFC 7807 problem details for every HTTP error of the ingress, with the request id, plus an
// `error` member (the KServe v2 REST error field) so Triton and KServe clients read the reason.
import { STATUS_CODES } from 'node:http';
import type { InferenceError } from '../kserve/inference-error.ts';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  request_id: string;
  error: string;
}

export function problemOf(err: InferenceError, instance: string, requestId: string): Problem {
  return {
    type: err.problemType,
    title: err.title,
    status: err.httpStatus,
    detail: err.message,
    instance,
    request_id: requestId,
    error: err.message,
  };
}

/** "404 Not Found" as uWS's writeStatus wants it. */
export function statusLine(status: number): string {
  return `${status} ${STATUS_CODES[status] ?? 'Unknown'}`;
}
