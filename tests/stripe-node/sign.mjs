// Signs webhook payloads with the official Stripe library's own signing code, for
// tests/tests/stripe_library.rs. Reads a JSON array of {payload, secret, timestamp} on stdin and
// writes a JSON array of `Stripe-Signature` header values on stdout, in order.
// `generateTestHeaderString` is Stripe's documented helper for testing webhook endpoints
// (https://github.com/stripe/stripe-node#testing-webhook-signing); `timestamp` is Unix seconds.
import Stripe from "stripe";

const stripe = new Stripe("sk_test_unused");
let input = "";
for await (const chunk of process.stdin) input += chunk;
const headers = JSON.parse(input).map(({ payload, secret, timestamp }) =>
  stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp }),
);
process.stdout.write(JSON.stringify(headers));
