//! The `--demo` setup: organisations `acme` and `globex`, tokens for their
//! administrators, an acme reader and an instance-wide root, a few users
//! (one locked), and curl commands to try them.

use std::sync::Arc;

use userstate::{
    Caller, Error, ErrorKind, Grants, InitialState, LockRequest, OrgId, Permission, Reason, UserId,
    UserRepository, UserService,
};

use userstate_http::Tokens;

const ALL: &[Permission] = &[
    Permission::Read,
    Permission::Write,
    Permission::Delete,
    Permission::PolicyWrite,
];

/// A demo token: the token, its acting user and organisation, and whether its
/// grants hold in that organisation or in every one.
struct DemoToken {
    token: &'static str,
    user: &'static str,
    org: &'static str,
    permissions: &'static [Permission],
    instance_wide: bool,
}

/// The demo's tokens. They are public: serve the demo on loopback only.
const DEMO_TOKENS: [DemoToken; 4] = [
    DemoToken {
        token: "acme-admin-token",
        user: "acme-admin",
        org: "acme",
        permissions: ALL,
        instance_wide: false,
    },
    DemoToken {
        token: "acme-reader-token",
        user: "acme-reader",
        org: "acme",
        permissions: &[Permission::Read],
        instance_wide: false,
    },
    DemoToken {
        token: "globex-admin-token",
        user: "globex-admin",
        org: "globex",
        permissions: ALL,
        instance_wide: false,
    },
    DemoToken {
        token: "root-token",
        user: "root",
        org: "acme",
        permissions: ALL,
        instance_wide: true,
    },
];

/// A demo user: created in `state`, then locked if `locked`.
struct DemoUser {
    id: &'static str,
    org: &'static str,
    state: InitialState,
    locked: bool,
}

impl DemoUser {
    fn label(&self) -> &'static str {
        match (self.locked, self.state) {
            (true, _) => "locked",
            (false, InitialState::Initial) => "initial",
            (false, _) => "active",
        }
    }
}

const DEMO_USERS: [DemoUser; 4] = [
    DemoUser {
        id: "alice",
        org: "acme",
        state: InitialState::Active,
        locked: false,
    },
    DemoUser {
        id: "bob",
        org: "acme",
        state: InitialState::Active,
        locked: true,
    },
    DemoUser {
        id: "carol",
        org: "acme",
        state: InitialState::Initial,
        locked: false,
    },
    DemoUser {
        id: "gina",
        org: "globex",
        state: InitialState::Active,
        locked: false,
    },
];

/// Builds the demo on `repository`: the tokens `acme-admin-token`,
/// `acme-reader-token`, `globex-admin-token` and `root-token` (instance-wide)
/// plus the `extra` tokens (a token in both takes `extra`'s caller), and the
/// users alice (active),
/// bob (locked, with a reason) and carol (initial) in acme and gina (active)
/// in globex. Users that already exist (a persistent backend used before)
/// are left as they are.
///
/// # Errors
/// An error of the backend while creating the users.
pub async fn demo(
    repository: Arc<dyn UserRepository>,
    extra: Tokens,
) -> Result<(UserService, Tokens), Error> {
    let mut tokens = demo_tokens()?;
    tokens.extend(extra);
    let service = UserService::new(repository, Arc::new(tokens.authorizer()));
    let root = Caller::new(UserId::new("root")?, OrgId::new("acme")?);
    for demo in DEMO_USERS {
        let caller = root.clone().in_org(OrgId::new(demo.org)?);
        let user = UserId::new(demo.id)?;
        if create_if_new(&service, &caller, &user, demo.state).await? && demo.locked {
            let reason = Reason::new("suspicious sign-in from a new country")?;
            service
                .lock(&caller, &user, LockRequest::new().reason(reason))
                .await?;
        }
    }
    Ok((service, tokens))
}

