//! The OpenAPI document: served without authentication at `/openapi.json`,
//! OpenAPI 3.1, and describing exactly the routes the router mounts (each
//! documented path and method is routed to a handler, every other method
//! of a documented path is the router's 405, other paths its 404).

use std::sync::Arc;

use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use userstate::{InMemoryRepository, LockoutPolicy, UserService};
use userstate_http::{ids, Tokens};

const TOKEN: &str = "s3cret";

fn app() -> Router {
    let tokens = Tokens::from_json(&format!(
        r#"{{"{TOKEN}": {{"userId": "admin", "orgId": "acme",
            "instanceGrants": ["user.read", "user.write", "user.delete", "policy.write"]}}}}"#
    ))
    .unwrap();
    let service = UserService::new(
        Arc::new(InMemoryRepository::new()),
        Arc::new(tokens.authorizer()),
    );
    userstate_http::router(service, tokens)
}

/// Sends a request; the body is read only when it is JSON (the event
/// stream never ends).
async fn send(
    app: &Router,
    method: Method,
    path: &str,
    token: bool,
) -> (StatusCode, Option<String>, Value) {
    let mut request = Request::builder().method(method.clone()).uri(path);
    if token {
        request = request.header(AUTHORIZATION, format!("Bearer {TOKEN}"));
    }
    let body = if method == Method::POST || method == Method::PUT {
        Body::from("{}")
    } else {
        Body::empty()
    };
    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let json = if content_type.as_deref() == Some("application/json") {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    } else {
        Value::Null
    };
    (status, content_type, json)
}

/// The error id of an error body, if it is one.
fn error_id(body: &Value) -> Option<&str> {
    body["details"][0]["id"].as_str()
}

/// Every documented operation as (method, concrete path): `{id}` filled
/// in, `{method}` once per value of its enum.
fn operations(document: &Value) -> Vec<(Method, String)> {
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let mut paths = vec![path.replace("{id}", "some-user")];
            if path.contains("{method}") {
                let parameter = operation["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p["name"] == "method")
                    .unwrap();
                let schema = resolve(document, &parameter["schema"]);
                paths = schema["enum"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|name| path.replace("{method}", name.as_str().unwrap()))
                    .collect();
            }
            assert!(
                paths.iter().all(|p| !p.contains('{')),
                "a path parameter of {path} is not filled in"
            );
            operations.extend(paths.into_iter().map(|p| (method.clone(), p)));
        }
    }
    operations
}

/// A schema, following a `$ref` to the components.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap();
            &document["components"]["schemas"][name]
        }
        None => schema,
    }
}

async fn served_document(app: &Router) -> Value {
    let (status, content_type, document) = send(app, Method::GET, "/openapi.json", false).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    document
}

