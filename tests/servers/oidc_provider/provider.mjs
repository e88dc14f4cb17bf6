// A real OpenID Connect provider (panva's oidc-provider) for the test suite.
//
//   node provider.mjs <config.json>
//
// tests/servers/oidc_server.py writes the config and starts this script. What it adds
// to oidc-provider: a password login form checked against the configured accounts (the
// built-in devInteractions accept any password), consent granted automatically, and
// scope-requested claims (email, profile, groups) in the ID token as well as userinfo.
// Prints "listening <issuer>" on stdout once it serves; errors go to stderr.
import { readFileSync } from 'node:fs';
import { errors, Provider } from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const accounts = new Map(config.accounts.map((account) => [account.sub, account]));

const CLAIMS = {
  openid: ['sub'],
  email: ['email', 'email_verified'],
  profile: ['name', 'preferred_username'],
  groups: ['groups'],
};

function escape(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${escape(title)}</title></head>
<body>
<h1>${escape(title)}</h1>
${body}
</body></html>`;
}

function loginPage(uid, clientId, { username = '', error } = {}) {
  const action = `/interaction/${encodeURIComponent(uid)}/login`;
  return page('Sign in', `${error ? `<p id="error" role="alert">${escape(error)}</p>\n` : ''}\
<p>to continue to ${escape(clientId)}</p>
<form id="login" method="post" action="${action}">
<input type="hidden" name="uid" value="${escape(uid)}">
<label for="username">Username</label>
<input id="username" name="username" type="text" autocomplete="username" value="${escape(username)}" required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password">
<button id="submit" type="submit" name="login" value="1">Sign in</button>
<button id="cancel" type="submit" name="cancel" value="1" formnovalidate>Cancel</button>
</form>`);
}

async function readForm(ctx) {
  // Small urlencoded bodies only; oidc-provider ships no body parser for custom routes.
  const chunks = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += chunk.length;
    if (size > 64 * 1024) ctx.throw(413, 'form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

// Consent is never asked: every requested OpenID scope and claim is granted to the
// configured clients, as a company IdP does for its own applications.
async function loadExistingGrant(ctx) {
  const { oidc } = ctx;
  const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
  let grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
  if (!grant) {
    grant = new oidc.provider.Grant({ accountId: oidc.session.accountId, clientId: oidc.client.clientId });
  }
  const scopes = [...oidc.requestParamOIDCScopes].join(' ');
  if (scopes) grant.addOIDCScope(scopes);
  const claims = [...oidc.requestParamClaims];
  if (claims.length) grant.addOIDCClaims(claims);
  await grant.save();
  return grant;
}

async function findAccount(ctx, sub) {
  const account = accounts.get(sub);
  if (!account) return undefined;
  return {
    accountId: sub,
    async claims() {
      return {
        sub,
        email: account.email,
        email_verified: account.email_verified ?? true,
        name: account.name,
        preferred_username: account.username,
        groups: account.groups ?? [],
      };
    },
  };
}

async function logoutSource(ctx, form) {
  // `form` is oidc-provider's <form id="op.logoutForm"> holding the xsrf token; the
  // buttons point at it, so both a browser and a form-parsing client can press them.
  ctx.type = 'html';
  ctx.body = page('Sign out', `${form}
<p>Do you want to sign out of ${escape(ctx.host)}?</p>
<button id="logout" type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button>
<button id="stay" type="submit" form="op.logoutForm">Stay signed in</button>`);
}

// oidc-provider's own defaults, as numbers (it nags about its default functions);
// the config's ttl overrides any of them, in seconds.
const TTL = {
  AccessToken: 3600,
  AuthorizationCode: 60,
  IdToken: 3600,
  Interaction: 3600,
  Grant: 14 * 24 * 3600,
  Session: 14 * 24 * 3600,
  RefreshToken: 14 * 24 * 3600,
};

const provider = new Provider(config.issuer, {
  clients: config.clients,
  jwks: config.jwks,
  findAccount,
  loadExistingGrant,
  claims: CLAIMS,
  scopes: ['openid', 'offline_access', ...Object.keys(CLAIMS)],
  // Scope-requested claims go into the ID token too, not only userinfo (OIDC Core 5.4
  // would keep them in userinfo for the code flow): apps read groups from the ID token.
  // false: claims of requested scopes go in the ID token too; true (claims_in_userinfo_only):
  // only in userinfo, as some providers do, so clients must ask userinfo.
  conformIdTokenClaims: Boolean(config.claims_in_userinfo_only),
  pkce: { required: () => config.require_pkce ?? true },
  // A refresh token whenever the client may use the grant, without offline_access
  // (which oidc-provider grants only with prompt=consent).
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  // rotate_refresh_tokens: a new refresh token at every refresh; reusing a rotated one
  // ("refresh token already used") revokes the whole grant. Otherwise oidc-provider's default.
  ...(config.rotate_refresh_tokens ? { rotateRefreshToken: true } : {}),
  // Distinct names: browsers and requests share cookies between ports of 127.0.0.1,
  // and the app under test sets its own.
  cookies: {
    names: { session: 'op_session', interaction: 'op_interaction', resume: 'op_resume' },
  },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: { enabled: true, logoutSource },
    revocation: { enabled: true },
    // Clients registered with a backchannel_logout_uri get a logout token POSTed there when
    // the person signs out here (with sid in ID and logout tokens when they also set
    // backchannel_logout_session_required).
    backchannelLogout: { enabled: true },
  },
  // oidc-provider's SSRF guard refuses outgoing requests to special-use addresses, loopback
  // included; the apps under test listen on 127.0.0.1, so back-channel logout POSTs to
  // loopback go out without it. Any other address keeps the guard.
  fetch: (url, options) => {
    const { hostname } = new URL(url);
    const loopback = hostname === '127.0.0.1' || hostname === 'localhost' || hostname === '[::1]';
    return globalThis.fetch(url, loopback ? { ...options, dispatcher: undefined } : options);
  },
  ttl: { ...TTL, ...config.ttl },
});

// The login interaction: GET shows the form, POST checks the password.
provider.use(async (ctx, next) => {
  const match = /^\/interaction\/([^/]+)(\/login)?$/.exec(ctx.path);
  if (!match) return next();
  ctx.set('cache-control', 'no-store');
  try {
    const interaction = await provider.interactionDetails(ctx.req, ctx.res);
    const { uid, prompt, params } = interaction;
    if (uid !== decodeURIComponent(match[1])) ctx.throw(400, 'interaction mismatch');
    if (prompt.name !== 'login') {
      // consent (only native clients still ask) is granted by loadExistingGrant
      return provider.interactionFinished(ctx.req, ctx.res, { consent: {} }, { mergeWithLastSubmission: true });
    }
    if (ctx.method === 'GET' && !match[2]) {
      ctx.type = 'html';
      ctx.body = loginPage(uid, params.client_id);
      return undefined;
    }
    if (ctx.method !== 'POST' || !match[2]) ctx.throw(405);

    const form = await readForm(ctx);
    if (form.has('cancel')) {
      return provider.interactionFinished(ctx.req, ctx.res, {
        error: 'access_denied',
        error_description: 'End-User cancelled the sign-in',
      }, { mergeWithLastSubmission: false });
    }
    const username = form.get('username') ?? '';
    const account = config.accounts.find((a) => a.username === username);
    let error;
    if (!account || account.password !== (form.get('password') ?? '')) {
      error = 'Invalid username or password';
    } else if (account.locked) {
      error = 'Account locked';
    }
    if (error) {
      ctx.type = 'html';
      ctx.body = loginPage(uid, params.client_id, { username, error });
      return undefined;
    }
    return provider.interactionFinished(ctx.req, ctx.res, {
      login: { accountId: account.sub, amr: ['pwd'] },
    }, { mergeWithLastSubmission: false });
  } catch (err) {
    if (!(err instanceof errors.SessionNotFound)) throw err;
    // expired, finished or foreign interaction: what a real IdP shows
    ctx.status = 400;
    ctx.type = 'html';
    ctx.body = page('Sign-in expired', `<p>${escape(err.error_description || err.message)}</p>`);
    return undefined;
  }
});

provider.on('server_error', (ctx, err) => {
  console.error(`server_error ${ctx?.method} ${ctx?.path}: ${err?.stack || err}`);
});
provider.on('backchannel.success', (ctx, client, accountId, sid) => {
  console.log(`backchannel.success ${client.clientId} ${client.backchannelLogoutUri} sub=${accountId} sid=${sid}`);
});
provider.on('backchannel.error', (ctx, err, client) => {
  console.error(`backchannel.error ${client.clientId} ${client.backchannelLogoutUri}: ${err?.message}`);
});
for (const event of ['authorization.error', 'grant.error', 'userinfo.error', 'end_session.error',
  'revocation.error', 'jwks.error', 'discovery.error']) {
  provider.on(event, (ctx, err) => {
    console.error(`${event} ${err?.error ?? err?.name}: ${err?.error_description ?? err?.message}`);
  });
}

const server = provider.listen(config.port, '127.0.0.1', () => {
  console.log(`listening ${config.issuer}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
