//! The JSON the seeds' APIs speak: details in the Management v1 and Resources
//! v3alpha shapes, byte for byte, and the error body for every error kind.

use std::sync::Arc;

use futures::executor::block_on;
use userstate::wire::{DetailsBody, ErrorBody, V1Details, V3Details, ERROR_DETAIL_TYPE};
use userstate::{
    ids, Caller, Error, ErrorKind, InMemoryAuthorizer, InMemoryRepository, InitialState,
    LockRequest, ManualClock, OrgId, Permission, Timestamp, UserId, UserService,
};

const ORG: &str = "69629023906488334";
const USER: &str = "69629012906488334";

fn service_at(time: &str) -> (UserService, Caller) {
    let org = OrgId::new(ORG).unwrap();
    let admin = Caller::new(UserId::new("admin").unwrap(), org.clone());
    let grants = InMemoryAuthorizer::new();
    grants.grant(&admin.user_id, &org, [Permission::Read, Permission::Write]);
    let clock = ManualClock::new(Timestamp::parse_rfc3339(time).unwrap());
    let service = UserService::new(Arc::new(InMemoryRepository::new()), Arc::new(grants))
        .with_clock(Arc::new(clock));
    (service, admin)
}

#[test]
fn lock_details_match_the_management_v1_example() {
    let (service, admin) = service_at("2024-06-13T06:44:37.424Z");
    let user = UserId::new(USER).unwrap();
    block_on(async {
        service
            .create(&admin, &user, InitialState::Active)
            .await
            .unwrap();
        let details = service
            .lock(&admin, &user, LockRequest::new())
            .await
            .unwrap();
        assert_eq!(
            serde_json::to_string(&details.to_v1()).unwrap(),
            r#"{"details":{"sequence":"2","creationDate":"2024-06-13T06:44:37.424Z","changeDate":"2024-06-13T06:44:37.424Z","resourceOwner":"69629023906488334"}}"#
        );
    });
}

#[test]
fn unlock_details_match_the_resources_v3alpha_example() {
    let (service, admin) = service_at("2024-11-22T16:27:05.645Z");
    let user = UserId::new(USER).unwrap();
    block_on(async {
        service
            .create(&admin, &user, InitialState::Active)
            .await
            .unwrap();
        service
            .lock(&admin, &user, LockRequest::new())
            .await
            .unwrap();
        let details = service.unlock(&admin, &user, None).await.unwrap();
        assert_eq!(
            serde_json::to_string(&details.to_v3alpha()).unwrap(),
            r#"{"details":{"id":"69629012906488334","created":"2024-11-22T16:27:05.645Z","changed":"2024-11-22T16:27:05.645Z","owner":{"type":"OWNER_TYPE_ORG","id":"69629023906488334"}}}"#
        );
    });
}

#[test]
fn wire_shapes_read_back() {
    let (service, admin) = service_at("2024-06-13T06:44:37.424Z");
    let user = UserId::new(USER).unwrap();
    let details = block_on(service.create(&admin, &user, InitialState::Active)).unwrap();
    let v1 = serde_json::to_string(&details.to_v1()).unwrap();
    assert_eq!(
        serde_json::from_str::<DetailsBody<V1Details>>(&v1).unwrap(),
        details.to_v1()
    );
    let v3 = serde_json::to_string(&details.to_v3alpha()).unwrap();
    assert_eq!(
        serde_json::from_str::<DetailsBody<V3Details>>(&v3).unwrap(),
        details.to_v3alpha()
    );
}

