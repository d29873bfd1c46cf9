// A real OpenID provider for the sign-on tests: the certified `oidc-provider` package (pinned in
// package-lock.json), on loopback over plain HTTP, with one client (the hub: code flow, PKCE,
// RP-initiated logout) and test accounts with passwords. Its sign-in page is ours (a plain form
// that checks the password); the package's development pages load fonts from the Internet.
//
//   node tests/oidc_provider/provider.mjs <port> <hub callback URL> <post-logout URL> <client secret> [<address>]
//
// <address> (default 127.0.0.1): where it listens, and its issuer's host; the deployment test binds
// it to its test network's gateway so that the hub on the throwaway target reaches it.
//
// Prints "ready <issuer>" once it listens; stops on SIGTERM. POST /test/crash-after-next-code makes
// it vanish right after its next authorization response (the sign-on tests' "provider gone" case).
// POST /test/acr?value=<acr> sets the authentication context class the next sign-ins report (and
// their amr): "urn:tre:mfa" (password and one-time code, the default) or "urn:tre:pwd" (password only).

import http from 'node:http';
import { randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const [port, callbackUrl, postLogoutUrl, clientSecret, address = '127.0.0.1'] = process.argv.slice(2);
const issuer = `http://${address}:${port}`;

// Keyed by the login typed on the sign-in page. alice: a researcher of the catalogue; carol: known,
// in no project; mallory: unknown to the catalogue; alice-again: another account of the provider
// (another sub) whose preferred_username is also "alice" (a re-created or reassigned account).
const ACCOUNTS = {
  alice: { sub: 'alice', username: 'alice', password: 'alice-pass', email: 'alice@example.org', name: 'Alice Martin' },
  carol: { sub: 'carol', username: 'carol', password: 'carol-pass', email: 'carol@example.org', name: 'Carol Moreau' },
  mallory: { sub: 'mallory', username: 'mallory', password: 'mallory-pass', email: 'mallory@example.net', name: 'Mallory Unknown' },
  'alice-again': { sub: 'f3c1-alice-2', username: 'alice', password: 'alice-again-pass', email: 'alice@example.org', name: 'Alice Martin' },
};
const BY_SUB = Object.fromEntries(Object.values(ACCOUNTS).map((account) => [account.sub, account]));
const AMR = { 'urn:tre:mfa': ['pwd', 'otp'], 'urn:tre:pwd': ['pwd'] };
let acr = 'urn:tre:mfa';

const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title, body) {
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title></head>
<body><h1>${escape(title)}</h1>${body}</body></html>`;
}

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'tre-hub',
    client_secret: clientSecret,
    redirect_uris: [callbackUrl],
    post_logout_redirect_uris: [postLogoutUrl],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
  }],
  pkce: { required: () => true },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  claims: { openid: ['sub'], profile: ['preferred_username', 'name'], email: ['email'] },
  acrValues: Object.keys(AMR),
  async findAccount(ctx, sub) {
    const account = BY_SUB[sub];
    if (!account) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { sub, preferred_username: account.username, name: account.name, email: account.email };
      },
    };
  },
  // The hub is a first-party client: no consent screen, every requested scope granted.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid profile email');
    await grant.save();
    return grant;
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,
      // Sign out at once (the test asks for it through the hub's logout), then go back to the hub.
      async logoutSource(ctx, form) {
        ctx.body = page('Signing out', `${form}<button type="submit" form="op.logoutForm" name="logout" value="yes" id="logout-yes">Sign out</button>
<script>document.getElementById('logout-yes').click()</script>`);
      },
      async postLogoutSuccessSource(ctx) {
        ctx.body = page('Signed out', '<p>You are signed out.</p>');
      },
    },
  },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Provider error', `<p id="provider-error">${escape(out.error)}: ${escape(out.error_description || '')}</p>`);
  },
});

function loginForm(uid, message = '') {
  return page('Test identity provider: sign in', `
${message ? `<p id="login-error">${escape(message)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
  <label for="login">Username</label><input id="login" name="login" autocomplete="username">
  <label for="password">Password</label><input id="password" name="password" type="password">
  <button type="submit" id="submit">Sign in</button>
</form>
<form method="post" action="/interaction/${escape(uid)}/abort"><button type="submit" id="cancel">Cancel</button></form>`);
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString());
}

// Our login interaction; every other path is the provider's own.
async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  if (action === undefined && req.method === 'GET') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(loginForm(uid));
    return;
  }
  if (action === 'login' && req.method === 'POST') {
    const form = await readForm(req);
    const login = form.get('login') || '';
    const account = ACCOUNTS[login];
    if (!account || account.password !== form.get('password')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(loginForm(uid, 'Wrong username or password.'));
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: account.sub, acr, amr: AMR[acr] } },
      { mergeWithLastSubmission: false });
    return;
  }
  if (action === 'abort' && req.method === 'POST') {
    await provider.interactionFinished(req, res, {
      error: 'access_denied', error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
    return;
  }
  res.writeHead(405);
  res.end();
}

// Test hook: after POST /test/crash-after-next-code, the provider stops listening the moment it
// sends the browser back to the hub with a code, then exits: the hub's token request finds it gone.
let crashAfterNextCode = false;

function crashOnCodeRedirect(res) {
  const end = res.end.bind(res);
  res.end = (...args) => {
    const location = String(res.getHeader('location') || '');
    if (crashAfterNextCode && location.startsWith(callbackUrl) && location.includes('code=')) {
      server.close();
      res.on('finish', () => process.exit(3));
    }
    return end(...args);
  };
}

const callback = provider.callback();
const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/test/crash-after-next-code') {
    crashAfterNextCode = true;
    res.writeHead(204);
    res.end();
    return;
  }
  if (req.method === 'POST' && req.url.startsWith('/test/acr?')) {
    const value = new URLSearchParams(req.url.split('?')[1]).get('value');
    if (!AMR[value]) {
      res.writeHead(400);
      res.end();
      return;
    }
    acr = value;
    res.writeHead(204);
    res.end();
    return;
  }
  crashOnCodeRedirect(res);
  const match = /^\/interaction\/([\w-]+)(?:\/(\w+))?$/.exec(req.url.split('?')[0]);
  if (!match) {
    callback(req, res);
    return;
  }
  interaction(req, res, match[1], match[2]).catch((error) => {
    res.writeHead(400, { 'content-type': 'text/html; charset=utf-8' });
    res.end(page('Sign-in failed', `<p>${escape(error.message)}</p>`));
  });
});

server.listen(Number(port), address, () => console.log(`ready ${issuer}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
