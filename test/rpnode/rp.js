// A relying party as NHS login's "OIDC clients" page lists one: Node with
// openid-client 3, private_key_jwt signed RS512. rpnode_test.go drives it
// in two steps, the browser part being the Go test's:
//
//   node rp.js authurl   → prints {"url", "state", "nonce"}
//   node rp.js callback  → reads CALLBACK_URL, STATE, NONCE; prints
//                          {"claims", "userinfo", "scope"}
//
// Configuration only, from the environment: ISSUER, CLIENT_ID,
// REDIRECT_URI, PRIVATE_KEY_JWK (the client's private key as a JWK), SCOPE.
'use strict';

const { Issuer, generators, custom } = require('openid-client');

function env(name) {
  const v = process.env[name];
  if (!v) {
    throw new Error(`${name} is not set`);
  }
  return v;
}

async function client() {
  const issuer = await Issuer.discover(env('ISSUER'));
  const jwk = JSON.parse(env('PRIVATE_KEY_JWK'));
  const c = new issuer.Client({
    client_id: env('CLIENT_ID'),
    redirect_uris: [env('REDIRECT_URI')],
    response_types: ['code'],
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: 'RS512',
    id_token_signed_response_alg: 'RS512',
  }, { keys: [jwk] });
  c[custom.clock_tolerance] = 5;
  return c;
}

async function main() {
  const step = process.argv[2];
  const c = await client();
  if (step === 'authurl') {
    const state = generators.state();
    const nonce = generators.nonce();
    const url = c.authorizationUrl({
      scope: env('SCOPE'),
      state,
      nonce,
      vtr: '["P9.Cp.Cd", "P9.Cp.Ck", "P9.Cm"]',
    });
    process.stdout.write(JSON.stringify({ url, state, nonce }));
    return;
  }
  if (step === 'callback') {
    const params = c.callbackParams(env('CALLBACK_URL'));
    const tokens = await c.callback(env('REDIRECT_URI'), params, {
      state: env('STATE'),
      nonce: env('NONCE'),
    });
    const userinfo = await c.userinfo(tokens);
    process.stdout.write(JSON.stringify({ claims: tokens.claims(), userinfo, scope: tokens.scope }));
    return;
  }
  throw new Error(`unknown step ${step}`);
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
