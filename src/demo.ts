import path from 'node:path';
import { createLogger } from './observability/logger';
import { startGateway, StartupError } from './server';
import { startDynRestSimulator } from './simulators/dyn-rest';
import { startDynSoapSimulator } from './simulators/dyn-soap';
import { startMethodcallSimulator } from './simulators/methodcall';

const SIM_METHODCALL_PORT = Number(process.env.SIM_METHODCALL_PORT ?? 18081);
const SIM_DYN_REST_PORT = Number(process.env.SIM_DYN_REST_PORT ?? 18082);
const SIM_DYN_SOAP_PORT = Number(process.env.SIM_DYN_SOAP_PORT ?? 18083);
/** The demo simulator's account; the gateway reads the same values from config/demo.yaml. */
const DEMO_DYN = { customerName: 'demo', userName: 'demo-api', password: 'demo-password' };

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
  const dynRest = await startDynRestSimulator({ port: SIM_DYN_REST_PORT, ...DEMO_DYN });
  dynRest.setBehaviour(404, { kind: 'not-found' });
  dynRest.setBehaviour(307, { kind: 'redirect-job', polls: 2 });
  dynRest.setBehaviour(2011, { kind: 'token-expired-once' });
  dynRest.setBehaviour(429, { kind: 'rate-limited', retryAfterSeconds: 5 });
  // 503 on REST for task 503: the `dns-failover` route then cancels it over SOAP.
  dynRest.setBehaviour(503, { kind: 'unavailable' });
  const dynSoap = await startDynSoapSimulator({ port: SIM_DYN_SOAP_PORT, ...DEMO_DYN });
  dynSoap.setBehaviour(404, { kind: 'not-found' });
  dynSoap.setBehaviour(777, { kind: 'incomplete-job', polls: 2 });
  const closeSimulators = async (): Promise<void> => {
    await Promise.allSettled([methodcall.close(), dynRest.close(), dynSoap.close()]);
  };
  const env = {
    ...process.env,
    SIM_METHODCALL_PORT: String(SIM_METHODCALL_PORT),
    SIM_DYN_REST_PORT: String(SIM_DYN_REST_PORT),
    SIM_DYN_SOAP_PORT: String(SIM_DYN_SOAP_PORT),
  };
  const logger = createLogger({ level: process.env.LOG_LEVEL ?? 'info' });
  const configFile = path.join(__dirname, '..', 'config', 'demo.yaml');
  let gateway;
  try {
    gateway = await startGateway({ configFile, env, logger });
  } catch (err) {
    await closeSimulators();
    if (err instanceof StartupError) {
      say(`cannot start the demo:\n${err.problems.join('\n')}`);
      process.exit(1);
    }
    throw err;
  }
  const url = gateway.url;
  say();
  say(`cancel-gateway demo: gateway on ${url}`);
  say(`  methodcall simulator on ${methodcall.taskUrl}`);
  say(`  Dyn REST simulator on ${dynRest.baseUrl}, Dyn SOAP simulator on ${dynSoap.endpoint}`);
  say('Try:');
  const curl = (body: string): string =>
    `  curl -s -X POST ${url}/cancel -H 'Content-Type: application/json' -d '${body}'`;
  say(curl('{"target":"warehouse","taskId":"123004"}') + '   # canceled');
  say(curl('{"target":"warehouse","taskId":"1017"}') + '     # not_found (fault 1017)');
  say(curl('{"target":"warehouse","taskId":"1045"}') + '     # conflict, retryable (fault 1045)');
  say(curl('{"target":"warehouse","taskId":"4242"}') + '     # timeout after 3 s');
  say(
    curl('{"target":"dns","taskId":"39120953"}') + '       # canceled by Dyn REST, with the task',
  );
  say(curl('{"target":"dns","taskId":"404"}') + '            # not_found (NOT_FOUND)');
  say(curl('{"target":"dns","taskId":"307"}') + '            # 307 -> job polled -> canceled');
  say(
    curl('{"target":"dns","taskId":"2011"}') +
      '           # token expired -> one re-login -> canceled',
  );
  say(curl('{"target":"dns","taskId":"429"}') + '            # rate_limited, Retry-After: 5');
  say(curl('{"target":"dns-soap","taskId":"39120953"}') + '  # canceled by Dyn SOAP (node-soap)');
  say(
    curl('{"target":"dns-soap","taskId":"777"}') +
      '       # incomplete -> GetJob polled -> canceled',
  );
  say(
    curl('{"target":"dns-failover","taskId":"503"}') +
      '   # REST answers 503 -> falls back to SOAP',
  );
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
      .then(closeSimulators)
      .then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((err: unknown) => {
  say(`demo failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
