// Fault injection shaped like the server's test fail points (enabled on a real mongod with
// --setParameter enableTestCommands=1), set with configureFailPoint and a mode of alwaysOn / off /
// {times: n} / {skip: n} / {activationProbability: p}:
// - failCommand fails a command before it runs (data failCommands, errorCode, errmsg,
//   closeConnection, blockConnection + blockTimeMS, errorLabels, appName, writeConcernError,
//   namespace). Its errors are raised before a getMore checks out its cursor, so the server
//   does not add ResumableChangeStreamError to them (SERVER-46091).
// - failGetMoreAfterCursorCheckout fails a getMore after its cursor was checked out, with
//   data.errorCode (InternalError when absent) and failCommand's appName / namespace filters;
//   labels are then the server's own, as for an error raised there by real work.
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

interface FailPointState {
  mode: Mode;
  commands: Set<string>;
  data: Doc;
  timesEntered: number;
}

const FAIL_COMMAND = 'failCommand';
const FAIL_GET_MORE = 'failGetMoreAfterCursorCheckout';
const SUPPORTED = [FAIL_COMMAND, FAIL_GET_MORE];

/** The message a real server gives for an error thrown by failGetMoreAfterCursorCheckout. */
export const GET_MORE_FAIL_POINT_MESSAGE = "Hit the 'failGetMoreAfterCursorCheckout' failpoint";

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

function offState(): FailPointState {
  return { mode: { kind: 'off' }, commands: new Set(), data: {}, timesEntered: 0 };
}

/** Whether a fail point in its current mode fires for this (already matching) execution. */
function fires(fp: FailPointState): boolean {
  switch (fp.mode.kind) {
    case 'off':
      return false;
    case 'skip':
      if (fp.mode.n > 0) {
        fp.mode.n--;
        return false;
      }
      break;
    case 'times':
      if (fp.mode.n <= 0) return false;
      fp.mode.n--;
      if (fp.mode.n === 0) fp.mode = { kind: 'off' };
      break;
    case 'probability':
      if (Math.random() >= fp.mode.p) return false;
      break;
    default:
      break;
  }
  fp.timesEntered++;
  return true;
}

/** failCommand's filters, which failGetMoreAfterCursorCheckout shares (for command getMore). */
function matches(fp: FailPointState, command: string, appName: string | undefined, ns: string) {
  if (fp.mode.kind === 'off' || !fp.commands.has(command)) return false;
  const d = fp.data;
  if (typeof d.appName === 'string' && d.appName !== appName) return false;
  if (typeof d.namespace === 'string' && d.namespace !== ns) return false;
  return true;
}

export class FailPoints {
  private readonly points = new Map<string, FailPointState>([
    [FAIL_COMMAND, offState()],
    [FAIL_GET_MORE, offState()],
  ]);

  configure(cmd: Doc): Doc {
    const name = cmd.configureFailPoint;
    const fp = typeof name === 'string' ? this.points.get(name) : undefined;
    if (!fp) {
      throw new MongoServerError(
        2,
        `Cannot find failpoint: ${String(name)} (changeq test-mongod supports only ${SUPPORTED.join(' and ')})`,
        { extra: { unsupported: true } },
      );
    }
    const mode = parseMode(cmd.mode);
    const data = isPlainObject(cmd.data) ? cmd.data : {};
    const before = fp.timesEntered;
    if (mode.kind === 'off') {
      fp.mode = mode;
      return { count: before };
    }
    let commands: string[];
    if (name === FAIL_COMMAND) {
      const cmds = data.failCommands;
      if (!Array.isArray(cmds) || !cmds.every((c) => typeof c === 'string')) {
        throw badValue("'failCommands' must be an array of command names");
      }
      if (data.blockConnection === true && !isNumeric(data.blockTimeMS)) {
        throw badValue("'blockTimeMS' must be set when 'blockConnection' is true");
      }
      commands = cmds as string[];
    } else {
      if (data.errorCode !== undefined && !isNumeric(data.errorCode)) {
        throw badValue("'errorCode' must be a number");
      }
      commands = ['getMore'];
    }
    this.points.set(name as string, {
      mode,
      commands: new Set(commands),
      data,
      timesEntered: before,
    });
    return { count: before };
  }

  /** failCommand: whether this command execution trips it, and what to do. */
  evaluate(command: string, appName: string | undefined, ns: string): FailAction | undefined {
    const fp = this.points.get(FAIL_COMMAND) as FailPointState;
    if (!matches(fp, command, appName, ns) || !fires(fp)) return undefined;
    const d = fp.data;
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

  /**
   * failGetMoreAfterCursorCheckout, asked by getMore once it holds its cursor: the error to
   * throw, or undefined.
   */
  afterCursorCheckout(appName: string | undefined, ns: string): MongoServerError | undefined {
    const fp = this.points.get(FAIL_GET_MORE) as FailPointState;
    if (!matches(fp, 'getMore', appName, ns) || !fires(fp)) return undefined;
    const code = isNumeric(fp.data.errorCode) ? toNumber(fp.data.errorCode) : 1;
    return new MongoServerError(code, GET_MORE_FAIL_POINT_MESSAGE);
  }
}
