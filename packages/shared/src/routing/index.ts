export { canonicalKey } from './canonical-key.js';
export { documentIdentity, Router, routeDocument, ROUTING_VERSION } from './router.js';
