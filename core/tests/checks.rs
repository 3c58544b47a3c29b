//! The order of checks (arguments, permission, existence, transition) and
//! the refusal of bad input before anything is read: the service's own
//! logic, tested once here over the in-memory repository.

use std::sync::Arc;

use futures::executor::block_on;
use userstate::conformance::{at, user, Fixture};
use userstate::storage::Scope;
use userstate::{
    ids, Caller, ErrorKind, HistoryQuery, InMemoryRepository, ListQuery, LockRequest, OrgId,
    Reason, UserId, UserState,
};

fn fixture() -> Fixture {
    Fixture::new(Arc::new(InMemoryRepository::new()))
}

/// The order of checks: arguments, then permission in the targeted organisation, then
/// existence there, then the transition; a user of another organisation is
/// indistinguishable from one that does not exist.
#[test]
fn tenant_isolation_and_order_of_checks() {
    block_on(async {
        let f = fixture();
        let s = &f.service;
        let acme_user = f.user_in_state("acme-user", UserState::Locked).await;
        let missing = user("missing");

        // 1. Arguments first: a bad expiry beats a missing permission.
        let err = s
            .lock(&f.nobody, &acme_user, LockRequest::new().until(at(0)))
            .await
            .expect_err("bad argument");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);

        // 2. Permission before existence or state: the same answer for a user that
        // exists, one that does not, and one in any state.
        for caller in [&f.nobody, &f.acme_reader] {
            for id in [&acme_user, &missing] {
                let err = s.unlock(caller, id, None).await.expect_err("no write");
                assert_eq!(err.kind(), ErrorKind::PermissionDenied);
                assert_eq!(err.id(), ids::PERMISSION_DENIED);
            }
        }
        let err = s
            .remove(&f.acme_writer, &acme_user, None)
            .await
            .expect_err("no delete");
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        let err = s.get(&f.nobody, &acme_user).await.expect_err("no read");
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);

        // 3. A caller with every permission in its own organisation sees nothing
        // of another: errors equal those for an id that was never used.
        let globex = &f.globex_admin;
        let foreign = s
            .unlock(globex, &acme_user, None)
            .await
            .expect_err("foreign");
        let absent = s.unlock(globex, &missing, None).await.expect_err("absent");
        assert_eq!(foreign, absent);
        assert_eq!(foreign.body(), absent.body());
        assert_eq!(foreign.kind(), ErrorKind::NotFound);
        let foreign = s.get(globex, &acme_user).await.expect_err("foreign get");
        assert_eq!(
            foreign,
            s.get(globex, &missing).await.expect_err("absent get")
        );
        let foreign = s
            .history(globex, &acme_user, HistoryQuery::default())
            .await
            .expect_err("foreign history");
        assert_eq!(foreign.kind(), ErrorKind::NotFound);
        let page = s.list(globex, &ListQuery::all()).await.expect("list");
        assert!(page.items.is_empty());
        let err = s
            .remove(globex, &acme_user, None)
            .await
            .expect_err("foreign remove");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(
            s.login_allowed(&acme_user).await.expect_err("locked").id(),
            ids::LOGIN_LOCKED
        );

        // Naming acme without a grant there is denied, not not-found.
        let err = s
            .unlock(&globex.clone().in_org(f.acme.clone()), &acme_user, None)
            .await
            .expect_err("no grant in acme");
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);

        // An instance-wide grant covers every organisation, but only the one named.
        let root = &f.root;
        let err = s
            .unlock(root, &acme_user, None)
            .await
            .expect_err("root's own org");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        s.unlock(&root.clone().in_org(f.acme.clone()), &acme_user, None)
            .await
            .expect("root in acme");

        // 4. The transition last.
        let err = s
            .unlock(&f.acme_writer, &acme_user, None)
            .await
            .expect_err("not locked");
        assert_eq!(err.kind(), ErrorKind::FailedPrecondition);

        // A caller acting on itself needs the same permission as anyone.
        let selfish = Caller::new(acme_user.clone(), f.acme.clone());
        let err = s
            .lock(&selfish, &acme_user, LockRequest::new())
            .await
            .expect_err("self");
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);

        // Nothing above touched the user except root's unlock.
        assert_eq!(f.stored(&acme_user).await.sequence, 3);
        f.assert_snapshot_is_replay(&acme_user).await;
        assert_eq!(
            f.repo.load(&missing, &Scope::Instance).await.expect("load"),
            None
        );
    });
}

