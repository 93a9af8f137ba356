export { canonicalKey } from './canonical-key.js';
export {
  documentIdentity,
  documentKey,
  identityOf,
  Router,
  routeDocument,
  ROUTING_VERSION,
  type DocumentKey,
} from './router.js';
export {
  RingRouter,
  losingNames,
  ringDiff,
  sameNames,
  type Hold,
  type RingEpoch,
  type Route,
} from './ring.js';
export {
  DOCUMENT_RULE,
  fieldValue,
  lineKey,
  parseRoutingRule,
  routingSpec,
  type RoutingRule,
} from './routing-key.js';
