import path from 'node:path';
import { createLogger } from './observability/logger';
import { startGateway, StartupError } from './gateway';
import { startScriptedSimulator } from './simulators/scripted';

const SIM_METHODCALL_PORT = Number(process.env.SIM_METHODCALL_PORT ?? 18081);
const SIM_DYN_REST_PORT = Number(process.env.SIM_DYN_REST_PORT ?? 18082);
const SIM_DYN_SOAP_PORT = Number(process.env.SIM_DYN_SOAP_PORT ?? 18083);

function say(line = ''): void {
  process.stderr.write(`${line}\n`);
}

/**
 * `npm run demo`: the simulators on loopback, then the gateway on 127.0.0.1:8080 with
 * config/demo.yaml. Ctrl-C stops everything.
 */
async function main(): Promise<void> {
  const methodcall = await startScriptedSimulator('methodcall', SIM_METHODCALL_PORT, '127.0.0.1');
  const dynRest = await startScriptedSimulator('dyn-rest', SIM_DYN_REST_PORT, '127.0.0.1');
  const dynSoap = await startScriptedSimulator('dyn-soap', SIM_DYN_SOAP_PORT, '127.0.0.1');
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
  say(`  methodcall simulator on ${methodcall.url}`);
  say(`  Dyn REST simulator on ${dynRest.url}, Dyn SOAP simulator on ${dynSoap.url}`);
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
  // SIGHUP means "reload" here as everywhere else (the default action would end the demo).
  process.on('SIGHUP', () => {
    void gateway.reload();
  });
}

main().catch((err: unknown) => {
  say(`demo failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
