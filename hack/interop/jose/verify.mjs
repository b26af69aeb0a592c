// Verifies a Gatehouse access token the way any service outside Go would:
// with panva/jose, configured from the issuer URL alone (OpenID Connect
// discovery → jwks_uri → verify issuer, audience and typ "at+jwt").
//
//   node hack/interop/jose/verify.mjs <issuer> <token> [audience]
//
// Prints the verified claims as JSON and exits 0, or prints why the token
// was refused and exits 1. A private CA is trusted with NODE_EXTRA_CA_CERTS.
import { createRemoteJWKSet, jwtVerify } from 'jose';

const [issuer, token, audience = 'gatehouse'] = process.argv.slice(2);
if (!issuer || !token) {
  console.error('usage: verify.mjs <issuer> <token> [audience]');
  process.exit(2);
}

const res = await fetch(`${issuer}/.well-known/openid-configuration`);
if (!res.ok) {
  console.error(`discovery: ${res.status} ${res.statusText}`);
  process.exit(2);
}
const metadata = await res.json();
if (metadata.issuer !== issuer) {
  console.error(`discovery names issuer ${metadata.issuer}, want ${issuer}`);
  process.exit(2);
}
const keys = createRemoteJWKSet(new URL(metadata.jwks_uri));
try {
  const { payload, protectedHeader } = await jwtVerify(token, keys, {
    issuer,
    audience,
    typ: 'at+jwt',
    algorithms: metadata.id_token_signing_alg_values_supported,
  });
  console.log(JSON.stringify({ header: protectedHeader, claims: payload }));
} catch (err) {
  console.log(JSON.stringify({ refused: err.code ?? err.name, message: err.message }));
  process.exit(1);
}
