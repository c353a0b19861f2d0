import path from 'node:path';
import { createLogger } from './observability/logger';
import { startGateway, StartupError } from './server';
import { startMethodcallSimulator } from './simulators/methodcall';

const SIM_METHODCALL_PORT = Number(process.env.SIM_METHODCALL_PORT ?? 18081);

function say(line = ''): void {
  process.stderr.write(`${line}\n`);
}

/**
 * `npm run demo`: the simulators on loopback, then the gateway on 127.0.0.1:8080 with
 * config/demo.yaml. Ctrl-C stops everything.
 */
async function main(): Promise<void> {
  const methodcall = await startMethodcallSimulator({ port: SIM_METHODCALL_PORT });
  methodcall.setBehaviour(1017, { kind: 'fault', code: 1017 });
  methodcall.setBehaviour(1045, { kind: 'fault', code: 1045 });
  methodcall.setBehaviour(4242, { kind: 'slow', delayMs: 30_000 });
  const env = { ...process.env, SIM_METHODCALL_PORT: String(SIM_METHODCALL_PORT) };
  const logger = createLogger({ level: process.env.LOG_LEVEL ?? 'info' });
  const configFile = path.join(__dirname, '..', 'config', 'demo.yaml');
  let gateway;
  try {
    gateway = await startGateway({ configFile, env, logger });
  } catch (err) {
    await methodcall.close();
    if (err instanceof StartupError) {
      say(`cannot start the demo:\n${err.problems.join('\n')}`);
      process.exit(1);
    }
    throw err;
  }
  const url = gateway.url;
  say();
  say(`cancel-gateway demo: gateway on ${url}, methodcall simulator on ${methodcall.taskUrl}`);
  say('Try:');
  const curl = (body: string): string =>
    `  curl -s -X POST ${url}/cancel -H 'Content-Type: application/json' -d '${body}'`;
  say(curl('{"target":"warehouse","taskId":"123004"}') + '   # canceled');
  say(curl('{"target":"warehouse","taskId":"1017"}') + '     # not_found (fault 1017)');
  say(curl('{"target":"warehouse","taskId":"1045"}') + '     # conflict, retryable (fault 1045)');
  say(curl('{"target":"warehouse","taskId":"4242"}') + '     # timeout after 3 s');
  say(curl('{"target":"nope","taskId":"1"}') + '             # unknown_target');
  say(`  curl -s ${url}/readyz`);
  say('Ctrl-C stops everything.');
  say();

  let stopping = false;
  const stop = (): void => {
    if (stopping) process.exit(1);
    stopping = true;
    void gateway
      .shutdown('demo stopped')
      .then(() => methodcall.close())
      .then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((err: unknown) => {
  say(`demo failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
