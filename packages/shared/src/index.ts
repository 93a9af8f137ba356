export const PRODUCT = 'changeq';