/// Empty, 1 MiB, NUL and control-character ids and organisations, and
/// over-long reasons are InvalidArgument before anything is read.
#[test]
fn hostile_input_is_refused_before_anything_is_read() {
    let huge = "x".repeat(1 << 20);
    for bad in [
        "",
        "nul\0byte",
        "bell\u{7}",
        "line\nbreak",
        "del\u{7f}",
        &huge,
    ] {
        for err in [
            UserId::new(bad).expect_err("bad user id"),
            OrgId::new(bad).expect_err("bad org id"),
        ] {
            assert_eq!(
                err.kind(),
                ErrorKind::InvalidArgument,
                "{:?}",
                &bad[..bad.len().min(20)]
            );
        }
    }
    let err = Reason::new("r".repeat(userstate::MAX_REASON_CHARS + 1)).expect_err("long reason");
    assert_eq!(err.id(), ids::INVALID_REASON);
    assert!(serde_json::from_str::<UserId>("\"a\\u0000b\"").is_err());
}

/// Ids that would show as another name in an admin page or audit log are
/// refused, with a message that names the field and the rule, never the
/// value; ids stored before stay readable through `from_stored`.
#[test]
fn ids_that_hide_or_fake_characters_are_refused() {
    let refused = [
        (" alice ", "whitespace"),
        ("alice ", "whitespace"),
        ("   ", "whitespace"),
        ("ad\u{202E}nimda", "format"),
        ("ali\u{200B}ce", "format"),
        ("ali\u{2028}ce", "separator"),
        ("ali\u{2029}ce", "separator"),
        ("ali\u{FEFF}ce", "format"),
        ("ali\u{0007}ce", "control"),
        ("cafe\u{0301}", "NFC"),
    ];
    for (value, rule) in refused {
        for error in [
            userstate::UserId::new(value).unwrap_err(),
            userstate::OrgId::new(value).map(drop).unwrap_err(),
        ] {
            assert_eq!(error.kind(), ErrorKind::InvalidArgument, "{value:?}");
            assert!(error.message().contains(rule), "{value:?}: {error}");
            assert!(
                error.message().starts_with("user id")
                    || error.message().starts_with("organisation id"),
                "{error}"
            );
            let shown = value.trim();
            assert!(
                shown.is_empty() || !error.message().contains(shown),
                "{error}"
            );
        }
    }
    for accepted in ["café", "ü🙂", "o'; DROP TABLE users; --", "a b", "日本"] {
        userstate::UserId::new(accepted).expect(accepted);
    }
    // Two spellings of one name cannot be two users: only NFC is accepted.
    assert!(userstate::UserId::new("caf\u{e9}").is_ok());
    assert!(userstate::UserId::new("cafe\u{301}").is_err());
    let stored = userstate::UserId::from_stored(" alice ").expect("stored before the rule");
    assert_eq!(stored.as_str(), " alice ");
}

/// State and factor names parse one way, exactly as written, and an
/// unknown one names the accepted values.
#[test]
fn state_and_factor_names_parse_one_way() {
    use std::str::FromStr;
    assert_eq!(
        userstate::UserState::from_str("locked").unwrap(),
        userstate::UserState::Locked
    );
    assert_eq!(
        userstate::UserState::parse("USER_STATE_LOCKED").unwrap(),
        userstate::UserState::Locked
    );
    let unknown = userstate::UserState::parse("Locked").unwrap_err();
    assert!(
        unknown
            .message()
            .contains("initial, active, locked, inactive, deleted"),
        "{unknown}"
    );
    assert_eq!(
        userstate::Factor::from_str("totp").unwrap(),
        userstate::Factor::Totp
    );
    let unknown = userstate::Factor::parse("TOTP").unwrap_err();
    assert!(
        unknown.message().contains("password, totp, sms, email"),
        "{unknown}"
    );
}
