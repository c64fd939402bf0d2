import pino from 'pino';
import { BatonError } from '../shared/errors.js';
import { BatonAgent, type AgentStatus, type CeremonyPort } from './core/agent.js';
import { loadAgentConfig } from './core/agent-config.js';
import { KeytarSecretStore } from './core/secret-store.js';

/**
 * The agent core without a screen: loads the machine-wide configuration, keeps the console key in
 * the OS credential store, enrols with the configured token, connects and reports its state as JSON
 * log lines. IT uses it to check a console's configuration, enrolment and connection before (or
 * without) the desktop shell; it runs no ceremonies, so nobody can sign in through it.
 */
const AGENT_VERSION = '0.1.0-headless';

const noOperatorUi: CeremonyPort = {
  getAssertion: () => Promise.reject(new BatonError('CEREMONY_CANCELLED', 'The headless agent has no operator UI')),
  createCredential: () => Promise.reject(new BatonError('CEREMONY_CANCELLED', 'The headless agent has no operator UI')),
};

function summary(status: AgentStatus) {
  return {
    identity: status.identity,
    connection: status.connection,
    policyVersion: status.policyVersion,
    sessions: status.sessions.length,
    outbox: status.outbox === undefined ? undefined : { pending: status.outbox.pending, max: status.outbox.max },
    notice: status.notice === undefined ? undefined : { code: status.notice.code, message: status.notice.message },
  };
}

async function main(): Promise<number> {
  const logger = pino({ level: process.env.BATON_AGENT_LOG_LEVEL ?? 'info', base: { component: 'agent' } });
  let config;
  let secrets;
  try {
    config = loadAgentConfig({ platform: process.platform, env: process.env, packaged: false });
    secrets = await KeytarSecretStore.open();
  } catch (error) {
    const baton = error instanceof BatonError ? error : new BatonError('INTERNAL', String(error));
    logger.fatal({ code: baton.code, issues: baton.issues }, baton.message);
    return 78; // EX_CONFIG
  }
  logger.level = config.logLevel;
  let agent: BatonAgent;
  try {
    agent = await BatonAgent.start(
      {
        backendUrl: config.backendUrl,
        channel: config.channel,
        rpId: config.rpId,
        origin: config.origin,
        dataDir: config.dataDir,
        agentVersion: AGENT_VERSION,
        ...(config.enrolmentToken === undefined ? {} : { enrolmentToken: config.enrolmentToken }),
      },
      { secrets, ceremonies: noOperatorUi, logger },
    );
  } catch (error) {
    const baton = error instanceof BatonError ? error : new BatonError('INTERNAL', String(error));
    logger.fatal({ code: baton.code }, baton.message);
    return 69; // EX_UNAVAILABLE: the OS credential store (or the data directory) cannot be used
  }
  const identity = agent.status.identity;
  if (identity.kind !== 'enrolled') {
    logger.fatal(
      { identity, notice: agent.status.notice },
      identity.kind === 'unenrolled'
        ? 'This console is not enrolled: put a one-time enrolmentToken from IT in the configuration file'
        : `This console must be re-enrolled: ${identity.detail}`,
    );
    await agent.stop();
    return 78;
  }
  let last = '';
  const report = (status: AgentStatus) => {
    const line = summary(status);
    const key = JSON.stringify({ ...line, outbox: undefined });
    if (key === last) return;
    last = key;
    logger.info({ status: line }, `console ${status.identity.kind}, ${status.connection}`);
  };
  agent.onStatus(report);
  report(agent.status);
  // The agent's own timers do not hold the process open (the shell owns its lifetime); here this does.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  clearInterval(keepAlive);
  await agent.stop();
  logger.info('agent stopped');
  return 0;
}

process.exitCode = await main();
