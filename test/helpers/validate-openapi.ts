/**
 * Validates an OpenAPI document read from stdin; prints the validator's result as JSON, with the
 * document's internal `$ref`s resolved by the validator when it is valid.
 * Run in a child process (`node --import tsx`): the validator is an ES module that uses
 * `import.meta`, which Jest's CommonJS runtime cannot load.
 */
async function main(): Promise<void> {
  const { Validator } = await import('@seriousme/openapi-schema-validator');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const document = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
  const validator = new Validator();
  const result = await validator.validate(document);
  process.stdout.write(
    JSON.stringify({
      valid: result.valid,
      errors: result.errors,
      resolved: result.valid ? validator.resolveRefs() : undefined,
    }),
  );
}

void main();
