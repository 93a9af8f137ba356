// Fault injection shaped like the server's `failCommand` fail point (enabled on a real mongod
// with --setParameter enableTestCommands=1): configureFailPoint with mode alwaysOn / off /
// {times: n} / {skip: n} / {activationProbability: p} and data failCommands, errorCode,
// errmsg, closeConnection, blockConnection + blockTimeMS, errorLabels, appName,
// writeConcernError, namespace.
import { isNumeric, isPlainObject, toNumber } from '../bson/types.js';
import type { Doc } from '../bson/types.js';
import { badValue, MongoServerError } from '../errors.js';

type Mode =
  | { kind: 'off' }
  | { kind: 'alwaysOn' }
  | { kind: 'times'; n: number }
  | { kind: 'skip'; n: number }
  | { kind: 'probability'; p: number };

export interface FailAction {
  errorCode?: number;
  errmsg?: string;
  closeConnection: boolean;
  blockTimeMS: number;
  errorLabels?: string[];
  writeConcernError?: Doc;
}

interface FailCommandConfig {
  mode: Mode;
  commands: Set<string>;
  data: Doc;
  timesEntered: number;
}

function parseMode(mode: unknown): Mode {
  if (mode === 'off') return { kind: 'off' };
  if (mode === 'alwaysOn') return { kind: 'alwaysOn' };
  if (isPlainObject(mode)) {
    if (isNumeric(mode.times)) return { kind: 'times', n: toNumber(mode.times) };
    if (isNumeric(mode.skip)) return { kind: 'skip', n: toNumber(mode.skip) };
    if (isNumeric(mode.activationProbability))
      return { kind: 'probability', p: toNumber(mode.activationProbability) };
  }
  throw badValue(`unknown mode: ${JSON.stringify(mode)}`);
}

export class FailPoints {
  private failCommand: FailCommandConfig = {
    mode: { kind: 'off' },
    commands: new Set(),
    data: {},
    timesEntered: 0,
  };

  configure(cmd: Doc): Doc {
    const name = cmd.configureFailPoint;
    if (name !== 'failCommand') {
      throw new MongoServerError(
        2,
        `Cannot find failpoint: ${String(name)} (changeq test-mongod supports only failCommand)`,
        {
          extra: { unsupported: true },
        },
      );
    }
    const mode = parseMode(cmd.mode);
    const data = isPlainObject(cmd.data) ? cmd.data : {};
    const before = this.failCommand.timesEntered;
    if (mode.kind !== 'off') {
      const cmds = data.failCommands;
      if (!Array.isArray(cmds) || !cmds.every((c) => typeof c === 'string')) {
        throw badValue("'failCommands' must be an array of command names");
      }
      if (data.blockConnection === true && !isNumeric(data.blockTimeMS)) {
        throw badValue("'blockTimeMS' must be set when 'blockConnection' is true");
      }
      this.failCommand = { mode, commands: new Set(cmds as string[]), data, timesEntered: before };
    } else {
      this.failCommand = { ...this.failCommand, mode };
    }
    return { count: before };
  }

  /** Decide whether this command execution trips the fail point. */
  evaluate(command: string, appName: string | undefined, ns: string): FailAction | undefined {
    const fc = this.failCommand;
    if (fc.mode.kind === 'off' || !fc.commands.has(command)) return undefined;
    const d = fc.data;
    if (typeof d.appName === 'string' && d.appName !== appName) return undefined;
    if (typeof d.namespace === 'string' && d.namespace !== ns) return undefined;
    switch (fc.mode.kind) {
      case 'skip':
        if (fc.mode.n > 0) {
          fc.mode.n--;
          return undefined;
        }
        break;
      case 'times':
        if (fc.mode.n <= 0) return undefined;
        fc.mode.n--;
        if (fc.mode.n === 0) fc.mode = { kind: 'off' };
        break;
      case 'probability':
        if (Math.random() >= fc.mode.p) return undefined;
        break;
      default:
        break;
    }
    fc.timesEntered++;
    const action: FailAction = {
      closeConnection: d.closeConnection === true,
      blockTimeMS: d.blockConnection === true ? toNumber(d.blockTimeMS) : 0,
    };
    if (isNumeric(d.errorCode)) action.errorCode = toNumber(d.errorCode);
    if (typeof d.errmsg === 'string') action.errmsg = d.errmsg;
    if (Array.isArray(d.errorLabels)) action.errorLabels = d.errorLabels as string[];
    if (isPlainObject(d.writeConcernError)) action.writeConcernError = d.writeConcernError;
    return action;
  }
}