fn demo_tokens() -> Result<Tokens, Error> {
    let mut tokens = Tokens::new();
    for demo in DEMO_TOKENS {
        let caller = Caller::new(UserId::new(demo.user)?, OrgId::new(demo.org)?);
        let permissions = demo.permissions.iter().copied().collect();
        let grants = if demo.instance_wide {
            Grants {
                instance: permissions,
                ..Grants::default()
            }
        } else {
            Grants {
                orgs: [(caller.org_id.clone(), permissions)].into(),
                ..Grants::default()
            }
        };
        tokens
            .insert(demo.token, caller, grants)
            .map_err(Error::internal)?;
    }
    Ok(tokens)
}

/// True when created now, false when the id was already taken.
async fn create_if_new(
    service: &UserService,
    caller: &Caller,
    user: &UserId,
    state: InitialState,
) -> Result<bool, Error> {
    match service.create(caller, user, state).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Ready-to-paste curl commands against the demo at `base_url`
/// (e.g. `http://127.0.0.1:8080`), each printing the body and the status.
pub fn demo_curl_commands(base_url: &str) -> String {
    let b = base_url.trim_end_matches('/');
    let w = r"-w ' HTTP %{http_code}\n'";
    let admin = "-H 'Authorization: Bearer acme-admin-token'";
    let json = "-H 'Content-Type: application/json'";
    let mut out = String::from("Tokens (public demo tokens: keep this server on loopback):\n");
    for demo in DEMO_TOKENS {
        let names: Vec<&str> = demo.permissions.iter().map(|p| p.as_str()).collect();
        let scope = if demo.instance_wide {
            "every organisation"
        } else {
            demo.org
        };
        out.push_str(&format!(
            "  {:<19} {} ({}): {} in {scope}\n",
            demo.token,
            demo.user,
            demo.org,
            names.join(", ")
        ));
    }
    out.push_str("Users: ");
    let users: Vec<String> = DEMO_USERS
        .iter()
        .map(|user| format!("{} ({}, {})", user.id, user.org, user.label()))
        .collect();
    out.push_str(&users.join(", "));
    out.push_str(&format!(
        r#"

# Lock alice, then lock her again (400, code 9)
curl -s {w} -X POST {b}/management/v1/users/alice/_lock {admin} {json} -d '{{"reason":"phishing report"}}'
curl -s {w} -X POST {b}/management/v1/users/alice/_lock {admin}
# gina belongs to globex: for acme's admin she does not exist (404)
curl -s {w} -X POST {b}/management/v1/users/gina/_lock {admin}
# The reader may read but not write (403)
curl -s {w} -X POST {b}/management/v1/users/carol/_lock -H 'Authorization: Bearer acme-reader-token'
# Unlock alice through Resources v3alpha
curl -s {w} -X POST {b}/resources/v3alpha/users/alice/_unlock {admin}
# Connect (ZITADEL v2 User service): read bob, unlock him, unlock again (failed_precondition)
curl -s {w} {b}/zitadel.user.v2.UserService/GetUserByID {admin} {json} -d '{{"userId":"bob"}}'
curl -s {w} {b}/zitadel.user.v2.UserService/UnlockUser {admin} {json} -d '{{"userId":"bob"}}'
curl -s {w} {b}/zitadel.user.v2.UserService/UnlockUser {admin} {json} -d '{{"userId":"bob"}}'
# Lock after 3 failed password checks, then a check is refused
curl -s {w} -X PUT {b}/management/v1/policies/lockout {admin} {json} -d '{{"maxPasswordAttempts":3}}'
for i in 1 2 3; do curl -s {w} -X POST {b}/management/v1/users/alice/_record_check {admin} {json} -d '{{"factor":"password","succeeded":false}}'; done
curl -s {w} -X POST {b}/management/v1/users/alice/_record_check {admin} {json} -d '{{"factor":"password","succeeded":true}}'
# Locked users of acme, and of globex as root; alice's history
curl -s {w} -X POST {b}/management/v1/users/_search {admin} {json} -d '{{"queries":[{{"stateQuery":{{"state":"USER_STATE_LOCKED"}}}}]}}'
curl -s {w} -X POST {b}/management/v1/users/_search -H 'Authorization: Bearer root-token' -H 'x-zitadel-orgid: globex'
curl -s {w} -X POST {b}/management/v1/users/alice/changes/_search {admin}
"#
    ));
    out
}
