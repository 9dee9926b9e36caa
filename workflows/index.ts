// Every workflow the OMS worker registers. Workers bundle this file; nothing else imports it.
export { pingWorkflow } from './diagnostics';
export { outboxRelayWorkflow } from './outbox-relay';
export { createOrder } from './create-order';
export { cancelOrder } from './cancel-order';
export { tccPayment } from './tcc-payment';