#[tokio::test]
async fn the_document_is_served_without_authentication_and_is_openapi_3_1() {
    let app = app();
    let document = served_document(&app).await;
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        document["openapi"]
    );
    assert_eq!(
        document,
        serde_json::to_value(userstate_http::openapi()).unwrap()
    );
    // With a token too.
    let (status, _, with_token) = send(&app, Method::GET, "/openapi.json", true).await;
    assert_eq!((status, &with_token), (StatusCode::OK, &document));
    // Only GET (and HEAD) of that one path is public.
    let (status, _, body) = send(&app, Method::POST, "/openapi.json", false).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_id(&body), Some(ids::UNAUTHENTICATED));
    for path in ["/openapi.json/", "/openapi.jsonx", "/x/openapi.json"] {
        let (status, _, _) = send(&app, Method::GET, path, false).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
    // The document's own operation says it needs no credentials; the
    // others need the bearer scheme.
    assert_eq!(
        document["paths"]["/openapi.json"]["get"]["security"],
        serde_json::json!([{}])
    );
    assert_eq!(document["security"], serde_json::json!([{"bearer": []}]));
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_nothing_else_is() {
    let app = app();
    let document = served_document(&app).await;
    let operations = operations(&document);
    // 14 paths of the seeds' APIs, the 6 Connect methods, and the
    // document's own.
    assert_eq!(document["paths"].as_object().unwrap().len(), 21);
    assert!(operations.len() >= 22, "{operations:?}");
    for (method, path) in &operations {
        let (status, content_type, body) = send(&app, method.clone(), path, true).await;
        let id = error_id(&body);
        assert_ne!(id, Some(ids::ROUTE_NOT_FOUND), "{method} {path}: {body}");
        assert_ne!(id, Some(ids::METHOD_NOT_ALLOWED), "{method} {path}: {body}");
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_ne!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
        if path.ends_with("/_stream") {
            assert_eq!(status, StatusCode::OK);
            assert_eq!(content_type.as_deref(), Some("text/event-stream"));
        }
    }
    // Every other method of a documented path is the router's 405.
    for (path, item) in document["paths"].as_object().unwrap() {
        let path = path
            .replace("{id}", "some-user")
            .replace("{method}", "LockUser");
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
        ] {
            if item.get(method.as_str().to_lowercase()).is_some() {
                continue;
            }
            let (status, _, body) = send(&app, method.clone(), &path, true).await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            if !path.starts_with("/zitadel.") {
                assert_eq!(
                    error_id(&body),
                    Some(ids::METHOD_NOT_ALLOWED),
                    "{method} {path}"
                );
            }
        }
    }
    // Undocumented paths are the router's 404.
    for path in [
        "/",
        "/management/v1/users/some-user/_frobnicate",
        "/management/v1/orgs",
        "/resources/v3alpha/users/some-user/_deactivate",
        "/admin/v1/events",
        "/openapi.yaml",
    ] {
        for method in [Method::GET, Method::POST] {
            let (status, _, body) = send(&app, method.clone(), path, true).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
            assert_eq!(
                error_id(&body),
                Some(ids::ROUTE_NOT_FOUND),
                "{method} {path}"
            );
        }
    }
    // A method the Connect service lacks is its fallback: 501, Connect's form.
    let (status, _, body) = send(
        &app,
        Method::POST,
        "/zitadel.user.v2.UserService/FrobUser",
        true,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    assert_eq!(body["code"], "unimplemented");
}

#[tokio::test]
async fn the_schemas_describe_the_wire_shapes() {
    let document = serde_json::to_value(userstate_http::openapi()).unwrap();
    let schemas = &document["components"]["schemas"];
    // 64-bit integers are strings.
    assert_eq!(
        schemas["V1Details"]["properties"]["sequence"]["type"],
        "string"
    );
    assert_eq!(
        schemas["V1Details"]["required"],
        serde_json::json!(["sequence", "creationDate", "changeDate", "resourceOwner"])
    );
    // Request bodies refuse unknown fields.
    for name in [
        "LockArguments",
        "ReasonArguments",
        "CreateArguments",
        "CheckArguments",
        "SearchArguments",
        "ChangesArguments",
        "LockoutPolicyBody",
        "UserRequest",
    ] {
        assert_eq!(
            schemas[name]["additionalProperties"],
            Value::Bool(false),
            "{name}: {}",
            schemas[name]
        );
    }
    // The lockout policy body has exactly the library's fields.
    let mut documented: Vec<&String> = schemas["LockoutPolicyBody"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    let known = serde_json::to_value(LockoutPolicy::default()).unwrap();
    let mut known: Vec<&String> = known.as_object().unwrap().keys().collect();
    documented.sort();
    known.sort();
    assert_eq!(documented, known);
    // The error bodies.
    assert_eq!(
        schemas["ErrorDetail"]["properties"]["@type"]["type"],
        "string"
    );
    let connect = &document["paths"]["/zitadel.user.v2.UserService/LockUser"]["post"];
    assert_eq!(
        connect["responses"]["400"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ConnectError"
    );
    // Every reference resolves.
    fn references<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    found.push(reference);
                }
                map.values().for_each(|v| references(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| references(v, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    references(&document, &mut found);
    assert!(!found.is_empty());
    for reference in found {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{reference}"));
        assert!(schemas[name].is_object(), "{reference} does not resolve");
    }
    // Types of one name in two modules do not overwrite each other.
    let reply = |path: &str| {
        let schema = &document["paths"][path]["post"]["responses"]["200"]["content"]
            ["application/json"]["schema"];
        resolve(&document, schema)["required"].clone()
    };
    assert_eq!(
        reply("/admin/v1/events/_search"),
        serde_json::json!(["events"])
    );
    assert_eq!(
        reply("/management/v1/users/_search"),
        serde_json::json!(["details", "result"])
    );
    assert!(schemas["EventType"]["properties"]["key"].is_object());
    assert!(schemas["ApiEventType"]["properties"]["type"].is_object());
    let stream = &document["paths"]["/admin/v1/events/_stream"]["get"];
    assert!(stream["responses"]["200"]["content"]["text/event-stream"].is_object());
}
