import { z } from 'zod';
import { BatchRequestSchema, CancelRequestSchema } from '../core/request';
import {
  BatchResultSchema,
  ReadyzSchema,
  RoutesSchema,
  UnifiedResultSchema,
} from '../core/result-schema';

type JsonSchema = Record<string, unknown>;

/** zod → JSON Schema 2020-12 (OpenAPI 3.1's dialect), without the `$schema` key. */
function schema(s: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(s, { io, unrepresentable: 'any' });
  return rest;
}

const json = (ref: string, description: string) => ({
  description,
  content: { 'application/json': { schema: { $ref: `#/components/schemas/${ref}` } } },
});

const UNIFIED_ANSWERS = {
  '200': json('UnifiedResult', 'canceled'),
  '400': json('UnifiedResult', 'invalid_request: the body or a header is invalid'),
  '401': json('UnifiedResult', 'unauthorized: no or unknown API key (when auth is configured)'),
  '403': json('UnifiedResult', 'forbidden: the key may not use this target'),
  '404': json('UnifiedResult', 'not_found: the upstream says the task does not exist'),
  '409': json('UnifiedResult', 'conflict: the task cannot be canceled now'),
  '413': json('UnifiedResult', 'payload_too_large'),
  '422': json('UnifiedResult', 'rejected by the upstream, or unknown_target'),
  '429': json('UnifiedResult', 'rate_limited; see Retry-After'),
  '500': json('UnifiedResult', 'internal_error'),
  '502': json('UnifiedResult', 'upstream_error: the upstream answered something unusable'),
  '503': json('UnifiedResult', 'unavailable: circuit open, bulkhead full, upstream down, draining'),
  '504': json('UnifiedResult', 'timeout: no final answer before the deadline'),
};

/**
 * The OpenAPI 3.1 document of the gateway, built from the zod schemas that validate requests
 * (`CancelRequestSchema`, `BatchRequestSchema`) and that the tests check every answer against.
 */
export function buildOpenApi(version: string): JsonSchema {
  const security = [{ bearer: [] }, { apiKey: [] }];
  return {
    openapi: '3.1.0',
    info: {
      title: 'cancel-gateway',
      version,
      description:
        'One JSON endpoint to cancel tasks in Dyn (REST, SOAP) and methodcall upstreams, with one result shape.',
    },
    paths: {
      '/cancel': {
        post: {
          operationId: 'cancel',
          summary: 'Cancel one task on a target',
          security,
          parameters: [
            {
              name: 'X-Request-Id',
              in: 'header',
              required: false,
              schema: { type: 'string', maxLength: 128 },
              description: 'Echoed in the answer and sent upstream where the protocol allows.',
            },
          ],
          requestBody: {
            required: true,
            content: {
              'application/json': { schema: { $ref: '#/components/schemas/CancelRequest' } },
            },
          },
          responses: UNIFIED_ANSWERS,
        },
      },
      '/cancel/batch': {
        post: {
          operationId: 'cancelBatch',
          summary: 'Cancel up to 100 tasks; results in order, with a summary',
          security,
          requestBody: {
            required: true,
            content: {
              'application/json': { schema: { $ref: '#/components/schemas/BatchRequest' } },
            },
          },
          responses: {
            '200': json('BatchResult', 'every item answered (each with its own outcome)'),
            '400': json('UnifiedResult', 'the envelope is invalid'),
            '401': json('UnifiedResult', 'unauthorized'),
            '413': json('UnifiedResult', 'payload_too_large'),
            '503': json('UnifiedResult', 'draining'),
          },
        },
      },
      '/healthz': {
        get: {
          operationId: 'healthz',
          summary: 'Liveness',
          security: [],
          responses: {
            '200': {
              description: 'the process runs',
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    properties: { status: { const: 'ok' } },
                    required: ['status'],
                  },
                },
              },
            },
          },
        },
      },
      '/readyz': {
        get: {
          operationId: 'readyz',
          summary: 'Readiness',
          security: [],
          responses: {
            '200': json('Readyz', 'ready'),
            '503': json('Readyz', 'draining'),
          },
        },
      },
      '/metrics': {
        get: {
          operationId: 'metrics',
          summary: 'Prometheus metrics',
          security: [],
          responses: {
            '200': {
              description: 'Prometheus text exposition format',
              content: { 'text/plain': { schema: { type: 'string' } } },
            },
          },
        },
      },
      '/routes': {
        get: {
          operationId: 'routes',
          summary: 'Targets with their provider chain, protocol and circuit state',
          security,
          responses: {
            '200': json('Routes', 'the routing in force'),
            '401': json('UnifiedResult', 'unauthorized'),
          },
        },
      },
      '/openapi.json': {
        get: {
          operationId: 'openapi',
          summary: 'This document',
          security: [],
          responses: {
            '200': {
              description: 'OpenAPI 3.1',
              content: { 'application/json': { schema: { type: 'object' } } },
            },
          },
        },
      },
    },
    components: {
      schemas: {
        CancelRequest: schema(CancelRequestSchema, 'input'),
        BatchRequest: schema(BatchRequestSchema, 'input'),
        UnifiedResult: schema(UnifiedResultSchema, 'output'),
        BatchResult: schema(BatchResultSchema, 'output'),
        Readyz: schema(ReadyzSchema, 'output'),
        Routes: schema(RoutesSchema, 'output'),
      },
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'Authorization: Bearer <key>' },
        apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
      },
    },
  };
}