#[test]
fn invalid_transition_error_body_has_the_seeds_shape() {
    let (service, admin) = service_at("2024-06-13T06:44:37.424Z");
    let user = UserId::new(USER).unwrap();
    let err = block_on(async {
        service
            .create(&admin, &user, InitialState::Active)
            .await
            .unwrap();
        service.unlock(&admin, &user, None).await.unwrap_err()
    });
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);
    assert_eq!(
        serde_json::to_string(&err.body()).unwrap(),
        r#"{"code":9,"message":"User is not locked (USER-NOT-LOCKED)","details":[{"@type":"type.googleapis.com/userstate.v1.ErrorDetail","id":"USER-NOT-LOCKED","message":"User is not locked"}]}"#
    );
    // The seeds' generic shape: code (int), message (string), details [{"@type": string}].
    let value = serde_json::to_value(err.body()).unwrap();
    assert!(value["code"].is_u64());
    assert!(value["message"].is_string());
    assert!(value["details"][0]["@type"].is_string());
    let back: ErrorBody = serde_json::from_value(value).unwrap();
    assert_eq!(back, err.body());
}

#[test]
fn every_error_kind_maps_to_code_status_and_body() {
    let cases = [
        (ErrorKind::InvalidArgument, 3, 400),
        (ErrorKind::NotFound, 5, 404),
        (ErrorKind::AlreadyExists, 6, 409),
        (ErrorKind::PermissionDenied, 7, 403),
        (ErrorKind::FailedPrecondition, 9, 400),
        (ErrorKind::Aborted, 10, 409),
        (ErrorKind::Conflict, 10, 409),
        (ErrorKind::Internal, 13, 500),
        (ErrorKind::Unavailable, 14, 503),
    ];
    for (kind, code, status) in cases {
        assert_eq!(kind.grpc_code(), code, "{kind:?}");
        assert_eq!(kind.http_status(), status, "{kind:?}");
        let err = Error::new(kind, "USER-TEST", "Something happened");
        let body = err.body();
        assert_eq!(body.code, code);
        assert_eq!(body.message, "Something happened (USER-TEST)");
        assert_eq!(body.details.len(), 1);
        assert_eq!(body.details[0].type_url, ERROR_DETAIL_TYPE);
        assert_eq!(body.details[0].id, "USER-TEST");
        assert_eq!(body.details[0].message, "Something happened");
        assert_eq!(err.to_string(), "Something happened (USER-TEST)");
    }
}

#[test]
fn errors_the_library_raises_have_the_expected_kinds() {
    let org = OrgId::new("acme").unwrap();
    let (service, admin) = service_at("2024-06-13T06:44:37.424Z");
    let stranger = Caller::new(UserId::new("stranger").unwrap(), org);
    let user = UserId::new(USER).unwrap();
    block_on(async {
        let cases: Vec<(Error, ErrorKind, &str)> = vec![
            (
                UserId::new("").unwrap_err(),
                ErrorKind::InvalidArgument,
                ids::INVALID_USER_ID,
            ),
            (
                service.get(&admin, &user).await.unwrap_err(),
                ErrorKind::NotFound,
                ids::NOT_FOUND,
            ),
            (
                service
                    .lock(&stranger, &user, LockRequest::new())
                    .await
                    .unwrap_err(),
                ErrorKind::PermissionDenied,
                ids::PERMISSION_DENIED,
            ),
            (
                {
                    service
                        .create(&admin, &user, InitialState::Initial)
                        .await
                        .unwrap();
                    service
                        .create(&admin, &user, InitialState::Initial)
                        .await
                        .unwrap_err()
                },
                ErrorKind::AlreadyExists,
                ids::ALREADY_EXISTS,
            ),
            (
                service.deactivate(&admin, &user, None).await.unwrap_err(),
                ErrorKind::FailedPrecondition,
                ids::INITIAL_CANNOT_DEACTIVATE,
            ),
            (
                userstate::storage::Conflict {
                    expected: 1,
                    actual: 2,
                }
                .into(),
                ErrorKind::Conflict,
                ids::CONFLICT,
            ),
            (
                Error::unavailable("database is locked"),
                ErrorKind::Unavailable,
                ids::UNAVAILABLE,
            ),
            (
                Error::corrupt("bad record"),
                ErrorKind::Internal,
                ids::CORRUPT,
            ),
        ];
        for (err, kind, id) in cases {
            assert_eq!((err.kind(), err.id()), (kind, id), "{err}");
        }
    });
}
