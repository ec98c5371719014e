// A real OpenID Connect provider for tests: oauth2-mock-server's service (discovery, JWKS,
// authorization endpoint, token endpoint issuing RS256-signed ID tokens, PKCE S256 checked against
// the authorization's challenge, the nonce carried into the ID token), served on one port with a
// small control API under /_control that tests use to shape the ID token of one authorization:
//
//   POST /_control/claims {"state": "...", "claims": {...}, "tamper": false}
//       the ID token issued for the authorization with this `state` gets these claims on top of
//       the server's own (`sub`, `aud`, `nonce`, ... may be overridden: a wrong audience or
//       nonce); with "tamper": true its payload is changed after signing (a bad signature).
//   GET  /_control/token?state=...
//       {"status": <HTTP status of the token request for that authorization, or null>}: so a test
//       sees that the server itself refused a code exchange (a wrong PKCE verifier).
//
// Usage: node server.mjs [--port N] [--host 127.0.0.1] [--exit-with-stdin]. Prints one JSON line
// on stdout, {"issuer": "http://<host>:<port>"}, once listening. With --exit-with-stdin it exits
// when its stdin closes (the Rust tests: when the test process ends); otherwise on SIGTERM.
import http from "node:http";
import { OAuth2Issuer, OAuth2Service } from "oauth2-mock-server";

const args = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
const host = arg("--host", "127.0.0.1");
const port = Number(arg("--port", "0"));

const issuer = new OAuth2Issuer();
await issuer.keys.generate("RS256");
const service = new OAuth2Service(issuer);

/** state -> {claims, tamper} set by the test. */
const shapes = new Map();
/** authorization code -> state, learnt at the authorization endpoint. */
const stateOfCode = new Map();
/** state -> HTTP status of its token request. */
const tokenStatus = new Map();

service.on("beforeAuthorizeRedirect", (redirect) => {
  const code = redirect.url.searchParams.get("code");
  const state = redirect.url.searchParams.get("state");
  if (code && state) stateOfCode.set(code, state);
});

service.on("beforeTokenSigning", (token, req) => {
  // The access token carries `amr`; the ID token (built second) does not.
  if ("amr" in token.payload) return;
  const state = stateOfCode.get(req.body?.code);
  const shape = state && shapes.get(state);
  if (shape?.claims) Object.assign(token.payload, shape.claims);
});

service.on("beforeResponse", (response, req) => {
  const state = stateOfCode.get(req.body?.code);
  const shape = state && shapes.get(state);
  if (shape?.tamper && typeof response.body.id_token === "string") {
    const [header, payload, signature] = response.body.id_token.split(".");
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
    claims.email = "attacker@example.com";
    const forged = Buffer.from(JSON.stringify(claims)).toString("base64url");
    response.body.id_token = `${header}.${forged}.${signature}`;
  }
});

const json = (res, status, body) => {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
};

const control = async (req, res, url) => {
  if (req.method === "POST" && url.pathname === "/_control/claims") {
    let text = "";
    for await (const chunk of req) text += chunk;
    const body = JSON.parse(text || "{}");
    if (typeof body.state !== "string") return json(res, 400, { error: "state required" });
    shapes.set(body.state, { claims: body.claims ?? {}, tamper: body.tamper === true });
    return json(res, 200, { ok: true });
  }
  if (req.method === "GET" && url.pathname === "/_control/token") {
    return json(res, 200, { status: tokenStatus.get(url.searchParams.get("state")) ?? null });
  }
  return json(res, 404, { error: "no such control route" });
};

// Token requests are form posts; the body is read by the service, so the code is taken from the
// response's bookkeeping: remember the request's code once express has parsed it.
const server = http.createServer((req, res) => {
  const url = new URL(req.url, `http://${req.headers.host}`);
  if (url.pathname.startsWith("/_control/")) {
    control(req, res, url).catch((e) => json(res, 500, { error: String(e) }));
    return;
  }
  if (url.pathname === "/token") {
    res.on("finish", () => {
      const state = stateOfCode.get(req.body?.code);
      if (state) tokenStatus.set(state, res.statusCode);
    });
  }
  service.requestHandler(req, res);
});

server.listen(port, host, () => {
  const address = server.address();
  issuer.url = `http://${host}:${address.port}`;
  process.stdout.write(`${JSON.stringify({ issuer: issuer.url })}\n`);
});

if (args.includes("--exit-with-stdin")) {
  process.stdin.on("end", () => process.exit(0));
  process.stdin.resume();
}
process.on("SIGTERM", () => process.exit(0));
