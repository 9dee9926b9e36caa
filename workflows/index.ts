// Every workflow the OMS worker registers. Workers bundle this file; nothing else imports it.
export { pingWorkflow } from './diagnostics';
