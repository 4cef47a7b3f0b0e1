// An OpenID provider for the console's sign-in tests: oidc-provider (an
// implementation certified by the OpenID Foundation) on loopback, with its
// development sign-in pages (any password) and two people:
//   approver  - Ada Approver <approver@example.org>, groups ["approvers"]
//   bystander - Bo Bystander <bystander@example.org>, groups ["readers"]
// and one confidential client, "cutover-console" (secret "console-secret"),
// whose redirect URI is the REDIRECT_URI environment variable.
// Usage: REDIRECT_URI=... node oidc-provider.mjs PORT  (prints "listening URL")
import { Provider } from "oidc-provider";

const port = Number(process.argv[2] || 0);
const people = {
  approver: { email: "approver@example.org", name: "Ada Approver", groups: ["approvers"] },
  bystander: { email: "bystander@example.org", name: "Bo Bystander", groups: ["readers"] },
};

function start(actualPort) {
  const issuer = `http://localhost:${actualPort}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: "cutover-console",
        client_secret: "console-secret",
        redirect_uris: (process.env.REDIRECT_URI || "").split(" ").filter(Boolean),
        grant_types: ["authorization_code"],
        response_types: ["code"],
        token_endpoint_auth_method: "client_secret_basic",
      },
    ],
    claims: {
      openid: ["sub"],
      email: ["email", "email_verified"],
      profile: ["name"],
      groups: ["groups"],
    },
    scopes: ["openid", "email", "profile", "groups"],
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    async findAccount(ctx, id) {
      const person = people[id];
      if (!person) {
        return undefined;
      }
      return {
        accountId: id,
        async claims() {
          return { sub: id, email: person.email, email_verified: true, name: person.name, groups: person.groups };
        },
      };
    },
  });
  provider.proxy = false;
  return provider;
}

// The issuer names its port, so the port is chosen before the provider is made.
import net from "node:net";
const probe = net.createServer();
probe.listen(port, "127.0.0.1", () => {
  const chosen = probe.address().port;
  probe.close(() => {
    const provider = start(chosen);
    provider.listen(chosen, "127.0.0.1", () => {
      console.log(`listening http://localhost:${chosen}`);
    });
  });
});
